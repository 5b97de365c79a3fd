package build

import (
	"strconv"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/store"
)

// EventType says what an Event reports.
type EventType string

// The events a build emits, in order: BuildStarted; Warning...; per build
// spec ServiceQueued, ServiceStarted, Step..., Log..., ServiceFinished;
// BuildFinished last. LogsDropped may come anywhere after BuildStarted.
const (
	BuildStarted    EventType = "build-started"
	Warned          EventType = "warning"
	ServiceQueued   EventType = "service-queued"
	ServiceStarted  EventType = "service-started"
	StepFinished    EventType = "step"
	LogLine         EventType = "log"
	LogsDropped     EventType = "logs-dropped"
	ServiceFinished EventType = "service-finished"
	BuildFinished   EventType = "build-finished"
)

// Event is one thing that happened in a build, for adapters that report
// progress (log groups and annotations in Actions, check runs on the
// server).
type Event struct {
	Type    EventType
	Time    time.Time
	BuildID string
	// Services are the services concerned (several when they share one
	// build spec); empty for build-wide events.
	Services []string
	// Step is set for StepFinished.
	Step *Step
	// Line is set for LogLine: the text as written to the build log.
	Line string
	// Dropped is set for LogsDropped: how many LogLine events the sink
	// did not get because it fell behind (the build log has every line).
	Dropped int
	// Warning is set for Warned.
	Warning *Warning
	// Images are set for ServiceFinished on success.
	Images []store.ServiceImage
	// Err is set for ServiceFinished and BuildFinished on failure.
	Err error
	// Failure is set with Err when BuildKit reported where it failed.
	Failure *Failure
	// Build is set for BuildStarted and BuildFinished.
	Build *store.Build
}

// Sink receives a build's events. The engine calls Event from one
// goroutine at a time, in order, through a buffer: a slow sink never
// stalls the build, and Run returns only after the sink has had
// BuildFinished. A sink that falls far behind misses LogLine events (it
// gets one LogsDropped instead). A sink that panics fails its build and
// gets no more events.
type Sink interface {
	Event(Event)
}

// SinkFunc is a function as a Sink.
type SinkFunc func(Event)

// Event calls f.
func (f SinkFunc) Event(e Event) { f(e) }

// WarningKind says what a Warning is about.
type WarningKind string

// Warning kinds.
const (
	// WarningManifest is a convox.yml warning (an unknown key...), at
	// File:Line:Col.
	WarningManifest WarningKind = "manifest"
	// WarningSecretBuildArg is a build argument whose name looks like a
	// secret (Name): its value stays in the image's history.
	WarningSecretBuildArg WarningKind = "secret-build-arg"
	// WarningHeartbeat says the build could not mark itself alive in the
	// store.
	WarningHeartbeat WarningKind = "heartbeat"
)

// Warning is something a user should see that does not stop the build.
type Warning struct {
	Kind WarningKind
	// File, Line and Col locate a manifest warning (Line, Col 0 when
	// unknown).
	File      string
	Line, Col int
	// Name is the build argument of a WarningSecretBuildArg.
	Name string
	// Message says what is wrong, without the position.
	Message string
}

// String is the warning as a compiler would print it:
// "convox.yml:3:5: unknown key ...", or the message alone.
func (w Warning) String() string {
	if w.File == "" {
		return w.Message
	}
	s := w.File
	if w.Line > 0 {
		s += ":" + strconv.Itoa(w.Line)
		if w.Col > 0 {
			s += ":" + strconv.Itoa(w.Col)
		}
	}
	return s + ": " + w.Message
}

// Step is a finished build step.
type Step struct {
	Name     string
	Cached   bool
	Error    string
	Duration time.Duration
}

// Failure says where a Dockerfile build failed, as annotations need.
type Failure struct {
	Services []string
	// Step is the failing instruction as BuildKit names it.
	Step     string
	ExitCode int // -1 when unknown
	// Dockerfile is the path relative to the source root; StartLine and
	// EndLine the instruction's lines (0 when unknown).
	Dockerfile         string
	StartLine, EndLine int
	// LogTail is the last output of the failing step (redacted).
	LogTail []string
	Message string
}
