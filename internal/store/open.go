package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// sqlitePragmas apply to every SQLite connection: WAL so readers never
// block the writer, a busy timeout so another process holding the lock is
// waited for, and write transactions that take the lock when they begin.
const sqlitePragmas = "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
	"&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate"

func openSQLite(ctx context.Context, path string) (Store, error) {
	db, err := OpenSQLiteDB(path)
	if err != nil {
		return nil, err
	}
	s := &sqlStore{db: db, ownsDB: true, now: time.Now}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening SQLite database %s: %w", path, err)
	}
	return s, nil
}

// OpenSQLiteDB opens the SQLite file at path as Open does, without
// migrating it: the file (mode 0600) and its directory (0700) are created
// when missing, and the handle runs in WAL mode with a busy timeout,
// immediate write transactions and ONE connection. Give that one handle to
// everything that uses the file in this process (the store through
// OpenDB, a job queue): SQLite has one writer at a time, and with one
// connection writers queue in database/sql instead of failing with
// SQLITE_BUSY. Never hold a transaction on it while calling something
// that needs another connection: that waits forever.
func OpenSQLiteDB(path string) (*sql.DB, error) {
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("opening SQLite database %q: a path with '?' is not supported", path)
	}
	if path != ":memory:" {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("opening SQLite database: %w", err)
		}
		// Build logs may hold secrets: keep the file private.
		f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("opening SQLite database: %w", err)
		}
		f.Close()
	}
	db, err := sql.Open("sqlite", path+sqlitePragmas)
	if err != nil {
		return nil, fmt.Errorf("opening SQLite database %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// OpenDB returns a Store over db, an open database of the given kind
// (from OpenSQLiteDB, or a PostgreSQL handle from pgx's stdlib), after
// migrating it. The Store does not own db: its Close leaves db open for
// the caller to close once every user is done.
func OpenDB(ctx context.Context, db *sql.DB, kind Kind) (Store, error) {
	var s *sqlStore
	switch kind {
	case SQLite:
		s = &sqlStore{db: db, now: time.Now}
	case Postgres:
		s = &sqlStore{db: db, postgres: true, now: time.Now}
	default:
		return nil, fmt.Errorf("opening the store: unknown database kind %q (want %q or %q)", kind, SQLite, Postgres)
	}
	if err := s.migrate(ctx); err != nil {
		return nil, fmt.Errorf("opening the %s store: %w", kind, err)
	}
	return s, nil
}

// postgresMaxConns bounds a Store's PostgreSQL connections, so that several
// processes sharing a server stay well under its max_connections (100 by
// default).
const postgresMaxConns = 10

func openPostgres(ctx context.Context, dbURL string) (Store, error) {
	wrap := func(err error) error {
		return redactError(fmt.Errorf("opening PostgreSQL database %s: %w", Redact(dbURL), err), dbURL)
	}
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return nil, wrap(err)
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(postgresMaxConns)
	db.SetMaxIdleConns(postgresMaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, wrap(err)
	}
	s := &sqlStore{db: db, postgres: true, ownsDB: true, now: time.Now}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, wrap(err)
	}
	return s, nil
}
