// Package web serves the build pages of the server: recent builds across
// apps, and each build's page with its services, images and digests and
// its log following live over server-sent events (ANSI colours rendered,
// long lines wrapped). The pages are server-rendered HTML with embedded
// assets; nothing they load comes from elsewhere.
//
// Build logs of private repositories are private: unless the pages are
// public, a visitor signs in with GitHub (the App's OAuth web flow) and
// sees a build only if GitHub says, with the visitor's own token, that
// they can read its repository.
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

//go:embed assets
var assets embed.FS

// Options configure the pages.
type Options struct {
	// Engine reads builds and their logs (its Store). Required. Whoever
	// serves the pages also runs Engine.Reap, as the server does, so that
	// builds whose process died show as failed.
	Engine *build.Engine
	// PublicURL is where the server is reached, such as
	// https://builds.example.com; sign-in returns there, and cookies are
	// Secure when it is https.
	PublicURL string
	// Public opens every page to everyone: for servers that build only
	// public repositories.
	Public bool
	// ClientID and ClientSecret are the GitHub App's OAuth credentials,
	// needed unless Public.
	ClientID, ClientSecret string
	// GitHubURL is GitHub's web address (default https://github.com; a
	// GitHub Enterprise server's otherwise); APIURL its API's (default
	// https://api.github.com/).
	GitHubURL, APIURL string
	// SessionSecret seals session cookies (at least 16 bytes); every
	// replica must share it.
	SessionSecret []byte
	// Repository names the GitHub repository ("owner/name") a build came
	// from; a build without one is shown only when Public.
	Repository func(ctx context.Context, b *store.Build) (string, error)
	// LogPoll is how often a live log looks for new lines (default 250 ms).
	LogPoll time.Duration
	// SessionTTL is how long a sign-in lasts (default 12 h).
	SessionTTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Server serves the pages.
type Server struct {
	opts   Options
	tmpl   *template.Template
	sealer *sealer
	oauth  *oauth2.Config
	access *accessCache
}

// New checks opts and returns the pages' server.
func New(opts Options) (*Server, error) {
	if opts.Engine == nil {
		return nil, errors.New("web: Engine is required")
	}
	if opts.GitHubURL == "" {
		opts.GitHubURL = "https://github.com"
	}
	if opts.LogPoll <= 0 {
		opts.LogPoll = 250 * time.Millisecond
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if _, err := url.Parse(opts.PublicURL); err != nil {
		return nil, fmt.Errorf("public URL %q: %w", opts.PublicURL, err)
	}
	s := &Server{opts: opts}
	var err error
	s.tmpl, err = template.New("").Funcs(template.FuncMap{
		"ago":      func(t time.Time) string { return ago(t, s.now()) },
		"duration": func(b store.Build) string { return elapsed(b, s.now()) },
		"short":    func(sha string) string { return sha[:min(len(sha), 10)] },
		"logline":  func(l string) template.HTML { return template.HTML(ansiHTML(l)) },
		"ended":    func(b store.Build) bool { return ended(&b) },
	}).ParseFS(assets, "assets/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: templates: %w", err)
	}
	if !opts.Public {
		if opts.ClientID == "" || opts.ClientSecret == "" {
			return nil, errors.New("web: private pages need the GitHub App's OAuth client ID and secret (or make them public)")
		}
		if s.sealer, err = newSealer(opts.SessionSecret); err != nil {
			return nil, err
		}
		base := strings.TrimSuffix(opts.GitHubURL, "/")
		s.oauth = &oauth2.Config{ClientID: opts.ClientID, ClientSecret: opts.ClientSecret,
			Endpoint:    oauth2.Endpoint{AuthURL: base + "/login/oauth/authorize", TokenURL: base + "/login/oauth/access_token", AuthStyle: oauth2.AuthStyleInParams},
			RedirectURL: strings.TrimSuffix(opts.PublicURL, "/") + "/login/callback"}
		s.access = &accessCache{apiURL: opts.APIURL, now: s.now, entries: map[string]accessEntry{}}
	}
	return s, nil
}

func (s *Server) now() time.Time { return s.opts.Now() }

func (s *Server) secure() bool { return strings.HasPrefix(s.opts.PublicURL, "https://") }

// Register adds the pages to mux, but for the build page
// (/apps/{app}/builds/{id}), whose address the API shares: serve it with
// BuildPage.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", s.page(s.index))
	mux.HandleFunc("GET /apps/{app}/builds/{id}/events", s.page(s.events))
	mux.Handle("GET /assets/", s.static())
	mux.HandleFunc("GET /login", s.login)
	mux.HandleFunc("GET /login/callback", s.callback)
	mux.HandleFunc("POST /logout", s.logout)
}

// BuildPage serves /apps/{app}/builds/{id} to a browser.
func (s *Server) BuildPage(w http.ResponseWriter, r *http.Request) { s.page(s.buildPage)(w, r) }

func (s *Server) static() http.Handler {
	sub, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(sub)
	return http.StripPrefix("/assets/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".html") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	}))
}

// errNotFound answers 404 without saying whether the build exists.
var errNotFound = errors.New("not found")

// page wraps a page handler: security headers, and errors as pages.
func (s *Server) page(h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "same-origin")
		err := h(w, r)
		switch {
		case err == nil:
		case errors.Is(err, errNotFound), errors.Is(err, store.ErrNotFound):
			s.render(w, http.StatusNotFound, "error.html", map[string]any{"Title": "Not found", "Message": "There is no such build, or you cannot see it."})
		default:
			s.render(w, http.StatusInternalServerError, "error.html", map[string]any{"Title": "Error", "Message": "Something went wrong on the server."})
		}
	}
}

func (s *Server) render(w http.ResponseWriter, code int, name string, data map[string]any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	s.tmpl.ExecuteTemplate(w, name, data)
}

// viewer is who is looking: nil when signed out (or when pages are
// public).
func (s *Server) viewer(r *http.Request) *session {
	if s.opts.Public {
		return nil
	}
	return s.user(r)
}

// requireSignIn redirects a signed-out visitor to sign in and says
// whether it did.
func (s *Server) requireSignIn(w http.ResponseWriter, r *http.Request) bool {
	if s.opts.Public || s.user(r) != nil {
		return false
	}
	http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
	return true
}

// canSee reports whether the viewer may see build b.
func (s *Server) canSee(ctx context.Context, u *session, b *store.Build) (bool, error) {
	if s.opts.Public {
		return true, nil
	}
	if u == nil || s.opts.Repository == nil {
		return false, nil
	}
	repo, err := s.opts.Repository(ctx, b)
	if err != nil || repo == "" {
		return false, err
	}
	return s.access.canRead(ctx, u.Login, u.Token, repo)
}

// recentLimit is how many builds the index lists.
const recentLimit = 50

func (s *Server) index(w http.ResponseWriter, r *http.Request) error {
	if s.requireSignIn(w, r) {
		return nil
	}
	all, err := s.opts.Engine.Store.ListBuilds(r.Context(), "", recentLimit*4)
	if err != nil {
		return err
	}
	u := s.viewer(r)
	var shown []store.Build
	for i := range all {
		if len(shown) == recentLimit {
			break
		}
		ok, err := s.canSee(r.Context(), u, &all[i])
		if err != nil {
			return err
		}
		if ok {
			shown = append(shown, all[i])
		}
	}
	s.render(w, http.StatusOK, "index.html", map[string]any{"Title": "Builds", "Builds": shown, "User": u})
	return nil
}

// visibleBuild is the build in the path, if the viewer may see it.
func (s *Server) visibleBuild(r *http.Request) (*store.Build, error) {
	id := r.PathValue("id")
	if !build.ValidBuildID(id) {
		return nil, errNotFound
	}
	b, err := s.opts.Engine.Store.GetBuild(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if b.App != r.PathValue("app") {
		return nil, errNotFound
	}
	ok, err := s.canSee(r.Context(), s.viewer(r), b)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errNotFound
	}
	return b, nil
}

// pageLines is how many log lines a build page holds when it loads;
// the rest stream in.
const pageLines = 5000

func (s *Server) buildPage(w http.ResponseWriter, r *http.Request) error {
	if s.requireSignIn(w, r) {
		return nil
	}
	b, err := s.visibleBuild(r)
	if err != nil {
		return err
	}
	lines, err := s.opts.Engine.Store.ReadLogs(r.Context(), b.ID, 0, 0)
	if err != nil {
		return err
	}
	skipped := 0
	if len(lines) > pageLines {
		skipped = len(lines) - pageLines
		lines = lines[skipped:]
	}
	var last int64
	if len(lines) > 0 {
		last = lines[len(lines)-1].Seq
	}
	s.render(w, http.StatusOK, "build.html", map[string]any{"Title": b.App + " " + b.ID, "Build": b, "Lines": lines,
		"Skipped": skipped, "LastSeq": last, "User": s.viewer(r)})
	return nil
}

func ended(b *store.Build) bool {
	return b.Status == store.StatusComplete || b.Status == store.StatusFailed
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if s.opts.Public {
		http.Redirect(w, r, "/", http.StatusFound)
		return
	}
	next := r.URL.Query().Get("next")
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		next = "/"
	}
	st := oauthState{State: randomToken(), Next: next, Expires: s.now().Add(10 * time.Minute)}
	if err := s.setCookie(w, stateCookie, st, 10*time.Minute); err != nil {
		http.Error(w, "cannot start signing in", http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, s.oauth.AuthCodeURL(st.State), http.StatusFound)
}

func (s *Server) callback(w http.ResponseWriter, r *http.Request) {
	if s.opts.Public {
		http.Redirect(w, r, "/", http.StatusFound)
		return
	}
	fail := func(code int, msg string) {
		s.render(w, code, "error.html", map[string]any{"Title": "Sign-in failed", "Message": msg})
	}
	c, err := r.Cookie(stateCookie)
	var st oauthState
	if err != nil || s.sealer.open(stateCookie, c.Value, &st) != nil || s.now().After(st.Expires) ||
		r.URL.Query().Get("state") == "" || r.URL.Query().Get("state") != st.State {
		fail(http.StatusBadRequest, "The sign-in could not be checked (it expired, or did not start here). Try again.")
		return
	}
	s.clearCookie(w, stateCookie)
	if e := r.URL.Query().Get("error"); e != "" {
		fail(http.StatusForbidden, "GitHub did not sign you in: "+e)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	tok, err := s.oauth.Exchange(ctx, r.URL.Query().Get("code"))
	if err != nil {
		fail(http.StatusBadGateway, "GitHub did not accept the sign-in code. Try again.")
		return
	}
	login, err := githubLogin(ctx, s.opts.APIURL, tok.AccessToken)
	if err != nil {
		fail(http.StatusBadGateway, "GitHub did not say who you are. Try again.")
		return
	}
	if err := s.setCookie(w, sessionCookie, session{Login: login, Token: tok.AccessToken, Expires: s.now().Add(s.opts.SessionTTL)}, s.opts.SessionTTL); err != nil {
		fail(http.StatusInternalServerError, "Cannot keep you signed in.")
		return
	}
	http.Redirect(w, r, st.Next, http.StatusFound)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if !s.opts.Public {
		s.clearCookie(w, sessionCookie)
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
