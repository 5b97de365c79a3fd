// Package checks reports a build on a commit to GitHub as a check run: it
// creates the run, updates it while the build goes on (throttled, with the
// log's tail), and completes it with the conclusion, the summary, the
// log's end and every annotation, in batches of 50 as GitHub requires.
// Where the token may not create check runs (403, as for pull requests
// from forks), it reports a commit status instead. It talks to GitHub
// only through the go-github client it is given and logs nothing.
package checks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/convox-build-action/convox-build-action/internal/ghclient"
	"github.com/convox-build-action/convox-build-action/internal/report"
)

// GitHub's limits on a check run.
const (
	// MaxText is the most characters a check run's summary or text holds.
	MaxText = 65535
	// MaxAnnotations is the most annotations one request may carry.
	MaxAnnotations = 50
	// LogTail is how much of the log's end a completed run shows.
	LogTail = 60000
	// maxStatusDescription is the most characters of a commit status'
	// description.
	maxStatusDescription = 140
)

// DefaultUpdateInterval is Options.UpdateInterval's default.
const DefaultUpdateInterval = 5 * time.Second

// Modes of a Run.
const (
	ModeCheckRun = "check-run"
	ModeStatus   = "status"
)

// Conclusions of a completed run, in GitHub's words.
const (
	Success   = "success"
	Failure   = "failure"
	Cancelled = "cancelled"
	Neutral   = "neutral"
)

// Options say which commit a run reports on, and how.
type Options struct {
	Owner, Repo, HeadSHA string
	// Name is the check's name, such as "convox build (myapp)"; a commit
	// status uses it as its context.
	Name string
	// DetailsURL links the run to more (the workflow run, the build's
	// page); optional.
	DetailsURL string
	// ExternalID is the build's ID; optional.
	ExternalID string
	// UpdateInterval is the least time between two in-progress updates
	// (default DefaultUpdateInterval).
	UpdateInterval time.Duration
	// Queued creates the run queued instead of in progress.
	Queued bool
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Unavailable is Start's error when neither a check run nor a commit
// status could be created: the caller warns and goes on, since a build
// never fails because reporting it did.
type Unavailable struct {
	CheckRunErr, StatusErr error
}

func (e *Unavailable) Error() string {
	return fmt.Sprintf("cannot report to GitHub: creating a check run: %v; creating a commit status: %v", e.CheckRunErr, e.StatusErr)
}

// Run is one check run (or commit status) being reported.
type Run struct {
	gh   *github.Client
	opts Options
	mode string
	id   int64
	url  string

	mu        sync.Mutex // held during each request, so updates never cross
	last      time.Time
	completed bool
}

// Start creates the check run, queued or in progress; on a 403 it falls
// back to a pending commit status.
func Start(ctx context.Context, gh *github.Client, opts Options) (*Run, error) {
	if opts.UpdateInterval <= 0 {
		opts.UpdateInterval = DefaultUpdateInterval
	}
	r := &Run{gh: gh, opts: opts, mode: ModeCheckRun}
	create := github.CreateCheckRunOptions{
		Name:    opts.Name,
		HeadSHA: opts.HeadSHA,
		Output:  &github.CheckRunOutput{Title: github.String("Queued"), Summary: github.String("Waiting for a builder.")},
	}
	if opts.DetailsURL != "" {
		create.DetailsURL = github.String(opts.DetailsURL)
	}
	if opts.ExternalID != "" {
		create.ExternalID = github.String(opts.ExternalID)
	}
	if opts.Queued {
		create.Status = github.String("queued")
	} else {
		create.Status = github.String("in_progress")
		create.StartedAt = &github.Timestamp{Time: opts.now()}
		create.Output.Title, create.Output.Summary = github.String("Building"), github.String("The build has started.")
	}
	cr, resp, err := gh.Checks.CreateCheckRun(ctx, opts.Owner, opts.Repo, create)
	if err == nil {
		r.id, r.url = cr.GetID(), cr.GetHTMLURL()
		r.last = opts.now()
		return r, nil
	}
	err = ghclient.Redact(err)
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		return nil, fmt.Errorf("creating check run %q: %w", opts.Name, err)
	}
	r.mode = ModeStatus
	if serr := r.status(ctx, "pending", "Queued"); serr != nil {
		return nil, &Unavailable{CheckRunErr: err, StatusErr: serr}
	}
	r.last = opts.now()
	return r, nil
}

// Mode says how the run reports: ModeCheckRun or ModeStatus.
func (r *Run) Mode() string { return r.mode }

// ID is the check run's ID (0 for a commit status).
func (r *Run) ID() int64 { return r.id }

// URL is the check run's page on GitHub ("" for a commit status).
func (r *Run) URL() string { return r.url }

func (r *Run) status(ctx context.Context, state, description string) error {
	st := &github.RepoStatus{State: github.String(state), Context: github.String(r.opts.Name),
		Description: github.String(clip(description, maxStatusDescription))}
	if r.opts.DetailsURL != "" {
		st.TargetURL = github.String(r.opts.DetailsURL)
	}
	if _, _, err := r.gh.Repositories.CreateStatus(ctx, r.opts.Owner, r.opts.Repo, r.opts.HeadSHA, st); err != nil {
		return fmt.Errorf("creating commit status %q: %w", r.opts.Name, ghclient.Redact(err))
	}
	return nil
}

// Progress reports the build in progress: title, summary and the log's
// tail. Within UpdateInterval of the last update it does nothing (Follow
// sends the latest snapshot once the interval has passed), and after
// Complete it never does anything.
func (r *Run) Progress(ctx context.Context, s report.Snapshot) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.completed || r.opts.now().Sub(r.last) < r.opts.UpdateInterval {
		return nil
	}
	return r.progress(ctx, s)
}

func (r *Run) progress(ctx context.Context, s report.Snapshot) error {
	r.last = r.opts.now()
	if r.mode == ModeStatus {
		return r.status(ctx, "pending", s.Title())
	}
	_, _, err := r.gh.Checks.UpdateCheckRun(ctx, r.opts.Owner, r.opts.Repo, r.id, github.UpdateCheckRunOptions{
		Name:   r.opts.Name,
		Status: github.String("in_progress"),
		Output: &github.CheckRunOutput{
			Title:   github.String(s.Title()),
			Summary: github.String(s.Markdown(MaxText)),
			Text:    github.String(logText(s.LogTail, s.LogLines, LogTail)),
		},
	})
	if err != nil {
		return fmt.Errorf("updating check run %q: %w", r.opts.Name, ghclient.Redact(err))
	}
	return nil
}

// Follow updates the run whenever rep changes, at most once per
// UpdateInterval, until ctx is done. It returns the last update's error.
func (r *Run) Follow(ctx context.Context, rep *report.Report) error {
	var lastErr error
	for {
		select {
		case <-ctx.Done():
			return lastErr
		case <-rep.Changed():
		}
		r.mu.Lock()
		wait := r.opts.UpdateInterval - r.opts.now().Sub(r.last)
		r.mu.Unlock()
		if wait > 0 {
			select {
			case <-ctx.Done():
				return lastErr
			case <-time.After(wait):
			}
		}
		r.mu.Lock()
		if !r.completed {
			lastErr = r.progress(ctx, rep.Snapshot())
			if ctx.Err() != nil {
				lastErr = nil // cut short by the end of the build
			}
		}
		r.mu.Unlock()
	}
}

// Complete concludes the run (Success, Failure, Cancelled or Neutral) with
// the title, the summary, the last LogTail characters of the log and
// every annotation, MaxAnnotations per request. A second call does
// nothing.
func (r *Run) Complete(ctx context.Context, s report.Snapshot, conclusion string) error {
	return r.CompleteWith(ctx, s, conclusion, s.Title(), s.Markdown(MaxText))
}

// CompleteWith is Complete with a title and summary of the caller's, such
// as one that says which commit superseded a cancelled build.
func (r *Run) CompleteWith(ctx context.Context, s report.Snapshot, conclusion, title, summary string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.completed {
		return nil
	}
	r.completed = true
	if r.mode == ModeStatus {
		state := map[string]string{Success: "success", Failure: "failure", Neutral: "success"}[conclusion]
		if state == "" {
			state = "error"
		}
		return r.status(ctx, state, title)
	}
	title = clip(title, 1000)
	summary = clip(summary, MaxText)
	anns := annotations(s.Annotations)
	first := anns[:min(len(anns), MaxAnnotations)]
	_, _, err := r.gh.Checks.UpdateCheckRun(ctx, r.opts.Owner, r.opts.Repo, r.id, github.UpdateCheckRunOptions{
		Name:        r.opts.Name,
		Status:      github.String("completed"),
		Conclusion:  github.String(conclusion),
		CompletedAt: &github.Timestamp{Time: r.opts.now()},
		Output: &github.CheckRunOutput{
			Title:       github.String(title),
			Summary:     github.String(summary),
			Text:        github.String(logText(s.LogTail, s.LogLines, LogTail)),
			Annotations: first,
		},
	})
	if err != nil {
		return fmt.Errorf("completing check run %q: %w", r.opts.Name, ghclient.Redact(err))
	}
	// GitHub appends annotations sent with later updates of the output.
	for i := MaxAnnotations; i < len(anns); i += MaxAnnotations {
		batch := anns[i:min(i+MaxAnnotations, len(anns))]
		_, _, err := r.gh.Checks.UpdateCheckRun(ctx, r.opts.Owner, r.opts.Repo, r.id, github.UpdateCheckRunOptions{
			Name:   r.opts.Name,
			Output: &github.CheckRunOutput{Title: github.String(title), Summary: github.String(summary), Annotations: batch},
		})
		if err != nil {
			return fmt.Errorf("adding annotations %d-%d to check run %q: %w", i+1, i+len(batch), r.opts.Name, ghclient.Redact(err))
		}
	}
	return nil
}

// Skip creates a check run that is already completed, neutral, with a
// title and summary: for a commit there is nothing to build for (no
// convox.yml, a pull request from a fork).
func Skip(ctx context.Context, gh *github.Client, opts Options, title, summary string) error {
	now := opts.now()
	create := github.CreateCheckRunOptions{
		Name: opts.Name, HeadSHA: opts.HeadSHA, Status: github.String("completed"), Conclusion: github.String(Neutral),
		StartedAt: &github.Timestamp{Time: now}, CompletedAt: &github.Timestamp{Time: now},
		Output: &github.CheckRunOutput{Title: github.String(clip(title, 1000)), Summary: github.String(clip(summary, MaxText))},
	}
	if opts.DetailsURL != "" {
		create.DetailsURL = github.String(opts.DetailsURL)
	}
	if opts.ExternalID != "" {
		create.ExternalID = github.String(opts.ExternalID)
	}
	_, resp, err := gh.Checks.CreateCheckRun(ctx, opts.Owner, opts.Repo, create)
	if err == nil {
		return nil
	}
	err = ghclient.Redact(err)
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		return fmt.Errorf("creating check run %q: %w", opts.Name, err)
	}
	r := &Run{gh: gh, opts: opts, mode: ModeStatus}
	if serr := r.status(ctx, "success", title); serr != nil {
		return &Unavailable{CheckRunErr: err, StatusErr: serr}
	}
	return nil
}

// Conclusion is the conclusion for a finished report: Success or Failure.
func Conclusion(s report.Snapshot) string {
	if s.Status == report.Complete {
		return Success
	}
	return Failure
}

// IsUnavailable reports whether err is an *Unavailable.
func IsUnavailable(err error) bool {
	var u *Unavailable
	return errors.As(err, &u)
}

func annotations(in []report.Annotation) []*github.CheckRunAnnotation {
	out := make([]*github.CheckRunAnnotation, 0, len(in))
	for _, a := range in {
		ga := &github.CheckRunAnnotation{
			Path: github.String(a.Path), StartLine: github.Int(a.StartLine), EndLine: github.Int(a.EndLine),
			AnnotationLevel: github.String(string(a.Level)), Message: github.String(clip(a.Message, 4000)),
		}
		if a.StartColumn > 0 && a.StartLine == a.EndLine {
			ga.StartColumn, ga.EndColumn = github.Int(a.StartColumn), github.Int(max(a.EndColumn, a.StartColumn))
		}
		if a.Title != "" {
			ga.Title = github.String(clip(a.Title, 255))
		}
		if a.RawDetails != "" {
			ga.RawDetails = github.String(clip(a.RawDetails, 4000))
		}
		out = append(out, ga)
	}
	return out
}

// logText is the log's tail as a check run's text: at most limit
// characters of whole lines, in a code block, under MaxText in all.
func logText(tail string, lines, limit int) string {
	tail = strings.ReplaceAll(tail, "```", "'''")
	if n := len([]rune(tail)); n > limit {
		r := []rune(tail)
		tail = string(r[n-limit:])
		if i := strings.IndexByte(tail, '\n'); i >= 0 && i < len(tail)-1 {
			tail = tail[i+1:]
		}
	}
	head := fmt.Sprintf("Build log (%d lines; the end):\n\n", lines)
	return clip(head+"```text\n"+tail+"\n```\n", MaxText)
}

// clip cuts s to at most n characters.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
