package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary builds this command once per test process, into one place
// under the temporary directory that every run reuses (go build is
// incremental; the rename makes the swap atomic).
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir := filepath.Join(os.TempDir(), "convox-build-webhook-e2e")
		if binErr = os.MkdirAll(dir, 0o755); binErr != nil {
			return
		}
		tmp := filepath.Join(dir, fmt.Sprintf("convox-build-webhook.%d", os.Getpid()))
		out, err := exec.Command("go", "build", "-o", tmp, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		binPath = filepath.Join(dir, "convox-build-webhook")
		binErr = os.Rename(tmp, binPath)
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// world is what a server process runs against: a fake GitHub, buildkitd,
// a registry and a database, kept across restarts of the process.
type world struct {
	t       *testing.T
	gh      *testenv.FakeGitHubApp
	env     *testenv.Env
	secret  []byte
	dataDir string
	dbURL   string
	extra   map[string]string
}

func newWorld(t *testing.T, database string) *world {
	w := &world{t: t, gh: testenv.NewFakeGitHubApp(t), env: testenv.Build(t), secret: []byte("e2e-" + randomHex(8)),
		dataDir: t.TempDir(), extra: map[string]string{}}
	switch database {
	case "sqlite":
	case "postgres":
		w.dbURL = testenv.PostgresURL(t)
	default:
		t.Fatalf("database %q", database)
	}
	return w
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// proc is a running server process.
type proc struct {
	w      *world
	cmd    *exec.Cmd
	addr   string
	log    *logBuffer
	exited chan struct{}
	err    error
}

type logBuffer struct {
	mu    sync.Mutex
	lines [][]byte
}

func (l *logBuffer) add(line []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, bytes.Clone(line))
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(bytes.Join(l.lines, []byte("\n")))
}

// tail is the last n lines.
func (l *logBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(bytes.Join(l.lines[max(0, len(l.lines)-n):], []byte("\n")))
}

// entries decodes the JSON lines.
func (l *logBuffer) entries() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range l.lines {
		var m map[string]any
		if json.Unmarshal(line, &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// start runs the server process and waits until it listens.
func (w *world) start() *proc {
	w.t.Helper()
	return w.startWith(nil)
}

// startWith runs the server process with more (or other) variables than
// the world's, e.g. a DATA_DIR of its own for a second replica.
func (w *world) startWith(vars map[string]string) *proc {
	t := w.t
	t.Helper()
	env := map[string]string{
		"PATH":                  os.Getenv("PATH"),
		"HOME":                  w.dataDir,
		"GITHUB_APP_ID":         strconv.FormatInt(w.gh.AppID, 10),
		"GITHUB_PRIVATE_KEY":    string(w.gh.PrivateKey),
		"GITHUB_WEBHOOK_SECRET": string(w.secret),
		"GITHUB_API_URL":        w.gh.APIURL,
		"DATA_DIR":              w.dataDir,
		"DATABASE_URL":          w.dbURL,
		"BUILDKIT_HOST":         w.env.BuildkitAddr,
		"IMAGE_REPOSITORY":      w.env.Registry + "/{owner}/{repo}",
		"PUBLIC_URL":            "https://builds.example.test",
		"LISTEN_ADDR":           "127.0.0.1:0",
		"CHECK_UPDATE_INTERVAL": "1s",
		"LOG_LEVEL":             "debug",
	}
	for k, v := range w.extra {
		env[k] = v
	}
	for k, v := range vars {
		env[k] = v
	}
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	p := &proc{w: w, log: &logBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(binary(t))
	p.cmd.Env = environ
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan string, 1)
	go func() {
		sent := false
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			p.log.add(line)
			if !sent && bytes.Contains(line, []byte(`"msg":"listening"`)) {
				var m struct{ Addr string }
				if json.Unmarshal(line, &m) == nil {
					listening <- m.Addr
					sent = true
				}
			}
		}
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("server log (the end):\n%s", p.log.tail(150))
		}
	})
	select {
	case p.addr = <-listening:
	case <-p.exited:
		t.Fatalf("the server exited at start-up: %v\n%s", p.err, p.log.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("the server did not listen within 60s:\n%s", p.log.String())
	}
	return p
}

// deliver sends a signed delivery and returns the status and answer.
func (p *proc) deliver(event, delivery string, body []byte) (int, map[string]any) {
	t := p.w.t
	t.Helper()
	req, err := testenv.WebhookRequest("http://"+p.addr+"/webhook", p.w.secret, event, delivery, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// push delivers a push of sha to branch of owner/repo, built from the
// real payload, and returns the build ID the server answered with.
func (p *proc) push(owner, repo, branch, sha, message string) string {
	t := p.w.t
	t.Helper()
	body := pushPayload(t, owner, repo, branch, sha, message)
	status, resp := p.deliver("push", "push-"+sha[:12], body)
	builds, _ := resp["builds"].([]any)
	if status != http.StatusAccepted || len(builds) != 1 {
		t.Fatalf("push of %s: %d %v", sha, status, resp)
	}
	return builds[0].(string)
}

// pushPayload is the real push payload (testdata/github-payloads), for
// another repository, branch and commit.
func pushPayload(t testing.TB, owner, repo, branch, sha, message string) []byte {
	var m map[string]any
	if err := json.Unmarshal(testenv.GitHubPayload(t, "push/with-new-branch.payload.json"), &m); err != nil {
		t.Fatal(err)
	}
	m["ref"] = "refs/heads/" + branch
	m["after"] = sha
	m["head_commit"].(map[string]any)["id"] = sha
	m["head_commit"].(map[string]any)["message"] = message
	r := m["repository"].(map[string]any)
	r["name"], r["full_name"] = repo, owner+"/"+repo
	r["owner"].(map[string]any)["login"], r["owner"].(map[string]any)["name"] = owner, owner
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signal sends sig to the process.
func (p *proc) signal(sig syscall.Signal) {
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.w.t.Fatal(err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(timeout time.Duration) int {
	t := p.w.t
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		t.Fatalf("the server did not exit within %v", timeout)
	}
	if p.cmd.ProcessState == nil {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// commit serves files as owner/repo at a new commit, returning its SHA.
func (w *world) commit(owner, repo string, files map[string]string) string {
	t := w.t
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sha := randomHex(20)
	w.gh.AddCommit(t, owner, repo, sha, dir)
	return sha
}

// checkRun returns the check run whose external ID is build id.
func (w *world) checkRun(id string) (testenv.FakeCheckRun, bool) {
	var found testenv.FakeCheckRun
	n := 0
	for _, c := range w.gh.CheckRuns() {
		if c.ExternalID == id {
			found = c
			n++
		}
	}
	if n > 1 {
		w.t.Errorf("%d check runs for build %s, want one", n, id)
	}
	return found, n > 0
}

// waitFor polls cond every 100 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	began := time.Now()
	for !cond() {
		if time.Since(began) > timeout {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(began)
}

// completed waits for build id's check run to complete.
func (w *world) completed(id string, timeout time.Duration) testenv.FakeCheckRun {
	w.t.Helper()
	waitFor(w.t, timeout, "the check run of "+id+" to complete", func() bool {
		c, ok := w.checkRun(id)
		return ok && c.Status == "completed"
	})
	c, _ := w.checkRun(id)
	return c
}

// noSecrets checks that the log shows no token, signed URL or webhook
// secret.
func (p *proc) noSecrets() {
	t := p.w.t
	t.Helper()
	log := p.log.String()
	secrets := append(p.w.gh.Secrets(), string(p.w.secret), "BEGIN RSA PRIVATE KEY")
	for _, s := range secrets {
		if s != "" && strings.Contains(log, s) {
			t.Errorf("the server log shows a secret (%.12s...)", s)
		}
	}
	if regexp.MustCompile(`token=[0-9a-f]{8}`).MatchString(log) {
		t.Error("the server log shows a signed URL's token")
	}
}

// logsOf returns the log entries about build id.
func (p *proc) logsOf(id string) []map[string]any {
	var out []map[string]any
	for _, e := range p.log.entries() {
		if e["build_id"] == id {
			out = append(out, e)
		}
	}
	return out
}

// edit returns payload with changes applied to its decoded JSON.
func edit(t testing.TB, payload []byte, change func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatal(err)
	}
	change(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
