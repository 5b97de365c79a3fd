package store_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/convox-build-action/convox-build-action/internal/store"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url    string
		kind   store.Kind
		target string
	}{
		{"postgres://u:p@h/db", store.Postgres, "postgres://u:p@h/db"},
		{"postgresql://h/db", store.Postgres, "postgresql://h/db"},
		{"sqlite:///data/b.db", store.SQLite, "/data/b.db"},
		{"file:rel.db", store.SQLite, "rel.db"},
		{"/abs/c.db", store.SQLite, "/abs/c.db"},
	} {
		kind, target, err := store.ParseURL(tc.url)
		if err != nil || kind != tc.kind || target != tc.target {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q", tc.url, kind, target, err, tc.kind, tc.target)
		}
	}
	if _, _, err := store.ParseURL("mysql://h/db"); err == nil {
		t.Error("ParseURL(mysql://) succeeded")
	}
}

// TestOpenDB shares one handle between the store and another user of the
// database (as the server's job queue does): the store migrates it, works
// on it, and its Close leaves it open for the other user.
func TestOpenDB(t *testing.T) {
	ctx := t.Context()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			kind, target, err := store.ParseURL(b.url(t))
			if err != nil {
				t.Fatal(err)
			}
			var db *sql.DB
			if kind == store.SQLite {
				if db, err = store.OpenSQLiteDB(target); err != nil {
					t.Fatal(err)
				}
				if got := db.Stats().MaxOpenConnections; got != 1 {
					t.Errorf("SQLite handle allows %d connections, want 1", got)
				}
				if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("SQLite file: %v, %v; want mode 0600", fi, err)
				}
			} else {
				db = rawDB(t, target)
			}
			defer db.Close()
			s, err := store.OpenDB(ctx, db, kind)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.CreateBuild(ctx, fullBuild("BSHAREDAAAA")); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM builds`).Scan(&n); err != nil || n != 1 {
				t.Errorf("after the store's Close, the shared handle reads %d builds, %v; want 1, nil", n, err)
			}
			// Opening again over the same handle migrates nothing.
			if _, err := store.OpenDB(ctx, db, kind); err != nil {
				t.Fatal(err)
			}
		})
	}
	if _, err := store.OpenDB(context.Background(), nil, "mysql"); err == nil {
		t.Error("OpenDB of an unknown kind succeeded")
	}
	if _, err := store.OpenSQLiteDB(filepath.Join(t.TempDir(), "x.db?mode=ro")); err == nil {
		t.Error("OpenSQLiteDB of a path with '?' succeeded")
	}
}
