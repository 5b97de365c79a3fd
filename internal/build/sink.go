package build

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// maxQueuedLogLines bounds the log lines waiting for a slow sink; beyond
// it LogLine events are counted, not kept, and the sink gets one
// LogsDropped for them when it catches up. The store has every line.
const maxQueuedLogLines = 10000

// eventQueue delivers events to a Sink in order from its own goroutine, so
// that the build never waits for the sink. A panicking sink is recovered:
// failed is called once with the panic as an error and the sink gets
// nothing more.
type eventQueue struct {
	sink   Sink
	failed func(error)

	mu       sync.Mutex
	pending  []Event
	logLines int
	dropped  int
	closed   bool
	broken   bool
	wake     chan struct{}
	done     chan struct{}
}

func newEventQueue(sink Sink, failed func(error)) *eventQueue {
	q := &eventQueue{sink: sink, failed: failed, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go q.loop()
	return q
}

// push queues ev; it never blocks.
func (q *eventQueue) push(ev Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.broken {
		return
	}
	if ev.Type == LogLine {
		if q.logLines >= maxQueuedLogLines {
			q.dropped++
			return
		}
		q.logLines++
	}
	if q.dropped > 0 {
		// Say what was dropped before anything that comes after it.
		q.pending = append(q.pending, Event{Type: LogsDropped, Time: ev.Time, BuildID: ev.BuildID, Dropped: q.dropped})
		q.dropped = 0
	}
	q.pending = append(q.pending, ev)
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *eventQueue) loop() {
	defer close(q.done)
	for {
		q.mu.Lock()
		batch := q.pending
		q.pending = nil
		closed := q.closed
		q.mu.Unlock()
		for i, ev := range batch {
			if !q.deliver(ev) {
				q.mu.Lock()
				q.broken = true
				q.pending = nil
				q.mu.Unlock()
				return
			}
			if ev.Type == LogLine {
				q.mu.Lock()
				q.logLines--
				q.mu.Unlock()
			}
			batch[i] = Event{} // let delivered events go
		}
		if closed && len(batch) == 0 {
			return
		}
		if len(batch) == 0 {
			<-q.wake
		}
	}
}

// deliver calls the sink, reporting a panic; it says whether the sink is
// still usable.
func (q *eventQueue) deliver(ev Event) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = false
			q.failed(fmt.Errorf("internal error: event handler panicked on %s event: %v", ev.Type, p))
		}
	}()
	q.sink.Event(ev)
	return true
}

// close delivers what is queued and stops. It waits for the sink until
// ctx is done, then at most grace more.
func (q *eventQueue) close(ctx context.Context, grace time.Duration) {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	select {
	case <-q.done:
		return
	case <-ctx.Done():
	}
	select {
	case <-q.done:
	case <-time.After(grace):
	}
}
