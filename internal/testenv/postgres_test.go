package testenv

import (
	"database/sql"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

func TestPostgresURL(t *testing.T) {
	t.Cleanup(StopPostgres)
	a, b := PostgresURL(t), PostgresURL(t)
	if a == b {
		t.Fatalf("two calls gave one database: %s", a)
	}
	u, err := url.Parse(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := u.User.Password(); !ok || u.Hostname() != "127.0.0.1" {
		t.Errorf("URL %s: want a password and host 127.0.0.1", a)
	}
	db, err := sql.Open("pgx", a)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables int
	if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("new database has %d tables", tables)
	}

	// The server checks the password.
	u.User = url.UserPassword(u.User.Username(), "wrong")
	bad, _ := sql.Open("pgx", u.String())
	defer bad.Close()
	if err := bad.PingContext(t.Context()); err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("connecting with a wrong password: %v", err)
	}
}

func TestPostgresNotInstalled(t *testing.T) {
	old := pgBinGlob
	pgBinGlob = filepath.Join(t.TempDir(), "*", "bin", "postgres")
	defer func() { pgBinGlob = old }()
	_, err := postgresBin()
	if err == nil || !strings.Contains(err.Error(), "run scripts/postgres.sh") {
		t.Errorf("postgresBin without PostgreSQL: %v", err)
	}
}
