package action

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	githubactions "github.com/sethvargo/go-githubactions"

	"github.com/convox-build-action/convox-build-action/internal/build"
)

// maxGroupLines bounds the lines kept for one service's log group; the
// build log in the check run and the export has them all.
const maxGroupLines = 50000

// console writes the build to the job's log as a person reads it: short
// progress lines while services build, then each service's whole log in a
// group of its own once it finishes, so that concurrent builds never
// interleave inside a group. Every line that comes from the build (which
// runs the user's Dockerfile, so is untrusted) is printed between
// ::stop-commands::TOKEN and ::TOKEN::, so it cannot issue workflow
// commands; the progress lines quote the build's text only after a prefix
// of ours, so no line starts with "::".
type console struct {
	w     io.Writer
	a     *githubactions.Action
	token string
	now   func() time.Time

	mu       sync.Mutex
	running  map[string]*serviceLog // by group key
	order    []string
	finished bool
}

type serviceLog struct {
	services []string
	started  time.Time
	lines    []string
	dropped  int
	step     string // the last step BuildKit started
}

func newConsole(w io.Writer, a *githubactions.Action, now func() time.Time) *console {
	return &console{w: w, a: a, token: newToken(), now: now, running: map[string]*serviceLog{}}
}

// newToken is a stop-commands token no build can guess.
func newToken() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("reading random bytes: %v", err)) // crypto/rand never fails on Linux
	}
	return "convox-build-" + hex.EncodeToString(b)
}

// untrusted prints lines so that no workflow command in them is run.
func (c *console) untrusted(lines []string) {
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(c.w, "::stop-commands::%s\n", c.token)
	for _, l := range lines {
		fmt.Fprintln(c.w, strings.TrimRight(l, "\r\n"))
	}
	fmt.Fprintf(c.w, "::%s::\n", c.token)
}

// Infof prints a line of the action's own.
func (c *console) Infof(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, format+"\n", args...)
}

// stepLine matches BuildKit's plain progress line that starts a step,
// "#5 [web 2/3] RUN make", after the engine's "services | " prefix.
var stepLine = regexp.MustCompile(`^#\d+ \[.*\] `)

// Event is the console's build.Sink.
func (c *console) Event(e build.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := strings.Join(e.Services, ", ")
	switch e.Type {
	case build.ServiceStarted:
		if _, ok := c.running[key]; !ok {
			c.running[key] = &serviceLog{services: e.Services, started: e.Time}
			c.order = append(c.order, key)
			fmt.Fprintf(c.w, "[%s] started\n", sanitize(key, 200))
		}
	case build.LogLine:
		s := c.running[key]
		if s == nil {
			c.untrusted([]string{e.Line})
			return
		}
		line := e.Line
		if len(s.services) > 0 {
			_, rest, ok := strings.Cut(line, " | ")
			if ok && strings.HasPrefix(line, strings.Join(s.services, ",")+" | ") {
				line = rest
			}
		}
		if stepLine.MatchString(line) {
			s.step = line
		}
		if len(s.lines) < maxGroupLines {
			s.lines = append(s.lines, line)
		} else {
			s.dropped++
		}
	case build.LogsDropped:
		fmt.Fprintf(c.w, "(%d log lines were not shown here because the log fell behind; the check run and the export have them all)\n", e.Dropped)
	case build.Warned:
		if e.Warning != nil && e.Warning.Kind != build.WarningManifest {
			c.a.Warningf("%s", e.Warning.String())
		}
	case build.ServiceFinished:
		s := c.running[key]
		if s == nil {
			s = &serviceLog{services: e.Services, started: e.Time}
		}
		delete(c.running, key)
		c.group(key, s, e)
	}
}

// group prints one finished service's log.
func (c *console) group(key string, s *serviceLog, e build.Event) {
	d := e.Time.Sub(s.started).Round(100 * time.Millisecond)
	title := key + ": "
	switch {
	case e.Err != nil:
		title += fmt.Sprintf("failed after %s", d)
	case len(e.Images) > 0 && e.Images[0].ImageOnly:
		title += fmt.Sprintf("image %s@%s", e.Images[0].Image, e.Images[0].Digest)
	case len(e.Images) > 0:
		img := e.Images[0]
		title += fmt.Sprintf("built in %s, %d of %d steps cached", d, img.CachedSteps, img.TotalSteps)
	default:
		title += "done"
	}
	c.a.Group(title)
	lines := s.lines
	if s.dropped > 0 {
		lines = append(lines, fmt.Sprintf("(%d more lines not shown here: the check run and the export have the whole log)", s.dropped))
	}
	c.untrusted(lines)
	c.a.EndGroup()
	if e.Err != nil {
		fmt.Fprintf(c.w, "[%s] failed\n", sanitize(key, 200))
	}
}

// progress prints one short line per service still building: its time so
// far and the step it is on.
func (c *console) progress() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	keys := make([]string, 0, len(c.running))
	for k := range c.running {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s := c.running[k]
		step := "waiting for BuildKit"
		if s.step != "" {
			step = sanitize(s.step, 160)
		}
		fmt.Fprintf(c.w, "[%s] building for %s: %s\n", sanitize(k, 200), now.Sub(s.started).Round(time.Second), step)
	}
}

// sanitize makes build text safe to quote after a prefix on one line:
// no control characters, no "##[" (the runner's old command syntax, which
// it finds anywhere in a line), at most n runes.
func sanitize(s string, n int) string {
	s = strings.ReplaceAll(s, "##[", "# #[")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	return s
}

// follow prints progress every interval until stop is closed.
func (c *console) follow(interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			c.progress()
		}
	}
}
