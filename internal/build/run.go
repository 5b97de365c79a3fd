package build

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
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

// run is one build in progress.
type run struct {
	e   *Engine
	req Request
	now func() time.Time

	manifestText string
	description  string
	gitSHA       string
	plan         *manifest.Plan
	warnings     []Warning
	previous     map[string]string
	redact       redactor
	prefixed     bool

	build  *store.Build
	logs   *logWriter
	events *eventQueue

	mu     sync.Mutex
	images []store.ServiceImage
}

// prepare checks the request and plans the build; nothing is recorded.
func (e *Engine) prepare(ctx context.Context, req Request) (*run, error) {
	if req.App == "" {
		return nil, &InputError{Field: FieldApp, Err: errors.New("no app name")}
	}
	if req.ID != "" {
		if err := CheckBuildID(req.ID); err != nil {
			return nil, err
		}
	}
	if req.Repository == "" {
		return nil, &InputError{Field: FieldRepository, Err: errors.New("no image repository (such as registry.example.com/myapp)")}
	}
	if strings.ContainsAny(req.Repository, "@ ") || strings.Count(strings.TrimPrefix(req.Repository, "localhost"), ":") > 1 {
		return nil, &InputError{Field: FieldRepository, Err: fmt.Errorf("invalid image repository %q: give host/path without a tag", req.Repository)}
	}
	if err := req.Cache.Validate(); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(req.SourceDir); err != nil || !fi.IsDir() {
		return nil, &InputError{Field: FieldSourceDir, Err: fmt.Errorf("source directory %s: not a directory", req.SourceDir)}
	}
	name := req.Manifest
	if name == "" {
		name = "convox.yml"
	}
	data, err := manifest.ReadFile(req.SourceDir, name)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, &InputError{Field: FieldManifest, Err: fmt.Errorf("%w: %s (the app's convox.yml)", ErrNoManifest, name)}
		}
		return nil, &InputError{Field: FieldManifest, Err: fmt.Errorf("reading %s: %w", name, err)}
	}
	env := req.Env
	if env == nil {
		env = map[string]string{}
	}
	// As Convox does, ${VAR} and required environment entries see the app
	// environment with the caller's build arguments over it.
	parseEnv := maps.Clone(env)
	maps.Copy(parseEnv, req.BuildArgs)
	m, problems, err := manifest.Parse(name, data, manifest.Options{Env: parseEnv})
	if err != nil {
		var errs manifest.Problems
		if errors.As(err, &errs) {
			// Keep the warnings with the errors: adapters annotate both
			// (a Problems error's text is its errors only).
			err = problems.Sorted()
		}
		return nil, &InputError{Field: FieldManifest, Err: err}
	}
	plan, err := m.Plan(req.SourceDir, manifest.PlanOptions{Services: req.Services, Args: req.BuildArgs, Env: env, Development: req.Development})
	if err != nil {
		return nil, &InputError{Field: FieldManifest, Err: err}
	}
	if len(plan.Builds)+len(plan.Images) == 0 {
		return nil, &InputError{Field: FieldManifest, Err: fmt.Errorf("%s has no services to build", name)}
	}

	r := &run{e: e, req: req, now: e.now, manifestText: string(data), plan: plan, description: req.Description, gitSHA: req.GitSHA}
	for _, p := range problems.Warnings() {
		r.warnings = append(r.warnings, Warning{Kind: WarningManifest, File: p.File, Line: p.Line, Col: p.Col, Message: p.Message})
	}
	r.warnings = append(r.warnings, secretBuildArgs(plan)...)
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
	secrets = append(secrets, req.Redact...)
	secrets = append(secrets, req.Registry.Auth.Secrets()...)
	r.redact = newRedactor(secrets...)
	r.prefixed = len(plan.Builds)+len(plan.Images) > 1
	if req.Cache.Type == CacheInline && !req.NoCache {
		r.previous = previousImages(ctx, e.Store, req.App)
	}
	return r, nil
}

// secretLike matches build argument names that usually hold secrets.
var secretLike = regexp.MustCompile(`(?i)TOKEN|PASSWORD|PASSWD|SECRET|KEY`)

// secretBuildArgs warns of each build argument given a value whose name
// looks like a secret: build argument values stay in the image's history
// for anyone who can pull the image.
func secretBuildArgs(plan *manifest.Plan) []Warning {
	seen := map[string]bool{}
	for _, spec := range plan.Builds {
		for k, v := range spec.Args {
			if v != "" && secretLike.MatchString(k) {
				seen[k] = true
			}
		}
	}
	names := make([]string, 0, len(seen))
	for k := range seen {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]Warning, 0, len(names))
	for _, k := range names {
		out = append(out, Warning{Kind: WarningSecretBuildArg, Name: k, Message: fmt.Sprintf(
			"build argument %s looks like a secret: its value is kept in the image's history for anyone who can pull the image; pass it as a secret instead (RUN --mount=type=secret,id=%s)", k, k)})
	}
	return out
}

func (r *run) emit(ev Event) {
	if r.events == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = r.now()
	}
	if r.build != nil {
		ev.BuildID = r.build.ID
	}
	r.events.push(ev)
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

// runSafely runs the build; a panic in the engine becomes an error, so
// that the build is still recorded failed. lost stops the build when its
// heartbeat cannot be recorded.
func (r *run) runSafely(ctx context.Context, lost func(error)) error {
	return recovered(func() error { return r.run(ctx, lost) })
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

func (r *run) run(ctx context.Context, lost func(error)) error {
	b := r.build
	b.Status = store.StatusRunning
	if err := r.e.Store.UpdateBuild(ctx, b); err != nil {
		return fmt.Errorf("recording build start: %w", err)
	}
	started := *b
	r.emit(Event{Type: BuildStarted, Build: &started})
	for _, w := range r.warnings {
		r.log(nil, "warning: "+w.String())
		r.emit(Event{Type: Warned, Warning: &w})
	}

	hbCtx, stopHeartbeat := context.WithCancel(ctx)
	defer stopHeartbeat()
	go r.heartbeat(hbCtx, lost)

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
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return cause // the engine stopped the build: say why
		}
		return err
	}
	sort.Slice(r.images, func(i, j int) bool { return r.images[i].Service < r.images[j].Service })
	b.Services = r.images
	if len(r.images) == 1 {
		b.Entrypoint = r.images[0].Entrypoint
	}
	return nil
}

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
		Image:        &buildkit.ImageExport{Names: names, Push: !r.req.NoPush, Insecure: r.req.Registry.Insecure},
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
				StartLine: be.StartLine, EndLine: be.EndLine, Message: r.redact.redact(errorText(be)), LogTail: r.redact.lines(be.LogTail)}
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
	if r.req.NoPush {
		// Nothing to read the config from.
	} else if cf, err := registry.ImageConfig(ctx, names[0]+"@"+res.Digest, r.req.Registry); err == nil {
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
	var digest string
	var err error
	if r.req.NoPush {
		dst = img.Image
		r.log(services, fmt.Sprintf("resolving image %s (not copied: no push)", img.Image))
		digest, err = registry.Digest(ctx, img.Image, r.req.Registry)
	} else {
		r.log(services, fmt.Sprintf("copying image %s to %s", img.Image, dst))
		digest, err = registry.Copy(ctx, img.Image, dst, r.req.Registry)
	}
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
