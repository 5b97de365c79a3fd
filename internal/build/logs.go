package build

import (
	"context"
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

func newRedactor(secrets ...string) redactor {
	var r redactor
	for _, s := range secrets {
		if len(s) >= 4 { // shorter values would mangle ordinary text
			r = append(r, s)
		}
	}
	return r
}

func (r redactor) redact(s string) string { return registry.Redact(s, r) }
