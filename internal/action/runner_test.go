package action_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/action"
	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// payloads are real webhook payloads, as GITHUB_EVENT_PATH points at them.
var payloads = filepath.Join("..", "..", "..", "shared", "testdata-corpus", "github-payloads")

func payload(t testing.TB, name string) string {
	t.Helper()
	for _, dir := range []string{payloads, "/work/shared/testdata-corpus/github-payloads"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			abs, _ := filepath.Abs(p)
			return abs
		}
	}
	t.Fatalf("payload %s not found under %s", name, payloads)
	return ""
}

// job is one step of a workflow job, laid out as the runner lays it out:
// a workspace, the file-command files, the event payload and the
// environment with INPUT_* variables named as the runner names them
// (upper case, hyphens kept).
type job struct {
	t         testing.TB
	env       map[string]string
	workspace string
	output    string
	summary   string
	gh        *testenv.GitHub
	stdout    bytes.Buffer
	err       error
	took      time.Duration
}

func newJob(t testing.TB, files map[string]string, event string) *job {
	t.Helper()
	dir := t.TempDir()
	j := &job{t: t, workspace: filepath.Join(dir, "workspace"), output: filepath.Join(dir, "file_commands", "set_output"),
		summary: filepath.Join(dir, "file_commands", "step_summary"), gh: testenv.FakeGitHub(t)}
	for name, content := range files {
		p := filepath.Join(j.workspace, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Dir(j.output), 0o755)
	for _, f := range []string{j.output, j.summary} {
		os.WriteFile(f, nil, 0o644)
	}
	j.env = map[string]string{
		"CI": "true", "GITHUB_ACTIONS": "true", "HOME": filepath.Join(dir, "home"),
		"GITHUB_WORKSPACE": j.workspace, "GITHUB_OUTPUT": j.output, "GITHUB_STEP_SUMMARY": j.summary,
		"GITHUB_REPOSITORY": "Codertocat/Hello-World", "GITHUB_REPOSITORY_OWNER": "Codertocat",
		"GITHUB_SHA": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "GITHUB_REF": "refs/heads/simple-tag",
		"GITHUB_ACTOR": "Codertocat", "GITHUB_RUN_ID": "7321", "GITHUB_RUN_ATTEMPT": "1",
		"GITHUB_SERVER_URL": "https://github.com", "GITHUB_API_URL": j.gh.URL,
		"GITHUB_EVENT_NAME": strings.SplitN(event, "/", 2)[0], "GITHUB_EVENT_PATH": payload(t, event),
		// action.yml defaults, as the runner passes them
		"INPUT_MANIFEST": "convox.yml", "INPUT_PUSH": "true", "INPUT_CHECKS": "true", "INPUT_SUMMARY": "true",
		"INPUT_GITHUB-TOKEN": "ghs_jobtoken0123456789abcdef",
	}
	return j
}

func (j *job) input(name, value string) { j.env["INPUT_"+strings.ToUpper(name)] = value }

func (j *job) run(cfg action.Config) {
	j.t.Helper()
	cfg.Getenv = func(k string) string { return j.env[k] }
	cfg.Stdout = &j.stdout
	if cfg.StateDir == "" {
		cfg.StateDir = j.t.TempDir()
	}
	if cfg.ProgressInterval == 0 {
		cfg.ProgressInterval = 300 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	start := time.Now()
	j.err = action.Run(ctx, cfg)
	j.took = time.Since(start)
}

// outputs parses GITHUB_OUTPUT as the runner does: name=value lines and
// name<<DELIMITER blocks.
func (j *job) outputs() map[string]string {
	j.t.Helper()
	b, err := os.ReadFile(j.output)
	if err != nil {
		j.t.Fatal(err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		eq, heredoc := strings.Index(line, "="), strings.Index(line, "<<")
		if heredoc > 0 && (eq < 0 || heredoc < eq) {
			name, delim := line[:heredoc], line[heredoc+2:]
			var val []string
			closed := false
			for sc.Scan() {
				if sc.Text() == delim {
					closed = true
					break
				}
				val = append(val, sc.Text())
			}
			if !closed {
				j.t.Fatalf("GITHUB_OUTPUT: %s<<%s is never closed", name, delim)
			}
			if _, dup := out[name]; dup {
				j.t.Errorf("GITHUB_OUTPUT sets %s twice", name)
			}
			out[name] = strings.Join(val, "\n")
			continue
		}
		if eq <= 0 {
			j.t.Fatalf("GITHUB_OUTPUT: invalid line %q", line)
		}
		out[line[:eq]] = line[eq+1:]
	}
	return out
}

func (j *job) summaryText() string {
	b, err := os.ReadFile(j.summary)
	if err != nil {
		j.t.Fatal(err)
	}
	return string(b)
}

// command is a workflow command the runner would carry out.
type command struct {
	Name    string
	Props   map[string]string
	Message string
}

// commands reads the log as the runner does and returns the workflow
// commands it would carry out: "::name props::message" at the start of a
// line (after white space), "##[name props]message" anywhere in a line
// (the old syntax), none between ::stop-commands::TOKEN and ::TOKEN::.
func (j *job) commands() []command {
	var out []command
	stopToken := ""
	for _, raw := range strings.Split(j.stdout.String(), "\n") {
		line := strings.TrimLeft(raw, " \t")
		if stopToken != "" {
			if strings.TrimSpace(line) == "::"+stopToken+"::" {
				stopToken = ""
			}
			continue
		}
		var c command
		switch {
		case strings.HasPrefix(line, "::"):
			rest := line[2:]
			end := strings.Index(rest, "::")
			if end < 0 {
				continue
			}
			c = parseCommand(rest[:end], rest[end+2:])
		case strings.Contains(line, "##["):
			rest := line[strings.Index(line, "##[")+3:]
			end := strings.Index(rest, "]")
			if end < 0 {
				continue
			}
			c = parseCommand(strings.ReplaceAll(rest[:end], ";", ","), rest[end+1:])
		default:
			continue
		}
		if c.Name == "stop-commands" {
			stopToken = c.Message
			continue
		}
		out = append(out, c)
	}
	return out
}

func parseCommand(head, message string) command {
	name, props, _ := strings.Cut(head, " ")
	c := command{Name: name, Props: map[string]string{}, Message: unescape(message)}
	for _, p := range strings.Split(props, ",") {
		if k, v, ok := strings.Cut(p, "="); ok {
			c.Props[k] = unescape(v)
		}
	}
	return c
}

func unescape(s string) string {
	return strings.NewReplacer("%0D", "\r", "%0A", "\n", "%3A", ":", "%2C", ",", "%25", "%").Replace(s)
}

func (j *job) commandsNamed(name string) []command {
	var out []command
	for _, c := range j.commands() {
		if c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

// visible is the log as a person sees it: without command lines.
func (j *job) visible() string {
	var out []string
	for _, l := range strings.Split(j.stdout.String(), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "::") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
