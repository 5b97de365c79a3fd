package build

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

// logFlushInterval bounds how long a log line waits before a live reader
// can see it.
const logFlushInterval = 100 * time.Millisecond

// logBatch is the most lines written to the store in one call.
const logBatch = 500

// logWriter batches a build's log lines into the store as they come.
type logWriter struct {
	st store.Store
	id string

	mu      sync.Mutex
	buf     []string
	err     error
	wake    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
}

func newLogWriter(st store.Store, buildID string) *logWriter {
	w := &logWriter{st: st, id: buildID, wake: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	go w.loop()
	return w
}

func (w *logWriter) write(line string) {
	w.mu.Lock()
	w.buf = append(w.buf, line)
	full := len(w.buf) >= logBatch
	w.mu.Unlock()
	if full {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

func (w *logWriter) loop() {
	defer close(w.stopped)
	t := time.NewTicker(logFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-w.wake:
		case <-w.stop:
			w.flush()
			return
		}
		w.flush()
	}
}

func (w *logWriter) flush() {
	for {
		w.mu.Lock()
		n := min(len(w.buf), logBatch)
		batch := w.buf[:n:n]
		w.buf = w.buf[n:]
		w.mu.Unlock()
		if n == 0 {
			return
		}
		// Logs are written even while the build is being cancelled: they
		// say why it stopped.
		if err := w.st.AppendLogs(context.Background(), w.id, batch); err != nil {
			w.mu.Lock()
			if w.err == nil {
				w.err = err
			}
			w.mu.Unlock()
		}
	}
}

// close writes what is left and returns the first write error.
func (w *logWriter) close() error {
	close(w.stop)
	<-w.stopped
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// redactor hides secret values, and the credentials and query strings of
// URLs (signed URLs, tokens), in log lines and errors.
type redactor []string

// newRedactor hides each secret whole and, since logs are read a line at
// a time, each of its lines: a secret read from a file ends with a
// newline (or CRLF) that a log line never holds, and a PEM key spans many
// lines. Values shorter than 4 characters are not hidden: they would
// mangle ordinary text.
func newRedactor(secrets ...string) redactor {
	var r redactor
	add := func(s string) {
		if len(s) >= 4 {
			r = append(r, s)
		}
	}
	for _, s := range secrets {
		add(s)
		trimmed := strings.TrimRight(s, "\r\n")
		if trimmed != s {
			add(trimmed)
		}
		for _, line := range strings.FieldsFunc(s, func(c rune) bool { return c == '\n' || c == '\r' }) {
			if line != s && line != trimmed {
				add(strings.TrimSpace(line))
			}
		}
	}
	return r
}

func (r redactor) redact(s string) string { return registry.Redact(s, r) }

// lines redacts each of lines, in a new slice.
func (r redactor) lines(lines []string) []string {
	if lines == nil {
		return nil
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = r.redact(l)
	}
	return out
}

// FollowLogs calls fn with each batch of build id's log lines after
// afterSeq, in order, and keeps reading every poll interval until the
// build has ended and every line is out; it returns the ended build. A
// build whose process died (its heartbeat is older than StaleAfter) is
// failed on the way (ReapStale), so following it ends too. With poll <= 0
// it reads what is there once and returns the build as it is.
func (e *Engine) FollowLogs(ctx context.Context, id string, afterSeq int64, poll time.Duration, fn func([]store.LogLine)) (*store.Build, error) {
	return e.Follow(ctx, id, afterSeq, poll, Follower{Lines: func(l []store.LogLine) error { fn(l); return nil }})
}

// Follower receives what Follow reads.
type Follower struct {
	// Lines gets each batch of new log lines, in order.
	Lines func([]store.LogLine) error
	// Polled, when set, gets the build as each poll read it, after that
	// poll's lines: to see its status change, or to say it is still there.
	Polled func(*store.Build) error
}

// Follow is FollowLogs that also reports each poll; an error from f ends
// it with that error.
func (e *Engine) Follow(ctx context.Context, id string, afterSeq int64, poll time.Duration, f Follower) (*store.Build, error) {
	for {
		// Read the status first: lines written before it ended are then
		// all visible to the reads that follow.
		b, err := e.Store.GetBuild(ctx, id)
		if err != nil {
			return nil, err
		}
		ended := b.Status == store.StatusComplete || b.Status == store.StatusFailed
		if !ended && e.now().Sub(b.Heartbeat) > e.StaleAfter() {
			if _, err := e.ReapStale(ctx); err != nil {
				return nil, err
			}
			continue
		}
		for {
			lines, err := e.Store.ReadLogs(ctx, id, afterSeq, logPage)
			if err != nil {
				return nil, fmt.Errorf("reading log of %s: %w", id, err)
			}
			if len(lines) > 0 {
				if err := f.Lines(lines); err != nil {
					return nil, err
				}
				afterSeq = lines[len(lines)-1].Seq
			}
			if len(lines) < logPage {
				break
			}
		}
		if f.Polled != nil {
			if err := f.Polled(b); err != nil {
				return nil, err
			}
		}
		if ended || poll <= 0 {
			return b, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(poll):
		}
	}
}
