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
			if err := q.insertBuildJob(ctx, insert, r.id, r.run); err != nil {
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

// reapUnclaimed recovers queued builds whose River job has been running
// since before stale without claiming the build: the process that took
// the job died before it started.
func (q *Queue) reapUnclaimed(ctx context.Context, stale, now time.Time) ([]string, error) {
	jobs, err := q.b.client().JobList(ctx, river.NewJobListParams().Kinds(BuildArgs{}.Kind()).
		States(rivertype.JobStateRunning).First(1000))
	if err != nil {
		return nil, fmt.Errorf("finding unclaimed builds: %w", err)
	}
	var recovered []string
	var errs []error
	for _, j := range jobs.Jobs {
		if j.AttemptedAt == nil || j.AttemptedAt.After(stale) {
			continue
		}
		var args BuildArgs
		if err := json.Unmarshal(j.EncodedArgs, &args); err != nil {
			continue
		}
		took := false
		err := q.b.inTx(ctx, func(tx dbtx, insert insertFunc) error {
			n, err := tx.Exec(ctx, `UPDATE webhook_builds SET run = run + 1, updated = $3
				WHERE build_id = $1 AND run = $2 AND state = 'queued'`, args.BuildID, args.Run, micros(now))
			if err != nil || n == 0 {
				return err
			}
			took = true
			return q.insertBuildJob(ctx, insert, args.BuildID, args.Run+1)
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("recovering build %s: %w", args.BuildID, err))
			continue
		}
		if took {
			recovered = append(recovered, args.BuildID)
			q.log.Warn("build recovered: the process that took its job stopped before starting it", "build_id", args.BuildID)
		}
	}
	return recovered, errors.Join(errs...)
}
