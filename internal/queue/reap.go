package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// reapLoop calls Reap every heartbeat interval until ctx is done.
func (q *Queue) reapLoop(ctx context.Context) {
	t := time.NewTicker(q.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := q.Reap(ctx); err != nil && ctx.Err() == nil {
			q.log.Warn("recovering builds", "error", err)
		}
	}
}

// Reap queues a new run of every build whose job died: running with a
// heartbeat older than StaleFactor intervals, or still queued while River
// says its job was taken that long ago (the process died before claiming
// it). It also forgets deliveries older than DeliveryRetention. It returns
// the builds it queued again. Start calls it, then every interval; any
// replica may.
func (q *Queue) Reap(ctx context.Context) ([]string, error) {
	now := q.now()
	stale := now.Add(-q.staleAfter())
	var recovered []string
	var logs [][]any
	err := q.b.inTx(ctx, func(tx dbtx, insert insertFunc) error {
		recovered, logs = nil, nil
		rows, err := tx.Query(ctx, `UPDATE webhook_builds SET state = 'queued', run = run + 1, heartbeat = 0, worker = '', updated = $2
			WHERE state = 'running' AND heartbeat < $1 RETURNING build_id, run, delivery_id`, micros(stale), micros(now))
		if err != nil {
			return err
		}
		type idRun struct {
			id       string
			run      int
			delivery string
		}
		var dead []idRun
		for rows.Next() {
			var r idRun
			if err := rows.Scan(&r.id, &r.run, &r.delivery); err != nil {
				rows.Close()
				return err
			}
			dead = append(dead, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range dead {
			if err := q.insertBuildJob(ctx, tx, insert, r.id, r.run); err != nil {
				return err
			}
			recovered = append(recovered, r.id)
			logs = append(logs, []any{"build_id", r.id, "delivery_id", r.delivery, "run", r.run})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recovering builds whose process stopped: %w", err)
	}
	for _, attrs := range logs {
		q.log.Warn("build recovered: its process stopped mid-build; running it again", attrs...)
	}
	unclaimed, err := q.reapUnclaimed(ctx, stale, now)
	recovered = append(recovered, unclaimed...)
	if err != nil {
		return recovered, err
	}
	if _, err := q.b.conn().Exec(ctx, `DELETE FROM webhook_deliveries WHERE received < $1`, micros(now.Add(-q.opts.DeliveryRetention))); err != nil {
		return recovered, fmt.Errorf("forgetting old deliveries: %w", err)
	}
	return recovered, nil
}

// reapUnclaimed recovers queued builds whose River job is running since
// before stale without having claimed the build.
func (q *Queue) reapUnclaimed(ctx context.Context, stale, now time.Time) ([]string, error) {
	rows, err := q.b.conn().Query(ctx, `SELECT build_id, run, job_id FROM webhook_builds
		WHERE state = 'queued' AND updated < $1 AND job_id <> 0 ORDER BY updated LIMIT 100`, micros(stale))
	if err != nil {
		return nil, fmt.Errorf("finding unclaimed builds: %w", err)
	}
	byJob := map[int64]struct {
		id  string
		run int
	}{}
	var ids []int64
	for rows.Next() {
		var id string
		var run int
		var job int64
		if err := rows.Scan(&id, &run, &job); err != nil {
			rows.Close()
			return nil, err
		}
		byJob[job] = struct {
			id  string
			run int
		}{id, run}
		ids = append(ids, job)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(ids) == 0 {
		return nil, err
	}
	jobs, err := q.b.client().JobList(ctx, river.NewJobListParams().IDs(ids...).States(rivertype.JobStateRunning).First(len(ids)))
	if err != nil {
		return nil, fmt.Errorf("finding unclaimed builds: %w", err)
	}
	var recovered []string
	var errs []error
	for _, j := range jobs.Jobs {
		if j.AttemptedAt == nil || j.AttemptedAt.After(stale) {
			continue
		}
		b := byJob[j.ID]
		took := false
		err := q.b.inTx(ctx, func(tx dbtx, insert insertFunc) error {
			n, err := tx.Exec(ctx, `UPDATE webhook_builds SET run = run + 1, updated = $3
				WHERE build_id = $1 AND run = $2 AND state = 'queued'`, b.id, b.run, micros(now))
			if err != nil || n == 0 {
				return err
			}
			took = true
			return q.insertBuildJob(ctx, tx, insert, b.id, b.run+1)
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("recovering build %s: %w", b.id, err))
			continue
		}
		if took {
			recovered = append(recovered, b.id)
			q.log.Warn("build recovered: the process that took its job stopped before starting it", "build_id", b.id)
		}
	}
	return recovered, errors.Join(errs...)
}
