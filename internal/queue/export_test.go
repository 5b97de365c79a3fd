package queue

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
)

// MarkRunningForTest makes build id look as if a process took its job an
// hour ago and died: River's job running since then, and, when claimed,
// the build's row running with heartbeat at.
func MarkRunningForTest(ctx context.Context, q *Queue, id string, claimed bool, at time.Time) error {
	jobs, err := q.Jobs(ctx)
	if err != nil {
		return err
	}
	var job int64
	for _, j := range jobs {
		if j.BuildID == id {
			job = j.ID
		}
	}
	if job == 0 {
		return fmt.Errorf("no job for build %s", id)
	}
	hourAgo := `datetime('now', '-1 hour')`
	if q.postgres {
		hourAgo = `now() - interval '1 hour'`
	}
	if _, err := q.b.conn().Exec(ctx, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = `+hourAgo+` WHERE id = $1`, job); err != nil {
		return err
	}
	if !claimed {
		_, err := q.b.conn().Exec(ctx, `UPDATE webhook_builds SET updated = $2 WHERE build_id = $1`, id, micros(at))
		return err
	}
	_, err = q.b.conn().Exec(ctx, `UPDATE webhook_builds SET state = 'running', heartbeat = $2, job_id = $3 WHERE build_id = $1`, id, micros(at), job)
	return err
}

// Reopen returns a new queue over q's database, as another process would
// open it; q still owns the database.
func Reopen(t testing.TB, q *Queue, opts Options) *Queue {
	t.Helper()
	q2 := newQueue(opts, q.postgres)
	var err error
	switch b := q.b.(type) {
	case *sqliteBackend:
		var rc *river.Client[txSQL]
		rc, err = river.NewClient(riversqlite.New(b.db), q2.riverConfig())
		q2.b = &sqliteBackend{db: b.db, rc: rc}
	case *postgresBackend:
		var rc *river.Client[txPgx]
		rc, err = river.NewClient(riverpgxv5.New(b.pool), q2.riverConfig())
		q2.b = &postgresBackend{pool: b.pool, rc: rc, shared: true}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q2.Close)
	return q2
}
