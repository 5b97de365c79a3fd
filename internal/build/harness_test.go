package build_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/buildkit"
	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// harness is an engine on the real test buildkitd and registry, with a
// SQLite store of its own and a solver that counts builds.
type harness struct {
	env    *testenv.Env
	store  store.Store
	solver *countingSolver
	engine *build.Engine
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	env := testenv.Build(t)
	st := testenv.Store(t)
	s := &countingSolver{Solver: testenv.Solver(t)}
	return &harness{env: env, store: st, solver: s, engine: &build.Engine{Solver: s, Store: st}}
}

// countingSolver counts Build calls.
type countingSolver struct {
	build.Solver
	mu    sync.Mutex
	calls int
}

func (s *countingSolver) Build(ctx context.Context, req buildkit.BuildRequest) (*buildkit.Result, error) {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	return s.Solver.Build(ctx, req)
}

func (s *countingSolver) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// request is a build of testdata/apps/<app> (copied, so no git checkout
// around it) pushed to the test registry.
func (h *harness) request(t testing.TB, app string) build.Request {
	t.Helper()
	return build.Request{
		App:        app,
		Repository: h.env.Registry + "/" + app,
		SourceDir:  copyApp(t, app),
		Env:        map[string]string{"REGISTRY": h.env.Registry, "APP_VERSION": "1.2.3"},
		Registry:   registry.Options{Insecure: true},
	}
}

// copyApp copies testdata/apps/<app> into a temporary directory.
func copyApp(t testing.TB, app string) string {
	t.Helper()
	src := filepath.Join("..", "..", "testdata", "apps", app)
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
	return dst
}

// registryDigest is the digest the registry serves for ref.
func registryDigest(t testing.TB, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(r)
	if err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return d.Digest.String()
}

// events collects a build's events.
type events struct {
	mu  sync.Mutex
	all []build.Event
}

func (e *events) add(ev build.Event) { e.mu.Lock(); e.all = append(e.all, ev); e.mu.Unlock() }

func (e *events) of(t build.EventType) []build.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []build.Event
	for _, ev := range e.all {
		if ev.Type == t {
			out = append(out, ev)
		}
	}
	return out
}
