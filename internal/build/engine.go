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
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/convox-build-action/convox-build-action/internal/buildkit"
	"github.com/convox-build-action/convox-build-action/internal/manifest"
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

// Engine runs builds. Its fields are its dependencies; all are required
// but Now.
type Engine struct {
	Solver Solver
	Store  store.Store
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Request is one build.
type Request struct {
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
	// never build arguments, and redacted from logs and errors.
	Secrets map[string][]byte
	// NoCache disables every cache import and BuildKit's own cache.
	NoCache bool
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
	// Events, when set, receives the build's events in order.
	Events func(Event)
}

// Run builds req and returns the finished Build record: status complete
// with its Release, or failed with a reason (and the error). Problems with
// the request itself return an *InputError before any Build is recorded.
func (e *Engine) Run(ctx context.Context, req Request) (*store.Build, error) {
	now := e.Now
	if now == nil {
		now = time.Now
	}
	r, err := e.prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	r.now = now

	b := &store.Build{
		ID:          NewID("B"),
		App:         req.App,
		Description: r.description,
		GitSHA:      r.gitSHA,
		Manifest:    r.manifestText,
		Repository:  req.Repository,
		Status:      store.StatusCreated,
		Started:     now().UTC(),
		Heartbeat:   now().UTC(),
	}
	if err := e.Store.CreateBuild(ctx, b); err != nil {
		return nil, fmt.Errorf("recording build: %w", err)
	}
	r.build = b
	r.logs = newLogWriter(e.Store, b.ID)

	err = r.runSafely(ctx)
	if lerr := r.logs.close(); err == nil && lerr != nil {
		err = fmt.Errorf("writing build log: %w", lerr)
	}
	// Record the outcome even when ctx is cancelled: no build may stay
	// running.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	b.Ended = now().UTC()
	if err == nil {
		rel := &store.Release{ID: NewID("R"), App: req.App, Build: b.ID, Manifest: r.manifestText, Description: b.Description, Created: b.Ended}
		if err = e.Store.CreateRelease(fctx, rel); err != nil {
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
	if uerr := e.Store.UpdateBuild(fctx, b); uerr != nil && err == nil {
		err = fmt.Errorf("recording build result: %w", uerr)
	}
	if perr := recovered(func() error { r.emit(Event{Type: BuildFinished, Build: b, Err: err}); return nil }); perr != nil && err == nil {
		err = perr
	}
	return b, err
}

// redactError hides secrets in an error's text but keeps its chain for
// errors.As.
type redactError struct {
	err error
	r   redactor
}

func (e redactError) Error() string { return e.r.redact(e.err.Error()) }
func (e redactError) Unwrap() error { return e.err }

// run is one build in progress.
type run struct {
	e   *Engine
	req Request
	now func() time.Time

	manifestText string
	description  string
	gitSHA       string
	plan         *manifest.Plan
	previous     map[string]string
	redact       redactor
	prefixed     bool

	build *store.Build
	logs  *logWriter

	eventsMu sync.Mutex
	mu       sync.Mutex
	images   []store.ServiceImage
}

// prepare checks the request and plans the build; nothing is recorded.
func (e *Engine) prepare(ctx context.Context, req Request) (*run, error) {
	if e.Solver == nil || e.Store == nil {
		return nil, errors.New("engine: Solver and Store are required")
	}
	if req.App == "" {
		return nil, &InputError{Err: errors.New("no app name: pass --app (-a)")}
	}
	if req.Repository == "" {
		return nil, &InputError{Err: errors.New("no image repository: pass --repository (for example registry.example.com/myapp)")}
	}
	if strings.ContainsAny(req.Repository, "@ ") || strings.Count(strings.TrimPrefix(req.Repository, "localhost"), ":") > 1 {
		return nil, &InputError{Err: fmt.Errorf("invalid image repository %q: give host/path without a tag", req.Repository)}
	}
	if err := req.Cache.Validate(); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(req.SourceDir); err != nil || !fi.IsDir() {
		return nil, &InputError{Err: fmt.Errorf("source directory %s: not a directory", req.SourceDir)}
	}
	name := req.Manifest
	if name == "" {
		name = "convox.yml"
	}
	data, err := manifest.ReadFile(req.SourceDir, name)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, &InputError{Err: fmt.Errorf("no such file: %s (the app's convox.yml; pass --manifest for another name)", name)}
		}
		return nil, &InputError{Err: fmt.Errorf("reading %s: %w", name, err)}
	}
	env := req.Env
	if env == nil {
		env = map[string]string{}
	}
	m, _, err := manifest.Parse(name, data, manifest.Options{Env: env})
	if err != nil {
		return nil, &InputError{Err: err}
	}
	plan, err := m.Plan(req.SourceDir, manifest.PlanOptions{Services: req.Services, Args: req.BuildArgs, Env: env, Development: req.Development})
	if err != nil {
		return nil, &InputError{Err: err}
	}
	if len(plan.Builds)+len(plan.Images) == 0 {
		return nil, &InputError{Err: fmt.Errorf("%s has no services to build", name)}
	}

	r := &run{e: e, req: req, manifestText: string(data), plan: plan, description: req.Description, gitSHA: req.GitSHA}
	if r.gitSHA == "" || r.description == "" {
		if git, ok := ReadGit(ctx, req.SourceDir); ok {
			if r.gitSHA == "" {
				r.gitSHA = git.SHA
			}
			if r.description == "" {
				r.description = git.Description()
			}
		}
	}
	var secrets []string
	for _, v := range req.Secrets {
		secrets = append(secrets, string(v))
	}
	secrets = append(secrets, req.Registry.Auth.Secrets()...)
	r.redact = newRedactor(secrets...)
	r.prefixed = len(plan.Builds)+len(plan.Images) > 1
	if req.Cache.Type == CacheInline && !req.NoCache {
		r.previous = previousImages(ctx, e.Store, req.App)
	}
	return r, nil
}

func (r *run) emit(ev Event) {
	if r.req.Events == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = r.now()
	}
	if r.build != nil {
		ev.BuildID = r.build.ID
	}
	r.eventsMu.Lock()
	defer r.eventsMu.Unlock()
	r.req.Events(ev)
}

// log writes a line to the build log (prefixed with the services when
// several build at once) and emits it.
func (r *run) log(services []string, line string) {
	line = r.redact.redact(line)
	if r.prefixed && len(services) > 0 {
		line = strings.Join(services, ",") + " | " + line
	}
	r.logs.write(line)
	r.emit(Event{Type: LogLine, Services: services, Line: line})
}

// runSafely runs the build; a panic (in the engine or in an Events
// callback) becomes an error, so that the build is still recorded failed.
func (r *run) runSafely(ctx context.Context) error {
	return recovered(func() error { return r.run(ctx) })
}

// recovered calls f and turns a panic into an error.
func recovered(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error: %v", p)
		}
	}()
	return f()
}

func (r *run) run(ctx context.Context) error {
	b := r.build
	b.Status = store.StatusRunning
	if err := r.e.Store.UpdateBuild(ctx, b); err != nil {
		return fmt.Errorf("recording build start: %w", err)
	}
	r.emit(Event{Type: BuildStarted, Build: b})

	hbCtx, stopHeartbeat := context.WithCancel(ctx)
	defer stopHeartbeat()
	go r.heartbeat(hbCtx)

	limit := r.req.MaxParallel
	if limit <= 0 {
		limit = len(r.plan.Builds) + len(r.plan.Images)
	}
	for _, spec := range r.plan.Builds {
		r.emit(Event{Type: ServiceQueued, Services: spec.Services})
	}
	for _, img := range r.plan.Images {
		r.emit(Event{Type: ServiceQueued, Services: []string{img.Service}})
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	for _, spec := range r.plan.Builds {
		g.Go(func() error { return recovered(func() error { return r.buildSpec(gctx, spec) }) })
	}
	for _, img := range r.plan.Images {
		g.Go(func() error { return recovered(func() error { return r.copyImage(gctx, img) }) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	sort.Slice(r.images, func(i, j int) bool { return r.images[i].Service < r.images[j].Service })
	b.Services = r.images
	if len(r.images) == 1 {
		b.Entrypoint = r.images[0].Entrypoint
	}
	return nil
}

func (r *run) heartbeat(ctx context.Context) {
	t := time.NewTicker(HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.e.Store.Heartbeat(ctx, r.build.ID, r.now().UTC())
		}
	}
}

// HeartbeatInterval is how often a running build marks itself alive; a
// build whose mark is much older than this was abandoned by a process that
// died (see store.FailStale).
const HeartbeatInterval = 10 * time.Second

// credentials are the registry credentials for BuildKit's session; nil
// (anonymous) when there is no Auth.
func (r *run) credentials() buildkit.Credentials {
	if r.req.Registry.Auth == nil {
		return nil
	}
	return r.req.Registry.Auth.Credentials
}

func (r *run) tag(service string) string {
	return r.req.Repository + ":" + service + "." + r.build.ID
}

func (r *run) buildSpec(ctx context.Context, spec manifest.BuildSpec) error {
	services := spec.Services
	start := r.now()
	r.emit(Event{Type: ServiceStarted, Services: services})
	fail := func(err error, f *Failure) error {
		se := &ServiceError{Services: services, Failure: f, Err: err}
		r.emit(Event{Type: ServiceFinished, Services: services, Err: se, Failure: f})
		return se
	}
	names := make([]string, len(services))
	for i, s := range services {
		names[i] = r.tag(s)
	}
	imports, exports := r.req.Cache.entries(r.req.Repository, services, r.req.Registry.Insecure, r.req.NoCache, r.previous)
	imports = r.existingCaches(ctx, imports)
	res, err := r.e.Solver.Build(ctx, buildkit.BuildRequest{
		ContextDir:   filepath.Join(r.req.SourceDir, filepath.FromSlash(spec.Context)),
		Dockerfile:   filepath.Join(r.req.SourceDir, filepath.FromSlash(spec.Dockerfile)),
		Target:       spec.Target,
		BuildArgs:    spec.Args,
		Platforms:    r.req.Platforms,
		NoCache:      r.req.NoCache,
		Image:        &buildkit.ImageExport{Names: names, Push: true, Insecure: r.req.Registry.Insecure},
		CacheImports: imports,
		CacheExports: exports,
		Credentials:  r.credentials(),
		Secrets:      r.req.Secrets,
		Log:          func(line string) { r.log(services, line) },
		OnStep: func(s buildkit.Step) {
			r.emit(Event{Type: StepFinished, Services: services, Step: &Step{Name: s.Name, Cached: s.Cached, Error: s.Error, Duration: s.Completed.Sub(s.Started)}})
		},
	})
	if err != nil {
		var be *buildkit.BuildError
		if errors.As(err, &be) {
			f := &Failure{Services: services, Step: be.Step, ExitCode: be.ExitCode, Dockerfile: spec.Dockerfile,
				StartLine: be.StartLine, EndLine: be.EndLine, Message: r.redact.redact(errorText(be)), LogTail: be.LogTail}
			if be.StartLine == 0 {
				f.Dockerfile = ""
			}
			return fail(err, f)
		}
		return fail(err, nil)
	}
	if res.Digest == "" {
		return fail(errors.New("buildkit reported no image digest"), nil)
	}
	entrypoint := ""
	if cf, err := registry.ImageConfig(ctx, names[0]+"@"+res.Digest, r.req.Registry); err == nil {
		entrypoint = registry.Entrypoint(cf)
	} else {
		return fail(fmt.Errorf("reading the pushed image's config: %w", err), nil)
	}
	elapsed := r.now().Sub(start)
	var out []store.ServiceImage
	for i, s := range services {
		out = append(out, store.ServiceImage{Service: s, Image: names[i], Digest: res.Digest, Entrypoint: entrypoint,
			DurationMS: elapsed.Milliseconds(), CachedSteps: res.Cached, TotalSteps: res.Steps})
	}
	r.mu.Lock()
	r.images = append(r.images, out...)
	r.mu.Unlock()
	r.emit(Event{Type: ServiceFinished, Services: services, Images: out})
	return nil
}

// existingCaches drops registry cache imports whose image does not exist
// yet (a first build), which BuildKit would report as an error in the log.
func (r *run) existingCaches(ctx context.Context, imports []buildkit.CacheEntry) []buildkit.CacheEntry {
	out := imports[:0:0]
	for _, c := range imports {
		if c.Type == "registry" {
			opts := r.req.Registry
			opts.Retry = registry.Retry{Tries: 1}
			if _, err := registry.Digest(ctx, c.Attrs["ref"], opts); err != nil {
				continue
			}
		}
		out = append(out, c)
	}
	return out
}

// errorText is a BuildError's message without the step name, which
// Failure carries on its own.
func errorText(be *buildkit.BuildError) string {
	s := be.Error()
	if be.Step != "" {
		s = strings.TrimPrefix(s, be.Step+": ")
	}
	return s
}

func (r *run) copyImage(ctx context.Context, img manifest.ImageService) error {
	services := []string{img.Service}
	start := r.now()
	r.emit(Event{Type: ServiceStarted, Services: services})
	dst := r.tag(img.Service)
	r.log(services, fmt.Sprintf("copying image %s to %s", img.Image, dst))
	digest, err := registry.Copy(ctx, img.Image, dst, r.req.Registry)
	if err == nil {
		cf, cerr := registry.ImageConfig(ctx, dst+"@"+digest, r.req.Registry)
		if err = cerr; err == nil {
			si := store.ServiceImage{Service: img.Service, Image: dst, Digest: digest, Entrypoint: registry.Entrypoint(cf),
				ImageOnly: true, DurationMS: r.now().Sub(start).Milliseconds()}
			r.log(services, fmt.Sprintf("copied %s as %s@%s", img.Image, dst, digest))
			r.mu.Lock()
			r.images = append(r.images, si)
			r.mu.Unlock()
			r.emit(Event{Type: ServiceFinished, Services: services, Images: []store.ServiceImage{si}})
			return nil
		}
	}
	err = fmt.Errorf("copying image %s: %w", img.Image, err)
	r.log(services, "error: "+err.Error())
	se := &ServiceError{Services: services, Err: err}
	r.emit(Event{Type: ServiceFinished, Services: services, Err: se})
	return se
}

// StaleAfter is how old a running build's heartbeat may get before the
// build counts as abandoned (its process died without recording an end).
const StaleAfter = 6 * HeartbeatInterval

// ReapStale marks abandoned builds failed, so that no build stays
// "running" after the process that ran it died; it returns their IDs.
// Front ends call it before they start or list builds.
func ReapStale(ctx context.Context, st store.Store, now time.Time) ([]string, error) {
	ids, err := st.FailStale(ctx, now.Add(-StaleAfter), "abandoned: the process running this build stopped before it ended")
	if err != nil {
		return nil, fmt.Errorf("failing abandoned builds: %w", err)
	}
	return ids, nil
}
