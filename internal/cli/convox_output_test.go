package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/store"
)

// seed records builds in the world's database.
func (w *world) seed(t *testing.T, builds ...store.Build) {
	t.Helper()
	st, err := store.Open(context.Background(), w.vars["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, b := range builds {
		if b.Heartbeat.IsZero() {
			b.Heartbeat = t0 // alive: not reaped
		}
		if err := st.CreateBuild(context.Background(), &b); err != nil {
			t.Fatal(err)
		}
	}
}

// Convox's fixtures (pkg/cli/fixtures_test.go): fxBuild, fxBuildRunning and
// fxBuildFailed, started 48 hours before the test runs. Listed newest
// first, so they start a second apart, all "2 days ago".
var fxStarted = t0.Add(-48 * time.Hour)

var convoxFixtureBuilds = []store.Build{
	{ID: "build1", App: "app1", Description: "desc", Release: "release1", Status: store.StatusComplete, Started: fxStarted, Ended: fxStarted.Add(2 * time.Minute)},
	{ID: "build4", App: "app1", Status: store.StatusRunning, Started: fxStarted.Add(-time.Second)},
	{ID: "build3", App: "app1", Status: store.StatusFailed, Started: fxStarted.Add(-2 * time.Second)},
}

// TestBuildsPrintsConvoxTable: the expected lines are Convox's TestBuilds
// (pkg/cli/builds_test.go), verbatim.
func TestBuildsPrintsConvoxTable(t *testing.T) {
	w := newStoreWorld(t)
	w.seed(t, convoxFixtureBuilds...)
	lines := []string{
		"ID      STATUS    RELEASE   STARTED     ELAPSED  DESCRIPTION",
		"build1  complete  release1  2 days ago  2m0s     desc",
		"build4  running             2 days ago           ",
		"build3  failed              2 days ago           ",
	}
	out, errOut, code := w.run(nil, false, "builds", "-a", "app1")
	if want := strings.Join(lines, "\n") + "\n"; code != 0 || errOut != "" || out != want {
		t.Errorf("builds (exit %d, stderr %q) =\n%q\nwant\n%q", code, errOut, out, want)
	}
	// On a terminal, stdcli colours the header (h1, 244) and rows (value, 251).
	out, _, _ = w.run(nil, true, "builds", "-a", "app1")
	want := "\033[38;5;244m" + lines[0] + "\033[0m\n"
	for _, l := range lines[1:] {
		want += "\033[38;5;251m" + l + "\033[0m\n"
	}
	if out != want {
		t.Errorf("builds on a terminal =\n%q\nwant\n%q", out, want)
	}

	// -l/--limit, Convox's default of 10, 0 for all; no builds: the header.
	var many []store.Build
	for i := range 12 {
		many = append(many, store.Build{ID: fmt.Sprintf("BMANY%06d", i), App: "many", Status: store.StatusComplete, Started: t0.Add(time.Duration(i) * time.Second), Ended: t0.Add(time.Duration(i) * time.Second)})
	}
	w.seed(t, many...)
	for _, tc := range []struct {
		args []string
		rows int
	}{
		{[]string{"builds", "-a", "many"}, 10},
		{[]string{"builds", "-a", "many", "-l", "2"}, 2},
		{[]string{"builds", "-a", "many", "--limit", "11"}, 11},
		{[]string{"builds", "-a", "many", "--limit", "0"}, 12},
	} {
		out, _, code := w.run(nil, false, tc.args...)
		if got := strings.Count(out, "\n") - 1; code != 0 || got != tc.rows || !strings.Contains(out, "\nBMANY000011  complete") {
			t.Errorf("%v: %d rows (exit %d), want %d newest first:\n%s", tc.args, got, code, tc.rows, out)
		}
	}
	if out, _, code := w.run(nil, false, "builds", "-a", "none"); code != 0 || out != "ID  STATUS  RELEASE  STARTED  ELAPSED  DESCRIPTION\n" {
		t.Errorf("no builds: %q", out)
	}
	if _, errOut, code := w.run(nil, false, "builds", "-a", "many", "-l", "-1"); code != 2 || !strings.HasPrefix(errOut, "ERROR: builds: --limit -1: want 0 or more\n") {
		t.Errorf("negative limit: exit %d, %q", code, errOut)
	}
}

// TestBuildsInfoPrintsConvoxInfo: Convox's TestBuildsInfo, verbatim but for
// the IDs (Convox's fixture IDs are not valid build IDs).
func TestBuildsInfoPrintsConvoxInfo(t *testing.T) {
	w := newStoreWorld(t)
	b := convoxFixtureBuilds[0]
	b.ID, b.Release = "BBUILDONEXX", "RRELEASEONE"
	withExtras := store.Build{ID: "BEXTRASXXXX", App: "app1", Description: "two\nlines", Status: store.StatusFailed, GitSHA: "0123456789abcdef0123456789abcdef01234567",
		Reason: "service web: exit code: 3", Started: t0.Add(-75*time.Minute - 3*time.Second), Ended: t0,
		Services: []store.ServiceImage{
			{Service: "web", Image: "registry.example.com/app1:web.BEXTRASXXXX", Digest: "sha256:" + strings.Repeat("a", 64)},
			{Service: "db", Image: "registry.example.com/app1:db.BEXTRASXXXX", Digest: "sha256:" + strings.Repeat("b", 64)},
		}}
	w.seed(t, b, withExtras)
	lines := []string{
		"Id           BBUILDONEXX",
		"Status       complete",
		"Release      RRELEASEONE",
		"Description  desc",
		"Started      2 days ago",
		"Elapsed      2m0s",
	}
	out, errOut, code := w.run(nil, false, "builds", "info", "BBUILDONEXX", "-a", "app1")
	if want := strings.Join(lines, "\n") + "\n"; code != 0 || errOut != "" || out != want {
		t.Errorf("builds info (exit %d, %q) =\n%q\nwant\n%q", code, errOut, out, want)
	}
	out, _, _ = w.run(nil, true, "builds", "info", "BBUILDONEXX")
	want := ""
	for _, l := range lines {
		want += "\033[38;5;244m" + l[:11] + "\033[0m  \033[38;5;251m" + l[13:] + "\033[0m\n"
	}
	if out != want {
		t.Errorf("builds info on a terminal =\n%q\nwant\n%q", out, want)
	}

	// Ours come after Convox's keys; a value's further lines are indented
	// as stdcli's Info indents them.
	out, _, _ = w.run(nil, false, "builds", "info", "BEXTRASXXXX")
	want = "Id           BEXTRASXXXX\nStatus       failed\nRelease      \nDescription  two\n             lines\nStarted      1 hour ago\nElapsed      75m3s\n" +
		"Git SHA      0123456789abcdef0123456789abcdef01234567\nReason       service web: exit code: 3\n" +
		"Images       web  registry.example.com/app1:web.BEXTRASXXXX@sha256:" + strings.Repeat("a", 64) + "\n" +
		"             db  registry.example.com/app1:db.BEXTRASXXXX@sha256:" + strings.Repeat("b", 64) + "\n"
	if out != want {
		t.Errorf("builds info with extras =\n%s\nwant\n%s", out, want)
	}
}

// TestAppDefaultsAsConvox: --app, else .convox/app, else the working
// directory's name (pkg/cli/helpers.go, app()).
func TestAppDefaultsAsConvox(t *testing.T) {
	w := newStoreWorld(t)
	w.seed(t, convoxFixtureBuilds[0], store.Build{ID: "BOTHERAPPXX", App: "other", Status: store.StatusComplete, Started: t0, Ended: t0})
	root := t.TempDir()
	app1 := filepath.Join(root, "app1")
	linked := filepath.Join(root, "checkout")
	os.MkdirAll(app1, 0o755)
	os.MkdirAll(filepath.Join(linked, ".convox"), 0o755)
	os.WriteFile(filepath.Join(linked, ".convox", "app"), []byte("other\n"), 0o644)

	t.Chdir(app1)
	if out, _, _ := w.run(nil, false, "builds"); !strings.Contains(out, "\nbuild1  ") || strings.Contains(out, "BOTHERAPPXX") {
		t.Errorf("in app1/: %q", out)
	}
	if out, _, _ := w.run(nil, false, "builds", "-a", "other"); !strings.Contains(out, "\nBOTHERAPPXX  ") {
		t.Errorf("in app1/ with -a other: %q", out)
	}
	t.Chdir(linked)
	if out, _, _ := w.run(nil, false, "builds"); !strings.Contains(out, "\nBOTHERAPPXX  ") || strings.Contains(out, "build1") {
		t.Errorf("with .convox/app: %q", out)
	}
}

func TestAgoAndDurationAsConvox(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "now"}, {999 * time.Millisecond, "now"}, {time.Second, "1 second ago"}, {59 * time.Second, "59 seconds ago"},
		{90 * time.Second, "1 minute ago"}, {59 * time.Minute, "59 minutes ago"}, {90 * time.Minute, "1 hour ago"},
		{47 * time.Hour, "1 day ago"}, {48 * time.Hour, "2 days ago"}, {8 * 24 * time.Hour, "1 week ago"},
		{40 * 24 * time.Hour, "1 month ago"}, {-3 * time.Hour, "3 hours from now"},
	} {
		if got := ago(t0.Add(-tc.d), t0); got != tc.want {
			t.Errorf("ago(%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
	if got := ago(time.Time{}, t0); got != "" {
		t.Errorf("ago(zero) = %q", got)
	}
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {1900 * time.Millisecond, "1s"}, {2 * time.Minute, "2m0s"}, {125 * time.Second, "2m5s"}, {75*time.Minute + 3*time.Second, "75m3s"},
	} {
		if got := duration(t0, t0.Add(tc.d)); got != tc.want {
			t.Errorf("duration(%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
	if got := duration(t0, time.Time{}); got != "" {
		t.Errorf("duration without end = %q", got)
	}
}
