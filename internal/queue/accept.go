package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

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
func (q *Queue) Accept(ctx context.Context, d Delivery, plan Plan) (*Result, error) {
	if d.ID == "" {
		return nil, fmt.Errorf("recording a delivery: no delivery ID")
	}
	if d.Received.IsZero() {
		d.Received = q.now()
	}
	var res *Result
	err := q.b.inTx(ctx, func(tx dbtx, insert insertFunc) error {
		res = &Result{}
		n, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (id, event, action, repository, installation_id, received, outcome)
			VALUES ($1, $2, $3, $4, $5, $6, '') ON CONFLICT (id) DO NOTHING`,
			d.ID, d.Event, d.Action, d.Repository, d.InstallationID, micros(d.Received))
		if err != nil {
			return fmt.Errorf("recording delivery %s: %w", d.ID, err)
		}
		if n == 0 {
			res.Duplicate = true
			if err := tx.QueryRow(ctx, `SELECT outcome FROM webhook_deliveries WHERE id = $1`, d.ID).Scan(&res.Outcome); err != nil {
				return fmt.Errorf("reading delivery %s: %w", d.ID, err)
			}
			return nil
		}
		var outcome []string
		if plan.Installation != nil {
			if err := q.recordInstallation(ctx, tx, plan.Installation); err != nil {
				return err
			}
			outcome = append(outcome, fmt.Sprintf("installation %d %s", plan.Installation.ID, plan.Installation.State))
		}
		for _, br := range plan.Builds {
			a, err := q.acceptBuild(ctx, tx, insert, d, br)
			if err != nil {
				return err
			}
			res.Builds = append(res.Builds, a)
			switch {
			case a.Existing:
				outcome = append(outcome, "build "+a.BuildID+" (already queued for this commit)")
			case len(a.Superseded) > 0:
				outcome = append(outcome, "build "+a.BuildID+" (supersedes "+strings.Join(a.Superseded, ", ")+")")
			default:
				outcome = append(outcome, "build "+a.BuildID)
			}
		}
		for _, n := range plan.Notices {
			if _, err := insert(ctx, NoticeArgs{n}, q.noticeInsertOpts()); err != nil {
				return fmt.Errorf("queueing a notice for %s/%s@%s: %w", n.Owner, n.Repo, n.SHA, err)
			}
			res.Notices++
			outcome = append(outcome, "notice: "+n.Title)
		}
		if len(outcome) == 0 {
			outcome = append(outcome, "ignored: "+plan.Note)
		}
		res.Outcome = strings.Join(outcome, "; ")
		if _, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET outcome = $2 WHERE id = $1`, d.ID, res.Outcome); err != nil {
			return fmt.Errorf("recording delivery %s: %w", d.ID, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
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

func (q *Queue) acceptBuild(ctx context.Context, tx dbtx, insert insertFunc, d Delivery, br BuildRequest) (Accepted, error) {
	if br.Owner == "" || br.Repo == "" || br.SHA == "" || br.App == "" {
		return Accepted{}, fmt.Errorf("queueing a build: owner, repo, sha and app are required (got %q/%q@%q, app %q)", br.Owner, br.Repo, br.SHA, br.App)
	}
	key := commitKey(d, br)
	id := build.NewID("B")
	now := micros(q.now())
	n, err := tx.Exec(ctx, `INSERT INTO webhook_builds (build_id, commit_key, delivery_id, event, installation_id,
			owner, repo, sha, ref, branch, app, description, state, created, updated)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'queued', $13, $13)
		ON CONFLICT (commit_key) DO NOTHING`,
		id, key, d.ID, d.Event, br.InstallationID, br.Owner, br.Repo, br.SHA, br.Ref, br.Branch, br.App, br.Description, now)
	if err != nil {
		return Accepted{}, fmt.Errorf("recording the build of %s: %w", key, err)
	}
	if n == 0 {
		var existing string
		if err := tx.QueryRow(ctx, `SELECT build_id FROM webhook_builds WHERE commit_key = $1`, key).Scan(&existing); err != nil {
			return Accepted{}, fmt.Errorf("finding the build of %s: %w", key, err)
		}
		return Accepted{BuildID: existing, Existing: true}, nil
	}
	a := Accepted{BuildID: id}
	if br.Supersede && br.Branch != "" {
		rows, err := tx.Query(ctx, `UPDATE webhook_builds SET superseded_by = $4, updated = $5
			WHERE owner = $1 AND repo = $2 AND branch = $3 AND state <> 'done' AND superseded_by = '' AND build_id <> $6
			RETURNING build_id`, br.Owner, br.Repo, br.Branch, br.SHA, now, id)
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
	if err := q.insertBuildJob(ctx, tx, insert, id, 1); err != nil {
		return Accepted{}, err
	}
	return a, nil
}

// insertBuildJob queues run of build id and records the job on its row.
func (q *Queue) insertBuildJob(ctx context.Context, tx dbtx, insert insertFunc, id string, run int) error {
	res, err := insert(ctx, BuildArgs{BuildID: id, Run: run}, q.buildInsertOpts())
	if err != nil {
		return fmt.Errorf("queueing build %s: %w", id, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE webhook_builds SET job_id = $2 WHERE build_id = $1`, id, res.Job.ID); err != nil {
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
