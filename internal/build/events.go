package build

import (
	"time"

	"github.com/convox-build-action/convox-build-action/internal/store"
)

// EventType says what an Event reports.
type EventType string

// The events a build emits, in order: BuildStarted; per build spec
// ServiceQueued, ServiceStarted, Step..., Log..., ServiceFinished;
// BuildFinished last.
const (
	BuildStarted    EventType = "build-started"
	ServiceQueued   EventType = "service-queued"
	ServiceStarted  EventType = "service-started"
	StepFinished    EventType = "step"
	LogLine         EventType = "log"
	ServiceFinished EventType = "service-finished"
	BuildFinished   EventType = "build-finished"
)

// Event is one thing that happened in a build, for adapters that report
// progress (log groups and annotations in Actions, check runs on the
// server). Events for one build are delivered in order, from one
// goroutine at a time.
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
	// Images are set for ServiceFinished on success.
	Images []store.ServiceImage
	// Err is set for ServiceFinished and BuildFinished on failure.
	Err error
	// Failure is set with Err when BuildKit reported where it failed.
	Failure *Failure
	// Build is set for BuildStarted and BuildFinished.
	Build *store.Build
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
	// LogTail is the last output of the failing step.
	LogTail []string
	Message string
}
