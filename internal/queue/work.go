package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Job is one run of a build, as a Runner gets it.
type Job struct {
	Build
	// Attempt counts River's tries of this run (1 for the first).
	Attempt, MaxAttempts int
	q                    *Queue
}

// LastAttempt says whether the job will not be tried again if it fails.
func (j *Job) LastAttempt() bool { return j.Attempt >= j.MaxAttempts }

// SetCheckRun records the build's check run, so that a later run of the
// build reports on the same one.
func (j *Job) SetCheckRun(ctx context.Context, id int64) error {
	_, err := j.q.b.conn().Exec(ctx, `UPDATE webhook_builds SET check_run_id = $2, updated = $3 WHERE build_id = $1`,
		j.ID, id, micros(j.q.now()))
	if err != nil {
		return fmt.Errorf("recording check run %d of build %s: %w", id, j.ID, err)
	}
	j.CheckRunID = id
	return nil
}

type buildWorker struct {
	river.WorkerDefaults[BuildArgs]
	q *Queue
}

func (w *buildWorker) NextRetry(job *river.Job[BuildArgs]) time.Time {
	return time.Now().Add(w.q.backoff(job.Attempt))
}

func (w *buildWorker) Work(ctx context.Context, job *river.Job[BuildArgs]) error {
	return w.q.work(ctx, job.JobRow, job.Args)
}

type noticeWorker struct {
	river.WorkerDefaults[NoticeArgs]
	q *Queue
}

func (w *noticeWorker) NextRetry(job *river.Job[NoticeArgs]) time.Time {
	return time.Now().Add(w.q.backoff(job.Attempt))
}

func (w *noticeWorker) Work(ctx context.Context, job *river.Job[NoticeArgs]) error {
	if w.q.opts.Runner == nil {
		return errors.New("no runner")
	}
	return w.q.opts.Runner.Notice(ctx, job.Args.Notice)
}

// backoff is the wait before retry number attempt (1 for the first).
func (q *Queue) backoff(attempt int) time.Duration {
	d := q.opts.RetryBackoff
	for i := 1; i < attempt && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

// errorHandler logs what River reports about failed jobs.
type errorHandler struct{ q *Queue }

func (h *errorHandler) HandleError(ctx context.Context, job *rivertype.JobRow, err error) *river.ErrorHandlerResult {
	h.q.log.Warn("job failed", append(jobAttrs(job), "attempt", job.Attempt, "max_attempts", job.MaxAttempts, "error", err)...)
	return nil
}

func (h *errorHandler) HandlePanic(ctx context.Context, job *rivertype.JobRow, panicVal any, trace string) *river.ErrorHandlerResult {
	h.q.log.Error("job panicked", append(jobAttrs(job), "panic", fmt.Sprint(panicVal), "trace", trace)...)
	return nil
}

// jobAttrs names a job in a log line: its ID and kind, and the build of a
// build job.
func jobAttrs(job *rivertype.JobRow) []any {
	attrs := []any{"job_id", job.ID, "kind", job.Kind}
	var args BuildArgs
	if job.Kind == (BuildArgs{}).Kind() && json.Unmarshal(job.EncodedArgs, &args) == nil {
		attrs = append(attrs, "build_id", args.BuildID)
	}
	return attrs
}

// work runs one build job: it claims the build's row for its run, keeps
// it alive and watches for supersession while the runner works, and
// records the outcome.
func (q *Queue) work(ctx context.Context, row *rivertype.JobRow, args BuildArgs) error {
	log := q.log.With("build_id", args.BuildID, "job_id", row.ID, "run", args.Run, "attempt", row.Attempt)
	if q.opts.Runner == nil {
		return errors.New("no runner")
	}
	b, err := q.Build(ctx, args.BuildID)
	if errors.Is(err, ErrNotFound) {
		log.Error("build job without a build record; dropping it")
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	log = log.With("delivery_id", b.DeliveryID)
	if b.Run != args.Run || b.State == StateDone {
		log.Info("build job superseded by a later run; nothing to do", "current_run", b.Run, "state", b.State)
		return nil
	}
	now := q.now()
	n, err := q.b.conn().Exec(ctx, `UPDATE webhook_builds SET state = 'running', heartbeat = $3, updated = $3, worker = $4, job_id = $5
		WHERE build_id = $1 AND run = $2 AND state <> 'done'`, b.ID, b.Run, micros(now), q.b.client().ID(), row.ID)
	if err != nil {
		return fmt.Errorf("claiming build %s: %w", b.ID, err)
	}
	if n == 0 {
		log.Info("build taken over before it started; nothing to do")
		return nil
	}
	b.State, b.Heartbeat, b.Worker, b.JobID = StateRunning, now, q.b.client().ID(), row.ID

	wctx, cancel := context.WithCancelCause(ctx)
	q.track(b.ID, cancel)
	defer q.untrack(b.ID)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		q.watch(wctx, *b, cancel)
	}()
	job := &Job{Build: *b, Attempt: row.Attempt, MaxAttempts: row.MaxAttempts, q: q}
	conclusion, rerr := q.opts.Runner.Build(wctx, job)
	cause := context.Cause(wctx)
	cancel(nil)
	<-watched

	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer fcancel()
	var retry *RetryError
	switch {
	case errors.Is(cause, ErrClaimLost):
		log.Warn("build taken over by another run", "error", rerr)
		return nil
	case conclusion != "":
		if rerr != nil {
			log.Info("build ended", "conclusion", conclusion, "error", rerr)
		}
		return q.finish(fctx, b, conclusion)
	case errors.Is(cause, ErrDraining) || (q.draining.Load() && ctx.Err() != nil):
		log.Info("build handed back to the queue: the server is shutting down")
		if err := q.requeue(fctx, b); err != nil {
			return err
		}
		return river.JobSnooze(0)
	case errors.As(rerr, &retry):
		if err := q.requeue(fctx, b); err != nil {
			return err
		}
		return river.JobSnooze(retry.After)
	case rerr == nil:
		return q.finish(fctx, b, "success")
	case job.LastAttempt():
		if err := q.finish(fctx, b, "failure"); err != nil {
			return errors.Join(rerr, err)
		}
		return rerr
	default:
		if err := q.requeue(fctx, b); err != nil {
			return errors.Join(rerr, err)
		}
		return rerr
	}
}

// finish marks build b's run done with conclusion.
func (q *Queue) finish(ctx context.Context, b *Build, conclusion string) error {
	_, err := q.b.conn().Exec(ctx, `UPDATE webhook_builds SET state = 'done', conclusion = $3, updated = $4
		WHERE build_id = $1 AND run = $2`, b.ID, b.Run, conclusion, micros(q.now()))
	if err != nil {
		return fmt.Errorf("recording the end of build %s: %w", b.ID, err)
	}
	return nil
}

// requeue marks build b's run queued again: its job will run later.
func (q *Queue) requeue(ctx context.Context, b *Build) error {
	_, err := q.b.conn().Exec(ctx, `UPDATE webhook_builds SET state = 'queued', heartbeat = 0, updated = $3
		WHERE build_id = $1 AND run = $2 AND state = 'running'`, b.ID, b.Run, micros(q.now()))
	if err != nil {
		return fmt.Errorf("handing build %s back to the queue: %w", b.ID, err)
	}
	return nil
}

// watch keeps build b's run alive and cancels the job when a newer commit
// supersedes it or another run took it over.
func (q *Queue) watch(ctx context.Context, b Build, cancel context.CancelCauseFunc) {
	t := time.NewTicker(q.opts.PollInterval)
	defer t.Stop()
	lastBeat := q.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var superseded string
		var run int
		err := q.b.conn().QueryRow(ctx, `SELECT superseded_by, run FROM webhook_builds WHERE build_id = $1`, b.ID).Scan(&superseded, &run)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			q.log.Warn("checking build state", "build_id", b.ID, "delivery_id", b.DeliveryID, "error", err)
		case run != b.Run:
			cancel(ErrClaimLost)
			return
		case superseded != "":
			cancel(&SupersededError{SHA: superseded, Branch: b.Branch})
			return
		}
		now := q.now()
		if now.Sub(lastBeat) < q.opts.HeartbeatInterval {
			continue
		}
		n, err := q.b.conn().Exec(ctx, `UPDATE webhook_builds SET heartbeat = $3 WHERE build_id = $1 AND run = $2 AND state = 'running'`,
			b.ID, b.Run, micros(now))
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && n == 0:
			cancel(ErrClaimLost)
			return
		case err == nil:
			lastBeat = now
		case now.Sub(lastBeat) >= q.staleAfter()/2:
			// Another process may take the build over any moment.
			q.log.Error("build heartbeat lost", "build_id", b.ID, "delivery_id", b.DeliveryID, "error", err)
			cancel(fmt.Errorf("%w: its heartbeat could not be recorded for %s: %v", ErrClaimLost, now.Sub(lastBeat).Round(time.Second), err))
			return
		default:
			q.log.Warn("recording build heartbeat", "build_id", b.ID, "delivery_id", b.DeliveryID, "error", err)
		}
	}
}

func (q *Queue) track(id string, cancel context.CancelCauseFunc) {
	q.mu.Lock()
	q.running[id] = cancel
	q.mu.Unlock()
}

func (q *Queue) untrack(id string) {
	q.mu.Lock()
	delete(q.running, id)
	q.mu.Unlock()
}

// Running lists the builds this process is running.
func (q *Queue) Running() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	ids := make([]string, 0, len(q.running))
	for id := range q.running {
		ids = append(ids, id)
	}
	return ids
}

// Start starts working jobs (with Options.Runner) and recovering builds
// whose process died, until Stop.
func (q *Queue) Start(ctx context.Context) error {
	if q.opts.Runner == nil {
		return errors.New("starting the job queue: no runner")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.started {
		return errors.New("starting the job queue: already started")
	}
	if _, err := q.Reap(ctx); err != nil {
		q.log.Warn("recovering builds at start-up", "error", err)
	}
	if err := q.b.client().Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("starting the job queue: %w", err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	q.stopReap, q.reaped, q.started = cancel, make(chan struct{}), true
	go func() {
		defer close(q.reaped)
		q.reapLoop(rctx)
	}()
	return nil
}

// Stop drains the queue: no new jobs are taken, running builds may finish
// for up to drain, then the rest are cancelled (cause ErrDraining) and go
// back to the queue, for this process once restarted or another replica.
// ctx bounds the whole stop.
func (q *Queue) Stop(ctx context.Context, drain time.Duration) error {
	q.mu.Lock()
	started := q.started
	q.started = false
	q.mu.Unlock()
	if !started {
		return nil
	}
	q.draining.Store(true)
	q.stopReap()
	<-q.reaped
	dctx, cancel := context.WithTimeout(ctx, drain)
	err := q.b.client().Stop(dctx)
	cancel()
	if err == nil {
		return nil
	}
	q.mu.Lock()
	n := len(q.running)
	for _, c := range q.running {
		c(ErrDraining)
	}
	q.mu.Unlock()
	q.log.Info("drain deadline passed; handing running builds back to the queue", "builds", n)
	if err := q.b.client().StopAndCancel(ctx); err != nil {
		return fmt.Errorf("stopping the job queue: %w", err)
	}
	return nil
}
