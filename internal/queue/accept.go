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

// writeDeliveries records reqs and their jobs in one transaction, with a
// fixed number of statements whatever their number: the deliveries and
// builds already recorded are read at once, what to do is decided here,
// and the new rows and jobs are inserted at once. A delivery or commit
// recorded meanwhile by another transaction (another replica) makes it
// fail with errRetryDelivery, and written again it is found.
func (q *Queue) writeDeliveries(ctx context.Context, reqs []*acceptReq) ([]acceptRes, error) {
	var results []acceptRes
	err := q.b.inTx(ctx, func(tx dbtx, insert insertFunc) error {
		var err error
		results, err = q.writeBatch(ctx, tx, insert, reqs)
		return err
	})
	return results, err
}

// buildRow is a webhook_builds row to insert.
type buildRow struct {
	id, key      string
	d            Delivery
	br           BuildRequest
	supersededBy string
}

func (q *Queue) writeBatch(ctx context.Context, tx dbtx, insert insertFunc, reqs []*acceptReq) ([]acceptRes, error) {
	now := q.now()
	var ids, keys, branches []string
	for _, r := range reqs {
		ids = append(ids, r.d.ID)
		for _, br := range r.plan.Builds {
			if br.Owner == "" || br.Repo == "" || br.SHA == "" || br.App == "" {
				return nil, fmt.Errorf("queueing a build: owner, repo, sha and app are required (got %q/%q@%q, app %q)", br.Owner, br.Repo, br.SHA, br.App)
			}
			keys = append(keys, commitKey(r.d, br))
			if br.Supersede && br.Branch != "" {
				branches = append(branches, br.Branch)
			}
		}
	}
	// What is recorded already.
	outcomes := map[string]string{}
	if err := queryIn(ctx, tx, `SELECT id, outcome FROM webhook_deliveries WHERE id IN`, ids, func(sc scanner) error {
		var id, outcome string
		err := sc.Scan(&id, &outcome)
		outcomes[id] = outcome
		return err
	}); err != nil {
		return nil, fmt.Errorf("reading deliveries: %w", err)
	}
	builds := map[string]string{} // commit key -> build ID
	if err := queryIn(ctx, tx, `SELECT commit_key, build_id FROM webhook_builds WHERE commit_key IN`, keys, func(sc scanner) error {
		var key, id string
		err := sc.Scan(&key, &id)
		builds[key] = id
		return err
	}); err != nil {
		return nil, fmt.Errorf("reading builds: %w", err)
	}
	// The builds each new build of a branch supersedes: those still
	// running or queued, then each new one in turn.
	active := map[string][]string{} // owner/repo/branch -> build IDs
	if err := queryIn(ctx, tx, `SELECT build_id, owner, repo, branch FROM webhook_builds
		WHERE state <> 'done' AND superseded_by = '' AND branch IN`, branches, func(sc scanner) error {
		var id, owner, repo, branch string
		err := sc.Scan(&id, &owner, &repo, &branch)
		k := owner + "/" + repo + "/" + branch
		active[k] = append(active[k], id)
		return err
	}); err != nil {
		return nil, fmt.Errorf("reading running builds: %w", err)
	}
	supersede := map[string]string{} // recorded build ID -> newer commit

	results := make([]acceptRes, len(reqs))
	var rows []*buildRow
	newRows := map[string]*buildRow{}
	var deliveries []Delivery
	var deliveryOutcomes []string
	var jobs []river.InsertManyParams
	for i, r := range reqs {
		res := &Result{}
		results[i] = acceptRes{res: res}
		if outcome, ok := outcomes[r.d.ID]; ok {
			res.Duplicate, res.Outcome = true, outcome
			continue
		}
		var outcome []string
		if in := r.plan.Installation; in != nil {
			if err := q.recordInstallation(ctx, tx, in); err != nil {
				return nil, err
			}
			outcome = append(outcome, fmt.Sprintf("installation %d %s", in.ID, in.State))
		}
		for _, br := range r.plan.Builds {
			key := commitKey(r.d, br)
			if id, ok := builds[key]; ok {
				res.Builds = append(res.Builds, Accepted{BuildID: id, Existing: true})
				outcome = append(outcome, "build "+id+" (already queued for this commit)")
				continue
			}
			row := &buildRow{id: build.NewID("B"), key: key, d: r.d, br: br}
			builds[key] = row.id
			rows = append(rows, row)
			newRows[row.id] = row
			a := Accepted{BuildID: row.id}
			if br.Supersede && br.Branch != "" {
				k := br.Owner + "/" + br.Repo + "/" + br.Branch
				for _, old := range active[k] {
					if nr, ok := newRows[old]; ok {
						nr.supersededBy = br.SHA
					} else {
						supersede[old] = br.SHA
					}
					a.Superseded = append(a.Superseded, old)
				}
				active[k] = []string{row.id}
				slices.Sort(a.Superseded)
			}
			res.Builds = append(res.Builds, a)
			if len(a.Superseded) > 0 {
				outcome = append(outcome, "build "+a.BuildID+" (supersedes "+strings.Join(a.Superseded, ", ")+")")
			} else {
				outcome = append(outcome, "build "+a.BuildID)
			}
			jobs = append(jobs, river.InsertManyParams{Args: BuildArgs{BuildID: row.id, Run: 1}, InsertOpts: q.buildInsertOpts()})
		}
		for _, n := range r.plan.Notices {
			jobs = append(jobs, river.InsertManyParams{Args: NoticeArgs{n}, InsertOpts: q.noticeInsertOpts()})
			res.Notices++
			outcome = append(outcome, "notice: "+n.Title)
		}
		if len(outcome) == 0 {
			outcome = append(outcome, "ignored: "+r.plan.Note)
		}
		res.Outcome = strings.Join(outcome, "; ")
		outcomes[r.d.ID] = res.Outcome // a second copy in this batch is a redelivery
		deliveries = append(deliveries, r.d)
		deliveryOutcomes = append(deliveryOutcomes, res.Outcome)
	}

	for id, sha := range supersede {
		if _, err := tx.Exec(ctx, `UPDATE webhook_builds SET superseded_by = $2, updated = $3
			WHERE build_id = $1 AND superseded_by = ''`, id, sha, micros(now)); err != nil {
			return nil, fmt.Errorf("superseding build %s: %w", id, err)
		}
	}
	if err := q.insertBuildRows(ctx, tx, rows, now); err != nil {
		return nil, err
	}
	if err := insertDeliveries(ctx, tx, deliveries, deliveryOutcomes); err != nil {
		return nil, err
	}
	if len(jobs) > 0 {
		if _, err := insert(ctx, jobs); err != nil {
			return nil, fmt.Errorf("queueing %d jobs: %w", len(jobs), err)
		}
	}
	return results, nil
}

// queryIn runs query followed by " (" + one placeholder per value + ")"
// and calls row for each row; no values, no query.
func queryIn(ctx context.Context, tx dbtx, query string, values []string, row func(scanner) error) error {
	if len(values) == 0 {
		return nil
	}
	values = slices.Compact(slices.Sorted(slices.Values(values)))
	var b strings.Builder
	b.WriteString(query)
	b.WriteString(" (")
	args := make([]any, len(values))
	for i, v := range values {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d", i+1)
		args[i] = v
	}
	b.WriteString(")")
	rows, err := tx.Query(ctx, b.String(), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// values is "($1, $2, ...), (...)" for n rows of width columns.
func values(n, width int) string {
	var b strings.Builder
	for r := range n {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := range width {
			if c > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "$%d", r*width+c+1)
		}
		b.WriteByte(')')
	}
	return b.String()
}

func (q *Queue) insertBuildRows(ctx context.Context, tx dbtx, rows []*buildRow, now time.Time) error {
	if len(rows) == 0 {
		return nil
	}
	var args []any
	for _, r := range rows {
		br := r.br
		args = append(args, r.id, r.key, r.d.ID, r.d.Event, br.InstallationID, br.Owner, br.Repo, br.SHA, br.Ref,
			br.Branch, br.App, br.Description, r.supersededBy, string(StateQueued), micros(now), micros(now))
	}
	n, err := tx.Exec(ctx, `INSERT INTO webhook_builds (build_id, commit_key, delivery_id, event, installation_id,
			owner, repo, sha, ref, branch, app, description, superseded_by, state, created, updated)
		VALUES `+values(len(rows), 16)+` ON CONFLICT (commit_key) DO NOTHING`, args...)
	if err != nil {
		return fmt.Errorf("recording %d builds: %w", len(rows), err)
	}
	if n != int64(len(rows)) {
		return errRetryDelivery
	}
	return nil
}

func insertDeliveries(ctx context.Context, tx dbtx, ds []Delivery, outcomes []string) error {
	if len(ds) == 0 {
		return nil
	}
	var args []any
	for i, d := range ds {
		args = append(args, d.ID, d.Event, d.Action, d.Repository, d.InstallationID, micros(d.Received), outcomes[i])
	}
	n, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (id, event, action, repository, installation_id, received, outcome)
		VALUES `+values(len(ds), 7)+` ON CONFLICT (id) DO NOTHING`, args...)
	if err != nil {
		return fmt.Errorf("recording %d deliveries: %w", len(ds), err)
	}
	if n != int64(len(ds)) {
		return errRetryDelivery
	}
	return nil
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
