// Package server is the GitHub App webhook server: it wires the delivery
// handler (internal/webhook), the durable queue (internal/queue), the
// GitHub App (internal/ghapp), the build engine and its store, check run
// reporting (internal/checks, internal/report), the builds API
// (internal/api), the build pages (internal/web) and the metrics
// (internal/metrics) into one process with an HTTP mux and a graceful,
// draining shutdown.
//
// Routes: POST /webhook; GET /healthz (the process answers) and /readyz
// (the database and at least one buildkitd answer); GET /metrics; the
// API's routes under a bearer token (internal/api); the pages (/,
// /apps/{app}/builds/{id} for a browser, sign-in).
//
// Builds are reported as one check run per app build, named
// "convox build (APP)", with external_id the build ID and details_url the
// build's page, PublicURL/apps/{app}/builds/{id}.
package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/ghapp"
	"github.com/convox-build-action/convox-build-action/internal/ghclient"
	"github.com/convox-build-action/convox-build-action/internal/metrics"
	"github.com/convox-build-action/convox-build-action/internal/queue"
	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
	"github.com/convox-build-action/convox-build-action/internal/webhook"
)

// Config is everything the server needs; the front end fills it from its
// environment. Durations and counts have defaults when zero.
type Config struct {
	// AppID and PrivateKey (PEM) authenticate as the GitHub App.
	AppID      int64
	PrivateKey []byte
	// WebhookSecret signs deliveries; required.
	WebhookSecret []byte
	// GitHubAPIURL is the API's base ("" for github.com).
	GitHubAPIURL string
	// DatabaseURL is postgres://... or a SQLite file ("" for
	// DataDir/builds.db).
	DatabaseURL string
	// DataDir holds the SQLite database and the sources being built.
	DataDir string
	// BuildkitHosts are buildkitd addresses (several spread the builds);
	// BuildkitTLS their client certificates for tcp://.
	BuildkitHosts []string
	BuildkitTLS   build.DialOptions
	// Solver, when set, is used instead of dialling BuildkitHosts.
	Solver build.Solver
	// ImageRepository is where images go, a template with {owner},
	// {repo} (lowercased) and {app}: registry.example.com/{owner}/{repo}.
	ImageRepository string
	// Registry holds registry credentials and settings.
	Registry registry.Options
	// PublicURL is where the server is reached, for links to build pages
	// ("" for none).
	PublicURL string
	// ListenAddr is the HTTP address (default ":8080").
	ListenAddr string
	// Workers bounds concurrent builds (default 2).
	Workers int
	// Policy says which events are built.
	Policy webhook.Policy
	// BuildTimeout bounds one build (default 30m).
	BuildTimeout time.Duration
	// DrainTimeout is how long running builds may go on after a
	// shutdown signal before they are handed back to the queue (default
	// 60s).
	DrainTimeout time.Duration
	// CheckUpdateInterval is the least time between two in-progress
	// updates of a check run (default 5s).
	CheckUpdateInterval time.Duration
	// HeartbeatInterval is how often a running build marks itself alive;
	// a build silent for six intervals is taken over (default 5s).
	HeartbeatInterval time.Duration
	// SourceLimits bound a commit's extracted source.
	SourceLimits ghapp.Limits
	// Logger receives every log line (default: discard).
	Logger *slog.Logger
	// HTTPClient is the base client for GitHub (tests).
	HTTPClient *http.Client

	// APIToken is the builds API's bearer token ("": the API is off).
	APIToken string
	// PublicPages opens the build pages to everyone (for servers that
	// build only public repositories); otherwise visitors sign in with
	// GitHub through the App's OAuth credentials, and the pages are off
	// without them.
	PublicPages bool
	// OAuthClientID and OAuthClientSecret are the GitHub App's user
	// authorization credentials.
	OAuthClientID, OAuthClientSecret string
	// SessionSecret seals the pages' session cookies; every replica must
	// share it (default: derived from WebhookSecret, which they share).
	SessionSecret []byte
	// GitHubURL is GitHub's web address, for signing in (default
	// https://github.com, or the GitHub Enterprise host of GitHubAPIURL).
	GitHubURL string
}

func (c Config) withDefaults() Config {
	if c.ListenAddr == "" {
		c.ListenAddr = ":8080"
	}
	if c.Workers <= 0 {
		c.Workers = 2
	}
	if c.BuildTimeout <= 0 {
		c.BuildTimeout = 30 * time.Minute
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 60 * time.Second
	}
	if c.CheckUpdateInterval <= 0 {
		c.CheckUpdateInterval = 5 * time.Second
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = queue.DefaultHeartbeatInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Server is the webhook server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics.Metrics
	st      store.Store
	q       *queue.Queue
	app     *ghapp.App
	eng     *build.Engine
	mux     *http.ServeMux
	http    *http.Server
	close   []func() error
}

// New opens the database (migrating it), connects to buildkitd and
// prepares the server; Run serves.
func New(ctx context.Context, cfg Config) (_ *Server, err error) {
	cfg = cfg.withDefaults()
	if len(cfg.WebhookSecret) == 0 {
		return nil, errors.New("the webhook secret is empty: deliveries could not be authenticated")
	}
	if err := CheckRepositoryTemplate(cfg.ImageRepository); err != nil {
		return nil, err
	}
	if cfg.DataDir == "" {
		return nil, errors.New("no data directory")
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.metrics = metrics.New(metrics.Sources{
		// Every state is reported, at 0 when empty, so that a dashboard
		// sees a series drop rather than vanish.
		QueueDepth: func(ctx context.Context) (map[string]int, error) {
			counts, err := s.q.JobCounts(ctx)
			out := map[string]int{"available": 0, "running": 0, "retryable": 0, "scheduled": 0}
			maps.Copy(out, counts)
			return out, err
		},
		BuildsByStatus: func(ctx context.Context) (map[string]int, error) {
			counts, err := s.st.CountBuilds(ctx)
			out := map[string]int{}
			for _, st := range []store.Status{store.StatusCreated, store.StatusRunning, store.StatusComplete, store.StatusFailed} {
				out[string(st)] = counts[st]
			}
			return out, err
		},
	})
	// Every call to GitHub's API is counted.
	ghHTTP := &http.Client{Transport: s.metrics.GitHubTransport(nil)}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		c.Transport = s.metrics.GitHubTransport(c.Transport)
		ghHTTP = &c
	}
	s.app, err = ghapp.New(ghapp.Options{AppID: cfg.AppID, PrivateKey: cfg.PrivateKey, APIURL: cfg.GitHubAPIURL,
		Client: ghclient.Options{HTTPClient: ghHTTP, UserAgent: "convox-build-webhook"}})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "work"), 0o700); err != nil {
		return nil, fmt.Errorf("creating the data directory: %w", err)
	}
	if err := s.openDatabase(ctx); err != nil {
		return nil, err
	}
	solver := cfg.Solver
	if solver == nil {
		pool, closePool, err := build.OpenPool(ctx, cfg.BuildkitHosts, cfg.BuildkitTLS, build.PoolOptions{})
		if err != nil {
			return nil, err
		}
		s.close = append(s.close, closePool)
		solver = pool
		// The pool starts while some hosts are down: say which.
		for _, h := range pool.Status(ctx) {
			if h.Err != nil {
				s.log.Warn("buildkitd host does not answer; builds go to the others until it does", "host", h.Name, "error", h.Err)
			} else {
				s.log.Info("buildkitd host", "host", h.Name, "builds", h.Builds)
			}
		}
	}
	s.eng = &build.Engine{Solver: solver, Store: s.st, HeartbeatInterval: cfg.HeartbeatInterval}

	hook, err := webhook.New(webhook.Options{Secret: cfg.WebhookSecret, Policy: cfg.Policy, Acceptor: s.q, Logger: s.log,
		Observe: s.metrics.Delivery})
	if err != nil {
		return nil, err
	}
	s.mux.Handle("POST /webhook", hook)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", s.metrics.Handler())
	if err := s.routes(); err != nil {
		return nil, err
	}
	s.http = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// openDatabase opens the store and the queue: on SQLite both share one
// connection; on PostgreSQL each has its own pool.
func (s *Server) openDatabase(ctx context.Context) error {
	dbURL := s.cfg.DatabaseURL
	if dbURL == "" {
		dbURL = filepath.Join(s.cfg.DataDir, "builds.db")
	}
	kind, target, err := store.ParseURL(dbURL)
	if err != nil {
		return err
	}
	qopts := queue.Options{
		Runner:            &runner{s: s},
		Workers:           s.cfg.Workers,
		JobTimeout:        s.cfg.BuildTimeout + 10*time.Minute,
		HeartbeatInterval: s.cfg.HeartbeatInterval,
		Logger:            s.log,
	}
	switch kind {
	case store.SQLite:
		db, err := store.OpenSQLiteDB(target)
		if err != nil {
			return err
		}
		s.close = append(s.close, db.Close)
		if s.st, err = store.OpenDB(ctx, db, store.SQLite); err != nil {
			return err
		}
		if s.q, err = queue.NewSQLite(ctx, db, qopts); err != nil {
			return err
		}
		s.close = append(s.close, func() error { s.q.Close(); return nil })
		if err := s.checkpointSQLite(ctx, db, target); err != nil {
			return err
		}
	default:
		if s.st, err = store.Open(ctx, dbURL); err != nil {
			return err
		}
		s.close = append(s.close, s.st.Close)
		if s.q, err = queue.OpenPostgres(ctx, dbURL, qopts); err != nil {
			return err
		}
		s.close = append(s.close, func() error { s.q.Close(); return nil })
	}
	return nil
}

// checkpointInterval is how often the SQLite WAL is checkpointed.
const checkpointInterval = time.Second

// checkpointSQLite moves SQLite's WAL checkpoints off the connection that
// records deliveries: that connection no longer checkpoints on commit
// (which fsyncs, and can stall a burst of deliveries for hundreds of
// milliseconds), and a connection of its own checkpoints every second
// without blocking it.
func (s *Server) checkpointSQLite(ctx context.Context, db *sql.DB, path string) error {
	if _, err := db.ExecContext(ctx, `PRAGMA wal_autocheckpoint = 0`); err != nil {
		return fmt.Errorf("configuring SQLite: %w", err)
	}
	cdb, err := store.OpenSQLiteDB(path)
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(checkpointInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if _, err := cdb.Exec(`PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
				s.log.Warn("checkpointing the SQLite database", "error", err)
			}
		}
	}()
	s.close = append(s.close, func() error {
		close(stop)
		<-done
		return cdb.Close()
	})
	return nil
}

// Mux is the server's router, for more routes (an API, pages).
func (s *Server) Mux() *http.ServeMux { return s.mux }

// Store is the builds' store.
func (s *Server) Store() store.Store { return s.st }

// Queue is the job queue.
func (s *Server) Queue() *queue.Queue { return s.q }

// Engine is the build engine (its store, its reaper).
func (s *Server) Engine() *build.Engine { return s.eng }

// Run serves until ctx is done, then drains: it stops taking jobs, lets
// running builds finish for up to DrainTimeout (handing the rest back to
// the queue), and stops serving once in-flight requests are answered.
// listening, when not nil, gets the bound address.
func (s *Server) Run(ctx context.Context, listening func(addr string)) error {
	ln, err := net.Listen("tcp", s.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.cfg.ListenAddr, err)
	}
	s.log.Info("listening", "addr", ln.Addr().String(), "workers", s.cfg.Workers)
	if listening != nil {
		listening(ln.Addr().String())
	}
	served := make(chan error, 1)
	go func() { served <- s.http.Serve(ln) }()
	if err := s.q.Start(ctx); err != nil {
		s.http.Close()
		return err
	}
	reapCtx, stopReap := context.WithCancel(context.WithoutCancel(ctx))
	reaped := make(chan struct{})
	go func() {
		defer close(reaped)
		s.eng.Reap(reapCtx, func(ids []string, err error) {
			if err != nil {
				s.log.Warn("failing abandoned builds", "error", err)
				return
			}
			for _, id := range ids {
				s.log.Warn("build abandoned by a process that stopped", "build_id", id)
			}
		})
	}()

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	s.log.Info("shutting down: no new builds; running builds may finish", "drain_timeout", s.cfg.DrainTimeout.String(), "running", len(s.q.Running()))
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.DrainTimeout+2*time.Minute)
	defer cancel()
	qerr := s.q.Stop(stopCtx, s.cfg.DrainTimeout)
	stopReap()
	<-reaped
	shutCtx, cancelShut := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancelShut()
	herr := s.http.Shutdown(shutCtx)
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	s.log.Info("stopped")
	return errors.Join(serveErr, qerr, herr)
}

// Close releases the database and buildkitd connections.
func (s *Server) Close() error {
	var errs []error
	for i := len(s.close) - 1; i >= 0; i-- {
		errs = append(errs, s.close[i]())
	}
	s.close = nil
	return errors.Join(errs...)
}

// CheckRepositoryTemplate checks an image repository template: a
// registry host and path, with at most the placeholders {owner}, {repo}
// and {app}.
func CheckRepositoryTemplate(t string) error {
	if t == "" {
		return errors.New("no image repository: give one such as registry.example.com/{owner}/{repo}")
	}
	if strings.Contains(t, "://") || strings.ContainsAny(t, " \t\n@") {
		return fmt.Errorf("image repository %q: want a registry host and path without scheme, such as registry.example.com/{owner}/{repo}", t)
	}
	rest := strings.NewReplacer("{owner}", "", "{repo}", "", "{app}", "").Replace(t)
	if strings.ContainsAny(rest, "{}") {
		return fmt.Errorf("image repository %q: the placeholders are {owner}, {repo} and {app}", t)
	}
	if !strings.Contains(strings.TrimSuffix(t, "/"), "/") {
		return fmt.Errorf("image repository %q: want a registry host and a path, such as registry.example.com/{owner}/{repo}", t)
	}
	return nil
}

// repository expands the image repository template for a build.
func (s *Server) repository(owner, repo, app string) string {
	return strings.NewReplacer("{owner}", strings.ToLower(owner), "{repo}", strings.ToLower(repo), "{app}", app).
		Replace(s.cfg.ImageRepository)
}

// BuildURL is the page of build id of app under the public URL ("" when
// there is none).
func BuildURL(publicURL, app, id string) string {
	if publicURL == "" {
		return ""
	}
	return strings.TrimSuffix(publicURL, "/") + "/apps/" + url.PathEscape(app) + "/builds/" + url.PathEscape(id)
}
