package build_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/buildkit"
	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

// The tests here run a Pool over two real buildkitds: the environment's
// and one of the test's own, which they stop and start.

func connect(t *testing.T, addr string) *buildkit.Client {
	t.Helper()
	c, err := buildkit.Connect(context.Background(), addr, buildkit.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// poolBuild is a build of a tiny image that takes about seconds s, with
// content of its own (no cache hit), pushed to the test registry as
// <registry>/pool/<tag>:<random>.
func poolBuild(t *testing.T, env *testenv.Env, tag string, seconds int) (buildkit.BuildRequest, string) {
	t.Helper()
	dir := t.TempDir()
	nonce := make([]byte, 6)
	rand.Read(nonce)
	id := hex.EncodeToString(nonce)
	df := fmt.Sprintf("FROM busybox\nCOPY nonce /nonce\nRUN sleep %d\n", seconds)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nonce"), []byte(id), 0o644); err != nil {
		t.Fatal(err)
	}
	image := env.Registry + "/pool/" + tag + ":" + id
	return buildkit.BuildRequest{ContextDir: dir, Image: &buildkit.ImageExport{Names: []string{image}, Push: true, Insecure: true}}, image
}

// builtOn says which of the hosts' histories hold image, as "a", "b",
// "a+b" or "none".
func builtOn(t *testing.T, image string, hosts map[string]string) string {
	t.Helper()
	var on []string
	for _, name := range []string{"a", "b"} {
		if hosts[name] == "" {
			continue
		}
		if n := testenv.ImageBuilds(t, hosts[name])[image]; n > 0 {
			on = append(on, strings.Repeat(name, n))
		}
	}
	if len(on) == 0 {
		return "none"
	}
	return strings.Join(on, "+")
}

// TestPoolGoesToTheLeastLoadedHost: builds at once are spread over both
// hosts; a long build that another client runs on host a sends the next
// builds to b; once a is idle again it gets builds again.
func TestPoolGoesToTheLeastLoadedHost(t *testing.T) {
	env := testenv.Build(t)
	b := testenv.ExtraBuildkitd(t)
	hosts := map[string]string{"a": env.BuildkitAddr, "b": b.Addr}
	pool, err := build.NewPool(build.PoolMember{Name: "a", Solver: connect(t, hosts["a"])}, build.PoolMember{Name: "b", Solver: connect(t, hosts["b"])})
	if err != nil {
		t.Fatal(err)
	}

	// Four builds at once: two on each host.
	var wg sync.WaitGroup
	images := make([]string, 4)
	errs := make([]error, 4)
	for i := range images {
		req, image := poolBuild(t, env, "spread", 3)
		images[i] = image
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = pool.Build(context.Background(), req)
		}()
	}
	wg.Wait()
	per := map[string]int{}
	for i, image := range images {
		if errs[i] != nil {
			t.Fatalf("build %d: %v", i, errs[i])
		}
		per[builtOn(t, image, hosts)]++
	}
	t.Logf("four builds at once: %v", per)
	if per["a"] != 2 || per["b"] != 2 {
		t.Errorf("four builds at once went %v, want two on each host", per)
	}

	// Another client (another server, a CLI) runs a long build on a.
	other := connect(t, hosts["a"])
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	longDone := make(chan struct{})
	go func() {
		defer close(longDone)
		req, _ := poolBuild(t, env, "other", 120)
		other.Build(ctx, req)
	}()
	testenv.WaitActive(t, other, 1)
	for i := range 2 {
		req, image := poolBuild(t, env, "next", 1)
		if _, err := pool.Build(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		if on := builtOn(t, image, hosts); on != "b" {
			t.Errorf("build %d while a runs another client's build went to %s, want b", i, on)
		}
	}
	cancel()
	<-longDone
	testenv.WaitActive(t, other, 0)
	req, image := poolBuild(t, env, "idle", 1)
	if _, err := pool.Build(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if on := builtOn(t, image, hosts); on != "a" {
		t.Errorf("with both hosts idle the build went to %s, want a (the first)", on)
	}
	for _, s := range pool.Status(context.Background()) {
		if s.Err != nil || s.Builds != 0 {
			t.Errorf("status %+v", s)
		}
	}
}

// probeCounter counts a host's probes.
type probeCounter struct {
	*buildkit.Client
	asked      atomic.Int32
	noHistory  bool
	readyAsked atomic.Int32
}

func (p *probeCounter) ActiveBuilds(ctx context.Context) (int, error) {
	p.asked.Add(1)
	if p.noHistory {
		return 0, fmt.Errorf("asking %s: %w", p.Addr(), buildkit.ErrNoBuildHistory)
	}
	return p.Client.ActiveBuilds(ctx)
}

func (p *probeCounter) Ready(ctx context.Context) error {
	p.readyAsked.Add(1)
	return p.Client.Ready(ctx)
}

// TestPoolLeavesOutAHostThatStopped: a stopped host is left out (the log
// says so once), not asked again for Recheck, then asked again: back up,
// it gets builds again. Ready names it while no host answers.
func TestPoolLeavesOutAHostThatStopped(t *testing.T) {
	env := testenv.Build(t)
	a := testenv.ExtraBuildkitd(t)
	hosts := map[string]string{"a": a.Addr, "b": env.BuildkitAddr}
	ca := &probeCounter{Client: connect(t, a.Addr)}
	cb := connect(t, hosts["b"])
	// The pool's clock moves only when the test says.
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	const recheck = time.Hour
	pool, err := build.NewPoolWithOptions(build.PoolOptions{ProbeTimeout: time.Second, Recheck: recheck, Now: now},
		build.PoolMember{Name: a.Addr, Solver: ca}, build.PoolMember{Name: "b", Solver: cb})
	if err != nil {
		t.Fatal(err)
	}
	if err := pool.Ready(context.Background()); err != nil {
		t.Fatalf("Ready with both hosts up: %v", err)
	}

	a.Stop()
	var lines []string
	req, image := poolBuild(t, env, "failover", 1)
	req.Log = func(l string) { lines = append(lines, l) }
	if _, err := pool.Build(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if on := builtOn(t, image, map[string]string{"b": hosts["b"]}); on != "b" {
		t.Errorf("with a stopped the build went to %s", on)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "buildkitd "+a.Addr+" is unavailable (") {
		t.Errorf("the log does not say a is unavailable:\n%s", strings.Join(lines, "\n"))
	}
	asked := ca.asked.Load()
	lines = nil
	req, _ = poolBuild(t, env, "failover", 1)
	req.Log = func(l string) { lines = append(lines, l) }
	if _, err := pool.Build(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if ca.asked.Load() != asked {
		t.Errorf("a stopped host was asked again within Recheck (%d, then %d probes)", asked, ca.asked.Load())
	}
	if strings.Contains(strings.Join(lines, "\n"), "unavailable") {
		t.Errorf("a host known to be down is reported again:\n%s", strings.Join(lines, "\n"))
	}

	// Ready: nil while b answers; the status names a and why.
	if err := pool.Ready(context.Background()); err != nil {
		t.Errorf("Ready with b up: %v", err)
	}
	st := pool.Status(context.Background())
	if st[0].Name != a.Addr || st[0].Err == nil || st[1].Err != nil {
		t.Errorf("status %+v", st)
	}
	only, _ := build.NewPoolWithOptions(build.PoolOptions{ProbeTimeout: time.Second}, build.PoolMember{Name: a.Addr, Solver: ca})
	err = only.Ready(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no buildkitd host answers: "+a.Addr+": buildkitd at "+a.Addr+" does not answer") {
		t.Errorf("Ready with no host up: %v", err)
	}
	start := time.Now()
	req, _ = poolBuild(t, env, "nohost", 1)
	_, err = only.Build(context.Background(), req)
	if err == nil || !strings.Contains(err.Error(), "no buildkitd host could run the build: "+a.Addr+": ") || time.Since(start) > 5*time.Second {
		t.Errorf("a build with no host up: %v after %v", err, time.Since(start))
	}

	// Back up: after Recheck it is asked again, and being idle and first
	// it gets the next build.
	a.Start()
	back := time.Now()
	for ca.Client.Ready(context.Background()) != nil { // the connection's own retry (at most 2 s apart)
		if time.Since(back) > 10*time.Second {
			t.Fatal("the client does not reconnect to the restarted daemon")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the client reconnected %v after the daemon answered again", time.Since(back).Round(10*time.Millisecond))
	asked = ca.asked.Load()
	req, image = poolBuild(t, env, "back", 1)
	if _, err := pool.Build(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if on := builtOn(t, image, hosts); on != "b" || ca.asked.Load() != asked {
		t.Errorf("within Recheck the build went to %s, and a was asked %d times", on, ca.asked.Load()-asked)
	}
	clock.Add(int64(recheck))
	req, image = poolBuild(t, env, "back", 1)
	if _, err := pool.Build(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if on := builtOn(t, image, hosts); on != "a" {
		t.Errorf("after a came back the build went to %s, want a", on)
	}
}

// TestPoolWithoutBuildHistory: hosts that cannot tell their builds are
// asked once whether they can, then only whether they answer; builds are
// spread by this process's count.
func TestPoolWithoutBuildHistory(t *testing.T) {
	env := testenv.Build(t)
	b := testenv.ExtraBuildkitd(t)
	hosts := map[string]string{"a": env.BuildkitAddr, "b": b.Addr}
	ca := &probeCounter{Client: connect(t, hosts["a"]), noHistory: true}
	cb := &probeCounter{Client: connect(t, hosts["b"]), noHistory: true}
	pool, _ := build.NewPool(build.PoolMember{Name: "a", Solver: ca}, build.PoolMember{Name: "b", Solver: cb})
	var wg sync.WaitGroup
	images := make([]string, 2)
	for i := range images {
		req, image := poolBuild(t, env, "nohistory", 2)
		images[i] = image
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := pool.Build(context.Background(), req); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if on := builtOn(t, images[0], hosts) + builtOn(t, images[1], hosts); on != "ab" && on != "ba" {
		t.Errorf("two builds at once went to %s", on)
	}
	// Two builds at once may both ask; later builds only ask whether
	// the hosts answer.
	askedA, askedB, readyA := ca.asked.Load(), cb.asked.Load(), ca.readyAsked.Load()
	req, image := poolBuild(t, env, "nohistory", 1)
	if _, err := pool.Build(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if on := builtOn(t, image, hosts); on != "a" {
		t.Errorf("a build with both hosts idle went to %s, want a", on)
	}
	if askedA < 1 || askedA > 2 || ca.asked.Load() != askedA || cb.asked.Load() != askedB || ca.readyAsked.Load() != readyA+1 {
		t.Errorf("asked for builds %d and %d times (then %d and %d), whether ready %d times (then %d)",
			askedA, askedB, ca.asked.Load(), cb.asked.Load(), readyA, ca.readyAsked.Load())
	}
}

// TestOpenPoolStartsWithAHostDown: a server's pool opens while one of
// its hosts is down (DialPool refuses), sends builds to the other, and
// takes the host in once it answers.
func TestOpenPoolStartsWithAHostDown(t *testing.T) {
	env := testenv.Build(t)
	b := testenv.ExtraBuildkitd(t)
	b.Stop()
	addrs := []string{b.Addr, env.BuildkitAddr}
	dial := build.DialOptions{Timeout: 2 * time.Second}
	if _, _, err := build.DialPool(context.Background(), addrs, dial); err == nil || !strings.Contains(err.Error(), b.Addr) {
		t.Errorf("DialPool with a host down: %v", err)
	}
	pool, closePool, err := build.OpenPool(context.Background(), addrs, dial, build.PoolOptions{Recheck: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer closePool()
	st := pool.Status(context.Background())
	if st[0].Err == nil || !buildkit.IsUnavailable(st[0].Err) || st[1].Err != nil {
		t.Errorf("status %+v", st)
	}
	req, image := poolBuild(t, env, "open", 1)
	if _, err := pool.Build(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if on := builtOn(t, image, map[string]string{"b": env.BuildkitAddr}); on != "b" {
		t.Errorf("the build went to %s", on)
	}
	b.Start()
	time.Sleep(1100 * time.Millisecond)
	req, image = poolBuild(t, env, "open", 1)
	if _, err := pool.Build(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if on := builtOn(t, image, map[string]string{"a": b.Addr}); on != "a" {
		t.Errorf("once the host is up the build went to %s, want it", on)
	}

	// No host at all: an error naming each.
	b.Stop()
	_, _, err = build.OpenPool(context.Background(), []string{b.Addr, "unix:///nonexistent/bk.sock"}, dial, build.PoolOptions{})
	if err == nil || !strings.Contains(err.Error(), b.Addr) || !strings.Contains(err.Error(), "unix:///nonexistent/bk.sock") {
		t.Errorf("OpenPool with no host up: %v", err)
	}
	// A wrong address is a mistake, not a host that is down.
	_, _, err = build.OpenPool(context.Background(), []string{env.BuildkitAddr, "bk.sock"}, dial, build.PoolOptions{})
	if err == nil || !strings.Contains(err.Error(), "has no scheme") {
		t.Errorf("OpenPool with a wrong address: %v", err)
	}
}
