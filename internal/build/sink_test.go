package build

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestEventQueueKeepsOrderDropsLogLinesOfALaggingSinkAndSurvivesAPanic(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var got []Event
	q := newEventQueue(SinkFunc(func(e Event) {
		<-release
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
	}), func(err error) { t.Errorf("failed: %v", err) })
	q.push(Event{Type: BuildStarted})
	// The sink is stuck: push never blocks, and log lines beyond the cap
	// are counted instead of kept.
	pushed := make(chan struct{})
	go func() {
		for i := 0; i < maxQueuedLogLines+250; i++ {
			q.push(Event{Type: LogLine, Line: "x"})
		}
		q.push(Event{Type: BuildFinished})
		close(pushed)
	}()
	select {
	case <-pushed:
	case <-time.After(10 * time.Second):
		t.Fatal("push blocked on a stuck sink")
	}
	close(release)
	q.close(context.Background(), time.Second)
	mu.Lock()
	defer mu.Unlock()
	if got[0].Type != BuildStarted || got[len(got)-1].Type != BuildFinished {
		t.Fatalf("first %s last %s", got[0].Type, got[len(got)-1].Type)
	}
	lines, dropped := 0, 0
	for _, e := range got {
		switch e.Type {
		case LogLine:
			lines++
		case LogsDropped:
			dropped += e.Dropped
		}
	}
	// One line may have left the queue before the sink got stuck.
	if lines+dropped != maxQueuedLogLines+250 || dropped < 249 {
		t.Errorf("%d lines delivered, %d dropped", lines, dropped)
	}
	if prev := got[len(got)-2]; prev.Type != LogsDropped {
		t.Errorf("the drop was reported as %s, want logs-dropped before build-finished", prev.Type)
	}
}

func TestEventQueuePanicReportsOnceAndStopsDelivering(t *testing.T) {
	var failures []error
	var mu sync.Mutex
	calls := 0
	q := newEventQueue(SinkFunc(func(e Event) {
		calls++
		panic("boom")
	}), func(err error) { mu.Lock(); failures = append(failures, err); mu.Unlock() })
	for i := 0; i < 5; i++ {
		q.push(Event{Type: LogLine})
	}
	q.close(context.Background(), time.Second)
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 || len(failures) != 1 || !strings.Contains(failures[0].Error(), "panicked on log event: boom") {
		t.Errorf("calls %d, failures %v", calls, failures)
	}
}

func TestRedactorHidesSecretsFromFilesLineByLine(t *testing.T) {
	pem := "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACBc3RlcmVkAAAAAA==\n-----END OPENSSH PRIVATE KEY-----\n"
	r := newRedactor("tok3n-value\n", "crlf-secret\r\n", pem, "abc")
	for in, want := range map[string]string{
		"token: tok3n-value": "token: ***",
		"crlf: crlf-secret":  "crlf: ***",
		"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW": "***",
		"  QyNTUxOQAAACBc3RlcmVkAAAAAA==":                                        "  ***",
		"abc stays: too short to hide":                                           "abc stays: too short to hide",
	} {
		if got := r.redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}
