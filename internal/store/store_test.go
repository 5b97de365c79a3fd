package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/store"
	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopPostgres()
	os.Exit(code)
}

// backends are the databases every test runs against; url returns the URL
// of a new, empty database.
var backends = []struct {
	name string
	url  func(t testing.TB) string
}{
	{"sqlite", func(t testing.TB) string { return "sqlite://" + filepath.Join(t.TempDir(), "builds.db") }},
	{"postgres", testenv.PostgresURL},
}

// eachBackend runs f on a new, empty store of each backend.
func eachBackend(t *testing.T, f func(t *testing.T, s store.Store, dbURL string)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			dbURL := b.url(t)
			f(t, open(t, dbURL), dbURL)
		})
	}
}

func open(t testing.TB, dbURL string) store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// at is a time base with microseconds, the precision the store keeps.
var at = time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)

func minutes(n int) time.Time { return at.Add(time.Duration(n) * time.Minute) }

func fullBuild(id string) *store.Build {
	return &store.Build{
		ID: id, App: "shop", Description: "build 0123456789 fix cart", Entrypoint: "bin/web",
		GitSHA: "0123456789abcdef", Manifest: "services:\n  web:\n    build: .\n", Process: "web",
		Release: "RABCDEFGHIJ", Reason: "", Repository: "registry.example/shop",
		Status: store.StatusRunning, Started: minutes(0), Heartbeat: minutes(1),
		Services: []store.ServiceImage{
			{Service: "web", Image: "registry.example/shop:web." + id, Digest: "sha256:aa", Entrypoint: "bin/web",
				DurationMS: 1234, CachedSteps: 3, TotalSteps: 5},
			{Service: "redis", Image: "registry.example/shop:redis." + id, Digest: "sha256:bb", ImageOnly: true},
		},
	}
}

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func wantErr(t *testing.T, err, target error, text string) {
	t.Helper()
	if !errors.Is(err, target) || !strings.Contains(fmt.Sprint(err), text) {
		t.Errorf("error = %v, want %v containing %q", err, target, text)
	}
}

func TestBuildCreateGetUpdate(t *testing.T) {
	eachBackend(t, func(t *testing.T, s store.Store, _ string) {
		ctx := t.Context()
		b := fullBuild("BAAAAAAAAAA")
		if err := s.CreateBuild(ctx, b); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetBuild(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "created build", got, b)

		wantErr(t, s.CreateBuild(ctx, fullBuild(b.ID)), store.ErrExists, b.ID)
		_, err = s.GetBuild(ctx, "BNOPE")
		wantErr(t, err, store.ErrNotFound, "build BNOPE: not found")

		// Update every field; a zero Heartbeat keeps the stored one.
		u := *got
		u.App, u.Description, u.Entrypoint, u.GitSHA, u.Manifest = "shop2", "d2", "e2", "g2", "m2"
		u.Process, u.Release, u.Reason, u.Repository = "p2", "R2", "RUN failed", "r2"
		u.Status, u.Ended, u.Heartbeat, u.Services = store.StatusFailed, minutes(5), time.Time{}, nil
		if err := s.UpdateBuild(ctx, &u); err != nil {
			t.Fatal(err)
		}
		got, err = s.GetBuild(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		u.Heartbeat = b.Heartbeat
		equal(t, "updated build", got, &u)

		// Times keep microseconds, in UTC, whatever the zone given.
		u.Started = time.Date(2026, 1, 2, 3, 4, 5, 6007008, time.FixedZone("X", 3600))
		u.Ended = time.Time{}
		if err := s.UpdateBuild(ctx, &u); err != nil {
			t.Fatal(err)
		}
		got, _ = s.GetBuild(ctx, b.ID)
		equal(t, "started", got.Started, time.Date(2026, 1, 2, 2, 4, 5, 6007000, time.UTC))
		equal(t, "ended", got.Ended, time.Time{})

		// An ended build takes no heartbeat; a running one does.
		wantErr(t, s.Heartbeat(ctx, b.ID, minutes(9)), store.ErrEnded, "build "+b.ID+": it has ended (failed)")
		u.Status = store.StatusRunning
		if err := s.UpdateBuild(ctx, &u); err != nil {
			t.Fatal(err)
		}
		if err := s.Heartbeat(ctx, b.ID, minutes(9)); err != nil {
			t.Fatal(err)
		}
		got, _ = s.GetBuild(ctx, b.ID)
		equal(t, "heartbeat", got.Heartbeat, minutes(9))

		wantErr(t, s.UpdateBuild(ctx, fullBuild("BNOPE")), store.ErrNotFound, "build BNOPE")
		wantErr(t, s.Heartbeat(ctx, "BNOPE", at), store.ErrNotFound, "build BNOPE")

		bad := fullBuild("BBAD")
		bad.Status = "done"
		if err := s.CreateBuild(ctx, bad); err == nil || !strings.Contains(err.Error(), `invalid status "done"`) {
			t.Errorf("CreateBuild with status done: %v", err)
		}

		// CreateBuild sets a zero Heartbeat to now, without changing b.
		before := time.Now().Add(-time.Second)
		nb := &store.Build{ID: "BNOW", App: "shop", Status: store.StatusCreated}
		if err := s.CreateBuild(ctx, nb); err != nil {
			t.Fatal(err)
		}
		got, _ = s.GetBuild(ctx, "BNOW")
		if !nb.Heartbeat.IsZero() || got.Heartbeat.Before(before) || got.Heartbeat.After(time.Now()) {
			t.Errorf("heartbeat of new build = %v, want about now (and b unchanged: %v)", got.Heartbeat, nb.Heartbeat)
		}
		if got.Services != nil || !got.Started.IsZero() {
			t.Errorf("empty build came back with services %v, started %v", got.Services, got.Started)
		}
	})
}

func TestListBuilds(t *testing.T) {
	eachBackend(t, func(t *testing.T, s store.Store, _ string) {
		ctx := t.Context()
		for _, b := range []store.Build{
			{ID: "B1", App: "a", Started: minutes(1)},
			{ID: "B2", App: "a", Started: minutes(3)},
			{ID: "B3", App: "a", Started: minutes(2)},
			{ID: "B4", App: "a", Started: minutes(3)}, // same time as B2: higher ID first
			{ID: "B5", App: "a"},                      // not started: first
			{ID: "B6", App: "b", Started: minutes(9)},
		} {
			b.Status = store.StatusComplete
			if err := s.CreateBuild(ctx, &b); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			app   string
			limit int
			want  []string
		}{
			{"a", 0, []string{"B5", "B4", "B2", "B3", "B1"}},
			{"a", 2, []string{"B5", "B4"}},
			{"a", 99, []string{"B5", "B4", "B2", "B3", "B1"}},
			{"b", 0, []string{"B6"}},
			{"", 3, []string{"B5", "B6", "B4"}},
			{"none", 0, nil},
		} {
			builds, err := s.ListBuilds(ctx, tc.app, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, b := range builds {
				ids = append(ids, b.ID)
			}
			equal(t, fmt.Sprintf("ListBuilds(%q, %d)", tc.app, tc.limit), ids, tc.want)
		}
	})
}

func TestReleases(t *testing.T) {
	eachBackend(t, func(t *testing.T, s store.Store, _ string) {
		ctx := t.Context()
		r := &store.Release{ID: "RAAAAAAAAAA", App: "shop", Build: "BAAAAAAAAAA", Manifest: "services: {}\n",
			Description: "build 0123456789 fix cart", Created: minutes(1)}
		if err := s.CreateRelease(ctx, r); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetRelease(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "release", got, r)
		wantErr(t, s.CreateRelease(ctx, r), store.ErrExists, r.ID)
		_, err = s.GetRelease(ctx, "RNOPE")
		wantErr(t, err, store.ErrNotFound, "release RNOPE: not found")

		for _, r := range []store.Release{
			{ID: "R2", App: "shop", Created: minutes(3)},
			{ID: "R3", App: "shop", Created: minutes(3)},
			{ID: "R4", App: "other", Created: minutes(2)},
			{ID: "R5", App: "shop"}, // now: newest
		} {
			if err := s.CreateRelease(ctx, &r); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			app   string
			limit int
			want  []string
		}{
			{"shop", 0, []string{"R5", "R3", "R2", "RAAAAAAAAAA"}},
			{"shop", 2, []string{"R5", "R3"}},
			{"", 0, []string{"R5", "R3", "R2", "R4", "RAAAAAAAAAA"}},
			{"none", 5, nil},
		} {
			releases, err := s.ListReleases(ctx, tc.app, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range releases {
				ids = append(ids, r.ID)
			}
			equal(t, fmt.Sprintf("ListReleases(%q, %d)", tc.app, tc.limit), ids, tc.want)
		}
	})
}

func texts(lines []store.LogLine) (seqs []int64, texts []string) {
	for _, l := range lines {
		seqs = append(seqs, l.Seq)
		texts = append(texts, l.Text)
	}
	return seqs, texts
}

func TestLogs(t *testing.T) {
	eachBackend(t, func(t *testing.T, s store.Store, _ string) {
		ctx := t.Context()
		wantErr(t, s.AppendLogs(ctx, "BNOPE", []string{"x"}), store.ErrNotFound, "build BNOPE")
		_, err := s.ReadLogs(ctx, "BNOPE", 0, 0)
		wantErr(t, err, store.ErrNotFound, "build BNOPE")

		if err := s.CreateBuild(ctx, fullBuild("B1")); err != nil {
			t.Fatal(err)
		}
		if lines, err := s.ReadLogs(ctx, "B1", 0, 0); err != nil || len(lines) != 0 {
			t.Fatalf("ReadLogs of a build without logs = %v, %v", lines, err)
		}
		before := time.Now().Add(-time.Second)
		for _, batch := range [][]string{
			{"#1 [web] FROM busybox", "#1 DONE 0.1s"},
			nil, // no-op
			{"", "tab\tand trailing space ", "bad utf8 \xff\xfe and NUL \x00 end", "ünïcødé ✓"},
		} {
			if err := s.AppendLogs(ctx, "B1", batch); err != nil {
				t.Fatal(err)
			}
		}
		all, err := s.ReadLogs(ctx, "B1", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		seqs, txt := texts(all)
		equal(t, "seqs", seqs, []int64{1, 2, 3, 4, 5, 6})
		equal(t, "texts", txt, []string{"#1 [web] FROM busybox", "#1 DONE 0.1s", "",
			"tab\tand trailing space ", "bad utf8 \uFFFD and NUL \uFFFD end", "ünïcødé ✓"})
		if tm := all[0].Time; tm.Before(before) || tm.After(time.Now()) || tm.Location() != time.UTC {
			t.Errorf("line time = %v, want about now in UTC", tm)
		}

		for _, tc := range []struct {
			after int64
			limit int
			want  []int64
		}{
			{0, 2, []int64{1, 2}},
			{2, 2, []int64{3, 4}},
			{4, 0, []int64{5, 6}},
			{5, 10, []int64{6}},
			{6, 0, nil},
			{100, 1, nil},
		} {
			lines, err := s.ReadLogs(ctx, "B1", tc.after, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			seqs, _ := texts(lines)
			equal(t, fmt.Sprintf("ReadLogs(after %d, limit %d)", tc.after, tc.limit), seqs, tc.want)
		}

		// A batch larger than one INSERT statement carries.
		big := make([]string, 2500)
		for i := range big {
			big[i] = fmt.Sprint("line ", i)
		}
		if err := s.AppendLogs(ctx, "B1", big); err != nil {
			t.Fatal(err)
		}
		lines, err := s.ReadLogs(ctx, "B1", 6, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) != 2500 || lines[0].Seq != 7 || lines[2499].Seq != 2506 || lines[2499].Text != "line 2499" {
			t.Errorf("after appending 2500 lines: %d lines, first %+v, last %+v", len(lines), lines[0], lines[len(lines)-1])
		}
	})
}

// TestLogsConcurrent appends from several goroutines, as builds of several
// services do, while a reader follows the log.
func TestLogsConcurrent(t *testing.T) {
	const writers, calls, perCall = 6, 20, 5
	eachBackend(t, func(t *testing.T, s store.Store, _ string) {
		ctx := t.Context()
		if err := s.CreateBuild(ctx, fullBuild("B1")); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for c := range calls {
					var batch []string
					for l := range perCall {
						batch = append(batch, fmt.Sprintf("w%d c%02d l%d", w, c, l))
					}
					if err := s.AppendLogs(ctx, "B1", batch); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		// Follow the log while it grows: no line is seen twice or skipped.
		var followed []store.LogLine
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		for finished := false; ; {
			select {
			case <-done:
				finished = true
			default:
			}
			var last int64
			if len(followed) > 0 {
				last = followed[len(followed)-1].Seq
			}
			lines, err := s.ReadLogs(ctx, "B1", last, 50)
			if err != nil {
				t.Fatal(err)
			}
			followed = append(followed, lines...)
			if finished && len(lines) == 0 {
				break
			}
		}

		const total = writers * calls * perCall
		if len(followed) != total {
			t.Fatalf("followed %d lines, want %d", len(followed), total)
		}
		next := map[string]int{} // writer -> next call number
		for i := 0; i < total; i += perCall {
			for l := range perCall {
				line := followed[i+l]
				if line.Seq != int64(i+l+1) {
					t.Fatalf("line %d has seq %d", i+l+1, line.Seq)
				}
				var w, c, ll int
				fmt.Sscanf(line.Text, "w%d c%d l%d", &w, &c, &ll)
				key := fmt.Sprint(w)
				if ll != l || c != next[key] {
					t.Fatalf("line %d = %q: a call's lines are not contiguous or calls out of order", line.Seq, line.Text)
				}
			}
			var w int
			fmt.Sscanf(followed[i].Text, "w%d", &w)
			next[fmt.Sprint(w)]++
		}
	})
}

func TestFailStale(t *testing.T) {
	eachBackend(t, func(t *testing.T, s store.Store, _ string) {
		ctx := t.Context()
		for _, b := range []store.Build{
			{ID: "BOLDRUN", Status: store.StatusRunning, Heartbeat: minutes(1)},
			{ID: "BOLDNEW", Status: store.StatusCreated, Heartbeat: minutes(2)},
			{ID: "BOLDENDED", Status: store.StatusRunning, Heartbeat: minutes(2), Ended: minutes(3)},
			{ID: "BLIVE", Status: store.StatusRunning, Heartbeat: minutes(10)},
			{ID: "BEDGE", Status: store.StatusRunning, Heartbeat: minutes(5)}, // not before: alive
			{ID: "BDONE", Status: store.StatusComplete, Heartbeat: minutes(1)},
			{ID: "BFAILED", Status: store.StatusFailed, Heartbeat: minutes(1), Reason: "RUN failed"},
		} {
			b.App = "a"
			if err := s.CreateBuild(ctx, &b); err != nil {
				t.Fatal(err)
			}
		}
		before := time.Now().Add(-time.Second)
		ids, err := s.FailStale(ctx, minutes(5), "build process stopped")
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(ids)
		equal(t, "failed", ids, []string{"BOLDENDED", "BOLDNEW", "BOLDRUN"})
		for _, tc := range []struct {
			id     string
			status store.Status
			reason string
		}{
			{"BOLDRUN", store.StatusFailed, "build process stopped"},
			{"BOLDNEW", store.StatusFailed, "build process stopped"},
			{"BOLDENDED", store.StatusFailed, "build process stopped"},
			{"BLIVE", store.StatusRunning, ""},
			{"BEDGE", store.StatusRunning, ""},
			{"BDONE", store.StatusComplete, ""},
			{"BFAILED", store.StatusFailed, "RUN failed"},
		} {
			b, err := s.GetBuild(ctx, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if b.Status != tc.status || b.Reason != tc.reason {
				t.Errorf("%s: status %s, reason %q; want %s, %q", tc.id, b.Status, b.Reason, tc.status, tc.reason)
			}
		}
		if b, _ := s.GetBuild(ctx, "BOLDRUN"); b.Ended.Before(before) {
			t.Errorf("BOLDRUN ended %v, want now", b.Ended)
		}
		if b, _ := s.GetBuild(ctx, "BOLDENDED"); !b.Ended.Equal(minutes(3)) {
			t.Errorf("BOLDENDED ended %v, want it kept: %v", b.Ended, minutes(3))
		}
		if ids, err := s.FailStale(ctx, minutes(5), "again"); err != nil || len(ids) != 0 {
			t.Errorf("second FailStale = %v, %v; want none", ids, err)
		}
		counts, err := s.CountBuilds(ctx)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "counts", counts, map[store.Status]int{store.StatusFailed: 4, store.StatusRunning: 2, store.StatusComplete: 1})
	})
}

// rawDB opens the store's database directly, to look behind the API.
func rawDB(t *testing.T, dbURL string) *sql.DB {
	driver, dsn := "pgx", dbURL
	if p, ok := strings.CutPrefix(dbURL, "sqlite://"); ok {
		driver, dsn = "sqlite", p
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMigrations(t *testing.T) {
	eachBackend(t, func(t *testing.T, s store.Store, dbURL string) {
		ctx := t.Context()
		if err := s.CreateBuild(ctx, fullBuild("B1")); err != nil {
			t.Fatal(err)
		}
		// Opening again applies nothing and sees the data.
		s2 := open(t, dbURL)
		if _, err := s2.GetBuild(ctx, "B1"); err != nil {
			t.Fatal(err)
		}
		db := rawDB(t, dbURL)
		var n, version int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &version); err != nil {
			t.Fatal(err)
		}
		if n != 1 || version != 1 {
			t.Errorf("schema_migrations has %d rows up to version %d, want 1 row, version 1", n, version)
		}

		// A database migrated by a newer program is refused.
		if _, err := db.ExecContext(ctx, `INSERT INTO schema_migrations (version) VALUES (99)`); err != nil {
			t.Fatal(err)
		}
		_, err := store.Open(ctx, dbURL)
		if err == nil || !strings.Contains(err.Error(), "database schema version 99 is newer than this program's 1") {
			t.Errorf("Open of a newer schema: %v", err)
		}
	})
}

// TestConcurrentOpen opens one new database from several goroutines at
// once, as replicas of the server starting together do.
func TestConcurrentOpen(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			dbURL := b.url(t)
			var wg sync.WaitGroup
			for i := range 6 {
				wg.Go(func() {
					s, err := store.Open(t.Context(), dbURL)
					if err != nil {
						t.Error(err)
						return
					}
					defer s.Close()
					if err := s.CreateBuild(t.Context(), &store.Build{ID: fmt.Sprint("B", i), App: "a", Status: store.StatusCreated}); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if builds, err := open(t, dbURL).ListBuilds(t.Context(), "a", 0); err != nil || len(builds) != 6 {
				t.Errorf("after concurrent opens: %d builds, %v", len(builds), err)
			}
		})
	}
}

func TestOpenErrorsHidePassword(t *testing.T) {
	good, err := url.Parse(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	password, _ := good.User.Password()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	wrongPort := *good
	wrongPort.Host = fmt.Sprintf("127.0.0.1:%d", closedPort)
	wrongPassword := *good
	wrongPassword.User = url.UserPassword(good.User.Username(), "s3cret-Pa55word")

	for _, tc := range []struct {
		name, url, secret, want string
	}{
		{"wrong port", wrongPort.String(), password, "postgres://convox:***@127.0.0.1:"},
		{"wrong password", wrongPassword.String(), "s3cret-Pa55word", "postgres://convox:***@127.0.0.1:"},
		{"bad URL", "postgres://convox:s3cret-Pa55word@127.0.0.1:notaport/db", "s3cret-Pa55word", "opening PostgreSQL database"},
		{"unknown scheme", "mysql://convox:s3cret-Pa55word@127.0.0.1/db", "s3cret-Pa55word", `mysql://convox:***@127.0.0.1/db: unsupported scheme "mysql"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			s, err := store.Open(ctx, tc.url)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			t.Log(err)
			if strings.Contains(err.Error(), tc.secret) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want it to contain %q and not the password", err, tc.want)
			}
		})
	}
	equal(t, "Redact", store.Redact("postgres://u:p%40ss@h:5432/db?sslmode=disable"), "postgres://u:***@h:5432/db?sslmode=disable")
	equal(t, "Redact without password", store.Redact("postgres://u@h/db"), "postgres://u@h/db")
}

func TestOpenPaths(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()

	// DefaultPath is under $XDG_DATA_HOME, else ~/.local/share; Open
	// makes its directory private.
	vars := map[string]string{"XDG_DATA_HOME": filepath.Join(dir, "xdg"), "HOME": filepath.Join(dir, "home")}
	getenv := func(k string) string { return vars[k] }
	want := filepath.Join(dir, "xdg", "convox-build", "builds.db")
	if p, err := store.DefaultPath(getenv); err != nil || p != want {
		t.Errorf("DefaultPath = %q, %v; want %q", p, err, want)
	}
	open(t, want)
	for path, mode := range map[string]os.FileMode{filepath.Dir(want): 0o700 | os.ModeDir, want: 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != mode {
			t.Errorf("%s: %v, %v; want mode %v", path, fi.Mode(), err, mode)
		}
	}
	vars["XDG_DATA_HOME"] = "relative/dir"
	want = filepath.Join(dir, "home", ".local", "share", "convox-build", "builds.db")
	if p, err := store.DefaultPath(getenv); err != nil || p != want {
		t.Errorf("DefaultPath without an absolute XDG_DATA_HOME = %q, %v; want %q", p, err, want)
	}
	vars["HOME"] = ""
	if _, err := store.DefaultPath(getenv); err == nil || !strings.Contains(err.Error(), "set DATABASE_URL") {
		t.Errorf("DefaultPath without HOME: %v", err)
	}
	if _, err := store.Open(ctx, ""); err == nil || !strings.Contains(err.Error(), "no database URL") {
		t.Errorf("Open(\"\"): %v", err)
	}

	for _, tc := range []struct{ url, file string }{
		{"sqlite://" + dir + "/a.db", dir + "/a.db"},
		{"sqlite:" + dir + "/b.db", dir + "/b.db"},
		{"file:" + dir + "/c.db", dir + "/c.db"},
		{dir + "/new/d.db", dir + "/new/d.db"},
	} {
		open(t, tc.url)
		if _, err := os.Stat(tc.file); err != nil {
			t.Errorf("Open(%q): %v", tc.url, err)
		}
	}
	for _, bad := range []string{"sqlite://host/x.db", "sqlite://" + dir + "/x.db?mode=ro", "sqlite://"} {
		if s, err := store.Open(ctx, bad); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", bad)
		}
	}
}

// BenchmarkAppendLogs measures appending one line (a live log) and a batch
// of 100 lines.
func BenchmarkAppendLogs(b *testing.B) {
	for _, be := range backends {
		for _, n := range []int{1, 100} {
			b.Run(fmt.Sprintf("%s/lines=%d", be.name, n), func(b *testing.B) {
				s := open(b, be.url(b))
				ctx := context.Background()
				if err := s.CreateBuild(ctx, fullBuild("B1")); err != nil {
					b.Fatal(err)
				}
				lines := make([]string, n)
				for i := range lines {
					lines[i] = fmt.Sprintf("#%d [web 3/5] RUN make -j2 build: compiling module %d of 100", i, i)
				}
				for b.Loop() {
					if err := s.AppendLogs(ctx, "B1", lines); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
