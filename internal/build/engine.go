// Package build is the engine: it turns a source directory, its convox.yml
// and options into a Convox Build. It plans one BuildKit build per unique
// build spec, runs them concurrently, pushes <repository>:<service>.<ID>
// for every service, copies image-only services' images, writes the log to
// the store as it happens, emits typed events for adapters, and creates the
// Release. It never talks to GitHub.
package build

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/buildkit"
	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

// Solver runs one Dockerfile build; a *buildkit.Client is one, and a pool
// of buildkitd hosts or a recorder can wrap one.
type Solver interface {
	Build(ctx context.Context, req buildkit.BuildRequest) (*buildkit.Result, error)
}

// DialOptions configure Dial; see buildkit.ConnectOptions.
type DialOptions = buildkit.ConnectOptions

// Dial connects to the buildkitd at addr (unix://, tcp://,
// docker-container://) and waits until it answers (bounded).
func Dial(ctx context.Context, addr string, opts DialOptions) (*buildkit.Client, error) {
	return buildkit.Connect(ctx, addr, opts)
}

// Engine runs builds. Solver and Store are required; the rest have
// defaults.
type Engine struct {
	Solver Solver
	Store  store.Store
	// Now is the clock (default time.Now).
	Now func() time.Time
	// HeartbeatInterval is how often a running build marks itself alive
	// in the store (default DefaultHeartbeatInterval). A created or
	// running build whose mark is older than StaleFactor intervals was
	// abandoned by a process that died, and ReapStale fails it. Engines
	// sharing a store must use the same interval.
	HeartbeatInterval time.Duration
}

// Request is one build.
type Request struct {
	// ID is the build's ID (default: a new one). A queue that may run a
	// job twice chooses it up front: a Run with the ID of a build that
	// ended returns that build without building again; a Run with the ID
	// of an abandoned build builds it again under the same ID.
	ID string
	// App is the Convox app name.
	App string
	// Repository is the image repository the build pushes to, e.g.
	// "registry.example.com/myapp"; tags are <service>.<BUILDID>.
	Repository string
	// SourceDir is the source root.
	SourceDir string
	// Manifest is the convox.yml path relative to SourceDir (default
	// "convox.yml").
	Manifest string
	// Env is the app environment: ${VAR} values, environment entries and
	// so build arguments.
	Env map[string]string
	// Services to build (default: all).
	Services []string
	// BuildArgs from the caller; they win over build.args and Env.
	BuildArgs map[string]string
	// Secrets are BuildKit secrets (RUN --mount=type=secret,id=KEY);
	// never build arguments, and redacted from logs and errors, whole and
	// line by line.
	Secrets map[string][]byte
	// Redact lists more values to hide from logs and errors, such as
	// tokens the caller holds.
	Redact []string
	// NoCache disables every cache import and BuildKit's own cache.
	NoCache bool
	// NoPush builds without pushing: each service's image reference and
	// digest are BuildKit's (nothing can pull them), its entrypoint is
	// unknown, and an image-only service keeps its image, resolved to a
	// digest, instead of being copied. Such a build cannot be exported.
	// A registry cache is still written: pick another Cache (default
	// false: push).
	NoPush bool
	// Development builds each Dockerfile's "development" stage when it
	// has one.
	Development bool
	// Platforms, e.g. "linux/amd64" (default: the builder's).
	Platforms []string
	// Cache says where build cache lives (default: registry cache).
	Cache Cache
	// Registry holds credentials and transport options for the pushes,
	// copies and image reads.
	Registry registry.Options
	// Description of the build; default from the git HEAD when clean.
	Description string
	// GitSHA of the source; default from the git HEAD.
	GitSHA string
	// MaxParallel bounds concurrent build specs (default: all at once).
	MaxParallel int
	// Sink, when set, receives the build's events (see Sink).
	Sink Sink
}

// finishTimeout bounds recording a build's outcome, and waiting for a
// sink to take the last events, once the caller's context is done.
const finishTimeout = 30 * time.Second

// Run builds req and returns the finished Build record: status complete
// with its Release, or failed with a reason (and the error). Problems with
// the request itself return an *InputError before any Build is recorded.
// Run first fails builds abandoned by processes that died (ReapStale).
func (e *Engine) Run(ctx context.Context, req Request) (*store.Build, error) {
	if e.Solver == nil || e.Store == nil {
		return nil, errors.New("engine: Solver and Store are required")
	}
	r, err := e.prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	b, resumed, err := e.claim(ctx, r)
	if err != nil {
		return nil, err
	}
	if b.Status == store.StatusComplete || b.Status == store.StatusFailed {
		return e.finished(r, b)
	}
	if _, err := e.ReapStale(ctx); err != nil {
		return nil, err
	}
	r.build = b
	r.logs = newLogWriter(e.Store, b.ID)

	// The build's own context: cancelled by the caller, or by the engine
	// when the sink panics or the build's heartbeat is lost.
	bctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var stopMu sync.Mutex
	var stopErr error
	stop := func(err error) {
		stopMu.Lock()
		if stopErr == nil {
			stopErr = err
		}
		stopMu.Unlock()
		cancel(err)
	}
	stopped := func() error {
		stopMu.Lock()
		defer stopMu.Unlock()
		return stopErr
	}
	if req.Sink != nil {
		r.events = newEventQueue(req.Sink, stop)
	}
	if resumed {
		r.log(nil, "resuming build "+b.ID+": the previous attempt stopped before it ended")
	}

	err = r.runSafely(bctx, stop)
	if serr := stopped(); serr != nil {
		err = serr
	}
	if lerr := r.logs.close(); err == nil && lerr != nil {
		err = fmt.Errorf("writing build log: %w", lerr)
	}
	// Record the outcome even when ctx is cancelled: no build may stay
	// running.
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer fcancel()
	b.Ended = r.now().UTC()
	if err == nil {
		rel := &store.Release{ID: NewID("R"), App: req.App, Build: b.ID, Manifest: r.manifestText, Description: b.Description, Created: b.Ended}
		if err = retryStore(fctx, func() error { return e.Store.CreateRelease(fctx, rel) }); err != nil {
			err = fmt.Errorf("recording release: %w", err)
		} else {
			b.Release = rel.ID
		}
	}
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, context.Canceled) {
			err = fmt.Errorf("%w (build cancelled: %v)", err, context.Cause(ctx))
		}
		err = redactError{err: err, r: r.redact}
		b.Status = store.StatusFailed
		b.Reason = err.Error()
	} else {
		b.Status = store.StatusComplete
	}
	if uerr := retryStore(fctx, func() error { return e.Store.UpdateBuild(fctx, b) }); uerr != nil {
		uerr = fmt.Errorf("recording the result of build %s: %w", b.ID, uerr)
		if err == nil {
			err = uerr
		} else {
			err = errors.Join(err, uerr)
		}
	}
	r.emit(Event{Type: BuildFinished, Build: b, Err: err})
	if r.events != nil {
		r.events.close(ctx, finishTimeout)
	}
	if serr := stopped(); serr != nil && err == nil {
		// The sink panicked on BuildFinished: the build is recorded
		// complete, but the caller must hear of the panic.
		err = serr
	}
	return b, err
}

// finished reports a build that ended in an earlier Run with the same ID.
func (e *Engine) finished(r *run, b *store.Build) (*store.Build, error) {
	var err error
	if b.Status == store.StatusFailed {
		err = &PreviousRunError{Build: b}
	}
	r.build = b
	if r.req.Sink != nil {
		r.events = newEventQueue(r.req.Sink, func(error) {})
		r.emit(Event{Type: BuildFinished, Build: b, Err: err})
		r.events.close(context.Background(), finishTimeout)
	}
	return b, err
}

// claim records the build r runs: a new one, or the one named by
// r.req.ID, which may have ended (for finished) or be resumed (created
// again after an abandoned attempt).
func (e *Engine) claim(ctx context.Context, r *run) (b *store.Build, resumed bool, err error) {
	now := r.now().UTC()
	if r.req.ID != "" {
		old, err := e.Store.GetBuild(ctx, r.req.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, false, fmt.Errorf("looking up build %s: %w", r.req.ID, err)
		case old.App != r.req.App:
			return nil, false, &InputError{Field: FieldID, Err: fmt.Errorf("build %s belongs to app %s, not %s", old.ID, old.App, r.req.App)}
		case old.Status == store.StatusComplete || (old.Status == store.StatusFailed && old.Reason != AbandonedReason):
			return old, false, nil
		case old.Status != store.StatusFailed && now.Sub(old.Heartbeat) < e.staleAfter():
			return nil, false, &InProgressError{ID: old.ID, Heartbeat: old.Heartbeat}
		default:
			// Abandoned, or about to be: take it over.
			old.Status, old.Reason, old.Release, old.Services, old.Entrypoint = store.StatusCreated, "", "", nil, ""
			old.Description, old.GitSHA, old.Manifest, old.Repository = r.description, r.gitSHA, r.manifestText, r.req.Repository
			old.Started, old.Ended, old.Heartbeat = now, time.Time{}, now
			if err := e.Store.UpdateBuild(ctx, old); err != nil {
				return nil, false, fmt.Errorf("resuming build %s: %w", old.ID, err)
			}
			return old, true, nil
		}
	}
	id := r.req.ID
	if id == "" {
		id = NewID("B")
	}
	b = &store.Build{
		ID:          id,
		App:         r.req.App,
		Description: r.description,
		GitSHA:      r.gitSHA,
		Manifest:    r.manifestText,
		Repository:  r.req.Repository,
		Status:      store.StatusCreated,
		Started:     now,
		Heartbeat:   now,
	}
	if err := e.Store.CreateBuild(ctx, b); err != nil {
		return nil, false, fmt.Errorf("recording build: %w", err)
	}
	return b, false, nil
}

// retryStore calls f until it succeeds, fails for good, or ctx ends: the
// last records of a build must not be lost to a busy database.
func retryStore(ctx context.Context, f func() error) error {
	wait := 100 * time.Millisecond
	for {
		err := f()
		if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExists) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// redactError hides secrets in an error's text but keeps its chain for
// errors.As.
type redactError struct {
	err error
	r   redactor
}

func (e redactError) Error() string { return e.r.redact(e.err.Error()) }
func (e redactError) Unwrap() error { return e.err }
