package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// world is the CLI's environment in these tests: the test buildkitd and
// registry, a SQLite database of its own, and a clock the test sets.
type world struct {
	t    *testing.T
	env  *testenv.Env
	vars map[string]string

	mu   sync.Mutex
	now  time.Time
	real bool // the clock is time.Now, not now
}

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func newWorld(t *testing.T) *world {
	env := testenv.Build(t)
	return &world{t: t, env: env, now: t0, vars: map[string]string{
		"BUILDKIT_HOST":         env.BuildkitAddr,
		"DATABASE_URL":          "sqlite://" + filepath.Join(t.TempDir(), "builds.db"),
		"CONVOX_BUILD_REGISTRY": env.Registry,
		"DOCKER_CONFIG":         t.TempDir(),
	}}
}

func (w *world) setNow(t time.Time) { w.mu.Lock(); w.now = t; w.mu.Unlock() }

// run runs convox-build with stdin and returns stdout, stderr and the code.
func (w *world) run(stdin io.Reader, terminal bool, args ...string) (string, string, int) {
	var out, errOut bytes.Buffer
	code := w.runTo(stdin, &out, &errOut, terminal, args...)
	return out.String(), errOut.String(), code
}

func (w *world) runTo(stdin io.Reader, out, errOut io.Writer, terminal bool, args ...string) int {
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	ios := &IOStreams{In: stdin, Out: out, ErrOut: errOut, IsTerminal: terminal}
	env := &Env{IO: ios, Getenv: func(k string) string { return w.vars[k] },
		Now: func() time.Time {
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.real {
				return time.Now()
			}
			return w.now
		}}
	err := dispatch(context.Background(), args, env)
	if err != nil {
		fmt.Fprintf(errOut, "convox-build: %v\n", err)
	}
	return exitCode(err)
}

// app copies testdata/apps/<name> into a temporary directory.
func app(t *testing.T, name string) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(filepath.Join("..", "..", "testdata", "apps", name))); err != nil {
		t.Fatal(err)
	}
	return dst
}

var idLine = regexp.MustCompile(`(?m)^Build: (B[A-Z]{10})\nRelease: (R[A-Z]{10})\n\z`)

func TestBuildThenBuildsInfoAndLogsPrintWhatConvoxPrints(t *testing.T) {
	w := newWorld(t)
	dir := app(t, "demo")
	out, errOut, code := w.run(nil, false, "build", dir, "-a", "demo")
	if code != 0 {
		t.Fatalf("build exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.HasPrefix(out, "Packaging source... OK\nStarting build... OK\n#1 [internal] load build definition from Dockerfile\n") {
		t.Errorf("build output starts:\n%.300s", out)
	}
	m := idLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("build output does not end with Build: and Release: lines:\n%s", out)
	}
	buildID, releaseID := m[1], m[2]
	imageLine := regexp.MustCompile(`(?m)^Image: ` + regexp.QuoteMeta(w.env.Registry) + `/demo:web\.` + buildID + `@(sha256:[0-9a-f]{64})$`).FindStringSubmatch(out)
	if imageLine == nil {
		t.Fatalf("no Image: line for web:\n%s", out)
	}
	if d, err := registry.Digest(context.Background(), w.env.Registry+"/demo:web."+buildID, registry.Options{}); err != nil || d != imageLine[1] {
		t.Errorf("registry digest %s, %v; printed %s", d, err, imageLine[1])
	}

	// builds, piped: tab-separated; on a terminal: aligned.
	w.setNow(t0.Add(90 * time.Second))
	list, _, code := w.run(nil, false, "builds", "-a", "demo")
	want := "ID\tSTATUS\tRELEASE\tSTARTED\tELAPSED\tDESCRIPTION\n" + buildID + "\tcomplete\t" + releaseID + "\t1 minute ago\t0s\t\n"
	if code != 0 || list != want {
		t.Errorf("builds (piped) = %q, want %q", list, want)
	}
	list, _, _ = w.run(nil, true, "builds", "-a", "demo")
	want = "ID           STATUS    RELEASE      STARTED       ELAPSED  DESCRIPTION\n" + buildID + "  complete  " + releaseID + "  1 minute ago  0s\n"
	if list != want {
		t.Errorf("builds (terminal) =\n%s\nwant\n%s", list, want)
	}

	info, _, code := w.run(nil, false, "builds", "info", buildID, "-a", "demo")
	want = "ID           " + buildID + "\nStatus       complete\nRelease      " + releaseID + "\nDescription\nStarted      1 minute ago\nElapsed      0s\n" +
		"Images       web  " + w.env.Registry + "/demo:web." + buildID + "@" + imageLine[1] + "\n"
	if code != 0 || info != want {
		t.Errorf("builds info =\n%s\nwant\n%s", info, want)
	}

	// builds logs prints exactly the log lines build printed.
	logs, _, code := w.run(nil, false, "builds", "logs", buildID)
	start := strings.Index(out, "#1 [internal]")
	end := strings.Index(out, "Image: ")
	if code != 0 || logs != out[start:end] {
		t.Errorf("builds logs differs from the build's output:\n%s\n---\n%s", logs, out[start:end])
	}

	// Wrong app, bad IDs.
	if _, e, code := w.run(nil, false, "builds", "info", buildID, "-a", "other"); code != 1 || !strings.Contains(e, "belongs to app demo, not other") {
		t.Errorf("wrong app: %d %q", code, e)
	}
	if _, e, code := w.run(nil, false, "builds", "info", "B123"); code != 1 || !strings.Contains(e, `invalid build ID "B123"`) {
		t.Errorf("bad id: %d %q", code, e)
	}
	if _, e, code := w.run(nil, false, "builds", "logs", "BAAAAAAAAAA"); code != 1 || !strings.Contains(e, "no such build: BAAAAAAAAAA") {
		t.Errorf("unknown build: %d %q", code, e)
	}
}

func TestBuildIDOnlyPrintsReleaseOnStdout(t *testing.T) {
	w := newWorld(t)
	out, errOut, code := w.run(nil, false, "build", app(t, "demo"), "-a", "demo", "--id")
	if code != 0 || !regexp.MustCompile(`^R[A-Z]{10}\n$`).MatchString(out) {
		t.Fatalf("--id stdout = %q (exit %d)\n%s", out, code, errOut)
	}
	if !strings.Contains(errOut, "Release: "+strings.TrimSpace(out)) {
		t.Errorf("stderr lacks the release line:\n%s", errOut)
	}
}

func TestBuildErrorsExitNonZeroWithReason(t *testing.T) {
	w := newWorld(t)
	failing := app(t, "failing")
	out, errOut, code := w.run(nil, false, "build", failing, "-a", "failing")
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	if !regexp.MustCompile(`(?m)^Build: B[A-Z]{10} failed$`).MatchString(out) ||
		!strings.Contains(errOut, "service broken") || !strings.Contains(errOut, "exit code: 3") ||
		!strings.Contains(out, "broken | #") || !strings.Contains(out, "error: something went wrong") {
		t.Errorf("failing build:\nstdout:\n%s\nstderr:\n%s", out, errOut)
	}
	list, _, _ := w.run(nil, false, "builds", "-a", "failing")
	if !strings.Contains(list, "\tfailed\t") || strings.Contains(list, "running") {
		t.Errorf("builds after failure:\n%s", list)
	}
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"build", app(t, "demo"), "-a", "demo", "--service", "wbe"}, 1, "wbe"},
		{[]string{"build", app(t, "demo"), "-a", "demo", "--build-arg", "NOVALUE"}, 2, `--build-arg "NOVALUE": expected KEY=VALUE`},
		{[]string{"build", app(t, "demo"), "-a", "demo", "--cache", "s3"}, 2, `--cache "s3"`},
		{[]string{"build", app(t, "demo"), "-a", "demo", "--secret", "id=X"}, 2, "--secret X: environment variable X is empty or unset"},
		{[]string{"build", t.TempDir(), "-a", "empty"}, 1, "no such file: convox.yml"},
	}
	for _, c := range cases {
		_, e, code := w.run(nil, false, c.args...)
		if code != c.code || !strings.Contains(e, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, e, c.code, c.want)
		}
	}
}

func TestBuildsLogsFollowsARunningBuild(t *testing.T) {
	w := newWorld(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "convox.yml"), []byte("services:\n  web:\n    build: .\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM busybox\nRUN echo started-work && sleep 2 && echo finished-work\n"), 0o644)
	done := make(chan string)
	go func() {
		out, _, _ := w.run(nil, false, "build", dir, "-a", "follow", "--no-cache")
		done <- out
	}()
	// Wait for the build to be recorded, then follow it.
	st, err := store.Open(context.Background(), w.vars["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var id string
	for deadline := time.Now().Add(30 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if list, _ := st.ListBuilds(context.Background(), "follow", 1); len(list) == 1 {
			id = list[0].ID
		}
	}
	if id == "" {
		t.Fatal("build never recorded")
	}
	logs, _, code := w.run(nil, false, "builds", "logs", id)
	buildOut := <-done
	if code != 0 || !strings.Contains(logs, "started-work") || !strings.Contains(logs, "finished-work") {
		t.Errorf("followed logs (exit %d):\n%s", code, logs)
	}
	// It ended with the build: every line the build printed is there.
	if end := strings.Index(buildOut, "Image: "); end < 0 || !strings.HasSuffix(buildOut[:end], logs[max(0, len(logs)-200):]) {
		t.Errorf("followed log does not end where the build's output does:\n%s\n---\n%s", logs, buildOut)
	}
}

func TestExportPipedIntoImportRoundTrips(t *testing.T) {
	w := newWorld(t)
	w.vars["REGISTRY"] = w.env.Registry
	out, errOut, code := w.run(nil, false, "build", app(t, "multi"), "-a", "multi", "-e", "APP_VERSION=9", "-e", "REGISTRY")
	if code != 0 {
		t.Fatalf("build: %s\n%s", out, errOut)
	}
	buildID := idLine.FindStringSubmatch(out)[1]

	// builds export BUILD -f - | builds import -a multi2 -f -
	pr, pw := io.Pipe()
	var exportErr bytes.Buffer
	exported := make(chan int)
	go func() {
		code := w.runTo(nil, pw, &exportErr, false, "builds", "export", buildID, "-f", "-")
		pw.Close()
		exported <- code
	}()
	importOut, importErr, code := w.run(pr, false, "builds", "import", "-a", "multi2", "-f", "-")
	if ec := <-exported; ec != 0 || exportErr.String() != "Exporting build... OK\n" {
		t.Fatalf("export exit %d: %q", ec, exportErr.String())
	}
	m := regexp.MustCompile(`^Importing build\.\.\. OK\nBuild: (B[A-Z]{10})\nRelease: (R[A-Z]{10})\n$`).FindStringSubmatch(importOut)
	if code != 0 || m == nil {
		t.Fatalf("import exit %d:\n%s\n%s", code, importOut, importErr)
	}
	newID := m[1]
	if newID == buildID {
		t.Fatal("import reused the build ID")
	}
	st, _ := store.Open(context.Background(), w.vars["DATABASE_URL"])
	defer st.Close()
	orig, _ := st.GetBuild(context.Background(), buildID)
	imported, err := st.GetBuild(context.Background(), newID)
	if err != nil || imported.App != "multi2" || imported.Status != store.StatusComplete || imported.Release != m[2] || imported.Manifest != orig.Manifest {
		t.Fatalf("imported = %+v, %v", imported, err)
	}
	if len(imported.Services) != len(orig.Services) {
		t.Fatalf("imported services %d, original %d", len(imported.Services), len(orig.Services))
	}
	for i, s := range imported.Services {
		o := orig.Services[i]
		wantRef := w.env.Registry + "/multi2:" + o.Service + "." + newID
		if s.Service != o.Service || s.Digest != o.Digest || s.Image != wantRef {
			t.Errorf("imported %+v, original %+v", s, o)
		}
		if d, err := registry.Digest(context.Background(), s.Image, registry.Options{}); err != nil || d != o.Digest {
			t.Errorf("registry %s: %s, %v; want %s", s.Image, d, err, o.Digest)
		}
	}
	rel, err := st.GetRelease(context.Background(), m[2])
	if err != nil || rel.Build != newID || rel.App != "multi2" {
		t.Errorf("release = %+v, %v", rel, err)
	}
	// The log came along.
	if logs, _, _ := w.run(nil, false, "builds", "logs", newID); !strings.Contains(logs, "api: greeting=hello") {
		t.Errorf("imported log:\n%.500s", logs)
	}

	// A truncated file fails clearly and leaves no build behind.
	file := filepath.Join(t.TempDir(), "build.tgz")
	if _, e, code := w.run(nil, false, "builds", "export", buildID, "-f", file); code != 0 {
		t.Fatalf("export to file: %s", e)
	}
	data, _ := os.ReadFile(file)
	os.WriteFile(file, data[:len(data)/2], 0o644)
	_, e, code := w.run(nil, false, "builds", "import", "-a", "multi3", "-f", file)
	if code != 1 || !strings.Contains(e, "truncated") {
		t.Errorf("truncated import: exit %d, %q", code, e)
	}
	if list, _ := st.ListBuilds(context.Background(), "multi3", 0); len(list) != 0 {
		t.Errorf("truncated import left builds: %+v", list)
	}
}

func TestAbandonedBuildIsShownFailed(t *testing.T) {
	w := newWorld(t)
	st, err := store.Open(context.Background(), w.vars["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	// A build whose process died: running, last heartbeat 5 minutes ago.
	b := &store.Build{ID: "BABANDONEDX", App: "gone", Status: store.StatusRunning, Started: t0.Add(-5 * time.Minute), Heartbeat: t0.Add(-5 * time.Minute)}
	if err := st.CreateBuild(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	live := &store.Build{ID: "BLIVEBUILDX", App: "gone", Status: store.StatusRunning, Started: t0.Add(-time.Minute), Heartbeat: t0.Add(-5 * time.Second)}
	if err := st.CreateBuild(context.Background(), live); err != nil {
		t.Fatal(err)
	}
	st.Close()
	out, _, code := w.run(nil, false, "builds", "-a", "gone")
	want := "ID\tSTATUS\tRELEASE\tSTARTED\tELAPSED\tDESCRIPTION\n" +
		"BLIVEBUILDX\trunning\t\t1 minute ago\t1m0s\t\n"
	if code != 0 || !strings.HasPrefix(out, want) || !strings.Contains(out, "BABANDONEDX\tfailed\t\t5 minutes ago\t") {
		t.Errorf("builds =\n%s", out)
	}
	info, _, _ := w.run(nil, false, "builds", "info", "BABANDONEDX")
	if !strings.Contains(info, "Reason       abandoned: the process running this build stopped before it ended") {
		t.Errorf("info =\n%s", info)
	}
}

func TestBuildOverSeveralBuildkitHosts(t *testing.T) {
	w := newWorld(t)
	w.vars["REGISTRY"] = w.env.Registry
	// The same daemon twice is still two hosts to the pool.
	w.vars["BUILDKIT_HOST"] = w.env.BuildkitAddr + "," + w.env.BuildkitAddr
	out, errOut, code := w.run(nil, false, "build", app(t, "multi"), "-a", "multi", "-e", "APP_VERSION=1", "-e", "REGISTRY")
	if code != 0 || idLine.FindStringSubmatch(out) == nil {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	w.vars["BUILDKIT_HOST"] = w.env.BuildkitAddr + ",unix:///nonexistent/buildkitd.sock"
	_, errOut, code = w.run(nil, false, "build", app(t, "demo"), "-a", "demo")
	if code != 1 || !strings.Contains(errOut, "unix:///nonexistent/buildkitd.sock") {
		t.Errorf("a pool with a wrong address: exit %d, %q", code, errOut)
	}
}
