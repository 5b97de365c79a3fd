package cli

import (
	"bufio"
	"bytes"
	"compress/gzip"
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
)

// convoxBuildBinary builds cmd/convox-build once per test process.
var convoxBuildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "convox-build-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "convox-build")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/convox-build").CombinedOutput()
	if err != nil {
		return "", &exec.ExitError{Stderr: out}
	}
	return bin, nil
})

func binary(t *testing.T) string {
	t.Helper()
	bin, err := convoxBuildBinary()
	if err != nil {
		t.Fatalf("building convox-build: %v", err)
	}
	return bin
}

func TestSecretsFromFilesNeverAppearAnywhere(t *testing.T) {
	w := newWorld(t)
	secrets := map[string]string{
		"nl":    "s3cr3t-with-newline\n",
		"plain": "s3cr3t-without-newline",
		"crlf":  "s3cr3t-with-crlf\r\n",
		"pem": "-----BEGIN OPENSSH PRIVATE KEY-----\n" +
			"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n" +
			"QyNTUxOQAAACDk0ZGVhZGJlZWZkZWFkYmVlZmRlYWRiZWVmZGVhZGJlZWYAAAA0\n" +
			"-----END OPENSSH PRIVATE KEY-----\n",
	}
	var forbidden []string
	dir := t.TempDir()
	files := map[string]string{"convox.yml": "services:\n\tweb:\n\t\tbuild: .\n"}
	var flags []string
	for id, v := range secrets {
		files[id+".txt"] = v
		flags = append(flags, "--secret", "id="+id+",src="+filepath.Join(dir, id+".txt"))
		for _, line := range strings.FieldsFunc(v, func(r rune) bool { return r == '\n' || r == '\r' }) {
			if !strings.HasPrefix(line, "-----") {
				forbidden = append(forbidden, line)
			}
		}
	}
	cat := "cat /run/secrets/nl /run/secrets/plain /run/secrets/crlf /run/secrets/pem"
	mounts := "--mount=type=secret,id=nl --mount=type=secret,id=plain --mount=type=secret,id=crlf --mount=type=secret,id=pem"
	files["Dockerfile"] = "FROM busybox\nRUN " + mounts + " " + cat + " && echo; echo printed\n"
	files["Dockerfile.fail"] = "FROM busybox\nRUN " + mounts + " " + cat + "; exit 7\n"
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.ReplaceAll(content, "\t", "  ")), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	check := func(what, text string) {
		t.Helper()
		for _, s := range forbidden {
			if strings.Contains(text, s) {
				t.Errorf("%s holds the secret line %q", what, s)
			}
		}
	}
	args := append([]string{"build", dir, "-a", "secrets", "--no-cache"}, flags...)
	out, errOut, code := w.run(nil, false, args...)
	if code != 0 {
		t.Fatalf("build exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "***") || !strings.Contains(out, "printed") {
		t.Errorf("the RUN output was not shown redacted:\n%s", out)
	}
	check("build stdout", out)
	check("build stderr", errOut)
	id := regexp.MustCompile(`Build: +(B[A-Z]{10})`).FindStringSubmatch(out)[1]

	logs, _, _ := w.run(nil, false, "builds", "logs", id)
	check("builds logs", logs)
	if !strings.Contains(logs, "printed") {
		t.Errorf("builds logs:\n%s", logs)
	}
	var export bytes.Buffer
	if code := w.runTo(nil, &export, io.Discard, false, "builds", "export", id, "-f", "-"); code != 0 {
		t.Fatalf("export exit %d", code)
	}
	zr, err := gzip.NewReader(&export)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	check("the export", string(plain))

	// A failing step: its output is in the error report too.
	os.WriteFile(filepath.Join(dir, "convox.yml"), []byte("services:\n  web:\n    build:\n      manifest: Dockerfile.fail\n"), 0o644)
	out, errOut, code = w.run(nil, false, args...)
	if code == 0 {
		t.Fatal("failing build succeeded")
	}
	check("failed build stdout", out)
	check("failed build stderr", errOut)
	id = regexp.MustCompile(`build (B[A-Z]{10}) failed`).FindStringSubmatch(errOut)[1]
	info, _, _ := w.run(nil, false, "builds", "info", id)
	check("builds info of the failed build", info)

	// And nothing in the database files.
	dbFile := strings.TrimPrefix(w.vars["DATABASE_URL"], "sqlite://")
	matches, _ := filepath.Glob(dbFile + "*")
	if len(matches) == 0 {
		t.Fatal("no database file")
	}
	for _, f := range matches {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		check(filepath.Base(f), string(data))
	}
}

func TestKilledBuildIsReportedFailedAndItsLogsEnd(t *testing.T) {
	w := newWorld(t)
	w.vars["CONVOX_BUILD_HEARTBEAT_INTERVAL"] = "500ms" // stale after 3 s
	w.real = true
	dir := writeDir(t, map[string]string{
		"convox.yml": "services:\n\tweb:\n\t\tbuild: .\n",
		"Dockerfile": "FROM busybox\nRUN echo started-sleeping && sleep 120\n",
	})
	cmd := exec.Command(binary(t), "build", dir, "-a", "killed", "--no-cache")
	for k, v := range w.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "PATH="+os.Getenv("PATH"), "HOME="+t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "started-sleeping") && !strings.Contains(sc.Text(), "RUN") {
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	time.Sleep(500 * time.Millisecond) // the log reaches the store in batches every 100 ms
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed := time.Now()

	list, _, _ := w.run(nil, false, "builds", "-a", "killed")
	id := regexp.MustCompile(`B[A-Z]{10}`).FindString(list)
	if id == "" || !strings.Contains(list, "running") {
		t.Fatalf("right after the kill, builds = %q, want the build running", list)
	}
	// builds logs follows, and ends once the heartbeat is stale.
	done := make(chan string, 1)
	go func() {
		out, _, _ := w.run(nil, false, "builds", "logs", id)
		done <- out
	}()
	select {
	case out := <-done:
		if !strings.Contains(out, "started-sleeping") {
			t.Errorf("builds logs:\n%s", out)
		}
		if took := time.Since(killed); took > 3*time.Second+5*time.Second {
			t.Errorf("builds logs ended %s after the kill, want within the 3 s window plus a few seconds", took)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("builds logs still following 30 s after the build's process was killed")
	}
	info, _, code := w.run(nil, false, "builds", "info", id)
	if code != 0 || !regexp.MustCompile(`(?m)^Status\s+failed$`).MatchString(info) || !strings.Contains(info, "abandoned") {
		t.Errorf("builds info after the kill:\n%s", info)
	}
}
