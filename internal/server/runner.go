package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/checks"
	"github.com/convox-build-action/convox-build-action/internal/ghapp"
	"github.com/convox-build-action/convox-build-action/internal/queue"
	"github.com/convox-build-action/convox-build-action/internal/report"
	"github.com/convox-build-action/convox-build-action/internal/store"
	"github.com/convox-build-action/convox-build-action/internal/webhook"
)

// maxRuns is how many times a build is started before the server gives up
// on it: a build during which the server keeps dying is not tried again.
const maxRuns = 3

// reportTimeout bounds the last report of a build to GitHub, made even
// when the build's context is done.
const reportTimeout = 2 * time.Minute

// runner does the queue's jobs: builds and notices.
type runner struct{ s *Server }

// CheckName is the name of an app's check run.
func CheckName(app string) string { return "convox build (" + app + ")" }

// Notice creates a neutral check run saying why a commit is not built.
func (r *runner) Notice(ctx context.Context, n queue.Notice) error {
	log := r.s.log.With("repository", n.Owner+"/"+n.Repo, "sha", n.SHA)
	in, err := r.s.app.Installation(n.InstallationID)
	if err != nil {
		return err
	}
	err = checks.Skip(ctx, in.Client, checks.Options{Owner: n.Owner, Repo: n.Repo, HeadSHA: n.SHA,
		Name: CheckName(n.App), ExternalID: webhook.NoticeExternalID}, n.Title, n.Summary)
	if checks.IsUnavailable(err) {
		log.Warn("cannot report to GitHub", "error", err)
		return nil
	}
	if err == nil {
		log.Info("commit not built: " + n.Title)
	}
	return err
}

// job is one run of a build.
type job struct {
	s   *Server
	j   *queue.Job
	log *slog.Logger
	gh  *github.Client
	run *checks.Run // nil when GitHub cannot be reported to
	rep *report.Report
}

// Build runs one build job; see queue.Runner.
func (r *runner) Build(ctx context.Context, qj *queue.Job) (string, error) {
	s := r.s
	b := &job{s: s, j: qj, rep: report.New(report.Options{App: qj.App})}
	b.log = s.log.With("build_id", qj.ID, "delivery_id", qj.DeliveryID, "app", qj.App,
		"repository", qj.Owner+"/"+qj.Repo, "sha", qj.SHA, "run", qj.Run, "attempt", qj.Attempt)
	b.log.Info("build started")
	in, err := s.app.Installation(qj.InstallationID)
	if err != nil {
		return b.giveUp(err)
	}
	b.gh = in.Client
	token, err := in.Token(ctx)
	if err != nil {
		return b.retry(ctx, err)
	}
	if err := b.checkRun(ctx); err != nil {
		return b.retry(ctx, err)
	}
	if qj.Run > maxRuns {
		return b.conclude(checks.Failure, "Not built: the server stopped during this build too often",
			fmt.Sprintf("The server stopped %d times while it built %s; it does not try again. Re-run the check to build the commit afresh.", qj.Run-1, qj.SHA),
			errors.New("too many interrupted runs"))
	}
	if qj.SupersededBy != "" {
		// Superseded while it waited in the queue: never built.
		sup := &queue.SupersededError{SHA: qj.SupersededBy, Branch: qj.Branch}
		return b.superseded(sup), sup
	}
	if c, done := b.stopped(ctx); done {
		return c, context.Cause(ctx)
	}

	src := filepath.Join(s.cfg.DataDir, "work", qj.ID)
	os.RemoveAll(src)
	defer os.RemoveAll(src)
	if err := in.DownloadSource(ctx, qj.Owner, qj.Repo, qj.SHA, src, s.cfg.SourceLimits); err != nil {
		if c, done := b.stopped(ctx); done {
			return c, err
		}
		var nf *ghapp.NotFoundError
		var unsafe *ghapp.UnsafeEntryError
		var limit *ghapp.LimitError
		if errors.As(err, &nf) || errors.As(err, &unsafe) || errors.As(err, &limit) {
			return b.conclude(checks.Failure, "Not built: the source could not be fetched", err.Error(), err)
		}
		return b.retry(ctx, err)
	}
	if _, err := os.Stat(filepath.Join(src, "convox.yml")); errors.Is(err, os.ErrNotExist) {
		return b.conclude(checks.Neutral, "Not built: no convox.yml",
			fmt.Sprintf("Commit %s has no convox.yml at the root of the repository, so there is no Convox app to build.", qj.SHA), nil)
	}

	bctx, cancel := context.WithTimeoutCause(ctx, s.cfg.BuildTimeout,
		fmt.Errorf("the build took longer than %s", s.cfg.BuildTimeout))
	defer cancel()
	followCtx, stopFollow := context.WithCancel(context.WithoutCancel(ctx))
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		if b.run != nil {
			if err := b.run.Follow(followCtx, b.rep); err != nil {
				b.log.Warn("updating the check run", "error", err)
			}
		}
	}()
	description := qj.Description
	if description == "" {
		description = fmt.Sprintf("%s %s", qj.Ref, qj.SHA[:min(len(qj.SHA), 10)])
	}
	built, err := s.eng.Run(bctx, build.Request{
		ID:          qj.ID,
		App:         qj.App,
		Repository:  s.repository(qj.Owner, qj.Repo, qj.App),
		SourceDir:   src,
		Description: description,
		GitSHA:      qj.SHA,
		Registry:    s.cfg.Registry,
		Redact:      []string{token},
		Sink:        b.rep,
	})
	stopFollow()
	<-followed

	var inProgress *build.InProgressError
	switch {
	case errors.As(err, &inProgress):
		// The process that ran it before has not been silent long enough.
		b.log.Info("build still held by another process; waiting", "error", err)
		return "", &queue.RetryError{After: s.cfg.HeartbeatInterval, Err: err}
	case build.IsInputError(err):
		b.rep.Fail(err)
		return b.conclude(checks.Failure, "", "", err)
	}
	if c, done := b.stopped(ctx); done {
		if errors.Is(context.Cause(ctx), queue.ErrDraining) && built != nil {
			b.abandon(built)
		}
		return c, context.Cause(ctx)
	}
	if bctx.Err() != nil {
		return b.conclude(checks.Failure, "Build timed out",
			fmt.Sprintf("Build %s took longer than %s and was stopped.", qj.ID, s.cfg.BuildTimeout), context.Cause(bctx))
	}
	if err != nil {
		return b.conclude(checks.Failure, "", "", err)
	}
	return b.conclude(checks.Success, "", "", nil)
}

// checkRun starts the build's check run, or attaches to the one an
// earlier run of the build started.
func (b *job) checkRun(ctx context.Context) error {
	qj := b.j
	opts := checks.Options{Owner: qj.Owner, Repo: qj.Repo, HeadSHA: qj.SHA, Name: CheckName(qj.App),
		DetailsURL: BuildURL(b.s.cfg.PublicURL, qj.App, qj.ID), ExternalID: qj.ID,
		UpdateInterval: b.s.cfg.CheckUpdateInterval, Queued: true}
	if qj.CheckRunID != 0 {
		b.run = checks.Attach(b.gh, opts, qj.CheckRunID)
		return nil
	}
	run, err := checks.Start(ctx, b.gh, opts)
	if checks.IsUnavailable(err) {
		b.log.Warn("cannot report to GitHub; building anyway", "error", err)
		return nil
	}
	if err != nil {
		return err
	}
	b.run = run
	if run.ID() != 0 {
		if err := qj.SetCheckRun(ctx, run.ID()); err != nil {
			// Go on with the run created: trying again would create
			// another. Only a later run of the build would miss it.
			b.log.Warn("recording the check run", "check_run_id", run.ID(), "error", err)
		}
	}
	b.log.Info("check run created", "check_run_id", run.ID(), "mode", run.Mode())
	return nil
}

// stopped concludes the build if ctx was cancelled because a newer commit
// superseded it; for a drain or a takeover it reports nothing (another
// run will) and says so with done and no conclusion.
func (b *job) stopped(ctx context.Context) (conclusion string, done bool) {
	if ctx.Err() == nil {
		return "", false
	}
	cause := context.Cause(ctx)
	var sup *queue.SupersededError
	switch {
	case errors.As(cause, &sup):
		return b.superseded(sup), true
	case errors.Is(cause, queue.ErrDraining):
		b.log.Info("build interrupted: the server is shutting down; it resumes later")
		return "", true
	case errors.Is(cause, queue.ErrClaimLost):
		b.log.Warn("build taken over by another run")
		return "", true
	}
	return "", false
}

// superseded concludes the check run of a build that a newer commit on
// its branch superseded.
func (b *job) superseded(sup *queue.SupersededError) string {
	short := sup.SHA[:min(len(sup.SHA), 7)]
	c, _ := b.conclude(checks.Cancelled, "Cancelled: superseded by "+short,
		fmt.Sprintf("A newer commit, %s, was pushed to %s: build %s of %s was cancelled in favour of its build.",
			sup.SHA, sup.Branch, b.j.ID, b.j.SHA), sup)
	return c
}

// abandon marks a build interrupted by a drain as abandoned, so that the
// next run of its job builds it again under the same ID.
func (b *job) abandon(built *store.Build) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cur, err := b.s.st.GetBuild(ctx, built.ID)
	if err != nil {
		b.log.Warn("marking the build for resumption", "error", err)
		return
	}
	if cur.Status == store.StatusComplete {
		return
	}
	cur.Status, cur.Reason = store.StatusFailed, build.AbandonedReason
	if cur.Ended.IsZero() {
		cur.Ended = time.Now().UTC()
	}
	if err := b.s.st.UpdateBuild(ctx, cur); err != nil {
		b.log.Warn("marking the build for resumption", "error", err)
	}
}

// conclude completes the check run; title and summary default to the
// report's. It returns the conclusion, with err for the queue to log.
func (b *job) conclude(conclusion, title, summary string, err error) (string, error) {
	snap := b.rep.Snapshot()
	if title == "" {
		title = snap.Title()
	}
	if summary == "" {
		summary = snap.Markdown(checks.MaxText)
	}
	attrs := []any{"conclusion", conclusion, "title", title}
	if err != nil {
		attrs = append(attrs, "error", err)
	}
	b.log.Info("build finished", attrs...)
	var took time.Duration
	if !snap.Started.IsZero() && !snap.Ended.IsZero() {
		took = snap.Ended.Sub(snap.Started)
	}
	b.s.metrics.BuildFinished(conclusion, took)
	if b.run == nil {
		return conclusion, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), reportTimeout)
	defer cancel()
	if cerr := b.run.CompleteWith(ctx, snap, conclusion, title, summary); cerr != nil {
		b.log.Error("completing the check run", "error", cerr)
		if b.j.LastAttempt() {
			return conclusion, errors.Join(err, cerr)
		}
		// Try again: the check run must not stay unfinished.
		return "", cerr
	}
	return conclusion, err
}

// retry asks the queue to run the job again later; on the last attempt it
// concludes the check run as failed instead.
func (b *job) retry(ctx context.Context, err error) (string, error) {
	if c, done := b.stopped(ctx); done {
		return c, err
	}
	if !b.j.LastAttempt() {
		b.log.Warn("build failed for a reason that may pass; trying again", "error", err)
		return "", err
	}
	return b.giveUp(err)
}

func (b *job) giveUp(err error) (string, error) {
	return b.conclude(checks.Failure, "Not built: "+firstLine(err.Error()),
		fmt.Sprintf("Build %s of %s could not be run after %d attempts: %v", b.j.ID, b.j.SHA, b.j.Attempt, err), err)
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
