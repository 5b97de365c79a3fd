package queue

import (
	"context"
	"fmt"
)

// A migration moves the queue's tables from version-1 to version. Append
// new ones; never edit one that has shipped. River's own tables are
// migrated by River (rivermigrate) in the same transaction.
type migration struct {
	version  int
	sqlite   []string
	postgres []string
}

var migrations = []migration{{
	version: 1,
	sqlite: []string{
		// One row per webhook delivery: a redelivery (same X-GitHub-Delivery)
		// finds its row and is not acted on again.
		`CREATE TABLE webhook_deliveries (
			id TEXT PRIMARY KEY,
			event TEXT NOT NULL,
			action TEXT NOT NULL,
			repository TEXT NOT NULL,
			installation_id INTEGER NOT NULL,
			received INTEGER NOT NULL, -- microseconds since the epoch, as every time here
			outcome TEXT NOT NULL
		) STRICT`,
		`CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received)`,
		// One row per build the server was asked for; commit_key makes
		// push, pull_request and check_suite deliveries for one commit one
		// build. run counts the jobs that have owned the build: a job
		// whose run is no longer the row's does nothing.
		`CREATE TABLE webhook_builds (
			build_id TEXT PRIMARY KEY,
			commit_key TEXT NOT NULL UNIQUE,
			delivery_id TEXT NOT NULL,
			event TEXT NOT NULL,
			installation_id INTEGER NOT NULL,
			owner TEXT NOT NULL,
			repo TEXT NOT NULL,
			sha TEXT NOT NULL,
			ref TEXT NOT NULL,
			branch TEXT NOT NULL,
			app TEXT NOT NULL,
			description TEXT NOT NULL,
			check_run_id INTEGER NOT NULL DEFAULT 0,
			state TEXT NOT NULL,
			conclusion TEXT NOT NULL DEFAULT '',
			superseded_by TEXT NOT NULL DEFAULT '',
			run INTEGER NOT NULL DEFAULT 1,
			job_id INTEGER NOT NULL DEFAULT 0,
			worker TEXT NOT NULL DEFAULT '',
			heartbeat INTEGER NOT NULL DEFAULT 0,
			created INTEGER NOT NULL,
			updated INTEGER NOT NULL
		) STRICT`,
		`CREATE INDEX webhook_builds_branch ON webhook_builds (owner, repo, branch) WHERE state <> 'done'`,
		`CREATE INDEX webhook_builds_active ON webhook_builds (state, heartbeat) WHERE state <> 'done'`,
		`CREATE INDEX webhook_builds_created ON webhook_builds (created)`,
		`CREATE TABLE webhook_installations (
			id INTEGER PRIMARY KEY,
			account TEXT NOT NULL,
			state TEXT NOT NULL,
			repositories TEXT NOT NULL, -- JSON array of owner/name
			updated INTEGER NOT NULL
		) STRICT`,
	},
	postgres: []string{
		`CREATE TABLE webhook_deliveries (
			id TEXT PRIMARY KEY,
			event TEXT NOT NULL,
			action TEXT NOT NULL,
			repository TEXT NOT NULL,
			installation_id BIGINT NOT NULL,
			received BIGINT NOT NULL,
			outcome TEXT NOT NULL
		)`,
		`CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received)`,
		`CREATE TABLE webhook_builds (
			build_id TEXT PRIMARY KEY,
			commit_key TEXT NOT NULL UNIQUE,
			delivery_id TEXT NOT NULL,
			event TEXT NOT NULL,
			installation_id BIGINT NOT NULL,
			owner TEXT NOT NULL,
			repo TEXT NOT NULL,
			sha TEXT NOT NULL,
			ref TEXT NOT NULL,
			branch TEXT NOT NULL,
			app TEXT NOT NULL,
			description TEXT NOT NULL,
			check_run_id BIGINT NOT NULL DEFAULT 0,
			state TEXT NOT NULL,
			conclusion TEXT NOT NULL DEFAULT '',
			superseded_by TEXT NOT NULL DEFAULT '',
			run INTEGER NOT NULL DEFAULT 1,
			job_id BIGINT NOT NULL DEFAULT 0,
			worker TEXT NOT NULL DEFAULT '',
			heartbeat BIGINT NOT NULL DEFAULT 0,
			created BIGINT NOT NULL,
			updated BIGINT NOT NULL
		)`,
		`CREATE INDEX webhook_builds_branch ON webhook_builds (owner, repo, branch) WHERE state <> 'done'`,
		`CREATE INDEX webhook_builds_active ON webhook_builds (state, heartbeat) WHERE state <> 'done'`,
		`CREATE INDEX webhook_builds_created ON webhook_builds (created)`,
		`CREATE TABLE webhook_installations (
			id BIGINT PRIMARY KEY,
			account TEXT NOT NULL,
			state TEXT NOT NULL,
			repositories TEXT NOT NULL,
			updated BIGINT NOT NULL
		)`,
	},
}}

// migrationLock is the pg_advisory_xact_lock key that serializes the
// queue's migrations (River's and its own) across server replicas.
const migrationLock = 0x7765626871 // "webhq"

// migrateOwn applies the queue's migrations the database lacks, in tx.
func migrateOwn(ctx context.Context, tx dbtx, postgres bool) error {
	create := `CREATE TABLE IF NOT EXISTS webhook_schema_migrations (
		version INTEGER PRIMARY KEY,
		applied INTEGER NOT NULL
	) STRICT`
	if postgres {
		create = `CREATE TABLE IF NOT EXISTS webhook_schema_migrations (
			version INTEGER PRIMARY KEY,
			applied BIGINT NOT NULL
		)`
	}
	if _, err := tx.Exec(ctx, create); err != nil {
		return fmt.Errorf("creating webhook_schema_migrations: %w", err)
	}
	var current int
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM webhook_schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("reading the queue's schema version: %w", err)
	}
	latest := migrations[len(migrations)-1].version
	if current > latest {
		return fmt.Errorf("the queue's schema version %d is newer than this program's %d: upgrade the server", current, latest)
	}
	for _, m := range migrations {
		if m.version <= current {
			continue
		}
		stmts := m.sqlite
		if postgres {
			stmts = m.postgres
		}
		for _, stmt := range stmts {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("migrating the queue to version %d: %w", m.version, err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO webhook_schema_migrations (version, applied) VALUES ($1, $2)`, m.version, micros(nowUTC())); err != nil {
			return fmt.Errorf("migrating the queue to version %d: %w", m.version, err)
		}
	}
	return nil
}
