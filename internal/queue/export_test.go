package queue

import (
	"context"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
)

// MarkRunningForTest makes build id look as if a process claimed it and
// died: the row running with heartbeat at, River's job running.
func MarkRunningForTest(ctx context.Context, q *Queue, id string, at interface{ UnixMicro() int64 }) error {
	if _, err := q.b.conn().Exec(ctx, `UPDATE webhook_builds SET state = 'running', heartbeat = $2 WHERE build_id = $1`, id, at.UnixMicro()); err != nil {
		return err
	}
	_, err := q.b.conn().Exec(ctx, `UPDATE river_job SET state = 'running', attempt = 1 WHERE id = (SELECT job_id FROM webhook_builds WHERE build_id = $1)`, id)
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
	return q2
}
