package build_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/devenv"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

// secondBuildkitd starts another buildkitd on the test registry, stopped
// when the test ends.
func secondBuildkitd(t *testing.T, h *harness) *devenv.Buildkitd {
	t.Helper()
	root, err := os.MkdirTemp("", "bk2-") // short: the socket path is limited
	if err != nil {
		t.Fatal(err)
	}
	d, err := devenv.StartBuildkitd(context.Background(), devenv.BuildkitdOptions{Root: root, Mirror: h.env.Registry})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(); os.RemoveAll(root) })
	return d
}

func TestPoolSpreadsSpecsOverHosts(t *testing.T) {
	h := newHarness(t)
	second := secondBuildkitd(t, h)
	c2, err := build.Dial(context.Background(), second.Addr, build.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	one, two := h.solver, &countingSolver{Solver: c2}
	pool, err := build.NewPool(build.PoolMember{Name: "one", Solver: one}, build.PoolMember{Name: "two", Solver: two})
	if err != nil {
		t.Fatal(err)
	}
	eng := &build.Engine{Solver: pool, Store: h.store}
	b, err := eng.Run(context.Background(), h.request(t, "multi"))
	if err != nil {
		t.Fatal(err)
	}
	if one.count() != 1 || two.count() != 1 {
		t.Errorf("builds per host: %d and %d, want 1 and 1 (two specs at once)", one.count(), two.count())
	}
	for _, s := range b.Services {
		if registryDigest(t, s.Image) != s.Digest {
			t.Errorf("%s: registry digest differs", s.Image)
		}
	}
}

func TestPoolMovesABuildOffAnUnavailableHost(t *testing.T) {
	h := newHarness(t)
	second := secondBuildkitd(t, h)
	dead, err := build.Dial(context.Background(), second.Addr, build.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	second.Stop() // the host goes away after the pool was made

	pool, _ := build.NewPool(build.PoolMember{Name: second.Addr, Solver: dead}, build.PoolMember{Name: "live", Solver: h.solver})
	eng := &build.Engine{Solver: pool, Store: h.store}
	req := h.request(t, "demo")
	start := time.Now()
	b, err := eng.Run(context.Background(), req)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("failover took %s", d)
	}
	if b.Status != store.StatusComplete || h.solver.count() != 1 {
		t.Errorf("status %s, live host builds %d", b.Status, h.solver.count())
	}
	if logs := storedLogs(t, h.store, b.ID); !strings.Contains(logs, "buildkitd "+second.Addr+" is unavailable") {
		t.Errorf("the log does not say the build moved:\n%s", logs)
	}

	// With no host left, the error names each.
	pool, _ = build.NewPool(build.PoolMember{Name: second.Addr, Solver: dead})
	_, err = (&build.Engine{Solver: pool, Store: h.store}).Run(context.Background(), h.request(t, "demo"))
	if err == nil || !strings.Contains(err.Error(), "no buildkitd host could run the build: "+second.Addr) {
		t.Errorf("err = %v", err)
	}
}
