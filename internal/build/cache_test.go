package build_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/devenv"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

// prune empties buildkitd's own cache, as a fresh CI machine would have it.
func prune(t *testing.T, addr string) {
	t.Helper()
	bin, err := devenv.Binary("buildctl")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "--addr", addr, "prune", "--all").CombinedOutput(); err != nil {
		t.Fatalf("buildctl prune: %v\n%s", err, out)
	}
}

func allCached(b *store.Build) bool {
	for _, s := range b.Services {
		if !s.ImageOnly && (s.TotalSteps == 0 || s.CachedSteps != s.TotalSteps) {
			return false
		}
	}
	return true
}

// Each cache type survives an empty builder: build, prune buildkitd,
// rebuild: every step comes from the cache (and with none, none does).
func TestCacheTypesSurviveAnEmptyBuilder(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		cache      func(dir string) build.Cache
		wantCached bool
	}{
		{func(string) build.Cache { return build.Cache{} }, true},
		{func(dir string) build.Cache { return build.Cache{Type: build.CacheLocal, Dir: dir} }, true},
		{func(string) build.Cache { return build.Cache{Type: build.CacheInline} }, true},
		{func(string) build.Cache { return build.Cache{Type: build.CacheNone} }, false},
	}
	for _, c := range cases {
		name := c.cache("").Type
		if name == "" {
			name = "registry"
		}
		t.Run(name, func(t *testing.T) {
			req := h.request(t, "multi")
			req.App = "cache-" + name
			req.Repository = h.env.Registry + "/cache-" + name
			req.Services = []string{"api", "web"}
			req.Cache = c.cache(t.TempDir())
			if _, err := h.engine.Run(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			if name == "local" {
				for _, svc := range []string{"api", "web"} {
					if _, err := os.Stat(filepath.Join(req.Cache.Dir, svc, "index.json")); err != nil {
						t.Errorf("local cache for %s: %v", svc, err)
					}
				}
			}
			if name == "registry" {
				for _, svc := range []string{"api", "web"} {
					registryDigest(t, req.Repository+":"+svc+".buildcache")
				}
			}
			prune(t, h.env.BuildkitAddr)
			var logs []string
			req.Sink = build.SinkFunc(func(e build.Event) {
				if e.Type == build.LogLine {
					logs = append(logs, e.Line)
				}
			})
			b, err := h.engine.Run(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if got := allCached(b); got != c.wantCached {
				t.Errorf("after prune: all cached = %v, want %v: %+v\n%s", got, c.wantCached, b.Services, strings.Join(logs, "\n"))
			}
		})
	}
}

func TestNoCacheIgnoresTheRegistryCache(t *testing.T) {
	h := newHarness(t)
	req := h.request(t, "multi")
	req.Services = []string{"api"}
	if _, err := h.engine.Run(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	prune(t, h.env.BuildkitAddr)
	req.NoCache = true
	var imported bool
	req.Sink = build.SinkFunc(func(e build.Event) {
		if e.Type == build.LogLine && strings.Contains(e.Line, "importing cache manifest") {
			imported = true
		}
	})
	b, err := h.engine.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if imported || b.Services[0].CachedSteps != 0 {
		t.Errorf("--no-cache: imported %v, %d cached steps", imported, b.Services[0].CachedSteps)
	}
}

func TestGHACacheNeedsActions(t *testing.T) {
	// The engine reads no environment: without the service's address and
	// token in Cache, gha is refused with a typed error whatever the
	// process environment holds.
	t.Setenv("ACTIONS_RUNTIME_TOKEN", "tok")
	t.Setenv("ACTIONS_RESULTS_URL", "http://127.0.0.1:1/")
	err := build.Cache{Type: build.CacheGHA}.Validate()
	if !errors.Is(err, build.ErrNoGHACache) || build.InputField(err) != build.FieldCache {
		t.Errorf("gha without the service: %v", err)
	}
	if err := (build.Cache{Type: build.CacheGHA, GHAToken: "tok", GHAURLV2: "http://127.0.0.1:1/"}).Validate(); err != nil {
		t.Errorf("gha with the service: %v", err)
	}
}
