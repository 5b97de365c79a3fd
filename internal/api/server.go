package api

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

// Server serves the API. Engine (its Store) is required; the rest
// configure exports and imports. Whoever runs it also runs Engine.Reap,
// as the server does, so that builds whose process died show as failed
// (a log being followed fails such a build itself).
type Server struct {
	Engine *build.Engine
	// Token is the bearer token every request must carry. Empty refuses
	// every request: an API without a token is off.
	Token string
	// Registry reaches the images for exports and imports.
	Registry registry.Options
	// Repository is the image repository an import into app pushes to,
	// when the request names none (?repository=...).
	Repository func(app string) (string, error)
	// LogPoll is how often a streamed log looks for new lines (default
	// 250 ms).
	LogPoll time.Duration
	// MaxImportBytes bounds an import's body (default 10 GiB).
	MaxImportBytes int64
	// HTML, when set, serves the requests for GET /apps/{app}/builds/{id}
	// that come from a browser (they ask for HTML and carry no bearer
	// token): the build's page shares the API's address.
	HTML http.Handler
}

// Register adds the API's routes to mux. pattern methods and wildcards
// follow net/http's ServeMux.
func (s *Server) Register(mux *http.ServeMux) {
	mux.Handle("GET /apps/{app}/builds", s.auth(s.list))
	mux.Handle("GET /apps/{app}/builds/{id}", s.browser(s.auth(s.get)))
	mux.Handle("GET /apps/{app}/builds/{id}/logs", s.auth(s.logs))
	mux.Handle("POST /apps/{app}/builds/import", s.auth(s.importBuild))
	mux.Handle("GET /apps/{app}/releases", s.auth(s.releases))
	mux.Handle("GET /builds/{id}", s.auth(s.get))
}

// Handler is the API alone, for a server that serves nothing else on its
// routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.Register(mux)
	return mux
}

// browser sends requests from a browser to HTML, the rest to api.
func (s *Server) browser(api http.Handler) http.Handler {
	if s.HTML == nil {
		return api
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if WantsHTML(r) {
			s.HTML.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// WantsHTML reports whether r comes from a browser rather than an API
// client: it asks for HTML and carries no bearer token.
func WantsHTML(r *http.Request) bool {
	return r.Header.Get("Authorization") == "" && strings.Contains(r.Header.Get("Accept"), "text/html")
}

// httpError is an error with the status it answers.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errorf(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

// writeError answers err as JSON, with its status: input errors are 400,
// unknown builds 404, anything else 500.
func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var he *httpError
	switch {
	case errors.As(err, &he):
		code = he.code
	case errors.Is(err, store.ErrNotFound):
		code = http.StatusNotFound
	case build.IsInputError(err):
		code = http.StatusBadRequest
	}
	writeJSON(w, code, Error{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// auth checks the bearer token in constant time.
func (s *Server) auth(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		switch {
		case s.Token == "":
			writeError(w, errorf(http.StatusUnauthorized, "the API is off: the server has no API token"))
			return
		case !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.Token)) != 1:
			w.Header().Set("WWW-Authenticate", `Bearer realm="convox-build"`)
			writeError(w, errorf(http.StatusUnauthorized, "missing or wrong API token"))
			return
		}
		if err := h(w, r); err != nil {
			writeError(w, err)
		}
	})
}

func limit(r *http.Request, def int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, errorf(http.StatusBadRequest, "limit %q: want a number of at least 0", v)
	}
	return n, nil
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) error {
	n, err := limit(r, 10)
	if err != nil {
		return err
	}
	app := r.PathValue("app")
	builds, err := s.Engine.Store.ListBuilds(r.Context(), app, n)
	if err != nil {
		return err
	}
	out := make([]Build, 0, len(builds))
	for i := range builds {
		out = append(out, FromStore(&builds[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// lookup is the build named in the path, which must belong to its app
// when the path names one.
func (s *Server) lookup(r *http.Request, id string) (*store.Build, error) {
	app := r.PathValue("app")
	if !build.ValidBuildID(id) {
		return nil, errorf(http.StatusNotFound, "no such build: %s", id)
	}
	b, err := s.Engine.Store.GetBuild(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && app != "" && b.App != app) {
		if app == "" {
			return nil, errorf(http.StatusNotFound, "no such build: %s", id)
		}
		return nil, errorf(http.StatusNotFound, "no such build: %s (app %s)", id, app)
	}
	return b, err
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if strings.HasSuffix(id, ".tgz") {
		return s.export(w, r, strings.TrimSuffix(id, ".tgz"))
	}
	b, err := s.lookup(r, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, FromStore(b))
	return nil
}

// logs streams the log as text, a line at a time, until the build ends.
// ?follow=false sends what is there and stops.
func (s *Server) logs(w http.ResponseWriter, r *http.Request) error {
	b, err := s.lookup(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	poll := s.LogPoll
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	if r.URL.Query().Get("follow") == "false" {
		poll = 0
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	wrote := true
	_, err = s.Engine.FollowLogs(r.Context(), b.ID, 0, poll, func(lines []store.LogLine) {
		var buf strings.Builder
		for _, l := range lines {
			buf.WriteString(l.Text)
			buf.WriteByte('\n')
		}
		io.WriteString(w, buf.String())
		rc.Flush()
		wrote = true
	})
	if err != nil && !wrote {
		return err
	}
	return nil // once the body has begun, an error can only cut it short
}

func (s *Server) export(w http.ResponseWriter, r *http.Request, id string) error {
	b, err := s.lookup(r, id)
	if err != nil {
		return err
	}
	if b.Status != store.StatusComplete {
		return errorf(http.StatusConflict, "build %s is %s: only complete builds can be exported", b.ID, b.Status)
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+b.ID+`.tgz"`)
	cw := &countingWriter{w: w}
	if err := build.Export(r.Context(), s.Engine.Store, b, cw, s.Registry); err != nil {
		if cw.n == 0 {
			w.Header().Del("Content-Disposition")
			return err
		}
		// Too late for a status: cut the body so the client sees a
		// truncated file, which import refuses.
		panic(http.ErrAbortHandler)
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (s *Server) importBuild(w http.ResponseWriter, r *http.Request) error {
	app := r.PathValue("app")
	repo := r.URL.Query().Get("repository")
	if repo == "" && s.Repository != nil {
		var err error
		if repo, err = s.Repository(app); err != nil {
			return errorf(http.StatusBadRequest, "no image repository for app %s: %v (name one with the import)", app, err)
		}
	}
	if repo == "" {
		return errorf(http.StatusBadRequest, "no image repository for app %s: name one with the import", app)
	}
	max := s.MaxImportBytes
	if max <= 0 {
		max = 10 << 30
	}
	body := http.MaxBytesReader(w, r.Body, max)
	b, err := build.Import(r.Context(), s.Engine.Store, body, app, repo, s.Registry, s.Engine.Now)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, "the export is larger than %d bytes", max)
		}
		return errorf(http.StatusBadRequest, "importing: %v", err)
	}
	writeJSON(w, http.StatusCreated, FromStore(b))
	return nil
}

func (s *Server) releases(w http.ResponseWriter, r *http.Request) error {
	n, err := limit(r, 10)
	if err != nil {
		return err
	}
	rels, err := s.Engine.Store.ListReleases(r.Context(), r.PathValue("app"), n)
	if err != nil {
		return err
	}
	out := make([]Release, 0, len(rels))
	for i := range rels {
		out = append(out, ReleaseFromStore(&rels[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
