package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/convox-build-action/convox-build-action/internal/build"
)

// BuildArgs are a build job's arguments: the build's row holds the rest.
type BuildArgs struct {
	BuildID string `json:"build_id" river:"unique"`
	Run     int    `json:"run" river:"unique"`
}

// Kind is River's name for build jobs.
func (BuildArgs) Kind() string { return "convox_build" }

// NoticeArgs are a notice job's arguments.
type NoticeArgs struct {
	Notice
}

// Kind is River's name for notice jobs.
func (NoticeArgs) Kind() string { return "convox_notice" }

func (q *Queue) buildInsertOpts() *river.InsertOpts {
	return &river.InsertOpts{Queue: buildQueue, MaxAttempts: q.opts.MaxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

func (q *Queue) noticeInsertOpts() *river.InsertOpts {
	return &river.InsertOpts{Queue: noticeQueue, MaxAttempts: q.opts.MaxAttempts}
}

// Accept records delivery d and queues what plan asks for, in one
// transaction: when it returns without error, the jobs are committed. A
// delivery recorded before is a Duplicate and changes nothing.
//
// Deliveries are written in batches (group commit): concurrent calls
// share a transaction, each in its own savepoint, so that a burst of
// deliveries does not queue up behind one another's commits. One that
// fails rolls back alone.
func (q *Queue) Accept(ctx context.Context, d Delivery, plan Plan) (*Result, error) {
	if d.ID == "" {
		return nil, fmt.Errorf("recording a delivery: no delivery ID")
	}
	if d.Received.IsZero() {
		d.Received = q.now()
	}
	req := &acceptReq{ctx: ctx, d: d, plan: plan, done: make(chan acceptRes, 1)}
	select {
	case q.accepts <- req:
	case <-q.closed:
		return nil, errors.New("recording a delivery: the queue is closed")
	case <-ctx.Done():
		return nil, fmt.Errorf("recording delivery %s: %w", d.ID, ctx.Err())
	}
	select {
	case r := <-req.done:
		return r.res, r.err
	case <-ctx.Done():
		// It may yet be committed: a redelivery will find it.
		return nil, fmt.Errorf("recording delivery %s: %w", d.ID, ctx.Err())
	}
}

type acceptReq struct {
	ctx  context.Context
	d    Delivery
	plan Plan
	done chan acceptRes
}

type acceptRes struct {
	res *Result
	err error
}

// maxAcceptBatch bounds the deliveries written in one transaction.
const maxAcceptBatch = 64

// acceptLoop writes the deliveries Accept hands it, as many as are
// waiting in each transaction, until the queue is closed.
func (q *Queue) acceptLoop() {
	defer q.acceptWG.Done()
	for {
		var first *acceptReq
		select {
		case first = <-q.accepts:
		case <-q.closed:
			return
		}
		batch := []*acceptReq{first}
	fill:
		for len(batch) < maxAcceptBatch {
			select {
			case r := <-q.accepts:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		q.acceptBatch(batch)
	}
}

// errRetryDelivery asks for a delivery to be written again: a concurrent
// transaction recorded the same delivery or commit meanwhile.
var errRetryDelivery = errors.New("the delivery or its commit was recorded concurrently")

// acceptBatch writes a batch of deliveries in one transaction, with one
// insert of all their jobs. Should that fail, each delivery is written
// alone, so that one that cannot be recorded fails alone.
func (q *Queue) acceptBatch(batch []*acceptReq) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var live []*acceptReq
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- acceptRes{nil, fmt.Errorf("recording delivery %s: %w", r.d.ID, err)}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	results, err := q.writeDeliveries(ctx, live)
	if err != nil {
		q.log.Debug("writing a batch of deliveries failed; writing them one by one", "deliveries", len(live), "error", err)
	}
	if err == nil {
		for i, r := range live {
			r.done <- results[i]
		}
		return
	}
	for _, r := range live {
		var res []acceptRes
		for attempt := 1; ; attempt++ {
			res, err = q.writeDeliveries(ctx, []*acceptReq{r})
			if !errors.Is(err, errRetryDelivery) || attempt == 3 {
				break
			}
		}
		if err != nil {
			r.done <- acceptRes{nil, fmt.Errorf("recording delivery %s: %w", r.d.ID, err)}
			continue
		}
		r.done <- res[0]
	}
}

// writeDeliveries records reqs and their jobs in one transaction.
func (q *Queue) writeDeliveries(ctx context.Context, reqs []*acceptReq) ([]acceptRes, error) {
	var results []acceptRes
	err := q.b.inTx(ctx, func(tx dbtx, insert insertFunc) error {
		results = make([]acceptRes, len(reqs))
		var jobs []river.InsertManyParams
		for i, r := range reqs {
			res, js, err := q.acceptOne(ctx, tx, r.d, r.plan)
			if err != nil {
				return err
			}
			results[i] = acceptRes{res: res}
			jobs = append(jobs, js...)
		}
		if len(jobs) == 0 {
			return nil
		}
		if _, err := insert(ctx, jobs); err != nil {
			return fmt.Errorf("queueing %d jobs: %w", len(jobs), err)
		}
		return nil
	})
	return results, err
}

// acceptOne records one delivery in tx, and returns the jobs to queue
// for it.
func (q *Queue) acceptOne(ctx context.Context, tx dbtx, d Delivery, plan Plan) (*Result, []river.InsertManyParams, error) {
	res := &Result{}
	err := tx.QueryRow(ctx, `SELECT outcome FROM webhook_deliveries WHERE id = $1`, d.ID).Scan(&res.Outcome)
	switch {
	case err == nil:
		res.Duplicate = true
		return res, nil, nil
	case !isNoRows(err):
		return nil, nil, fmt.Errorf("reading delivery %s: %w", d.ID, err)
	}
	var outcome []string
	var jobs []river.InsertManyParams
	if plan.Installation != nil {
		if err := q.recordInstallation(ctx, tx, plan.Installation); err != nil {
			return nil, nil, err
		}
		outcome = append(outcome, fmt.Sprintf("installation %d %s", plan.Installation.ID, plan.Installation.State))
	}
	for _, br := range plan.Builds {
		a, err := q.acceptBuild(ctx, tx, d, br)
		if err != nil {
			return nil, nil, err
		}
		res.Builds = append(res.Builds, a)
		switch {
		case a.Existing:
			outcome = append(outcome, "build "+a.BuildID+" (already queued for this commit)")
			continue
		case len(a.Superseded) > 0:
			outcome = append(outcome, "build "+a.BuildID+" (supersedes "+strings.Join(a.Superseded, ", ")+")")
		default:
			outcome = append(outcome, "build "+a.BuildID)
		}
		jobs = append(jobs, river.InsertManyParams{Args: BuildArgs{BuildID: a.BuildID, Run: 1}, InsertOpts: q.buildInsertOpts()})
	}
	for _, n := range plan.Notices {
		jobs = append(jobs, river.InsertManyParams{Args: NoticeArgs{n}, InsertOpts: q.noticeInsertOpts()})
		res.Notices++
		outcome = append(outcome, "notice: "+n.Title)
	}
	if len(outcome) == 0 {
		outcome = append(outcome, "ignored: "+plan.Note)
	}
	res.Outcome = strings.Join(outcome, "; ")
	n, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (id, event, action, repository, installation_id, received, outcome)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
		d.ID, d.Event, d.Action, d.Repository, d.InstallationID, micros(d.Received), res.Outcome)
	if err != nil {
		return nil, nil, fmt.Errorf("recording delivery %s: %w", d.ID, err)
	}
	if n == 0 {
		// Recorded by a concurrent transaction (another replica or
		// writer): undo this one; written again, it is a redelivery.
		return nil, nil, errRetryDelivery
	}
	return res, jobs, nil
}

// commitKey identifies the build of a commit: every delivery about it
// finds the same, unless it asks for a rebuild.
func commitKey(d Delivery, br BuildRequest) string {
	k := strings.ToLower(br.Owner+"/"+br.Repo) + "@" + strings.ToLower(br.SHA)
	if br.Rebuild {
		k += "#rebuild:" + d.ID
	}
	return k
}

func (q *Queue) acceptBuild(ctx context.Context, tx dbtx, d Delivery, br BuildRequest) (Accepted, error) {
	if br.Owner == "" || br.Repo == "" || br.SHA == "" || br.App == "" {
		return Accepted{}, fmt.Errorf("queueing a build: owner, repo, sha and app are required (got %q/%q@%q, app %q)", br.Owner, br.Repo, br.SHA, br.App)
	}
	key := commitKey(d, br)
	var existing string
	err := tx.QueryRow(ctx, `SELECT build_id FROM webhook_builds WHERE commit_key = $1`, key).Scan(&existing)
	switch {
	case err == nil:
		return Accepted{BuildID: existing, Existing: true}, nil
	case !isNoRows(err):
		return Accepted{}, fmt.Errorf("finding the build of %s: %w", key, err)
	}
	id := build.NewID("B")
	now := micros(q.now())
	a := Accepted{BuildID: id}
	if br.Supersede && br.Branch != "" {
		rows, err := tx.Query(ctx, `UPDATE webhook_builds SET superseded_by = $4, updated = $5
			WHERE owner = $1 AND repo = $2 AND branch = $3 AND state <> 'done' AND superseded_by = ''
			RETURNING build_id`, br.Owner, br.Repo, br.Branch, br.SHA, now)
		if err != nil {
			return Accepted{}, fmt.Errorf("superseding older builds of %s: %w", br.Branch, err)
		}
		for rows.Next() {
			var old string
			if err := rows.Scan(&old); err != nil {
				rows.Close()
				return Accepted{}, err
			}
			a.Superseded = append(a.Superseded, old)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return Accepted{}, fmt.Errorf("superseding older builds of %s: %w", br.Branch, err)
		}
		slices.Sort(a.Superseded)
	}
	n, err := tx.Exec(ctx, `INSERT INTO webhook_builds (build_id, commit_key, delivery_id, event, installation_id,
			owner, repo, sha, ref, branch, app, description, state, created, updated)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'queued', $13, $13)
		ON CONFLICT (commit_key) DO NOTHING`,
		id, key, d.ID, d.Event, br.InstallationID, br.Owner, br.Repo, br.SHA, br.Ref, br.Branch, br.App, br.Description, now)
	if err != nil {
		return Accepted{}, fmt.Errorf("recording the build of %s: %w", key, err)
	}
	if n == 0 {
		return Accepted{}, errRetryDelivery
	}
	return a, nil
}

// insertBuildJob queues run of build id.
func (q *Queue) insertBuildJob(ctx context.Context, insert insertFunc, id string, run int) error {
	params := []river.InsertManyParams{{Args: BuildArgs{BuildID: id, Run: run}, InsertOpts: q.buildInsertOpts()}}
	if _, err := insert(ctx, params); err != nil {
		return fmt.Errorf("queueing build %s: %w", id, err)
	}
	return nil
}

func (q *Queue) recordInstallation(ctx context.Context, tx dbtx, in *Installation) error {
	var reposJSON string
	err := tx.QueryRow(ctx, `SELECT repositories FROM webhook_installations WHERE id = $1`, in.ID).Scan(&reposJSON)
	var repos []string
	switch {
	case isNoRows(err):
	case err != nil:
		return fmt.Errorf("reading installation %d: %w", in.ID, err)
	default:
		if err := json.Unmarshal([]byte(reposJSON), &repos); err != nil {
			return fmt.Errorf("reading installation %d: %w", in.ID, err)
		}
	}
	if in.Repositories != nil {
		repos = slices.Clone(in.Repositories)
	}
	repos = append(repos, in.Added...)
	repos = slices.DeleteFunc(repos, func(r string) bool { return slices.Contains(in.Removed, r) })
	slices.Sort(repos)
	repos = slices.Compact(repos)
	if repos == nil {
		repos = []string{}
	}
	js, _ := json.Marshal(repos)
	state := in.State
	if state == "" {
		state = "active"
	}
	_, err = tx.Exec(ctx, `INSERT INTO webhook_installations (id, account, state, repositories, updated)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET account = excluded.account, state = excluded.state,
			repositories = excluded.repositories, updated = excluded.updated`,
		in.ID, in.Account, state, string(js), micros(q.now()))
	if err != nil {
		return fmt.Errorf("recording installation %d: %w", in.ID, err)
	}
	return nil
}
