package server

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/api"
	"github.com/convox-build-action/convox-build-action/internal/queue"
	"github.com/convox-build-action/convox-build-action/internal/store"
	"github.com/convox-build-action/convox-build-action/internal/web"
)

// routes adds the builds API and, when they can be served, the build
// pages.
func (s *Server) routes() error {
	a := &api.Server{Engine: s.eng, Token: s.cfg.APIToken, Registry: s.cfg.Registry, Repository: s.appRepository}
	if s.pagesOn() {
		secret := s.cfg.SessionSecret
		if len(secret) == 0 {
			sum := sha256.Sum256(append([]byte("convox-build pages session\x00"), s.cfg.WebhookSecret...))
			secret = sum[:]
		}
		pages, err := web.New(web.Options{
			Engine: s.eng, PublicURL: s.cfg.PublicURL, Public: s.cfg.PublicPages,
			ClientID: s.cfg.OAuthClientID, ClientSecret: s.cfg.OAuthClientSecret,
			GitHubURL: s.githubURL(), APIURL: s.cfg.GitHubAPIURL, SessionSecret: secret,
			Repository: s.buildRepository,
		})
		if err != nil {
			return err
		}
		pages.Register(s.mux)
		a.HTML = http.HandlerFunc(pages.BuildPage)
	} else {
		s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintln(w, "convox-build webhook server. Build pages are off: set PUBLIC_PAGES=true, or GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET for signing in with GitHub.")
		})
	}
	a.Register(s.mux)
	return nil
}

// pagesOn says whether the build pages can be served: public, or with
// the OAuth credentials that signing in needs.
func (s *Server) pagesOn() bool {
	return s.cfg.PublicPages || (s.cfg.OAuthClientID != "" && s.cfg.OAuthClientSecret != "")
}

// githubURL is GitHub's web address: the configured one, else the host of
// a GitHub Enterprise API URL, else github.com.
func (s *Server) githubURL() string {
	if s.cfg.GitHubURL != "" {
		return s.cfg.GitHubURL
	}
	u, err := url.Parse(s.cfg.GitHubAPIURL)
	if s.cfg.GitHubAPIURL == "" || err != nil || u.Host == "api.github.com" {
		return "https://github.com"
	}
	return u.Scheme + "://" + u.Host
}

// buildRepository is the GitHub repository a build came from, "" for one
// the server did not build (an import).
func (s *Server) buildRepository(ctx context.Context, b *store.Build) (string, error) {
	qb, err := s.q.Build(ctx, b.ID)
	if errors.Is(err, queue.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return qb.Owner + "/" + qb.Repo, nil
}

// appRepository is the image repository an import into app pushes to:
// the repository of the app's latest build, or the configured template
// when it needs only the app's name.
func (s *Server) appRepository(app string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	builds, err := s.st.ListBuilds(ctx, app, 1)
	if err != nil {
		return "", err
	}
	if len(builds) == 1 && builds[0].Repository != "" {
		return builds[0].Repository, nil
	}
	if !strings.Contains(s.cfg.ImageRepository, "{owner}") && !strings.Contains(s.cfg.ImageRepository, "{repo}") {
		return s.repository("", "", app), nil
	}
	return "", fmt.Errorf("app %s has no build yet, and the image repository %s needs a GitHub repository", app, s.cfg.ImageRepository)
}

// readyTimeout bounds the readiness checks.
const readyTimeout = 5 * time.Second

// readyz answers 200 when the database answers and at least one buildkitd
// does, 503 otherwise, with a JSON body saying which failed and why.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	checks := map[string]string{}
	ok := true
	if _, err := s.st.CountBuilds(ctx); err != nil {
		checks["database"], ok = err.Error(), false
	} else {
		checks["database"] = "ok"
	}
	if rs, can := s.eng.Solver.(interface{ Ready(context.Context) error }); can {
		if err := rs.Ready(ctx); err != nil {
			checks["buildkit"], ok = err.Error(), false
		} else {
			checks["buildkit"] = "ok"
		}
	} else {
		checks["buildkit"] = "not checked"
	}
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(checks)
}
