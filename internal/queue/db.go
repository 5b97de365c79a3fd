package queue

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// dbtx is what the queue's own statements run on: a database handle or a
// transaction, of either driver. Statements use $N placeholders, which
// both accept.
type dbtx interface {
	Exec(ctx context.Context, q string, args ...any) (int64, error)
	QueryRow(ctx context.Context, q string, args ...any) scanner
	Query(ctx context.Context, q string, args ...any) (rowsIter, error)
}

type scanner interface{ Scan(dest ...any) error }

type rowsIter interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// isNoRows reports a QueryRow that found nothing, from either driver.
func isNoRows(err error) bool {
	return errors.Is(err, sql.ErrNoRows) || errors.Is(err, pgx.ErrNoRows)
}

// sqlConn runs statements through database/sql (SQLite).
type sqlConn struct {
	c interface {
		ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
		QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
		QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	}
}

func (s sqlConn) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := s.c.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s sqlConn) QueryRow(ctx context.Context, q string, args ...any) scanner {
	return s.c.QueryRowContext(ctx, q, args...)
}

func (s sqlConn) Query(ctx context.Context, q string, args ...any) (rowsIter, error) {
	rows, err := s.c.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }

// pgxConn runs statements through pgx (PostgreSQL).
type pgxConn struct {
	c interface {
		Exec(ctx context.Context, q string, args ...any) (pgconn.CommandTag, error)
		QueryRow(ctx context.Context, q string, args ...any) pgx.Row
		Query(ctx context.Context, q string, args ...any) (pgx.Rows, error)
	}
}

func (p pgxConn) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := p.c.Exec(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (p pgxConn) QueryRow(ctx context.Context, q string, args ...any) scanner {
	return p.c.QueryRow(ctx, q, args...)
}

func (p pgxConn) Query(ctx context.Context, q string, args ...any) (rowsIter, error) {
	return p.c.Query(ctx, q, args...)
}

// insertFunc inserts River jobs, in one statement, in the transaction it
// was given with.
type insertFunc func(ctx context.Context, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)

// backend is River and the database under it, whatever the driver: River's
// client is generic over the driver's transaction type, the rest of the
// queue is not.
type backend interface {
	// inTx runs f in one transaction, committed when f returns nil.
	inTx(ctx context.Context, f func(tx dbtx, insert insertFunc) error) error
	// conn runs statements outside a transaction.
	conn() dbtx
	client() riverClient
	close()
}

// riverClient is the part of *river.Client[TTx] that does not depend on
// TTx.
type riverClient interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
	JobList(ctx context.Context, params *river.JobListParams) (*river.JobListResult, error)
	JobGet(ctx context.Context, id int64) (*rivertype.JobRow, error)
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	ID() string
}

type (
	txSQL = *sql.Tx
	txPgx = pgx.Tx
)

type sqliteBackend struct {
	db *sql.DB
	rc *river.Client[txSQL]
}

func (b *sqliteBackend) inTx(ctx context.Context, f func(dbtx, insertFunc) error) error {
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	insert := func(ctx context.Context, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error) {
		return b.rc.InsertManyTx(ctx, tx, params)
	}
	if err := f(sqlConn{tx}, insert); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (b *sqliteBackend) conn() dbtx          { return sqlConn{b.db} }
func (b *sqliteBackend) client() riverClient { return b.rc }
func (b *sqliteBackend) close()              {} // the caller owns db

type postgresBackend struct {
	pool   *pgxpool.Pool
	rc     *river.Client[txPgx]
	shared bool // another backend closes pool
}

func (b *postgresBackend) inTx(ctx context.Context, f func(dbtx, insertFunc) error) error {
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return err
	}
	insert := func(ctx context.Context, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error) {
		return b.rc.InsertManyTx(ctx, tx, params)
	}
	if err := f(pgxConn{tx}, insert); err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		tx.Rollback(rctx)
		return err
	}
	return tx.Commit(ctx)
}

func (b *postgresBackend) conn() dbtx          { return pgxConn{b.pool} }
func (b *postgresBackend) client() riverClient { return b.rc }
func (b *postgresBackend) close() {
	if !b.shared {
		b.pool.Close()
	}
}

// micros is how the queue's tables keep times: microseconds since the
// epoch, 0 for unset.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}
