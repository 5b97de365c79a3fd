// Package action is the GitHub Actions front end: it reads the step's
// inputs and the job's environment as the runner passes them, turns them
// into one engine request, runs the build (on the buildkitd given, or on
// one it starts in a container through the runner's Docker socket), and
// reports it: readable logs with one group per service, annotations, step
// outputs, the job summary, a check run on the commit and, when asked, the
// build's export file.
//
// It reads no process environment: Config carries a getenv function and
// every path.
package action

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	githubactions "github.com/sethvargo/go-githubactions"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/checks"
	"github.com/convox-build-action/convox-build-action/internal/envconfig"
	"github.com/convox-build-action/convox-build-action/internal/ghclient"
	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/report"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

// Defaults of Config.
const (
	DefaultProgressInterval = 10 * time.Second
	// MaxSummary is the most a step's summary may hold (GitHub's limit
	// is 1 MiB).
	MaxSummary = 1000 << 10
	// MaxLogAnnotations is how many annotations the log shows; the check
	// run has them all.
	MaxLogAnnotations = 10
)

// Config is what the action runs with.
type Config struct {
	// Getenv reads the step's environment (INPUT_*, GITHUB_*, ACTIONS_*).
	Getenv func(string) string
	// Stdout is the job's log.
	Stdout io.Writer
	// DockerSocket is the Docker daemon's socket, for the buildkitd
	// container (default /var/run/docker.sock).
	DockerSocket string
	// StateDir holds the build's records (default: a new temporary
	// directory, removed at the end).
	StateDir string
	// HTTPClient is the base client for GitHub's API (default: ghclient's).
	HTTPClient *http.Client
	// ProgressInterval is how often a progress line is printed per
	// running service (default DefaultProgressInterval).
	ProgressInterval time.Duration
	// BuildkitImage is the image of a buildkitd container the action
	// starts (default dockerbuildkit.DefaultImage()).
	BuildkitImage string
	// ConnectTimeout bounds the wait for buildkitd to answer (default
	// 15s for buildkit-host, 60s for a container the action starts).
	ConnectTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Failed is Run's error for a build that ran and failed, or never
// started: the log already says why, and the step exits 1.
type Failed struct{ Err error }

func (e *Failed) Error() string { return e.Err.Error() }
func (e *Failed) Unwrap() error { return e.Err }

// Run runs the action once and returns nil when the build completed (and
// its export, if asked for, was written).
func Run(ctx context.Context, cfg Config) (err error) {
	if cfg.Getenv == nil || cfg.Stdout == nil {
		return errors.New("action: Getenv and Stdout are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = DefaultProgressInterval
	}
	a := githubactions.New(githubactions.WithGetenv(cfg.Getenv), githubactions.WithWriter(cfg.Stdout))
	// go-githubactions panics when it cannot write the log or a file
	// command: fail the step with that instead.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("writing to the runner: %v", p)
		}
	}()
	// Secrets first: nothing may be printed before they are masked.
	secrets := masks(a)
	for _, s := range secrets {
		a.AddMask(s)
	}
	r := &runner{cfg: cfg, a: a, secrets: secrets}
	if err := r.run(ctx); err != nil {
		a.Errorf("%s", r.redact(err.Error()))
		return &Failed{Err: err}
	}
	return nil
}

// runner is one run of the action.
type runner struct {
	cfg     Config
	a       *githubactions.Action
	secrets []string
	rc      *runContext
	in      *inputs
}

func (r *runner) redact(s string) string { return registry.Redact(s, r.secrets) }

func (r *runner) run(ctx context.Context) error {
	rc, err := readContext(r.cfg.Getenv)
	if err != nil {
		return err
	}
	r.rc = rc
	in, err := readInputs(r.a, rc)
	if err != nil {
		return err
	}
	r.in = in
	sourceDir := filepath.Join(rc.Workspace, filepath.FromSlash(in.WorkingDirectory))
	cache, err := cacheFor(in, rc, rc.Workspace)
	if err != nil {
		return err
	}
	reg, err := r.registryOptions()
	if err != nil {
		return err
	}

	stateDir := r.cfg.StateDir
	if stateDir == "" {
		if stateDir, err = os.MkdirTemp("", "convox-build-action-"); err != nil {
			return err
		}
		defer os.RemoveAll(stateDir)
	}
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(stateDir, "builds.db"))
	if err != nil {
		return fmt.Errorf("opening the build records: %w", err)
	}
	defer st.Close()

	solver := &lazySolver{connect: r.connect}
	defer solver.close()
	con := newConsole(r.cfg.Stdout, r.a, r.cfg.Now)
	solver.log = func(s string) { con.Infof("%s", s) }
	rep := report.New(report.Options{App: in.App, PathPrefix: in.WorkingDirectory})

	id := build.NewID("B")
	description := in.Description
	if description == "" && rc.Subject != "" && len(rc.SHA) >= 10 {
		description = "build " + rc.SHA[:10] + " " + rc.Subject
	}
	con.Infof("Building app %s (build %s) from %s into %s", in.App, id, displayDir(in.WorkingDirectory), in.Repository)

	check := r.startCheck(ctx, id)
	followCtx, stopFollow := context.WithCancel(ctx)
	var followed sync.WaitGroup
	if check != nil {
		followed.Add(1)
		go func() { defer followed.Done(); check.Follow(followCtx, rep) }()
	}
	stopProgress, progressDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(progressDone); con.follow(r.cfg.ProgressInterval, stopProgress) }()

	redact := r.secrets
	if rc.RuntimeToken != "" {
		redact = append(append([]string(nil), redact...), rc.RuntimeToken) // the runner masks it in the log, not in the check run
	}
	eng := &build.Engine{Solver: solver, Store: st, Now: r.cfg.Now}
	b, berr := eng.Run(ctx, build.Request{
		ID: id, App: in.App, Repository: in.Repository, SourceDir: sourceDir, Manifest: in.Manifest,
		Env: in.Env, Services: in.Services, BuildArgs: in.BuildArgs, Secrets: in.Secrets, Redact: redact,
		NoCache: in.NoCache, NoPush: !in.Push, Development: in.Development, Cache: cache, Registry: reg,
		Description: description, GitSHA: rc.SHA,
		Sink: build.SinkFunc(func(e build.Event) { con.Event(e); rep.Event(e) }),
	})
	close(stopProgress)
	<-progressDone // nothing else may write the log meanwhile
	stopFollow()
	followed.Wait()
	if berr != nil && b == nil {
		rep.Fail(berr) // nothing ran: convox.yml problems become annotations
	}
	snap := rep.Snapshot()

	r.annotate(snap)
	var exportErr error
	if b != nil {
		r.outputs(b)
		if berr == nil && in.Export != "" {
			exportErr = r.export(ctx, st, b, reg)
		}
	}
	if in.Summary && r.cfg.Getenv("GITHUB_STEP_SUMMARY") != "" {
		r.a.AddStepSummary(snap.Markdown(MaxSummary))
	}
	if check != nil {
		conclusion := checks.Conclusion(snap)
		if ctx.Err() != nil {
			conclusion = checks.Cancelled // the job was cancelled
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		if err := check.Complete(cctx, snap, conclusion); err != nil {
			r.a.Warningf("%s", r.redact("reporting the build to GitHub: "+err.Error()))
		}
		cancel()
	}
	if berr != nil {
		return r.explain(berr)
	}
	if exportErr != nil {
		return exportErr
	}
	con.Infof("Build: %s\nRelease: %s", b.ID, b.Release)
	return nil
}

func displayDir(d string) string {
	if d == "" {
		return "the repository root"
	}
	return d
}

// explain words the engine's errors for a workflow's author, naming the
// input to change.
func (r *runner) explain(err error) error {
	var fix string
	switch build.InputField(err) {
	case build.FieldApp:
		fix = "set the app input"
	case build.FieldRepository:
		fix = "set the repository input (such as ghcr.io/owner/name)"
	case build.FieldSourceDir:
		fix = "check out the repository first (actions/checkout) and check working-directory"
	case build.FieldManifest:
		if errors.Is(err, build.ErrNoManifest) {
			fix = "check out the repository first (actions/checkout), or set manifest / working-directory"
		}
	case build.FieldCache:
		fix = "check cache-from and cache-to"
	}
	if fix == "" {
		return err
	}
	return fmt.Errorf("%w: %s", err, fix)
}

// registryOptions assembles the registry credentials: registry-username
// and registry-password for the repository's registry (for ghcr.io, the
// actor and the GitHub token by default), docker-hub-username and
// docker-hub-password (else DOCKER_HUB_USERNAME and DOCKER_HUB_PASSWORD),
// the Docker config in $DOCKER_CONFIG or $HOME/.docker, and the rest of
// the environment envconfig reads.
func (r *runner) registryOptions() (registry.Options, error) {
	in := r.in
	host := strings.ToLower(strings.SplitN(in.Repository, "/", 2)[0])
	var pairs []string
	switch {
	case in.RegistryUsername != "":
		pairs = append(pairs, host+"="+in.RegistryUsername+":"+in.RegistryPassword)
	case host == "ghcr.io" && in.GitHubToken != "":
		user := r.rc.Actor
		if user == "" {
			user = "github-actions"
		}
		pairs = append(pairs, host+"="+user+":"+in.GitHubToken)
	}
	getenv := func(k string) string {
		switch {
		case k == envconfig.DockerHubUsername && in.DockerHubUser != "":
			return in.DockerHubUser
		case k == envconfig.DockerHubPassword && in.DockerHubPass != "":
			return in.DockerHubPass
		}
		return r.cfg.Getenv(k)
	}
	opts, err := envconfig.RegistryOptions(getenv, pairs)
	if err != nil {
		input := "registry-username"
		var ee *envconfig.Error
		if errors.As(err, &ee) {
			return registry.Options{}, errors.New(r.redact(err.Error()))
		}
		return registry.Options{}, &InputError{Input: input, Err: errors.New(r.redact(err.Error()))}
	}
	return opts, nil
}

// startCheck creates the check run, or says why there is none; a
// reporting failure never fails the build.
func (r *runner) startCheck(ctx context.Context, id string) *checks.Run {
	if !r.in.Checks {
		return nil
	}
	if r.in.GitHubToken == "" || r.rc.Owner == "" || r.rc.HeadSHA == "" {
		r.a.Noticef("no check run: it needs github-token, GITHUB_REPOSITORY and GITHUB_SHA")
		return nil
	}
	gh, err := ghclient.New(r.rc.APIURL, r.in.GitHubToken, ghclient.Options{HTTPClient: r.cfg.HTTPClient})
	if err != nil {
		r.a.Warningf("%s", r.redact("no check run: "+err.Error()))
		return nil
	}
	run, err := checks.Start(ctx, gh, checks.Options{
		Owner: r.rc.Owner, Repo: r.rc.Repo, HeadSHA: r.rc.HeadSHA,
		Name: "convox build (" + r.in.App + ")", DetailsURL: r.rc.workflowRunURL(), ExternalID: id, Now: r.cfg.Now,
	})
	if err != nil {
		r.a.Warningf("%s", r.redact("the build goes on without a check run: "+err.Error()))
		return nil
	}
	if run.Mode() == checks.ModeStatus {
		r.a.Noticef("this token may not create check runs (as for pull requests from forks): reporting a commit status instead")
	}
	return run
}

// annotate prints the first MaxLogAnnotations annotations as workflow
// commands, and a notice saying how many more the check run has.
func (r *runner) annotate(s report.Snapshot) {
	for i, an := range s.Annotations {
		if i == MaxLogAnnotations {
			r.a.Noticef("%d more annotations are not shown here (GitHub shows %d per step); the check run has them all", len(s.Annotations)-i, MaxLogAnnotations)
			break
		}
		props := githubactions.CommandProperties{"file": an.Path, "line": fmt.Sprint(an.StartLine), "endLine": fmt.Sprint(an.EndLine)}
		if an.StartColumn > 0 {
			props["col"] = fmt.Sprint(an.StartColumn)
		}
		if an.EndColumn > 0 && an.StartLine == an.EndLine {
			props["endColumn"] = fmt.Sprint(an.EndColumn)
		}
		if an.Title != "" {
			props["title"] = an.Title
		}
		name := map[report.AnnotationLevel]string{report.Failure: "error", report.Warning: "warning", report.Notice: "notice"}[an.Level]
		if name == "" {
			name = "error"
		}
		r.a.IssueCommand(&githubactions.Command{Name: name, Properties: props, Message: an.Message})
	}
}

// ServiceMetadata is one service's entry in the metadata output.
type ServiceMetadata struct {
	Image       string  `json:"image"`
	Digest      string  `json:"digest"`
	Entrypoint  string  `json:"entrypoint"`
	ImageOnly   bool    `json:"image-only"`
	Duration    float64 `json:"duration"` // seconds
	CachedSteps int     `json:"cached-steps"`
	TotalSteps  int     `json:"total-steps"`
}

// setOutput sets a step output, when the step has an output file.
func (r *runner) setOutput(name, value string) {
	if r.cfg.Getenv("GITHUB_OUTPUT") == "" {
		return
	}
	r.a.SetOutput(name, value)
}

// outputs sets the step's outputs; build-id even when the build failed.
func (r *runner) outputs(b *store.Build) {
	if r.cfg.Getenv("GITHUB_OUTPUT") == "" {
		r.a.Warningf("GITHUB_OUTPUT is not set: no step outputs (build %s)", b.ID)
	}
	r.setOutput("build-id", b.ID)
	if b.Status != store.StatusComplete {
		return
	}
	r.setOutput("release-id", b.Release)
	r.setOutput("release", b.Release)
	images := map[string]string{}
	meta := map[string]ServiceMetadata{}
	svcs := append([]store.ServiceImage(nil), b.Services...)
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Service < svcs[j].Service })
	for _, s := range svcs {
		images[s.Service] = s.Image + "@" + s.Digest
		meta[s.Service] = ServiceMetadata{Image: s.Image, Digest: s.Digest, Entrypoint: s.Entrypoint, ImageOnly: s.ImageOnly,
			Duration: float64(s.DurationMS) / 1000, CachedSteps: s.CachedSteps, TotalSteps: s.TotalSteps}
	}
	ib, _ := json.Marshal(images)
	mb, _ := json.MarshalIndent(meta, "", "  ")
	r.setOutput("images", string(ib))
	r.setOutput("metadata", string(mb))
}

// export writes the build's export file at the export input's path
// (relative to the workspace) and sets export-path.
func (r *runner) export(ctx context.Context, st store.Store, b *store.Build, reg registry.Options) error {
	rel := r.in.Export
	p := rel
	if !filepath.IsAbs(p) {
		p = filepath.Join(r.rc.Workspace, filepath.FromSlash(rel))
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("export %s: %w", rel, err)
	}
	f, err := os.Create(p)
	if err != nil {
		return fmt.Errorf("export %s: %w", rel, err)
	}
	if err := build.Export(ctx, st, b, f, reg); err != nil {
		f.Close()
		os.Remove(p)
		return fmt.Errorf("exporting build %s to %s: %w", b.ID, rel, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("export %s: %w", rel, err)
	}
	fi, _ := os.Stat(p)
	var size int64
	if fi != nil {
		size = fi.Size()
	}
	r.setOutput("export-path", rel)
	fmt.Fprintf(r.cfg.Stdout, "Exported build %s to %s (%d bytes)\n", b.ID, rel, size)
	return nil
}
