package build_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/manifest"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

// writeApp writes a one-service app: convox.yml and Dockerfile.
func writeApp(t *testing.T, convoxYML, dockerfile string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "convox.yml"), []byte(convoxYML), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSinkThatPanicsOnALogLineFailsOnlyThatBuild(t *testing.T) {
	h := newHarness(t)
	req := h.request(t, "demo")
	req.NoCache = true
	req.Sink = build.SinkFunc(func(e build.Event) {
		if e.Type == build.LogLine && strings.Contains(e.Line, "building") {
			panic("adapter bug on a log line")
		}
	})
	b, err := h.engine.Run(context.Background(), req)
	if err == nil || !strings.Contains(err.Error(), "event handler panicked on log event: adapter bug on a log line") {
		t.Fatalf("err = %v", err)
	}
	stored, gerr := h.store.GetBuild(context.Background(), b.ID)
	if gerr != nil || stored.Status != store.StatusFailed || !strings.Contains(stored.Reason, "adapter bug") {
		t.Errorf("stored = %+v, %v", stored, gerr)
	}
	// The engine is fine: the next build, with a sane sink, completes.
	req2 := h.request(t, "demo")
	var ev events
	req2.Sink = build.SinkFunc(ev.add)
	if _, err := h.engine.Run(context.Background(), req2); err != nil {
		t.Fatalf("next build: %v", err)
	}
	if last := ev.all[len(ev.all)-1]; last.Type != build.BuildFinished {
		t.Errorf("last event = %s", last.Type)
	}
}

func TestSlowSinkNeverStallsTheBuildAndGetsEveryEventInOrder(t *testing.T) {
	h := newHarness(t)
	// 300 lines of output; a sink taking 20 ms an event would hold a
	// synchronous build for over 6 s.
	dir := writeApp(t, "services:\n  web:\n    build: .\n",
		"FROM busybox\nRUN i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done\n")
	var mu sync.Mutex
	var got []build.Event
	req := build.Request{App: "slow", Repository: h.env.Registry + "/slow", SourceDir: dir, NoCache: true,
		Sink: build.SinkFunc(func(e build.Event) {
			time.Sleep(20 * time.Millisecond)
			mu.Lock()
			got = append(got, e)
			mu.Unlock()
		})}
	b, err := h.engine.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// Run returned after the sink had everything, BuildFinished last.
	if len(got) < 300 || got[len(got)-1].Type != build.BuildFinished {
		t.Fatalf("%d events, last %v", len(got), got[len(got)-1].Type)
	}
	if got[0].Type != build.BuildStarted {
		t.Errorf("first event %s, want build-started", got[0].Type)
	}
	// The build itself ended long before the sink caught up: its record
	// says when, and that is before the sink had seen half the lines.
	slowest := time.Duration(len(got)) * 20 * time.Millisecond
	if took := b.Ended.Sub(b.Started); took > slowest/2 {
		t.Errorf("build took %s with a sink needing %s: the sink stalled it", took, slowest)
	}
	// In order: line-N before line-N+1.
	next := 0
	for _, e := range got {
		if e.Type == build.LogLine && strings.Contains(e.Line, " line-") && !strings.Contains(e.Line, "echo") {
			want := "line-" + strconv.Itoa(next)
			if !strings.HasSuffix(e.Line, want) {
				t.Fatalf("log line %q out of order, want ...%s", e.Line, want)
			}
			next++
		}
	}
	if next != 300 {
		t.Errorf("saw %d of 300 output lines", next)
	}
}

func TestCallerChosenIDIsBuiltOnceAndReturnedAfterwards(t *testing.T) {
	h := newHarness(t)
	req := h.request(t, "demo")
	req.ID = "BCHOSENAAAA"
	b, err := h.engine.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if b.ID != "BCHOSENAAAA" || b.Status != store.StatusComplete {
		t.Fatalf("build = %s %s", b.ID, b.Status)
	}
	calls := h.solver.count()
	// A second run (a retried job) returns the same build, building
	// nothing, and still tells its sink how it ended.
	var ev events
	req.Sink = build.SinkFunc(ev.add)
	again, err := h.engine.Run(context.Background(), req)
	if err != nil || again.ID != b.ID || again.Release != b.Release {
		t.Fatalf("second run = %+v, %v", again, err)
	}
	if h.solver.count() != calls {
		t.Errorf("second run built again")
	}
	if fin := ev.of(build.BuildFinished); len(fin) != 1 || fin[0].Build.Release != b.Release {
		t.Errorf("second run events = %+v", ev.all)
	}
	// Another app may not take it.
	other := req
	other.App = "other"
	if _, err := h.engine.Run(context.Background(), other); build.InputField(err) != build.FieldID {
		t.Errorf("other app with that ID: %v", err)
	}
	bad := req
	bad.ID = "B123"
	if _, err := h.engine.Run(context.Background(), bad); build.InputField(err) != build.FieldID {
		t.Errorf("bad ID: %v", err)
	}

	// A build that failed stays failed.
	freq := h.request(t, "failing")
	freq.Services = []string{"broken"}
	freq.ID = "BCHOSENBBBB"
	if _, err := h.engine.Run(context.Background(), freq); err == nil {
		t.Fatal("broken built")
	}
	calls = h.solver.count()
	fb, err := h.engine.Run(context.Background(), freq)
	var prev *build.PreviousRunError
	if !errors.As(err, &prev) || fb.Status != store.StatusFailed || h.solver.count() != calls {
		t.Errorf("rerun of a failed build: %+v, %v", fb, err)
	}
}

func TestRunWithTheIDOfAnAbandonedBuildBuildsItAgain(t *testing.T) {
	h := newHarness(t)
	h.engine.HeartbeatInterval = 100 * time.Millisecond
	ctx := context.Background()
	old := time.Now().Add(-time.Hour).UTC()
	// A process died mid-build: running, heartbeat an hour old.
	dead := &store.Build{ID: "BDEADAAAAAA", App: "demo", Status: store.StatusRunning, Started: old, Heartbeat: old}
	if err := h.store.CreateBuild(ctx, dead); err != nil {
		t.Fatal(err)
	}
	if err := h.store.AppendLogs(ctx, dead.ID, []string{"first attempt"}); err != nil {
		t.Fatal(err)
	}
	req := h.request(t, "demo")
	req.ID = dead.ID
	b, err := h.engine.Run(ctx, req)
	if err != nil || b.Status != store.StatusComplete || b.Release == "" {
		t.Fatalf("resumed build = %+v, %v", b, err)
	}
	logs := storedLogs(t, h.store, b.ID)
	if !strings.Contains(logs, "first attempt\nresuming build BDEADAAAAAA") {
		t.Errorf("log:\n%s", logs)
	}

	// One whose process is alive (fresh heartbeat) is not taken over.
	live := &store.Build{ID: "BLIVEAAAAAA", App: "demo", Status: store.StatusRunning, Started: time.Now(), Heartbeat: time.Now()}
	if err := h.store.CreateBuild(ctx, live); err != nil {
		t.Fatal(err)
	}
	req.ID = live.ID
	var inProgress *build.InProgressError
	if _, err := h.engine.Run(ctx, req); !errors.As(err, &inProgress) {
		t.Errorf("run of a live build: %v", err)
	}

	// A build failed as abandoned by the reaper is built again too.
	time.Sleep(build.StaleFactor*h.engine.HeartbeatInterval + 50*time.Millisecond)
	ids, err := h.engine.ReapStale(ctx)
	if err != nil || len(ids) != 1 || ids[0] != live.ID {
		t.Fatalf("reaped %v, %v", ids, err)
	}
	b, err = h.engine.Run(ctx, req)
	if err != nil || b.ID != live.ID || b.Status != store.StatusComplete {
		t.Errorf("rerun of an abandoned build = %+v, %v", b, err)
	}
}

func TestBuildStopsWhenAnotherProcessMarksItEnded(t *testing.T) {
	h := newHarness(t)
	h.engine.HeartbeatInterval = 100 * time.Millisecond
	dir := writeApp(t, "services:\n  web:\n    build: .\n", "FROM busybox\nRUN sleep 20\n")
	ctx := context.Background()
	req := build.Request{App: "lost", Repository: h.env.Registry + "/lost", SourceDir: dir, NoCache: true}
	started := make(chan string, 1)
	req.Sink = build.SinkFunc(func(e build.Event) {
		if e.Type == build.ServiceStarted {
			started <- e.BuildID
		}
	})
	done := make(chan error, 1)
	var b *store.Build
	go func() {
		var err error
		b, err = h.engine.Run(ctx, req)
		done <- err
	}()
	id := <-started
	// Another process thinks it is dead and fails it.
	if _, err := h.store.FailStale(ctx, time.Now().Add(time.Hour), "abandoned by test"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "marked ended by another process") {
			t.Errorf("err = %v", err)
		}
		if b.ID != id || b.Status != store.StatusFailed {
			t.Errorf("build = %+v", b)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the build kept running after it was marked ended")
	}
}

func TestManifestAndSecretLikeBuildArgWarningsAreEvents(t *testing.T) {
	h := newHarness(t)
	dir := writeApp(t, "services:\n  web:\n    build: .\n    buidl: oops\n",
		"FROM busybox\nARG NPM_TOKEN\nARG MODE\nRUN echo built\n")
	var ev events
	req := build.Request{App: "warn", Repository: h.env.Registry + "/warn", SourceDir: dir,
		BuildArgs: map[string]string{"NPM_TOKEN": "abcdef123", "MODE": "prod"}, Sink: build.SinkFunc(ev.add)}
	b, err := h.engine.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	ws := ev.of(build.Warned)
	if len(ws) != 2 {
		t.Fatalf("warnings = %+v", ws)
	}
	m := ws[0].Warning
	if m.Kind != build.WarningManifest || m.File != "convox.yml" || m.Line != 4 || m.Col != 5 || !strings.Contains(m.Message, `unknown key "buidl"`) {
		t.Errorf("manifest warning = %+v", m)
	}
	s := ws[1].Warning
	if s.Kind != build.WarningSecretBuildArg || s.Name != "NPM_TOKEN" || !strings.Contains(s.Message, "image's history") {
		t.Errorf("secret warning = %+v", s)
	}
	logs := storedLogs(t, h.store, b.ID)
	if !strings.Contains(logs, "warning: convox.yml:4:5: service web: unknown key \"buidl\"") || !strings.Contains(logs, "warning: build argument NPM_TOKEN looks like a secret") {
		t.Errorf("log:\n%s", logs)
	}
}

func TestManifestSeesBuildArgsAndKeepsWarningsWithErrors(t *testing.T) {
	h := newHarness(t)
	// A required entry given only as a build argument is there, as in
	// Convox (the app environment with the build arguments over it).
	dir := writeApp(t, "environment:\n  - NEEDED\nservices:\n  web:\n    build: .\n    domain: ${NEEDED}.example.com\n",
		"FROM busybox\nARG NEEDED\nRUN echo needed=$NEEDED\n")
	req := build.Request{App: "args", Repository: h.env.Registry + "/args", SourceDir: dir, BuildArgs: map[string]string{"NEEDED": "yes"}}
	b, err := h.engine.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if logs := storedLogs(t, h.store, b.ID); !strings.Contains(logs, "needed=yes") {
		t.Errorf("log:\n%s", logs)
	}
	// A convox.yml with an error and a warning: the input error carries
	// both, its text only the error.
	os.WriteFile(filepath.Join(dir, "convox.yml"), []byte("services:\n  Web:\n    build: .\n    buidl: x\n"), 0o644)
	_, err = h.engine.Run(context.Background(), build.Request{App: "args", Repository: h.env.Registry + "/args", SourceDir: dir})
	var ps manifest.Problems
	if !errors.As(err, &ps) || len(ps) != 2 || len(ps.Errors()) != 1 || strings.Contains(err.Error(), "buidl") {
		t.Errorf("err = %v (problems %v)", err, ps)
	}
}
