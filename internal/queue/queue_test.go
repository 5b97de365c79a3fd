package queue_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/queue"
	"github.com/convox-build-action/convox-build-action/internal/store"
	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// backend opens a queue on a new, empty database.
type backend struct {
	name string
	open func(t testing.TB, opts queue.Options) *queue.Queue
}

var backends = []backend{
	{"sqlite", func(t testing.TB, opts queue.Options) *queue.Queue {
		db, err := store.OpenSQLiteDB(filepath.Join(t.TempDir(), "q.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		q, err := queue.NewSQLite(t.Context(), db, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(q.Close)
		return q
	}},
	{"postgres", func(t testing.TB, opts queue.Options) *queue.Queue {
		q, err := queue.OpenPostgres(t.Context(), testenv.PostgresURL(t), opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(q.Close)
		return q
	}},
}

func eachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

// fast are options that make a test's waits short.
func fast(r queue.Runner) queue.Options {
	return queue.Options{
		Runner:            r,
		Workers:           2,
		HeartbeatInterval: 200 * time.Millisecond,
		PollInterval:      50 * time.Millisecond,
		RetryBackoff:      100 * time.Millisecond,
		MaxAttempts:       3,
	}
}

func push(owner, repo, sha, branch string) queue.BuildRequest {
	return queue.BuildRequest{InstallationID: 7, Owner: owner, Repo: repo, SHA: sha, Ref: "refs/heads/" + branch,
		Branch: branch, App: repo, Description: "commit " + sha, Supersede: true}
}

func accept(t *testing.T, q *queue.Queue, delivery string, plan queue.Plan) *queue.Result {
	t.Helper()
	res, err := q.Accept(t.Context(), queue.Delivery{ID: delivery, Event: "push", Repository: "o/r", InstallationID: 7}, plan)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func buildJobs(t *testing.T, q *queue.Queue) []queue.JobInfo {
	t.Helper()
	jobs, err := q.Jobs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(jobs, func(j queue.JobInfo) bool { return j.Kind != "convox_build" })
}

func TestAccept(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		q := b.open(t, queue.Options{})

		first := accept(t, q, "d1", queue.Plan{Builds: []queue.BuildRequest{push("o", "r", "aaa", "main")}})
		if first.Duplicate || len(first.Builds) != 1 || first.Builds[0].Existing {
			t.Fatalf("first delivery: %+v", first)
		}
		id := first.Builds[0].BuildID
		if !strings.HasPrefix(id, "B") || len(id) != 11 {
			t.Errorf("build ID %q", id)
		}

		// A redelivery is a duplicate and queues nothing.
		again := accept(t, q, "d1", queue.Plan{Builds: []queue.BuildRequest{push("o", "r", "aaa", "main")}})
		if !again.Duplicate || again.Outcome != "build "+id {
			t.Errorf("redelivery: %+v", again)
		}
		// Another delivery for the same commit (a pull_request, a
		// check_suite) finds the same build.
		pr := push("O", "R", "AAA", "feature")
		pr.Ref = "refs/pull/3/head"
		same := accept(t, q, "d2", queue.Plan{Builds: []queue.BuildRequest{pr}})
		if same.Duplicate || len(same.Builds) != 1 || !same.Builds[0].Existing || same.Builds[0].BuildID != id {
			t.Errorf("same commit, other delivery: %+v", same)
		}
		// A re-run builds the commit again.
		rerun := push("o", "r", "aaa", "main")
		rerun.Rebuild, rerun.Supersede = true, false
		re := accept(t, q, "d3", queue.Plan{Builds: []queue.BuildRequest{rerun}})
		if len(re.Builds) != 1 || re.Builds[0].Existing || re.Builds[0].BuildID == id {
			t.Errorf("re-run: %+v", re)
		}
		// A newer push to the branch supersedes the queued builds of it.
		newer := accept(t, q, "d4", queue.Plan{Builds: []queue.BuildRequest{push("o", "r", "bbb", "main")}})
		want := []string{id, re.Builds[0].BuildID}
		slices.Sort(want)
		if len(newer.Builds) != 1 || !slices.Equal(newer.Builds[0].Superseded, want) {
			t.Errorf("newer push: %+v, want it to supersede %v", newer, want)
		}
		old, err := q.Build(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if old.SupersededBy != "bbb" || old.State != queue.StateQueued || old.Run != 1 || old.Branch != "main" {
			t.Errorf("superseded build record: %+v", old)
		}
		// Nothing, and a notice.
		ignored := accept(t, q, "d5", queue.Plan{Note: "tag deleted"})
		if ignored.Outcome != "ignored: tag deleted" {
			t.Errorf("ignored: %+v", ignored)
		}
		notice := accept(t, q, "d6", queue.Plan{Notices: []queue.Notice{{Owner: "o", Repo: "r", SHA: "ccc", Title: "Not built: pull request from a fork"}}})
		if notice.Notices != 1 {
			t.Errorf("notice: %+v", notice)
		}
		d, err := q.Delivery(ctx, "d6")
		if err != nil || d.Outcome != "notice: Not built: pull request from a fork" || d.Event != "push" {
			t.Errorf("delivery record: %+v, %v", d, err)
		}
		if _, err := q.Delivery(ctx, "nope"); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("unknown delivery: %v", err)
		}

		// Exactly one build job per build.
		jobs := buildJobs(t, q)
		builds, err := q.Builds(ctx, "", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) != 3 || len(builds) != 3 {
			t.Errorf("%d build jobs, %d builds; want 3 and 3", len(jobs), len(builds))
		}
		for _, j := range jobs {
			if j.Run != 1 || j.State != "available" {
				t.Errorf("job %+v", j)
			}
		}
	})
}

func TestInstallations(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		q := b.open(t, queue.Options{})
		accept(t, q, "i1", queue.Plan{Installation: &queue.Installation{ID: 42, Account: "octo", State: "active", Repositories: []string{"octo/a", "octo/b"}}})
		accept(t, q, "i2", queue.Plan{Installation: &queue.Installation{ID: 42, Account: "octo", State: "active", Added: []string{"octo/c"}, Removed: []string{"octo/a"}}})
		in, err := q.Installation(t.Context(), 42)
		if err != nil {
			t.Fatal(err)
		}
		if in.Account != "octo" || in.State != "active" || !slices.Equal(in.Repositories, []string{"octo/b", "octo/c"}) {
			t.Errorf("installation: %+v", in)
		}
		accept(t, q, "i3", queue.Plan{Installation: &queue.Installation{ID: 42, Account: "octo", State: "deleted"}})
		if in, _ = q.Installation(t.Context(), 42); in.State != "deleted" {
			t.Errorf("after deletion: %+v", in)
		}
	})
}

// runner is a test Runner whose behaviour each test chooses.
type runner struct {
	mu      sync.Mutex
	build   func(ctx context.Context, j *queue.Job) (string, error)
	calls   []queue.Job
	notices []queue.Notice
	ended   chan string // build IDs, as their Build returns
}

func newRunner(f func(ctx context.Context, j *queue.Job) (string, error)) *runner {
	return &runner{build: f, ended: make(chan string, 100)}
}

func (r *runner) Build(ctx context.Context, j *queue.Job) (string, error) {
	r.mu.Lock()
	r.calls = append(r.calls, *j)
	r.mu.Unlock()
	defer func() { r.ended <- j.ID }()
	return r.build(ctx, j)
}

func (r *runner) Notice(ctx context.Context, n queue.Notice) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notices = append(r.notices, n)
	return nil
}

func (r *runner) callsOf(id string) []queue.Job {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []queue.Job
	for _, c := range r.calls {
		if c.ID == id {
			out = append(out, c)
		}
	}
	return out
}

func start(t *testing.T, q *queue.Queue) {
	t.Helper()
	if err := q.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := q.Stop(ctx, 5*time.Second); err != nil {
			t.Error(err)
		}
	})
}

// waitFor polls cond until it holds or 20 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func buildState(t *testing.T, q *queue.Queue, id string) *queue.Build {
	t.Helper()
	b, err := q.Build(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWork(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		r := newRunner(func(ctx context.Context, j *queue.Job) (string, error) {
			if err := j.SetCheckRun(ctx, 99); err != nil {
				return "", err
			}
			return "success", nil
		})
		q := b.open(t, fast(r))
		start(t, q)
		id := accept(t, q, "d1", queue.Plan{Builds: []queue.BuildRequest{push("o", "r", "aaa", "main")}}).Builds[0].BuildID
		accept(t, q, "d2", queue.Plan{Notices: []queue.Notice{{Owner: "o", Repo: "r", SHA: "fff", Title: "t"}}})
		waitFor(t, "the build to be done", func() bool { return buildState(t, q, id).State == queue.StateDone })
		got := buildState(t, q, id)
		if got.Conclusion != "success" || got.CheckRunID != 99 || got.Run != 1 {
			t.Errorf("done build: %+v", got)
		}
		calls := r.callsOf(id)
		if len(calls) != 1 || calls[0].SHA != "aaa" || calls[0].Owner != "o" || calls[0].App != "r" || calls[0].State != queue.StateRunning || calls[0].Attempt != 1 {
			t.Errorf("runner calls: %+v", calls)
		}
		waitFor(t, "the notice", func() bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			return len(r.notices) == 1 && r.notices[0].SHA == "fff"
		})
	})
}

func TestRetries(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		r := newRunner(func(ctx context.Context, j *queue.Job) (string, error) {
			switch {
			case j.Attempt == 1:
				return "", errors.New("GitHub answered 502")
			case j.LastAttempt():
				return "failure", errors.New("gave up")
			}
			return "", errors.New("still failing")
		})
		q := b.open(t, fast(r))
		start(t, q)
		id := accept(t, q, "d1", queue.Plan{Builds: []queue.BuildRequest{push("o", "r", "aaa", "main")}}).Builds[0].BuildID
		waitFor(t, "the build to be done", func() bool { return buildState(t, q, id).State == queue.StateDone })
		calls := r.callsOf(id)
		if len(calls) != 3 || calls[2].Attempt != 3 || buildState(t, q, id).Conclusion != "failure" {
			t.Errorf("calls %+v, build %+v", calls, buildState(t, q, id))
		}
	})
}

func TestSupersedeRunning(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		causes := make(chan error, 10)
		r := newRunner(func(ctx context.Context, j *queue.Job) (string, error) {
			if j.SHA == "bbb" {
				return "success", nil
			}
			<-ctx.Done()
			causes <- context.Cause(ctx)
			return "cancelled", context.Cause(ctx)
		})
		q := b.open(t, fast(r))
		start(t, q)
		first := accept(t, q, "d1", queue.Plan{Builds: []queue.BuildRequest{push("o", "r", "aaa", "main")}}).Builds[0].BuildID
		waitFor(t, "the first build to run", func() bool { return buildState(t, q, first).State == queue.StateRunning })
		began := time.Now()
		accept(t, q, "d2", queue.Plan{Builds: []queue.BuildRequest{push("o", "r", "bbb", "main")}})
		select {
		case cause := <-causes:
			var se *queue.SupersededError
			if !errors.As(cause, &se) || se.SHA != "bbb" || se.Branch != "main" {
				t.Errorf("cause %v, want superseded by bbb on main", cause)
			}
			t.Logf("cancelled %v after the newer push", time.Since(began))
		case <-time.After(10 * time.Second):
			t.Fatal("the running build was not cancelled")
		}
		waitFor(t, "the first build to be done", func() bool { return buildState(t, q, first).State == queue.StateDone })
		if c := buildState(t, q, first).Conclusion; c != "cancelled" {
			t.Errorf("conclusion %q", c)
		}
	})
}

// TestRecoverDeadRun makes builds look like their process died (running
// with a stale heartbeat; or never claimed, its River job taken long ago)
// and checks that Reap queues a new run of each, and that the old jobs,
// should River rescue them later, do nothing.
func TestRecoverDeadRun(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		r := newRunner(func(ctx context.Context, j *queue.Job) (string, error) { return "success", nil })
		q := b.open(t, fast(r))
		now := time.Now()
		claimed := accept(t, q, "d1", queue.Plan{Builds: []queue.BuildRequest{push("o", "r", "aaa", "main")}}).Builds[0].BuildID
		unclaimed := accept(t, q, "d2", queue.Plan{Builds: []queue.BuildRequest{push("o", "r", "bbb", "other")}}).Builds[0].BuildID
		if err := queue.MarkRunningForTest(t.Context(), q, claimed, true, now.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := queue.MarkRunningForTest(t.Context(), q, unclaimed, false, now.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		recovered, err := q.Reap(t.Context())
		slices.Sort(recovered)
		want := []string{claimed, unclaimed}
		slices.Sort(want)
		if err != nil || !slices.Equal(recovered, want) {
			t.Fatalf("Reap = %v, %v; want %v", recovered, err, want)
		}
		for _, id := range want {
			if got := buildState(t, q, id); got.Run != 2 || got.State != queue.StateQueued {
				t.Errorf("after Reap: %+v", got)
			}
		}
		// Reaping again finds nothing.
		if again, err := q.Reap(t.Context()); err != nil || len(again) != 0 {
			t.Errorf("second Reap = %v, %v", again, err)
		}
		start(t, q)
		for _, id := range want {
			waitFor(t, "the recovered build to be done", func() bool { return buildState(t, q, id).State == queue.StateDone })
			calls := r.callsOf(id)
			if len(calls) != 1 || calls[0].Run != 2 {
				t.Errorf("runner calls %+v; want one, of run 2 (run 1's job is obsolete)", calls)
			}
		}
		var runs []int
		for _, j := range buildJobs(t, q) {
			runs = append(runs, j.Run)
		}
		slices.Sort(runs)
		if !slices.Equal(runs, []int{1, 1, 2, 2}) {
			t.Errorf("build jobs of runs %v, want [1 1 2 2]", runs)
		}
	})
}

func TestDrain(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		t.Run("finishes within the deadline", func(t *testing.T) {
			r := newRunner(func(ctx context.Context, j *queue.Job) (string, error) {
				time.Sleep(500 * time.Millisecond)
				return "success", ctx.Err()
			})
			q := b.open(t, fast(r))
			if err := q.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			id := accept(t, q, "d1", queue.Plan{Builds: []queue.BuildRequest{push("o", "r", "aaa", "main")}}).Builds[0].BuildID
			waitFor(t, "the build to run", func() bool { return buildState(t, q, id).State == queue.StateRunning })
			if err := q.Stop(t.Context(), 10*time.Second); err != nil {
				t.Fatal(err)
			}
			if got := buildState(t, q, id); got.State != queue.StateDone || got.Conclusion != "success" {
				t.Errorf("after a drain: %+v", got)
			}
		})
		t.Run("hands back after the deadline", func(t *testing.T) {
			causes := make(chan error, 1)
			block := true
			var mu sync.Mutex
			r := newRunner(func(ctx context.Context, j *queue.Job) (string, error) {
				mu.Lock()
				b := block
				mu.Unlock()
				if !b {
					return "success", nil
				}
				<-ctx.Done()
				causes <- context.Cause(ctx)
				return "", ctx.Err()
			})
			opts := fast(r)
			q := b.open(t, opts)
			if err := q.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			id := accept(t, q, "d1", queue.Plan{Builds: []queue.BuildRequest{push("o", "r", "aaa", "main")}}).Builds[0].BuildID
			waitFor(t, "the build to run", func() bool { return buildState(t, q, id).State == queue.StateRunning })
			began := time.Now()
			if err := q.Stop(t.Context(), 300*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			t.Logf("stopped in %v", time.Since(began))
			if cause := <-causes; !errors.Is(cause, queue.ErrDraining) {
				t.Errorf("cause %v, want ErrDraining", cause)
			}
			if got := buildState(t, q, id); got.State != queue.StateQueued || got.Run != 1 {
				t.Errorf("handed back: %+v", got)
			}
			jobs := buildJobs(t, q)
			if len(jobs) != 1 || (jobs[0].State != "available" && jobs[0].State != "scheduled") || jobs[0].Attempt != 0 {
				t.Errorf("job after hand-back: %+v", jobs)
			}
			// The next process (a new queue on the same database) builds it.
			mu.Lock()
			block = false
			mu.Unlock()
			q2 := queue.Reopen(t, q, opts)
			start(t, q2)
			waitFor(t, "the handed-back build to be done", func() bool { return buildState(t, q2, id).State == queue.StateDone })
			if n := len(r.callsOf(id)); n != 2 {
				t.Errorf("%d runs, want 2", n)
			}
		})
	})
}

func TestRetryAfter(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		r := newRunner(func(ctx context.Context, j *queue.Job) (string, error) {
			return "", &queue.RetryError{After: 100 * time.Millisecond, Err: fmt.Errorf("build %s is running in another process", j.ID)}
		})
		q := b.open(t, fast(r))
		start(t, q)
		id := accept(t, q, "d1", queue.Plan{Builds: []queue.BuildRequest{push("o", "r", "aaa", "main")}}).Builds[0].BuildID
		waitFor(t, "three snoozed runs", func() bool { return len(r.callsOf(id)) >= 3 })
		for _, c := range r.callsOf(id) {
			if c.Attempt != 1 {
				t.Errorf("a snooze counted as an attempt: %+v", c)
			}
		}
	})
}

// TestAcceptBatches sends many deliveries at once, so that they share
// transactions: redeliveries and other deliveries of one commit find the
// first, and a delivery that cannot be recorded fails alone.
func TestAcceptBatches(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		q := b.open(t, queue.Options{})
		var wg sync.WaitGroup
		results := make([]*queue.Result, 201)
		errs := make([]error, 201)
		for i := range 201 {
			wg.Go(func() {
				br := push("o", "r", fmt.Sprintf("sha%03d", i%100), fmt.Sprintf("b%d", i%100))
				id := fmt.Sprintf("d%03d", i%150) // 50 redeliveries
				if i == 200 {
					br.App, id = "", "bad"
				}
				results[i], errs[i] = q.Accept(t.Context(), queue.Delivery{ID: id, Event: "push"}, queue.Plan{Builds: []queue.BuildRequest{br}})
			})
		}
		wg.Wait()
		dups, failed := 0, 0
		for i := range 201 {
			switch {
			case errs[i] != nil:
				failed++
				if i != 200 || !strings.Contains(errs[i].Error(), "owner, repo, sha and app are required") {
					t.Errorf("delivery %d: %v", i, errs[i])
				}
			case results[i].Duplicate:
				dups++
			}
		}
		if failed != 1 || dups != 50 {
			t.Errorf("%d failed, %d duplicates; want 1 and 50", failed, dups)
		}
		builds, _ := q.Builds(t.Context(), "", "", 0)
		if jobs := buildJobs(t, q); len(builds) != 100 || len(jobs) != 100 {
			t.Errorf("%d builds, %d jobs; want 100 of each", len(builds), len(jobs))
		}
	})
}

// TestSupersedeInBatches pushes one branch many times at once: whatever
// the batches, exactly one build of it is left not superseded.
func TestSupersedeInBatches(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		q := b.open(t, queue.Options{})
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Go(func() {
				if _, err := q.Accept(t.Context(), queue.Delivery{ID: fmt.Sprint("hot", i), Event: "push"},
					queue.Plan{Builds: []queue.BuildRequest{push("o", "r", fmt.Sprintf("sha%02d", i), "hot")}}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		builds, err := q.Builds(t.Context(), "o", "r", 0)
		if err != nil {
			t.Fatal(err)
		}
		var live []string
		for _, b := range builds {
			if b.SupersededBy == "" {
				live = append(live, b.SHA)
			}
		}
		if len(builds) != 40 || len(live) != 1 {
			t.Errorf("%d builds, not superseded: %v; want 40 and one", len(builds), live)
		}
	})
}
