package buildkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/docker/cli/cli/config/types"
	"github.com/moby/buildkit/client"
	gatewaypb "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/moby/buildkit/solver/errdefs"
	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"
)

// Credentials returns the username and secret (password or token) for a
// registry host, or empty strings for anonymous access. BuildKit asks with
// "registry-1.docker.io" for Docker Hub.
type Credentials func(ctx context.Context, host string) (username, secret string, err error)

// CacheEntry is one cache import or export (type "registry", "local",
// "inline", "gha", ...) with BuildKit's attributes for it.
type CacheEntry struct {
	Type  string
	Attrs map[string]string
}

// ImageExport names the image references to tag the result with.
type ImageExport struct {
	Names []string
	// Push pushes every name to its registry.
	Push bool
	// Insecure allows plain HTTP and unverified TLS to the registries.
	Insecure bool
}

// Step is a build step (a BuildKit vertex) that has finished.
type Step struct {
	Name      string
	Cached    bool
	Error     string
	Started   time.Time
	Completed time.Time
	// Dockerfile reports whether the step is an instruction of the
	// Dockerfile ("[2/3] RUN ...") rather than BuildKit's own work.
	Dockerfile bool
}

// BuildRequest describes one Dockerfile build.
type BuildRequest struct {
	// ContextDir is the build context directory.
	ContextDir string
	// Dockerfile is the Dockerfile's path; relative paths are relative to
	// ContextDir. Default: ContextDir/Dockerfile.
	Dockerfile string
	Target     string
	BuildArgs  map[string]string
	// Platforms such as "linux/amd64"; default: the worker's.
	Platforms []string
	NoCache   bool

	// Image, when set, tags (and optionally pushes) the result.
	Image *ImageExport
	// OCIArchive, when set, receives the result as an OCI image archive
	// (a tar); it is closed by the build.
	OCIArchive io.WriteCloser
	// OCIName is the reference recorded inside the OCI archive.
	OCIName string

	CacheImports []CacheEntry
	CacheExports []CacheEntry

	// Credentials answer the registries' auth challenges (nil: anonymous).
	Credentials Credentials
	// Secrets are available to RUN --mount=type=secret,id=KEY.
	Secrets map[string][]byte

	// Log, when set, receives BuildKit's progress as plain lines, as
	// `buildctl build --progress=plain` prints them, while the build runs.
	Log func(line string)
	// OnStep, when set, is called as each step finishes.
	OnStep func(Step)
}

// Result is what a finished build produced.
type Result struct {
	// Digest is the image manifest digest ("sha256:...").
	Digest string
	// ConfigDigest is the image config digest, when BuildKit reports one.
	ConfigDigest string
	// Steps counts the Dockerfile instructions that produce a layer or
	// state (RUN, COPY, ...; not FROM, which BuildKit never reports as
	// cached), Cached those that came from the cache.
	Steps, Cached int
	// ExporterResponse is BuildKit's raw exporter response.
	ExporterResponse map[string]string
}

// BuildError is a build that BuildKit ran and that failed. It carries what
// annotations and log summaries need.
type BuildError struct {
	// Step is the failing step's name ("[2/3] RUN make"), when known.
	Step string
	// ExitCode is the failing process's exit code, or -1.
	ExitCode int
	// Dockerfile and StartLine..EndLine locate the failing instruction,
	// when BuildKit reports them.
	Dockerfile         string
	StartLine, EndLine int
	// LogTail is the last lines the failing step printed.
	LogTail []string
	// Hint says what to do, when the failure is a common one.
	Hint string
	// Err is BuildKit's error.
	Err error
}

func (e *BuildError) Error() string {
	var b strings.Builder
	if e.Step != "" {
		b.WriteString(e.Step)
		b.WriteString(": ")
	}
	b.WriteString(errorText(e.Err))
	if e.Dockerfile != "" && e.StartLine > 0 {
		fmt.Fprintf(&b, " (%s:%d)", e.Dockerfile, e.StartLine)
	}
	if e.Hint != "" {
		b.WriteString(": ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

func (e *BuildError) Unwrap() error { return e.Err }

// errorText is BuildKit's message without its gRPC wrapping.
func errorText(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "rpc error: code = Unknown desc = ")
	s = strings.TrimPrefix(s, "failed to solve: ")
	return s
}

// logTailLines is how many output lines of a failing step BuildError keeps.
const logTailLines = 20

// Build runs one Dockerfile build and returns its result. A failure that
// BuildKit reports comes back as a *BuildError.
func (c *Client) Build(ctx context.Context, req BuildRequest) (*Result, error) {
	if req.ContextDir == "" {
		return nil, errors.New("build: no context directory")
	}
	dockerfile := req.Dockerfile
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	if !filepath.IsAbs(dockerfile) {
		dockerfile = filepath.Join(req.ContextDir, dockerfile)
	}
	if _, err := os.Stat(dockerfile); err != nil {
		return nil, fmt.Errorf("build: reading Dockerfile: %w", err)
	}
	contextFS, err := fsutil.NewFS(req.ContextDir)
	if err != nil {
		return nil, fmt.Errorf("build: opening context %s: %w", req.ContextDir, err)
	}
	dockerfileFS, err := fsutil.NewFS(filepath.Dir(dockerfile))
	if err != nil {
		return nil, fmt.Errorf("build: opening Dockerfile directory: %w", err)
	}

	attrs := map[string]string{"filename": filepath.Base(dockerfile)}
	if req.Target != "" {
		attrs["target"] = req.Target
	}
	for k, v := range req.BuildArgs {
		attrs["build-arg:"+k] = v
	}
	if len(req.Platforms) > 0 {
		attrs["platform"] = strings.Join(req.Platforms, ",")
	}
	if req.NoCache {
		attrs["no-cache"] = ""
	}

	var exports []client.ExportEntry
	if req.Image != nil && len(req.Image.Names) > 0 {
		a := map[string]string{"name": strings.Join(req.Image.Names, ",")}
		if req.Image.Push {
			a["push"] = "true"
		}
		if req.Image.Insecure {
			a["registry.insecure"] = "true"
		}
		exports = append(exports, client.ExportEntry{Type: client.ExporterImage, Attrs: a})
	}
	if req.OCIArchive != nil {
		a := map[string]string{}
		if req.OCIName != "" {
			a["name"] = req.OCIName
		}
		w := req.OCIArchive
		exports = append(exports, client.ExportEntry{Type: client.ExporterOCI, Attrs: a,
			Output: func(map[string]string) (io.WriteCloser, error) { return w, nil }})
	}

	attachables := []session.Attachable{
		authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
			AuthConfigProvider: authConfig(req.Credentials),
		}),
	}
	if len(req.Secrets) > 0 {
		attachables = append(attachables, secretsprovider.FromMap(req.Secrets))
	}

	opt := client.SolveOpt{
		Frontend:      "dockerfile.v0",
		FrontendAttrs: attrs,
		LocalMounts:   map[string]fsutil.FS{"context": contextFS, "dockerfile": dockerfileFS},
		Exports:       exports,
		CacheImports:  cacheEntries(req.CacheImports),
		CacheExports:  cacheEntries(req.CacheExports),
		Session:       attachables,
	}

	tr := newTracker(req.OnStep)
	statusCh := make(chan *client.SolveStatus)
	var resp *client.SolveResponse
	eg, egctx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		var err error
		resp, err = c.c.Solve(egctx, nil, opt, statusCh)
		return err
	})
	eg.Go(func() error {
		tr.run(statusCh, req.Log)
		return nil
	})
	if err := eg.Wait(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("build cancelled: %w", context.Cause(ctx))
		}
		be := tr.buildError(err)
		be.Hint = hint(be, dockerfile)
		return nil, be
	}
	steps, cached := tr.counts()
	return &Result{
		Digest:           resp.ExporterResponse["containerimage.digest"],
		ConfigDigest:     resp.ExporterResponse["containerimage.config.digest"],
		Steps:            steps,
		Cached:           cached,
		ExporterResponse: resp.ExporterResponse,
	}, nil
}

func cacheEntries(in []CacheEntry) []client.CacheOptionsEntry {
	out := make([]client.CacheOptionsEntry, 0, len(in))
	for _, e := range in {
		out = append(out, client.CacheOptionsEntry{Type: e.Type, Attrs: e.Attrs})
	}
	return out
}

func authConfig(creds Credentials) authprovider.AuthConfigProvider {
	return func(ctx context.Context, host string, _ []string, _ authprovider.ExpireCachedAuthCheck) (types.AuthConfig, error) {
		if creds == nil {
			return types.AuthConfig{}, nil
		}
		user, secret, err := creds(ctx, host)
		if err != nil {
			return types.AuthConfig{}, fmt.Errorf("credentials for %s: %w", host, err)
		}
		return types.AuthConfig{ServerAddress: host, Username: user, Password: secret}, nil
	}
}

// dockerfileStep matches the names BuildKit's Dockerfile frontend gives to
// instructions: "[2/3] RUN ..." or "[builder 1/4] FROM ...".
var dockerfileStep = regexp.MustCompile(`^\[(?:[^\]]+ )?\d+/\d+\] `)

// isFrom reports whether a Dockerfile step name is a FROM instruction.
func isFrom(stepName string) bool {
	i := strings.Index(stepName, "] ")
	return i >= 0 && strings.HasPrefix(stepName[i+2:], "FROM ")
}

// tracker follows a build's status stream: it prints plain progress, reports
// finished steps, and remembers what a failure report needs.
type tracker struct {
	onStep func(Step)

	mu       sync.Mutex
	vertices map[string]*client.Vertex
	order    []string
	done     map[string]bool
	logs     map[string][]string // per vertex, complete lines
	partial  map[string]string
}

func newTracker(onStep func(Step)) *tracker {
	return &tracker{onStep: onStep, vertices: map[string]*client.Vertex{}, done: map[string]bool{},
		logs: map[string][]string{}, partial: map[string]string{}}
}

func (t *tracker) run(statusCh chan *client.SolveStatus, log func(string)) {
	var display chan *client.SolveStatus
	var displayDone chan struct{}
	if log != nil {
		display = make(chan *client.SolveStatus, 64)
		displayDone = make(chan struct{})
		lw := &lineWriter{emit: log}
		go func() {
			defer close(displayDone)
			d, _ := progressui.NewDisplay(lw, progressui.PlainMode)
			// The display ends when its channel closes; its context only
			// aborts it early, which we never want: logs must be complete.
			_, _ = d.UpdateFrom(context.Background(), display)
			lw.flush()
		}()
	}
	for st := range statusCh {
		t.observe(st)
		if display != nil {
			display <- st
		}
	}
	if display != nil {
		close(display)
		<-displayDone
	}
}

func (t *tracker) observe(st *client.SolveStatus) {
	var finished []Step
	t.mu.Lock()
	for _, v := range st.Vertexes {
		id := v.Digest.String()
		if _, ok := t.vertices[id]; !ok {
			t.order = append(t.order, id)
		}
		t.vertices[id] = v
		if v.Completed != nil && !t.done[id] {
			t.done[id] = true
			s := Step{Name: v.Name, Cached: v.Cached, Error: v.Error, Completed: *v.Completed,
				Dockerfile: dockerfileStep.MatchString(v.Name)}
			if v.Started != nil {
				s.Started = *v.Started
			}
			finished = append(finished, s)
		}
	}
	for _, l := range st.Logs {
		id := l.Vertex.String()
		text := t.partial[id] + string(l.Data)
		lines := strings.Split(text, "\n")
		t.partial[id] = lines[len(lines)-1]
		t.logs[id] = append(t.logs[id], lines[:len(lines)-1]...)
		if n := len(t.logs[id]); n > 4*logTailLines {
			t.logs[id] = append([]string(nil), t.logs[id][n-logTailLines:]...)
		}
	}
	t.mu.Unlock()
	if t.onStep != nil {
		for _, s := range finished {
			t.onStep(s)
		}
	}
}

// counts returns the Dockerfile steps seen and how many were cached.
func (t *tracker) counts() (steps, cached int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range t.order {
		v := t.vertices[id]
		if !dockerfileStep.MatchString(v.Name) || isFrom(v.Name) {
			continue
		}
		steps++
		if v.Cached {
			cached++
		}
	}
	return steps, cached
}

// syntaxDirective matches a Dockerfile's "# syntax=IMAGE" parser directive.
var syntaxDirective = regexp.MustCompile(`(?im)\A(?:\s*#[^\n]*\n)*?\s*#\s*syntax\s*=\s*(\S+)`)

// hint says what to do about common failures.
func hint(be *BuildError, dockerfile string) string {
	msg := be.Err.Error()
	switch {
	case strings.HasPrefix(be.Step, "resolve image config for docker-image://"):
		if data, err := os.ReadFile(dockerfile); err == nil {
			if m := syntaxDirective.FindSubmatch(data); m != nil {
				return fmt.Sprintf("the Dockerfile's first line \"# syntax=%s\" makes BuildKit pull that frontend image, and the pull failed: allow the builder to reach its registry or remove the line", m[1])
			}
		}
	case strings.Contains(msg, "failed to resolve source metadata") && strings.Contains(msg, "not found"):
		return "the base image does not exist, or it is private: check its name and tag, and give credentials for its registry"
	case strings.Contains(msg, "401 Unauthorized") || strings.Contains(msg, "403 Forbidden"):
		return "the registry refused access: give credentials for it"
	}
	return ""
}

// buildError turns a Solve error into a *BuildError naming the failing step.
func (t *tracker) buildError(err error) *BuildError {
	be := &BuildError{ExitCode: -1, Err: err}
	var exitErr *gatewaypb.ExitError
	if errors.As(err, &exitErr) {
		be.ExitCode = int(exitErr.ExitCode)
	}
	for _, src := range errdefs.Sources(err) {
		if src.Info != nil {
			be.Dockerfile = src.Info.Filename
		}
		lines := []int{}
		for _, r := range src.Ranges {
			if r.Start != nil {
				lines = append(lines, int(r.Start.Line))
			}
			if r.End != nil {
				lines = append(lines, int(r.End.Line))
			}
		}
		if len(lines) > 0 {
			sort.Ints(lines)
			be.StartLine, be.EndLine = lines[0], lines[len(lines)-1]
		}
		break
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range t.order {
		v := t.vertices[id]
		if v.Error == "" || strings.Contains(v.Error, context.Canceled.Error()) {
			continue
		}
		be.Step = v.Name
		logs := t.logs[id]
		if p := t.partial[id]; p != "" {
			logs = append(logs, p)
		}
		if len(logs) > logTailLines {
			logs = logs[len(logs)-logTailLines:]
		}
		be.LogTail = append([]string(nil), logs...)
		break
	}
	return be
}

// lineWriter splits a byte stream into lines for a callback.
type lineWriter struct {
	emit func(string)
	buf  []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		w.emit(strings.TrimRight(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = nil
	}
}
