package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

const buildColumns = `build_id, delivery_id, event, installation_id, owner, repo, sha, ref, branch, app, description,
	check_run_id, state, conclusion, superseded_by, run, job_id, worker, heartbeat, created, updated`

func scanBuild(row scanner) (*Build, error) {
	var b Build
	var state string
	var hb, created, updated int64
	err := row.Scan(&b.ID, &b.DeliveryID, &b.Event, &b.InstallationID, &b.Owner, &b.Repo, &b.SHA, &b.Ref, &b.Branch,
		&b.App, &b.Description, &b.CheckRunID, &state, &b.Conclusion, &b.SupersededBy, &b.Run, &b.JobID, &b.Worker,
		&hb, &created, &updated)
	if err != nil {
		return nil, err
	}
	b.State = State(state)
	b.Heartbeat, b.Created, b.Updated = fromMicros(hb), fromMicros(created), fromMicros(updated)
	return &b, nil
}

// Build returns the queue's record of build id.
func (q *Queue) Build(ctx context.Context, id string) (*Build, error) {
	b, err := scanBuild(q.b.conn().QueryRow(ctx, `SELECT `+buildColumns+` FROM webhook_builds WHERE build_id = $1`, id))
	if isNoRows(err) {
		return nil, fmt.Errorf("build %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading build %s: %w", id, err)
	}
	return b, nil
}

// Builds returns the builds of repository owner/repo (every repository's
// when both are ""), newest first, at most limit (all when <= 0).
func (q *Queue) Builds(ctx context.Context, owner, repo string, limit int) ([]Build, error) {
	query := `SELECT ` + buildColumns + ` FROM webhook_builds WHERE ($1 = '' OR (owner = $1 AND repo = $2))
		ORDER BY created DESC, build_id DESC`
	if limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := q.b.conn().Query(ctx, query, owner, repo)
	if err != nil {
		return nil, fmt.Errorf("listing builds: %w", err)
	}
	defer rows.Close()
	var out []Build
	for rows.Next() {
		b, err := scanBuild(rows)
		if err != nil {
			return nil, fmt.Errorf("listing builds: %w", err)
		}
		out = append(out, *b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing builds: %w", err)
	}
	return out, nil
}

// DeliveryRecord is a recorded delivery and what was done with it.
type DeliveryRecord struct {
	Delivery
	Outcome string
}

// Delivery returns the record of delivery id.
func (q *Queue) Delivery(ctx context.Context, id string) (*DeliveryRecord, error) {
	var d DeliveryRecord
	var received int64
	err := q.b.conn().QueryRow(ctx, `SELECT id, event, action, repository, installation_id, received, outcome
		FROM webhook_deliveries WHERE id = $1`, id).Scan(&d.ID, &d.Event, &d.Action, &d.Repository, &d.InstallationID, &received, &d.Outcome)
	if isNoRows(err) {
		return nil, fmt.Errorf("delivery %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading delivery %s: %w", id, err)
	}
	d.Received = fromMicros(received)
	return &d, nil
}

// InstallationRecord is what the queue knows of an installation.
type InstallationRecord struct {
	ID           int64
	Account      string
	State        string
	Repositories []string
	Updated      time.Time
}

// Installation returns the record of installation id.
func (q *Queue) Installation(ctx context.Context, id int64) (*InstallationRecord, error) {
	var in InstallationRecord
	var repos string
	var updated int64
	err := q.b.conn().QueryRow(ctx, `SELECT id, account, state, repositories, updated FROM webhook_installations WHERE id = $1`, id).
		Scan(&in.ID, &in.Account, &in.State, &repos, &updated)
	if isNoRows(err) {
		return nil, fmt.Errorf("installation %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading installation %d: %w", id, err)
	}
	if err := json.Unmarshal([]byte(repos), &in.Repositories); err != nil {
		return nil, fmt.Errorf("reading installation %d: %w", id, err)
	}
	in.Updated = fromMicros(updated)
	return &in, nil
}

// JobInfo is one of River's jobs, as Jobs lists them.
type JobInfo struct {
	ID      int64
	Kind    string
	State   string
	Attempt int
	// BuildID and Run for a build job; Notice for a notice job.
	BuildID string
	Run     int
	Notice  *Notice
}

// Jobs lists every job River holds, oldest first (for tests and tools).
func (q *Queue) Jobs(ctx context.Context) ([]JobInfo, error) {
	params := river.NewJobListParams().States(
		rivertype.JobStateAvailable, rivertype.JobStateCancelled, rivertype.JobStateCompleted,
		rivertype.JobStateDiscarded, rivertype.JobStatePending, rivertype.JobStateRetryable,
		rivertype.JobStateRunning, rivertype.JobStateScheduled,
	).OrderBy(river.JobListOrderByID, river.SortOrderAsc).First(1000)
	var out []JobInfo
	for {
		res, err := q.b.client().JobList(ctx, params)
		if err != nil {
			return nil, fmt.Errorf("listing jobs: %w", err)
		}
		for _, j := range res.Jobs {
			info := JobInfo{ID: j.ID, Kind: j.Kind, State: string(j.State), Attempt: j.Attempt}
			switch j.Kind {
			case BuildArgs{}.Kind():
				var a BuildArgs
				if err := json.Unmarshal(j.EncodedArgs, &a); err != nil {
					return nil, fmt.Errorf("reading job %d: %w", j.ID, err)
				}
				info.BuildID, info.Run = a.BuildID, a.Run
			case NoticeArgs{}.Kind():
				var a NoticeArgs
				if err := json.Unmarshal(j.EncodedArgs, &a); err != nil {
					return nil, fmt.Errorf("reading job %d: %w", j.ID, err)
				}
				info.Notice = &a.Notice
			}
			out = append(out, info)
		}
		if len(res.Jobs) == 0 || res.LastCursor == nil {
			return out, nil
		}
		params = params.After(res.LastCursor)
	}
}

// JobCounts counts the jobs waiting or running, by River state
// ("available", "running", "retryable", "scheduled", "pending").
func (q *Queue) JobCounts(ctx context.Context) (map[string]int, error) {
	rows, err := q.b.conn().Query(ctx, `SELECT state, COUNT(*) FROM river_job
		WHERE state NOT IN ('completed', 'cancelled', 'discarded') GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("counting jobs: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			return nil, fmt.Errorf("counting jobs: %w", err)
		}
		out[state] = n
	}
	return out, rows.Err()
}
