package queue

import (
	"errors"
	"fmt"
	"time"
)

// Delivery is one webhook delivery.
type Delivery struct {
	// ID is GitHub's X-GitHub-Delivery: a redelivery has the same.
	ID     string
	Event  string // X-GitHub-Event
	Action string // the payload's action, if any
	// Repository is owner/name, when the event has one.
	Repository     string
	InstallationID int64
	Received       time.Time // default: now
}

// Plan is what a delivery asks for; Accept records it.
type Plan struct {
	Builds       []BuildRequest
	Notices      []Notice
	Installation *Installation
	// Note says why nothing was queued (an ignored event), for the
	// delivery's record.
	Note string
}

// BuildRequest asks for a build of one commit.
type BuildRequest struct {
	InstallationID int64
	Owner, Repo    string
	SHA            string
	// Ref is what the commit came as: refs/heads/main, refs/tags/v1,
	// refs/pull/7/head.
	Ref string
	// Branch groups the builds that supersede one another ("" for none):
	// a branch name, or pull/N for a pull request from a fork.
	Branch string
	// App is the Convox app name.
	App string
	// Description of the build (the commit's first line).
	Description string
	// Supersede marks older builds of Branch, still queued or running, as
	// superseded by this one (a new push; not a re-run of an old commit).
	Supersede bool
	// Rebuild builds the commit again even when it was built (GitHub's
	// Re-run): a new build, not the earlier one.
	Rebuild bool
}

// Notice is a report about a commit that is not built, such as a pull
// request from a fork: a neutral check run with a title and summary.
type Notice struct {
	InstallationID int64  `json:"installation_id"`
	Owner          string `json:"owner"`
	Repo           string `json:"repo"`
	SHA            string `json:"sha"`
	App            string `json:"app"`
	Title          string `json:"title"`
	Summary        string `json:"summary"`
}

// Installation is what an installation event says about the App's
// installation on an account.
type Installation struct {
	ID      int64
	Account string
	// State is "active", "suspended" or "deleted".
	State string
	// Repositories replaces the recorded list when not nil; Added and
	// Removed change it.
	Repositories   []string
	Added, Removed []string
}

// Result is what Accept did.
type Result struct {
	// Duplicate: the delivery was recorded before; nothing was done.
	Duplicate bool
	Builds    []Accepted
	Notices   int
	// Outcome summarises it, as recorded with the delivery.
	Outcome string
}

// Accepted is the build a BuildRequest made or found.
type Accepted struct {
	BuildID string
	// Existing: the commit already had a build (from another delivery),
	// and no new one was made.
	Existing bool
	// Superseded lists the older builds of the branch this one cancels.
	Superseded []string
}

// State of a build in the queue.
type State string

// Build states.
const (
	StateQueued  State = "queued"
	StateRunning State = "running"
	StateDone    State = "done"
)

// Build is the queue's record of a build it was asked for.
type Build struct {
	ID             string
	DeliveryID     string
	Event          string
	InstallationID int64
	Owner, Repo    string
	SHA, Ref       string
	Branch         string
	App            string
	Description    string
	// CheckRunID is the build's check run, once created (0 before).
	CheckRunID int64
	State      State
	Conclusion string
	// SupersededBy is the commit of the newer build that cancels this
	// one ("" when not superseded).
	SupersededBy string
	// Run counts the jobs that have owned the build (1 for the first;
	// more after a process died mid-build).
	Run       int
	JobID     int64
	Worker    string
	Heartbeat time.Time
	Created   time.Time
	Updated   time.Time
}

// ErrNotFound is the error for an unknown build or delivery.
var ErrNotFound = errors.New("not found")

// ErrDraining is the cancellation cause of a job whose process is
// shutting down: the job goes back to the queue.
var ErrDraining = errors.New("the server is shutting down; the build goes back to the queue")

// ErrClaimLost is the cancellation cause of a job that another run took
// over (its heartbeats did not reach the database in time).
var ErrClaimLost = errors.New("another run took this build over")

// SupersededError is the cancellation cause of a build that a newer
// commit on its branch supersedes.
type SupersededError struct {
	SHA    string // the newer commit
	Branch string
}

func (e *SupersededError) Error() string {
	return fmt.Sprintf("superseded by commit %s on %s", e.SHA, e.Branch)
}

// RetryError asks for the job to run again after a wait, without counting
// an attempt (another process still holds the build, say).
type RetryError struct {
	After time.Duration
	Err   error
}

func (e *RetryError) Error() string { return e.Err.Error() }
func (e *RetryError) Unwrap() error { return e.Err }
