package store

import (
	"context"
	"fmt"
)

// A migration moves the schema from version-1 to version, with statements
// for each dialect. Append new ones; never edit one that has shipped.
type migration struct {
	version  int
	sqlite   []string
	postgres []string
}

var migrations = []migration{{
	version: 1,
	sqlite: []string{
		`CREATE TABLE builds (
			id TEXT PRIMARY KEY,
			app TEXT NOT NULL,
			description TEXT NOT NULL,
			entrypoint TEXT NOT NULL,
			git_sha TEXT NOT NULL,
			manifest TEXT NOT NULL,
			process TEXT NOT NULL,
			release TEXT NOT NULL,
			reason TEXT NOT NULL,
			repository TEXT NOT NULL,
			status TEXT NOT NULL,
			started INTEGER, -- microseconds since the epoch, as every time here
			ended INTEGER,
			heartbeat INTEGER,
			services TEXT NOT NULL, -- JSON array of ServiceImage
			log_seq INTEGER NOT NULL DEFAULT 0 -- last build_logs.seq
		) STRICT`,
		`CREATE INDEX builds_app_started ON builds (app, started)`,
		`CREATE INDEX builds_active ON builds (heartbeat) WHERE status IN ('created', 'running')`,
		`CREATE TABLE releases (
			id TEXT PRIMARY KEY,
			app TEXT NOT NULL,
			build TEXT NOT NULL,
			manifest TEXT NOT NULL,
			description TEXT NOT NULL,
			created INTEGER NOT NULL
		) STRICT`,
		`CREATE INDEX releases_app_created ON releases (app, created)`,
		`CREATE TABLE build_logs (
			build_id TEXT NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
			seq INTEGER NOT NULL,
			time INTEGER NOT NULL,
			text TEXT NOT NULL,
			PRIMARY KEY (build_id, seq)
		) STRICT, WITHOUT ROWID`,
	},
	postgres: []string{
		`CREATE TABLE builds (
			id TEXT PRIMARY KEY,
			app TEXT NOT NULL,
			description TEXT NOT NULL,
			entrypoint TEXT NOT NULL,
			git_sha TEXT NOT NULL,
			manifest TEXT NOT NULL,
			process TEXT NOT NULL,
			release TEXT NOT NULL,
			reason TEXT NOT NULL,
			repository TEXT NOT NULL,
			status TEXT NOT NULL,
			started TIMESTAMPTZ,
			ended TIMESTAMPTZ,
			heartbeat TIMESTAMPTZ,
			services TEXT NOT NULL, -- JSON array of ServiceImage
			log_seq BIGINT NOT NULL DEFAULT 0 -- last build_logs.seq
		)`,
		`CREATE INDEX builds_app_started ON builds (app, started)`,
		`CREATE INDEX builds_active ON builds (heartbeat) WHERE status IN ('created', 'running')`,
		`CREATE TABLE releases (
			id TEXT PRIMARY KEY,
			app TEXT NOT NULL,
			build TEXT NOT NULL,
			manifest TEXT NOT NULL,
			description TEXT NOT NULL,
			created TIMESTAMPTZ NOT NULL
		)`,
		`CREATE INDEX releases_app_created ON releases (app, created)`,
		`CREATE TABLE build_logs (
			build_id TEXT NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
			seq BIGINT NOT NULL,
			time TIMESTAMPTZ NOT NULL,
			text TEXT NOT NULL,
			PRIMARY KEY (build_id, seq)
		)`,
	},
}}

// migrationLock is the pg_advisory_xact_lock key that serializes
// migrations of one PostgreSQL database across processes.
const migrationLock = 0x636f6e766f78 // "convox"

// migrate applies the migrations the database lacks, all in one
// transaction. On PostgreSQL an advisory lock makes concurrent callers
// wait; on SQLite the transaction starts with BEGIN IMMEDIATE, which does.
func (s *sqlStore) migrate(ctx context.Context) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	create := `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
	) STRICT`
	if s.postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return fmt.Errorf("migrating: taking the migration lock: %w", err)
		}
		create = `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY,
			applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
		)`
	}
	if _, err := tx.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("migrating: creating schema_migrations: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrating: reading schema version: %w", err)
	}
	latest := migrations[len(migrations)-1].version
	if current > latest {
		return fmt.Errorf("database schema version %d is newer than this program's %d: upgrade convox-build", current, latest)
	}
	for _, m := range migrations {
		if m.version <= current {
			continue
		}
		stmts := m.sqlite
		if s.postgres {
			stmts = m.postgres
		}
		for _, stmt := range stmts {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("migrating to schema version %d: %w", m.version, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, m.version); err != nil {
			return fmt.Errorf("migrating to schema version %d: %w", m.version, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	return nil
}
