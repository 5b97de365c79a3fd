package buildkit_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/buildkit"
	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

// TestActiveBuildsHistoryAndReady: a client sees the builds another
// client runs, the history names what each built and how it ended, and a
// stopped daemon is reported at once as unavailable.
func TestActiveBuildsHistoryAndReady(t *testing.T) {
	env := testenv.Build(t)
	host := testenv.ExtraBuildkitd(t)
	dial := func() *buildkit.Client {
		c, err := buildkit.Connect(context.Background(), host.Addr, buildkit.ConnectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	one, other := dial(), dial()
	if n, err := other.ActiveBuilds(context.Background()); err != nil || n != 0 {
		t.Fatalf("an idle daemon: %d builds, %v", n, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	names := make([]string, 2)
	for i := range names {
		names[i] = fmt.Sprintf("%s/history/long:%d", env.Registry, i)
		dir := app(t, map[string]string{"Dockerfile": fmt.Sprintf("FROM busybox\nRUN echo %d && sleep 60\n", i)})
		wg.Add(1)
		go func() {
			defer wg.Done()
			one.Build(ctx, buildkit.BuildRequest{ContextDir: dir, Image: &buildkit.ImageExport{Names: []string{names[i]}}})
		}()
	}
	testenv.WaitActive(t, other, 2) // another client sees the first one's builds
	recs, err := other.History(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	active := 0
	for _, r := range recs {
		if r.Active && len(r.Images) == 1 && strings.HasPrefix(r.Images[0], env.Registry+"/history/long:") && r.Completed.IsZero() {
			active++
		}
	}
	if active != 2 {
		t.Errorf("history while two builds run: %+v", recs)
	}
	cancel()
	wg.Wait()
	testenv.WaitActive(t, other, 0)
	recs, err = other.History(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ended := 0
	for _, r := range recs {
		if !r.Active && len(r.Images) == 1 && r.Images[0] == names[0] && r.Error != "" && !r.Completed.Before(r.Created) {
			ended++
		}
	}
	if ended != 1 {
		t.Errorf("history after the builds were cancelled: %+v", recs)
	}
	if err := other.Ready(context.Background()); err != nil {
		t.Errorf("Ready: %v", err)
	}

	host.Stop()
	start := time.Now()
	if _, err := other.ActiveBuilds(context.Background()); err == nil || !buildkit.IsUnavailable(err) || !strings.Contains(err.Error(), host.Addr) {
		t.Errorf("builds of a stopped daemon: %v (unavailable: %v)", err, buildkit.IsUnavailable(err))
	}
	if err := other.Ready(context.Background()); err == nil || !buildkit.IsUnavailable(err) || !strings.Contains(err.Error(), "buildkitd at "+host.Addr+" does not answer") {
		t.Errorf("Ready of a stopped daemon: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a stopped daemon took %v to say so", d)
	}
	// A client opened while the daemon is down answers once it is up.
	late, err := buildkit.Open(host.Addr, buildkit.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if err := late.Ready(context.Background()); !buildkit.IsUnavailable(err) {
		t.Errorf("Ready before the daemon is up: %v", err)
	}
	host.Start()
	up := time.Now()
	for late.Ready(context.Background()) != nil {
		if time.Since(up) > 10*time.Second {
			t.Fatal("the client does not reach the daemon once it is up")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("reconnected %v after the daemon was up", time.Since(up).Round(10*time.Millisecond))
	// A deadline that passes is said plainly.
	dctx, dcancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer dcancel()
	time.Sleep(time.Millisecond)
	if err := late.Ready(dctx); err == nil || !strings.Contains(err.Error(), "did not answer in time") {
		t.Errorf("Ready past its deadline: %v", err)
	}
}
