package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// world is the CLI's environment in these tests: the test buildkitd and
// registry (also the docker.io mirror), a SQLite database of its own, and
// a clock the test sets.
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
	w := newStoreWorld(t)
	w.env = env
	w.vars["BUILDKIT_HOST"] = env.BuildkitAddr
	w.vars["CONVOX_BUILD_REGISTRY"] = env.Registry
	w.vars["REGISTRY_MIRRORS"] = "docker.io=" + env.Registry
	return w
}

// newStoreWorld is a world with only a database: for commands that read
// builds.
func newStoreWorld(t *testing.T) *world {
	return &world{t: t, now: t0, vars: map[string]string{
		"DATABASE_URL":  "sqlite://" + filepath.Join(t.TempDir(), "builds.db"),
		"DOCKER_CONFIG": t.TempDir(),
	}}
}

func (w *world) setNow(t time.Time) { w.mu.Lock(); w.now = t; w.mu.Unlock() }

// run runs convox-build with stdin and returns stdout, stderr and the code;
// terminal says whether stdout is a terminal.
func (w *world) run(stdin io.Reader, terminal bool, args ...string) (string, string, int) {
	var out, errOut bytes.Buffer
	code := w.runTo(stdin, &out, &errOut, terminal, args...)
	return out.String(), errOut.String(), code
}

func (w *world) runTo(stdin io.Reader, out, errOut io.Writer, terminal bool, args ...string) int {
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	return w.runIO(&IOStreams{In: stdin, Out: out, ErrOut: errOut, IsTerminal: terminal}, args...)
}

func (w *world) runIO(ios *IOStreams, args ...string) int {
	env := &Env{IO: ios, Getenv: func(k string) string { return w.vars[k] }, Now: w.clock}
	return runCommand(context.Background(), args, env)
}

// clock is the world's time.
func (w *world) clock() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.real {
		return time.Now()
	}
	return w.now
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

// idLine is how convox build ends: pkg/cli/builds.go writes
// "Build:   <build>%s</build>\n" and "Release: <release>%s</release>\n".
var idLine = regexp.MustCompile(`(?m)^Build:   (B[A-Z]{10})\nRelease: (R[A-Z]{10})\n\z`)

func TestBuildThenBuildsInfoAndLogsPrintWhatConvoxPrints(t *testing.T) {
	w := newWorld(t)
	dir := app(t, "demo")
	out, errOut, code := w.run(nil, false, "build", dir, "-a", "demo")
	if code != 0 {
		t.Fatalf("build exit %d\n%s\n%s", code, out, errOut)
	}
	// Convox's TestBuildClassic: "Packaging source... OK", "Starting
	// build... OK", the log, "Build:   build1", "Release: release1".
	if !strings.HasPrefix(out, "Packaging source... OK\nStarting build... OK\n#1 [internal] load build definition from Dockerfile\n") {
		t.Errorf("build output starts:\n%.300s", out)
	}
	m := idLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("build output does not end with Build: and Release: lines:\n%s", out)
	}
	buildID, releaseID := m[1], m[2]
	// Ours: each image's digest, on stderr.
	imageLine := regexp.MustCompile(`^Image: ` + regexp.QuoteMeta(w.env.Registry) + `/demo:web\.` + buildID + `@(sha256:[0-9a-f]{64})\n$`).FindStringSubmatch(errOut)
	if imageLine == nil {
		t.Fatalf("stderr is not one Image: line for web:\n%s", errOut)
	}
	if d, err := registry.Digest(context.Background(), w.env.Registry+"/demo:web."+buildID, registry.Options{}); err != nil || d != imageLine[1] {
		t.Errorf("registry digest %s, %v; printed %s", d, err, imageLine[1])
	}

	// builds: the same columns piped and on a terminal, coloured there.
	w.setNow(t0.Add(90 * time.Second))
	list, _, code := w.run(nil, false, "builds", "-a", "demo")
	header := "ID           STATUS    RELEASE      STARTED       ELAPSED  DESCRIPTION"
	row := buildID + "  complete  " + releaseID + "  1 minute ago  0s       "
	if code != 0 || list != header+"\n"+row+"\n" {
		t.Errorf("builds (piped) =\n%q\nwant\n%q", list, header+"\n"+row+"\n")
	}
	list, _, _ = w.run(nil, true, "builds", "-a", "demo")
	if want := "\033[38;5;244m" + header + "\033[0m\n\033[38;5;251m" + row + "\033[0m\n"; list != want {
		t.Errorf("builds (terminal) =\n%q\nwant\n%q", list, want)
	}

	info, _, code := w.run(nil, false, "builds", "info", buildID, "-a", "demo")
	want := "Id           " + buildID + "\nStatus       complete\nRelease      " + releaseID + "\nDescription  \nStarted      1 minute ago\nElapsed      0s\n" +
		"Images       web  " + w.env.Registry + "/demo:web." + buildID + "@" + imageLine[1] + "\n"
	if code != 0 || info != want {
		t.Errorf("builds info =\n%q\nwant\n%q", info, want)
	}

	// builds logs prints exactly the log lines build printed.
	logs, _, code := w.run(nil, false, "builds", "logs", buildID)
	start := strings.Index(out, "#1 [internal]")
	end := strings.Index(out, "Build:   ")
	if code != 0 || logs != out[start:end] {
		t.Errorf("builds logs differs from the build's output:\n%s\n---\n%s", logs, out[start:end])
	}

	// Wrong app, bad IDs: Convox's "ERROR: " lines.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"builds", "info", buildID, "-a", "other"}, "ERROR: build " + buildID + " belongs to app demo, not other\n"},
		{[]string{"builds", "info", "B123"}, `ERROR: invalid build ID "B123": a build ID is B followed by 10 uppercase letters, like BQULMXNMEIU` + "\n"},
		{[]string{"builds", "logs", "BAAAAAAAAAA"}, "ERROR: no such build: BAAAAAAAAAA\n"},
	} {
		if o, e, code := w.run(nil, false, tc.args...); code != 1 || o != "" || e != tc.want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %q", tc.args, code, o, e, tc.want)
		}
	}
}

// TestBuildImageFromDockerHubThroughMirror builds testdata/apps/hub, whose
// tools service is `image: busybox`: copied from Docker Hub through
// REGISTRY_MIRRORS, here the test registry.
func TestBuildImageFromDockerHubThroughMirror(t *testing.T) {
	w := newWorld(t)
	w.vars["FROM_CLI"] = "from-the-environment"
	out, errOut, code := w.run(nil, false, "build", app(t, "hub"), "-a", "hub", "--build-args", "GREETING=hi", "--build-arg", "FROM_CLI", "--build-args", "UNSET_VAR", "--no-cache")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	buildID := idLine.FindStringSubmatch(out)[1]
	if !strings.Contains(out, "hub: greeting=hi from-cli=from-the-environment") {
		t.Errorf("--build-args and --build-arg did not reach the Dockerfile:\n%s", out)
	}
	want := "Image: " + w.env.Registry + "/hub:tools." + buildID + "@" + w.env.BusyboxDigest + "\n"
	if !strings.Contains(errOut, want) {
		t.Errorf("stderr lacks %q (busybox copied by digest through the mirror):\n%s", want, errOut)
	}
	if !strings.Contains(out, "copying image busybox to "+w.env.Registry+"/hub:tools."+buildID) {
		t.Errorf("the log does not show the copy:\n%s", out)
	}

	// Without the mirror, Docker Hub cannot be reached from here.
	delete(w.vars, "REGISTRY_MIRRORS")
	_, errOut, code = w.run(nil, false, "build", app(t, "hub"), "-a", "hub", "--service", "tools")
	if code != 1 || !regexp.MustCompile(`^ERROR: build B[A-Z]{10} failed: service tools: copying image busybox: pulling index\.docker\.io/library/busybox:latest: `).MatchString(errOut) {
		t.Errorf("without mirror: exit %d, %q", code, errOut)
	}
	w.vars["REGISTRY_MIRRORS"] = "docker.io"
	_, errOut, code = w.run(nil, false, "build", app(t, "hub"), "-a", "hub")
	if want := "ERROR: REGISTRY_MIRRORS: \"docker.io\": want host=mirror, e.g. docker.io=mirror.example.com\n"; code != 1 || errOut != want {
		t.Errorf("bad REGISTRY_MIRRORS: exit %d, %q; want %q", code, errOut, want)
	}
}

func TestBuildIDOnlyPrintsReleaseOnStdout(t *testing.T) {
	w := newWorld(t)
	out, errOut, code := w.run(nil, false, "build", app(t, "demo"), "-a", "demo", "--id")
	// As convox build --id: fmt.Fprintf(stdout, "%s", b.Release), no newline.
	if code != 0 || !regexp.MustCompile(`^R[A-Z]{10}$`).MatchString(out) {
		t.Fatalf("--id stdout = %q (exit %d)\n%s", out, code, errOut)
	}
	if !strings.HasPrefix(errOut, "Packaging source... OK\nStarting build... OK\n") || !strings.HasSuffix(errOut, "\nRelease: "+out+"\n") {
		t.Errorf("stderr does not carry convox build's output:\n%s", errOut)
	}
}

func TestBuildErrorsExitNonZeroWithReason(t *testing.T) {
	w := newWorld(t)
	failing := app(t, "failing")
	out, errOut, code := w.run(nil, false, "build", failing, "-a", "failing")
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	if !regexp.MustCompile(`^ERROR: build B[A-Z]{10} failed: service broken: .*exit code: 3`).MatchString(errOut) ||
		!strings.HasPrefix(out, "Packaging source... OK\nStarting build... OK\n") || strings.Contains(out, "Build:") ||
		!strings.Contains(out, "broken | #") || !strings.Contains(out, "error: something went wrong") {
		t.Errorf("failing build:\nstdout:\n%s\nstderr:\n%s", out, errOut)
	}
	list, _, _ := w.run(nil, false, "builds", "-a", "failing")
	if !strings.Contains(list, "  failed  ") || strings.Contains(list, "running") {
		t.Errorf("builds after failure:\n%s", list)
	}
	cases := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"build", app(t, "demo"), "-a", "demo", "--service", "wbe"}, 1, "Packaging source... ", "wbe"},
		{[]string{"build", app(t, "demo"), "-a", "demo", "--build-args", "=x"}, 2, "", `ERROR: --build-args "=x": expected KEY=VALUE or KEY`},
		{[]string{"build", app(t, "demo"), "-a", "demo", "--cache", "s3"}, 2, "", `ERROR: --cache "s3"`},
		{[]string{"build", app(t, "demo"), "-a", "demo", "--secret", "id=X"}, 2, "", "ERROR: --secret X: environment variable X is empty or unset"},
		{[]string{"build", t.TempDir(), "-a", "empty"}, 1, "Packaging source... ", "no such file: convox.yml"},
	}
	for _, c := range cases {
		o, e, code := w.run(nil, false, c.args...)
		if code != c.code || o != c.stdout || !strings.Contains(e, c.stderr) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d, %q and %q", c.args, code, o, e, c.code, c.stdout, c.stderr)
		}
	}
}

func TestBuildsLogsFollowsARunningBuild(t *testing.T) {
	w := newWorld(t)
	w.vars[envToken] = apiToken
	host := serve(t, w)
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
	// Followed from a server too, at the same time: the same lines.
	remote := make(chan result, 1)
	go func() {
		o, e, code := w.run(nil, false, "builds", "logs", id, "--host", host)
		remote <- result{o, e, code}
	}()
	logs, logsErr, code := w.run(nil, false, "builds", "logs", id)
	buildOut := <-done
	if code != 0 || !strings.Contains(logs, "started-work") || !strings.Contains(logs, "finished-work") {
		t.Errorf("followed logs (exit %d):\n%s%s", code, logs, logsErr)
	}
	if r := <-remote; r.code != 0 || r.out != logs || r.err != "" {
		t.Errorf("followed from the server: exit %d, %q\n%s\nlocally:\n%s", r.code, r.err, r.out, logs)
	}
	// It ended with the build: every line the build printed is there.
	if end := strings.Index(buildOut, "Build:   "); end < 0 || !strings.HasSuffix(buildOut[:end], logs[max(0, len(logs)-200):]) {
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

	// builds export BUILD | builds import -a multi2: no -f, as Convox's
	// TestBuildsExportStdout and TestBuildsImport.
	pr, pw := io.Pipe()
	var exportErr bytes.Buffer
	exported := make(chan int)
	go func() {
		code := w.runTo(nil, pw, &exportErr, false, "builds", "export", buildID)
		pw.Close()
		exported <- code
	}()
	importOut, importErr, code := w.run(pr, false, "builds", "import", "-a", "multi2")
	if ec := <-exported; ec != 0 || exportErr.String() != "Exporting build... OK\n" {
		t.Fatalf("export exit %d: %q", ec, exportErr.String())
	}
	m := regexp.MustCompile(`^Importing build\.\.\. OK, (R[A-Z]{10})\n$`).FindStringSubmatch(importOut)
	if code != 0 || m == nil {
		t.Fatalf("import exit %d:\n%s\n%s", code, importOut, importErr)
	}
	releaseID := m[1]
	m = regexp.MustCompile(`^Build:   (B[A-Z]{10})\n$`).FindStringSubmatch(importErr)
	if m == nil {
		t.Fatalf("import stderr = %q, want the new build's ID", importErr)
	}
	newID := m[1]
	if newID == buildID {
		t.Fatal("import reused the build ID")
	}
	st, _ := store.Open(context.Background(), w.vars["DATABASE_URL"])
	defer st.Close()
	orig, _ := st.GetBuild(context.Background(), buildID)
	imported, err := st.GetBuild(context.Background(), newID)
	if err != nil || imported.App != "multi2" || imported.Status != store.StatusComplete || imported.Release != releaseID || imported.Manifest != orig.Manifest {
		t.Fatalf("imported = %+v, %v", imported, err)
	}
	checkImported := func(t *testing.T, id, app string) {
		t.Helper()
		b, err := st.GetBuild(context.Background(), id)
		if err != nil || b.App != app || len(b.Services) != len(orig.Services) {
			t.Fatalf("imported %s = %+v, %v; want %d services of app %s", id, b, err, len(orig.Services), app)
		}
		for i, s := range b.Services {
			o := orig.Services[i]
			wantRef := w.env.Registry + "/" + app + ":" + o.Service + "." + id
			if s.Service != o.Service || s.Digest != o.Digest || s.Image != wantRef {
				t.Errorf("imported %+v, original %+v", s, o)
			}
			if d, err := registry.Digest(context.Background(), s.Image, registry.Options{}); err != nil || d != o.Digest {
				t.Errorf("registry %s: %s, %v; want %s", s.Image, d, err, o.Digest)
			}
		}
	}
	checkImported(t, newID, "multi2")
	rel, err := st.GetRelease(context.Background(), releaseID)
	if err != nil || rel.Build != newID || rel.App != "multi2" {
		t.Errorf("release = %+v, %v", rel, err)
	}
	// The log came along.
	if logs, _, _ := w.run(nil, false, "builds", "logs", newID); !strings.Contains(logs, "api: greeting=hello") {
		t.Errorf("imported log:\n%.500s", logs)
	}

	// With -f, and --id: Convox's "Exporting build... OK" on stdout; with
	// --id the release alone on stdout, the rest on stderr.
	file := filepath.Join(t.TempDir(), "build.tgz")
	if o, e, code := w.run(nil, false, "builds", "export", buildID, "-f", file); code != 0 || o != "Exporting build... OK\n" || e != "" {
		t.Fatalf("export to file: exit %d, %q, %q", code, o, e)
	}
	o, e, code := w.run(nil, false, "builds", "import", "-a", "multi3", "-f", file, "--id")
	if code != 0 || !regexp.MustCompile(`^R[A-Z]{10}$`).MatchString(o) || !regexp.MustCompile(`^Importing build\.\.\. OK, `+o+`\nBuild:   B[A-Z]{10}\n$`).MatchString(e) {
		t.Errorf("import --id: exit %d, stdout %q, stderr %q", code, o, e)
	}

	// Neither writes an archive to, nor reads one from, a terminal.
	o, e, code = w.run(nil, true, "builds", "export", buildID)
	if want := "\033[38;5;124mERROR: \033[38;5;203mpipe this command into a file or specify --file\033[0m\n"; code != 1 || o != "" || e != want {
		t.Errorf("export to a terminal: exit %d, %q, %q; want %q", code, o, e, want)
	}
	var iout, ierr bytes.Buffer
	code = w.runIO(&IOStreams{In: strings.NewReader("not read"), Out: &iout, ErrOut: &ierr, InIsTerminal: true}, "builds", "import", "-a", "multi3")
	if want := "ERROR: pipe a file into this command or specify --file\n"; code != 1 || iout.String() != "" || ierr.String() != want {
		t.Errorf("import from a terminal: exit %d, %q, %q; want %q", code, iout.String(), ierr.String(), want)
	}

	// The built binary, through real pipes and files:
	//   convox-build builds export B > f; cat f | convox-build builds import -a X
	bin := buildBinary(t)
	sh := func(t *testing.T, script string, stdin, stdout *os.File, vars ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command("sh", "-c", script)
		cmd.Env = append(os.Environ(), "BIN="+bin, "ID="+buildID, "FILE="+file)
		for k, v := range w.vars {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		cmd.Env = append(cmd.Env, vars...)
		var outBuf, errBuf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &outBuf, &errBuf
		if stdin != nil {
			cmd.Stdin = stdin
		}
		if stdout != nil {
			cmd.Stdout = stdout
		}
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return outBuf.String(), errBuf.String(), cmd.ProcessState.ExitCode()
	}
	os.Remove(file)
	if o, e, code := sh(t, `"$BIN" builds export "$ID" > "$FILE"`, nil, nil); code != 0 || o != "" || e != "Exporting build... OK\n" {
		t.Fatalf("builds export B > f: exit %d, %q, %q", code, o, e)
	}
	if b, err := os.ReadFile(file); err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("%s is not a gzip file (%d bytes, %v)", file, len(b), err)
	}
	o, e, code = sh(t, `cat "$FILE" | "$BIN" builds import -a multi4`, nil, nil)
	m = regexp.MustCompile(`^Importing build\.\.\. OK, R[A-Z]{10}\n$`).FindStringSubmatch(o)
	em := regexp.MustCompile(`^Build:   (B[A-Z]{10})\n$`).FindStringSubmatch(e)
	if code != 0 || m == nil || em == nil {
		t.Fatalf("cat f | builds import: exit %d, %q, %q", code, o, e)
	}
	checkImported(t, em[1], "multi4")
	o, e, code = sh(t, `"$BIN" builds export "$ID" 2>"$FILE.err" | "$BIN" builds import -a multi5 --id`, nil, nil)
	exportStderr, _ := os.ReadFile(file + ".err")
	if code != 0 || !regexp.MustCompile(`^R[A-Z]{10}$`).MatchString(o) || string(exportStderr) != "Exporting build... OK\n" ||
		!regexp.MustCompile(`^Importing build\.\.\. OK, `+o+`\nBuild:   B[A-Z]{10}\n$`).MatchString(e) {
		t.Errorf("builds export B | builds import --id: exit %d, %q, %q, export's stderr %q", code, o, e, exportStderr)
	}
	// A real terminal: stdout for export, stdin for import.
	master, slave := openPTY(t)
	defer master.Close()
	defer slave.Close()
	if o, e, code := sh(t, `exec "$BIN" builds export "$ID"`, nil, slave); code != 1 || o != "" ||
		e != "\033[38;5;124mERROR: \033[38;5;203mpipe this command into a file or specify --file\033[0m\n" {
		t.Errorf("export to a terminal: exit %d, %q", code, e)
	}
	if o, e, code := sh(t, `exec "$BIN" builds import -a multi6`, slave, nil); code != 1 || o != "" ||
		e != "ERROR: pipe a file into this command or specify --file\n" {
		t.Errorf("import from a terminal: exit %d, %q, %q", code, o, e)
	}

	// A truncated file fails clearly and leaves no build behind.
	data, _ := os.ReadFile(file)
	os.WriteFile(file, data[:len(data)/2], 0o644)
	o, e, code = w.run(nil, false, "builds", "import", "-a", "multi7", "-f", file)
	if code != 1 || o != "Importing build... " || !strings.HasPrefix(e, "ERROR: importing "+file+": ") || !strings.Contains(e, "truncated") {
		t.Errorf("truncated import: exit %d, %q, %q", code, o, e)
	}
	if list, _ := st.ListBuilds(context.Background(), "multi7", 0); len(list) != 0 {
		t.Errorf("truncated import left builds: %+v", list)
	}
}

// buildBinary builds cmd/convox-build into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "convox-build")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/convox-build-action/convox-build-action/cmd/convox-build").CombinedOutput(); err != nil {
		t.Fatalf("building convox-build: %v\n%s", err, out)
	}
	return bin
}

// openPTY opens a pseudo-terminal and returns its master and slave.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	ioctl := func(req uintptr, arg unsafe.Pointer) {
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), req, uintptr(arg)); errno != 0 {
			t.Fatalf("ioctl %#x on /dev/ptmx: %v", req, errno)
		}
	}
	var unlock int32
	ioctl(syscall.TIOCSPTLCK, unsafe.Pointer(&unlock))
	var n uint32
	ioctl(syscall.TIOCGPTN, unsafe.Pointer(&n))
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Fatal(err)
	}
	return master, slave
}

func TestAbandonedBuildIsShownFailed(t *testing.T) {
	w := newStoreWorld(t)
	// The store ends a reaped build at its own (real) time: the test's
	// clock is the real one here.
	now := time.Now().UTC()
	w.setNow(now)
	st, err := store.Open(context.Background(), w.vars["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// A build whose process died: running, last heartbeat 5 minutes ago.
	b := &store.Build{ID: "BABANDONEDX", App: "gone", Status: store.StatusRunning, Started: now.Add(-5 * time.Minute), Heartbeat: now.Add(-5 * time.Minute)}
	if err := st.CreateBuild(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	live := &store.Build{ID: "BLIVEBUILDX", App: "gone", Status: store.StatusRunning, Started: now.Add(-time.Minute), Heartbeat: now.Add(-5 * time.Second)}
	if err := st.CreateBuild(context.Background(), live); err != nil {
		t.Fatal(err)
	}
	out, _, code := w.run(nil, false, "builds", "-a", "gone")
	reaped, err := st.GetBuild(context.Background(), "BABANDONEDX")
	if err != nil || reaped.Status != store.StatusFailed || reaped.Ended.Sub(now) > 5*time.Second || reaped.Ended.Before(now) {
		t.Fatalf("reaped = %+v, %v", reaped, err)
	}
	elapsed := duration(reaped.Started, reaped.Ended) // 5m0s, or 5m1s on a slow machine
	if !strings.HasPrefix(elapsed, "5m") || len(elapsed) != 4 {
		t.Fatalf("elapsed %q", elapsed)
	}
	// Convox leaves ELAPSED empty until a build ends.
	want := "ID           STATUS   RELEASE  STARTED        ELAPSED  DESCRIPTION\n" +
		"BLIVEBUILDX  running           1 minute ago            \n" +
		"BABANDONEDX  failed            5 minutes ago  " + elapsed + "     \n"
	if code != 0 || out != want {
		t.Errorf("builds =\n%q\nwant\n%q", out, want)
	}
	info, _, _ := w.run(nil, false, "builds", "info", "BABANDONEDX")
	if want := "Id           BABANDONEDX\nStatus       failed\nRelease      \nDescription  \nStarted      5 minutes ago\nElapsed      " + elapsed + "\n" +
		"Reason       abandoned: the process running this build stopped before it ended\n"; info != want {
		t.Errorf("info =\n%q\nwant\n%q", info, want)
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
