// Package report follows one build's events and says what happened, in
// the forms the GitHub front ends need: a Markdown summary (services,
// images with digests, status, duration, cached steps, the Build and
// Release IDs, the failing step's last lines), annotations (convox.yml
// problems, the failing Dockerfile instruction) and the log's tail. It
// knows nothing of GitHub's API and does no I/O.
package report

import (
	"errors"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/manifest"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

// Status is where a build, or one of its services, is.
type Status string

// Statuses.
const (
	Queued   Status = "queued"
	Running  Status = "running"
	Complete Status = "complete"
	Failed   Status = "failed"
)

// DefaultTailBytes is Options.TailBytes' default: what a check run's text
// can hold (65,535 characters) with room for a heading.
const DefaultTailBytes = 60000

// Options configure a Report.
type Options struct {
	// App is the Convox app's name.
	App string
	// PathPrefix is the source directory relative to the repository root
	// ("" or "services/api"); annotation paths are PathPrefix joined with
	// the engine's paths, which are relative to the source directory.
	PathPrefix string
	// TailBytes bounds the log tail kept, in bytes of whole lines
	// (default DefaultTailBytes).
	TailBytes int
}

// Report is a build.Sink that keeps what a summary needs. Its methods are
// safe for concurrent use.
type Report struct {
	opts    Options
	changed chan struct{}

	mu       sync.Mutex
	s        Snapshot
	services map[string]*Service
	tail     []string
	tailSize int
	problems manifest.Problems
}

// New returns an empty report: status queued.
func New(opts Options) *Report {
	if opts.TailBytes <= 0 {
		opts.TailBytes = DefaultTailBytes
	}
	opts.PathPrefix = strings.Trim(path.Clean("/"+strings.ReplaceAll(opts.PathPrefix, "\\", "/")), "/")
	return &Report{opts: opts, changed: make(chan struct{}, 1), services: map[string]*Service{},
		s: Snapshot{App: opts.App, Status: Queued}}
}

// Snapshot is a report at one moment.
type Snapshot struct {
	App       string
	BuildID   string
	ReleaseID string
	Status    Status
	Started   time.Time
	Ended     time.Time
	// Services, sorted by name.
	Services []Service
	// Failure says where a Dockerfile build failed.
	Failure *build.Failure
	// Error is the build's failure, as the engine worded (and redacted) it.
	Error string
	// Warnings, in the order they came.
	Warnings []build.Warning
	// Annotations are every annotation, in order: convox.yml problems,
	// then the failure.
	Annotations []Annotation
	// LogTail is the end of the log, whole lines, at most TailBytes.
	LogTail string
	// LogLines counts the log lines seen (dropped ones included).
	LogLines int
}

// Service is one service's result.
type Service struct {
	Name        string
	Image       string
	Digest      string
	ImageOnly   bool
	Status      Status
	Duration    time.Duration
	CachedSteps int
	TotalSteps  int
}

// AnnotationLevel is an annotation's severity, in GitHub's words.
type AnnotationLevel string

// Annotation levels.
const (
	Notice  AnnotationLevel = "notice"
	Warning AnnotationLevel = "warning"
	Failure AnnotationLevel = "failure"
)

// Annotation points at a line of a file in the repository.
type Annotation struct {
	// Path is relative to the repository root, with forward slashes.
	Path                   string
	StartLine, EndLine     int
	StartColumn, EndColumn int
	Level                  AnnotationLevel
	Title                  string
	Message                string
	RawDetails             string
}

// Changed is signalled after each event (coalesced: one pending signal at
// most), for a reporter that updates GitHub when something happened.
func (r *Report) Changed() <-chan struct{} { return r.changed }

func (r *Report) notify() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// Event records e; a Report is a build.Sink.
func (r *Report) Event(e build.Event) {
	r.mu.Lock()
	defer r.notify()
	defer r.mu.Unlock()
	if e.BuildID != "" {
		r.s.BuildID = e.BuildID
	}
	switch e.Type {
	case build.BuildStarted:
		r.s.Status = Running
		if e.Build != nil {
			r.s.Started = e.Build.Started
		}
	case build.Warned:
		if e.Warning != nil {
			r.s.Warnings = append(r.s.Warnings, *e.Warning)
		}
	case build.ServiceQueued:
		for _, name := range e.Services {
			r.service(name).Status = Queued
		}
	case build.ServiceStarted:
		for _, name := range e.Services {
			r.service(name).Status = Running
		}
	case build.LogLine:
		r.addLine(e.Line)
		r.s.LogLines++
	case build.LogsDropped:
		r.s.LogLines += e.Dropped
		r.addLine("[" + strconv.Itoa(e.Dropped) + " log lines not shown here; the build log has them all]")
	case build.ServiceFinished:
		for _, name := range e.Services {
			r.service(name).Status = Failed
		}
		for _, img := range e.Images {
			s := r.service(img.Service)
			s.Status, s.Image, s.Digest, s.ImageOnly = Complete, img.Image, img.Digest, img.ImageOnly
			s.Duration = time.Duration(img.DurationMS) * time.Millisecond
			s.CachedSteps, s.TotalSteps = img.CachedSteps, img.TotalSteps
		}
		if e.Failure != nil && r.s.Failure == nil {
			f := *e.Failure
			r.s.Failure = &f
		}
	case build.BuildFinished:
		b := e.Build
		if b != nil {
			r.s.BuildID, r.s.ReleaseID, r.s.Started, r.s.Ended = b.ID, b.Release, b.Started, b.Ended
			for _, img := range b.Services {
				s := r.service(img.Service)
				s.Image, s.Digest, s.ImageOnly = img.Image, img.Digest, img.ImageOnly
				if s.Status != Failed {
					s.Status = Complete
				}
			}
		}
		r.s.Status = Complete
		if e.Err != nil || (b != nil && b.Status == store.StatusFailed) {
			r.s.Status = Failed
			reason := ""
			if b != nil {
				reason = b.Reason
			}
			r.fail(e.Err, reason)
		}
	}
}

// Fail records a build that failed before it started, such as an
// InputError for a bad convox.yml: its problems become annotations.
func (r *Report) Fail(err error) {
	r.mu.Lock()
	defer r.notify()
	defer r.mu.Unlock()
	r.s.Status = Failed
	r.fail(err, "")
}

func (r *Report) fail(err error, reason string) {
	if err != nil {
		r.s.Error = err.Error()
		var ps manifest.Problems
		if errors.As(err, &ps) {
			r.problems = append(r.problems, ps...)
		}
		var se *build.ServiceError
		if errors.As(err, &se) && se.Failure != nil && r.s.Failure == nil {
			f := *se.Failure
			r.s.Failure = &f
		}
	}
	if r.s.Error == "" {
		r.s.Error = reason
	}
	if r.s.Ended.IsZero() && !r.s.Started.IsZero() {
		r.s.Ended = time.Now()
	}
}

func (r *Report) service(name string) *Service {
	s := r.services[name]
	if s == nil {
		s = &Service{Name: name, Status: Queued}
		r.services[name] = s
	}
	return s
}

// addLine keeps line in the tail, dropping the oldest lines beyond
// TailBytes (a line longer than that keeps its end).
func (r *Report) addLine(line string) {
	if len(line) > r.opts.TailBytes {
		line = line[len(line)-r.opts.TailBytes:]
	}
	r.tail = append(r.tail, line)
	r.tailSize += len(line) + 1
	drop := 0
	for r.tailSize > r.opts.TailBytes && drop < len(r.tail) {
		r.tailSize -= len(r.tail[drop]) + 1
		drop++
	}
	if drop > 0 {
		// Copy now and then so the dropped lines can be collected.
		if drop > len(r.tail)/2 {
			r.tail = append([]string(nil), r.tail[drop:]...)
		} else {
			r.tail = r.tail[drop:]
		}
	}
}

// Snapshot returns a copy of the report as it is now.
func (r *Report) Snapshot() Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.s
	s.Services = make([]Service, 0, len(r.services))
	for _, svc := range r.services {
		s.Services = append(s.Services, *svc)
	}
	sort.Slice(s.Services, func(i, j int) bool { return s.Services[i].Name < s.Services[j].Name })
	s.Warnings = append([]build.Warning(nil), r.s.Warnings...)
	if r.s.Failure != nil {
		f := *r.s.Failure
		if f.Dockerfile != "" {
			f.Dockerfile = r.repoPath(f.Dockerfile)
		}
		s.Failure = &f
	}
	s.LogTail = strings.Join(r.tail, "\n")
	s.Annotations = r.annotations()
	return s
}

func (r *Report) repoPath(p string) string {
	p = strings.ReplaceAll(p, "\\", "/")
	if r.opts.PathPrefix == "" {
		return path.Clean(p)
	}
	return path.Join(r.opts.PathPrefix, p)
}

func (r *Report) annotations() []Annotation {
	var out []Annotation
	for _, w := range r.s.Warnings {
		if w.Kind != build.WarningManifest || w.File == "" {
			continue
		}
		out = append(out, Annotation{Path: r.repoPath(w.File), StartLine: max(w.Line, 1), EndLine: max(w.Line, 1),
			StartColumn: w.Col, EndColumn: w.Col, Level: Warning, Title: "convox.yml", Message: w.Message})
	}
	for _, p := range r.problems.Sorted() {
		level := Failure
		if p.Severity == manifest.Warning {
			level = Warning
		}
		out = append(out, Annotation{Path: r.repoPath(p.File), StartLine: max(p.Line, 1), EndLine: max(p.Line, 1),
			StartColumn: p.Col, EndColumn: p.Col, Level: level, Title: "convox.yml", Message: p.Message})
	}
	if f := r.s.Failure; f != nil && f.Dockerfile != "" && f.StartLine > 0 {
		a := Annotation{Path: r.repoPath(f.Dockerfile), StartLine: f.StartLine, EndLine: max(f.EndLine, f.StartLine),
			Level: Failure, Title: failureTitle(f), Message: failureMessage(f)}
		if len(f.LogTail) > 0 {
			a.RawDetails = strings.Join(lastLines(f.LogTail, 30), "\n")
		}
		out = append(out, a)
	}
	// GitHub wants columns only on single-line annotations.
	for i := range out {
		if out[i].StartLine != out[i].EndLine || out[i].StartColumn == 0 {
			out[i].StartColumn, out[i].EndColumn = 0, 0
		}
	}
	return out
}

func failureTitle(f *build.Failure) string {
	t := "service " + strings.Join(f.Services, ", ") + " failed"
	if f.ExitCode >= 0 {
		t += " (exit code " + strconv.Itoa(f.ExitCode) + ")"
	}
	return t
}

func failureMessage(f *build.Failure) string {
	msg := f.Message
	if f.Step != "" {
		msg = f.Step + ": " + msg
	}
	if len(f.LogTail) > 0 {
		msg += "\n\n" + strings.Join(lastLines(f.LogTail, 10), "\n")
	}
	return msg
}

func lastLines(lines []string, n int) []string {
	if len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}
