package testenv

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/buildkit"
	"github.com/convox-build-action/convox-build-action/internal/devenv"
)

// Buildkitd is a buildkitd of one test, beside the environment's: another
// host for a pool, that the test may stop and start again.
type Buildkitd struct {
	// Addr is its unix:// address; it stays the same across restarts.
	Addr string

	t    testing.TB
	opts devenv.BuildkitdOptions
	mu   sync.Mutex
	d    *devenv.Buildkitd // nil while stopped
}

// ExtraBuildkitd starts another buildkitd that pulls docker.io images from
// the environment's registry (as the environment's buildkitd does), with
// a state of its own; it is stopped when the test ends.
func ExtraBuildkitd(t testing.TB) *Buildkitd {
	t.Helper()
	env := Build(t)
	root, err := os.MkdirTemp("", "bk-") // short: a socket path is limited
	if err != nil {
		t.Fatal(err)
	}
	b := &Buildkitd{t: t, opts: devenv.BuildkitdOptions{Root: root, Mirror: env.Registry}}
	t.Cleanup(func() { b.Stop(); os.RemoveAll(root) })
	b.Start()
	return b
}

// Start starts the daemon again at the same address, on the same state,
// after Stop; it waits until the daemon answers.
func (b *Buildkitd) Start() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.d != nil {
		return
	}
	d, err := devenv.StartBuildkitd(context.Background(), b.opts)
	if err != nil {
		b.t.Fatalf("testenv: %v", err)
	}
	b.d, b.Addr = d, d.Addr
}

// Stop stops the daemon (SIGTERM): its address no longer answers.
func (b *Buildkitd) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.d != nil {
		b.d.Stop()
		b.d = nil
	}
}

// ImageBuilds counts, from the build history of the buildkitd at addr,
// the builds that exported each image name (running builds included):
// which host built what, and how many times. The daemon keeps the last
// 50 builds of the last two days.
func ImageBuilds(t testing.TB, addr string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := buildkit.Connect(ctx, addr, buildkit.ConnectOptions{})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer c.Close()
	records, err := c.History(ctx)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	out := map[string]int{}
	for _, r := range records {
		for _, name := range r.Images {
			out[name]++
		}
	}
	return out
}
