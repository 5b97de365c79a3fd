// Package queue is the webhook server's durable work queue, kept in the
// same database as the builds (SQLite embedded, PostgreSQL shared by
// replicas) on River (github.com/riverqueue/river).
//
// Accept records a webhook delivery and the jobs it asks for in one
// transaction, so a delivery is acknowledged only once its jobs are
// committed, and a redelivery (same delivery ID) does nothing. Deliveries
// for one commit of one repository make one build. A newer build of a
// branch marks older ones of that branch, still queued or running, as
// superseded: a running one has its context cancelled within a poll
// interval, with a *SupersededError cause.
//
// Workers are bounded (Options.Workers). A build job is safe to run twice:
// each build has a row that says which run of it is current, and a job
// whose run is no longer current does nothing. A running job marks its row
// alive every HeartbeatInterval; when a process dies mid-build, any
// replica (or the same process once restarted) sees the row's heartbeat go
// stale and queues a new run within StaleFactor intervals, without
// waiting for River's rescuer, which cannot act before the job timeout.
// Stop drains: no new jobs are taken, running ones may finish until a
// deadline, and the rest go back to the queue.
//
// The queue logs only through Options.Logger.
package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/convox-build-action/convox-build-action/internal/store"
)

// Runner does the work of the jobs: the server's build and notice logic.
type Runner interface {
	// Build runs one build job. It returns the check run's conclusion
	// ("success", "failure", "cancelled", "neutral") once the build is
	// over and reported; an error alongside a conclusion is only logged.
	// No conclusion and an error means the job should run again later
	// (after a *RetryError's wait, else with backoff); on the job's last
	// attempt (Job.LastAttempt) the runner should report a failure and
	// return its conclusion. When ctx is cancelled, context.Cause says
	// why: *SupersededError, ErrDraining, ErrClaimLost or the job's
	// deadline.
	Build(ctx context.Context, job *Job) (conclusion string, err error)
	// Notice reports something that is not a build (a neutral check run
	// saying why a commit is not built). An error makes it run again.
	Notice(ctx context.Context, n Notice) error
}

// Options configure a Queue. Every field has a default.
type Options struct {
	// Runner works the jobs; nil makes an insert-only queue (Start
	// refuses to run).
	Runner Runner
	// Workers bounds concurrent build jobs in this process (default 2).
	Workers int
	// JobTimeout bounds one build job, reporting included (default 1h).
	// River's rescuer retries a job still running after JobTimeout+15m.
	JobTimeout time.Duration
	// MaxAttempts is how many times a build job is tried when it fails
	// for a transient reason (default 5).
	MaxAttempts int
	// RetryBackoff is the wait before the first retry, doubled after each
	// further one up to 5 minutes (default 5s).
	RetryBackoff time.Duration
	// HeartbeatInterval is how often a running build job marks itself
	// alive (default DefaultHeartbeatInterval); after StaleFactor missed
	// marks it counts as dead and is run again. Replicas must agree.
	HeartbeatInterval time.Duration
	// PollInterval is how often a running build job checks whether it was
	// superseded or taken over (default 1s).
	PollInterval time.Duration
	// DeliveryRetention is how long delivery IDs are kept to recognise
	// redeliveries (default 7 days; GitHub offers redelivery for 3).
	DeliveryRetention time.Duration
	// PoolSize bounds the PostgreSQL connections of OpenPostgres (default
	// 20).
	PoolSize int
	// ID names this process in the queue (default: River's random ID).
	ID string
	// Logger receives the queue's and River's messages (default: none).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// DefaultHeartbeatInterval is Options.HeartbeatInterval's default.
const DefaultHeartbeatInterval = 5 * time.Second

// StaleFactor is how many heartbeat intervals a running build job may
// miss before it counts as dead (the engine counts its builds the same
// way).
const StaleFactor = 6

// Queue names in River.
const (
	buildQueue  = "builds"
	noticeQueue = "notices"
)

// noticeWorkers bounds concurrent notice jobs (each is one API call).
const noticeWorkers = 2

func (o Options) withDefaults() Options {
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.JobTimeout <= 0 {
		o.JobTimeout = time.Hour
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = 5 * time.Second
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.DeliveryRetention <= 0 {
		o.DeliveryRetention = 7 * 24 * time.Hour
	}
	if o.PoolSize <= 0 {
		o.PoolSize = 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Queue is the durable queue. Its methods are safe for concurrent use.
type Queue struct {
	opts     Options
	log      *slog.Logger
	b        backend
	postgres bool

	draining atomic.Bool
	mu       sync.Mutex
	running  map[string]context.CancelCauseFunc // by build ID
	started  bool
	stopReap context.CancelFunc
	reaped   chan struct{}

	accepts   chan *acceptReq
	closed    chan struct{}
	closeOnce sync.Once
	acceptWG  sync.WaitGroup
}

// NewSQLite returns a queue in the SQLite database db (from
// store.OpenSQLiteDB: one connection, shared with the store), after
// migrating River's tables and the queue's. Close leaves db open.
func NewSQLite(ctx context.Context, db *sql.DB, opts Options) (_ *Queue, err error) {
	q := newQueue(opts, false)
	defer func() {
		if err != nil {
			q.Close()
		}
	}()
	rc, err := river.NewClient(riversqlite.New(db), q.riverConfig())
	if err != nil {
		return nil, fmt.Errorf("starting the job queue: %w", err)
	}
	q.b = &sqliteBackend{db: db, rc: rc}
	migrator, err := rivermigrate.New(riversqlite.New(db), &rivermigrate.Config{Logger: q.riverLogger()})
	if err != nil {
		return nil, fmt.Errorf("migrating the job queue: %w", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("migrating the job queue: %w", err)
	}
	defer tx.Rollback()
	if _, err := migrator.MigrateTx(ctx, tx, rivermigrate.DirectionUp, nil); err != nil {
		return nil, fmt.Errorf("migrating River's tables: %w", err)
	}
	if err := migrateOwn(ctx, sqlConn{tx}, false); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("migrating the job queue: %w", err)
	}
	return q, nil
}

// OpenPostgres returns a queue in the PostgreSQL database at dbURL, with
// its own pool of connections (Options.PoolSize), after migrating River's
// tables and the queue's (replicas starting together take turns). Close
// closes the pool.
func OpenPostgres(ctx context.Context, dbURL string, opts Options) (_ *Queue, err error) {
	q := newQueue(opts, true)
	defer func() {
		if err != nil {
			q.Close()
		}
	}()
	wrap := func(err error) error {
		return fmt.Errorf("opening the job queue in %s: %w", store.Redact(dbURL), redactPassword(err, dbURL))
	}
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, wrap(err)
	}
	cfg.MaxConns = int32(q.opts.PoolSize)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, wrap(err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, wrap(err)
	}
	rc, err := river.NewClient(riverpgxv5.New(pool), q.riverConfig())
	if err != nil {
		pool.Close()
		return nil, wrap(err)
	}
	q.b = &postgresBackend{pool: pool, rc: rc}
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: q.riverLogger()})
	if err != nil {
		return nil, wrap(err)
	}
	if err := q.migratePostgres(ctx, pool, migrator); err != nil {
		return nil, wrap(err)
	}
	return q, nil
}

// migratePostgres migrates River's tables (each of River's migrations in
// its own transaction: some cannot share one) and then the queue's,
// holding an advisory lock so that replicas starting together take turns.
func (q *Queue) migratePostgres(ctx context.Context, pool *pgxpool.Pool, migrator *rivermigrate.Migrator[pgx.Tx]) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
		return fmt.Errorf("taking the migration lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrationLock))
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrating River's tables: %w", err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := migrateOwn(ctx, pgxConn{tx}, true); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func newQueue(opts Options, postgres bool) *Queue {
	opts = opts.withDefaults()
	q := &Queue{
		opts:     opts,
		log:      opts.Logger,
		postgres: postgres,
		running:  map[string]context.CancelCauseFunc{},
		accepts:  make(chan *acceptReq),
		closed:   make(chan struct{}),
	}
	// One loop writes every batch of deliveries. SQLite has one writer
	// anyway; on PostgreSQL, transactions that queue jobs notify River's
	// listeners, and PostgreSQL commits those one at a time: measured,
	// several writers contend and are slower than one writing larger
	// batches.
	q.acceptWG.Add(1)
	go q.acceptLoop()
	return q
}

// Close stops recording deliveries and releases what the queue opened
// (PostgreSQL's pool). Stop it first if it was started.
func (q *Queue) Close() {
	q.closeOnce.Do(func() {
		close(q.closed)
		q.acceptWG.Wait()
		if q.b != nil {
			q.b.close()
		}
	})
}

func (q *Queue) now() time.Time { return q.opts.Now().UTC() }

func nowUTC() time.Time { return time.Now().UTC() }

// staleAfter is how old a running job's heartbeat may get.
func (q *Queue) staleAfter() time.Duration { return StaleFactor * q.opts.HeartbeatInterval }

func (q *Queue) riverConfig() *river.Config {
	workers := river.NewWorkers()
	river.AddWorker(workers, &buildWorker{q: q})
	river.AddWorker(workers, &noticeWorker{q: q})
	cfg := &river.Config{
		ID:     q.opts.ID,
		Logger: q.riverLogger(),
		Queues: map[string]river.QueueConfig{
			buildQueue:  {MaxWorkers: q.opts.Workers},
			noticeQueue: {MaxWorkers: noticeWorkers},
		},
		Workers:              workers,
		JobTimeout:           q.opts.JobTimeout,
		RescueStuckJobsAfter: q.opts.JobTimeout + 15*time.Minute,
		MaxAttempts:          q.opts.MaxAttempts,
		ErrorHandler:         &errorHandler{q: q},
	}
	if !q.postgres {
		// SQLite has no LISTEN/NOTIFY: poll for new jobs often (one
		// cheap query on the shared connection).
		cfg.FetchPollInterval = 200 * time.Millisecond
	}
	return cfg
}

// riverLogger passes River's warnings and errors on.
func (q *Queue) riverLogger() *slog.Logger {
	return slog.New(minLevel{q.log.Handler(), slog.LevelWarn}).With("component", "river")
}

type minLevel struct {
	slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}

func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{m.Handler.WithAttrs(as), m.min}
}

func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{m.Handler.WithGroup(name), m.min}
}

// redactPassword hides dbURL's password in err's text.
func redactPassword(err error, dbURL string) error {
	_, rest, ok := strings.Cut(dbURL, "://")
	if !ok {
		return err
	}
	userinfo, _, ok := strings.Cut(rest, "@")
	if !ok {
		return err
	}
	_, pw, ok := strings.Cut(userinfo, ":")
	if !ok || len(pw) < 4 || !strings.Contains(err.Error(), pw) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), pw, "***"))
}
