package build_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/devenv"
	"github.com/convox-build-action/convox-build-action/internal/registry"
)

// The benchmarks compare the engine with buildctl on the same buildkitd,
// as `make bench` prints: each reports ours-s/op, buildctl-s/op and their
// ratio (ours / buildctl).

// benchApp writes an app of n services, each with its own Dockerfile that
// does `work` (a shell command) in a RUN step.
func benchApp(b *testing.B, n int, work string) string {
	b.Helper()
	dir := b.TempDir()
	var yml strings.Builder
	yml.WriteString("services:\n")
	for i := range n {
		svc := fmt.Sprintf("svc%d", i)
		fmt.Fprintf(&yml, "  %s:\n    build: ./%s\n", svc, svc)
		os.MkdirAll(filepath.Join(dir, svc), 0o755)
		df := fmt.Sprintf("FROM busybox\nRUN %s && echo %s > /out\nCMD [\"cat\", \"/out\"]\n", work, svc)
		os.WriteFile(filepath.Join(dir, svc, "Dockerfile"), []byte(df), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "convox.yml"), []byte(yml.String()), 0o644)
	return dir
}

// buildctlBuild builds dir/<svc> with buildctl and pushes it.
func buildctlBuild(b *testing.B, addr, dir, ref string, noCache bool) {
	b.Helper()
	bin, err := devenv.Binary("buildctl")
	if err != nil {
		b.Fatal(err)
	}
	args := []string{"--addr", addr, "build", "--frontend", "dockerfile.v0",
		"--local", "context=" + dir, "--local", "dockerfile=" + dir,
		"--output", "type=image,name=" + ref + ",push=true", "--progress", "plain"}
	if noCache {
		args = append(args, "--no-cache")
	}
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		b.Fatalf("buildctl: %v\n%s", err, out)
	}
}

func report(b *testing.B, ours, theirs time.Duration) {
	n := float64(b.N)
	b.ReportMetric(ours.Seconds()/n, "ours-s/op")
	b.ReportMetric(theirs.Seconds()/n, "buildctl-s/op")
	b.ReportMetric(ours.Seconds()/theirs.Seconds(), "ratio")
}

// BenchmarkFourServicesVsSequentialBuildctl: 4 services with independent
// work (2 s each), no cache; ours builds them at once, Convox's way is one
// buildctl build after another. Target ratio <= 0.30.
func BenchmarkFourServicesVsSequentialBuildctl(b *testing.B) {
	h := newHarness(b)
	dir := benchApp(b, 4, "sleep 2")
	var ours, theirs time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		_, err := h.engine.Run(context.Background(), build.Request{App: "bench4", Repository: h.env.Registry + "/bench4",
			SourceDir: dir, NoCache: true, Cache: build.Cache{Type: build.CacheNone}, Registry: registry.Options{Insecure: true}})
		if err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)
		start = time.Now()
		for s := range 4 {
			buildctlBuild(b, h.env.BuildkitAddr, filepath.Join(dir, fmt.Sprintf("svc%d", s)), fmt.Sprintf("%s/bench4:svc%d.buildctl", h.env.Registry, s), true)
		}
		theirs += time.Since(start)
	}
	report(b, ours, theirs)
}

// BenchmarkOneServiceCLIOverhead: one service doing about 2 s of work, no
// cache: the convox-build CLI (a process, with its store) vs one buildctl
// build of the same Dockerfile. Target ratio <= 1.10.
func BenchmarkOneServiceCLIOverhead(b *testing.B) {
	h := newHarness(b)
	dir := benchApp(b, 1, "sleep 2")
	cli := filepath.Join(b.TempDir(), "convox-build")
	if out, err := exec.Command("go", "build", "-o", cli, "../../cmd/convox-build").CombinedOutput(); err != nil {
		b.Fatalf("building the CLI: %v\n%s", err, out)
	}
	db := "sqlite://" + filepath.Join(b.TempDir(), "bench.db")
	var ours, theirs time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		cmd := exec.Command(cli, "build", dir, "-a", "bench1", "--repository", h.env.Registry+"/bench1", "--no-cache", "--cache", "none", "--id")
		cmd.Env = append(os.Environ(), "BUILDKIT_HOST="+h.env.BuildkitAddr, "DATABASE_URL="+db)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("convox-build: %v\n%s", err, out)
		}
		ours += time.Since(start)
		start = time.Now()
		buildctlBuild(b, h.env.BuildkitAddr, filepath.Join(dir, "svc0"), h.env.Registry+"/bench1:svc0.buildctl", true)
		theirs += time.Since(start)
	}
	report(b, ours, theirs)
}

// BenchmarkNoChangeRebuild: the 4-service app again with nothing changed
// (everything cached, images pushed, registry cache exported) vs a warm
// buildctl loop over the four services. Target ratio <= 1.
func BenchmarkNoChangeRebuild(b *testing.B) {
	h := newHarness(b)
	dir := benchApp(b, 4, "sleep 1")
	req := build.Request{App: "benchwarm", Repository: h.env.Registry + "/benchwarm", SourceDir: dir, Registry: registry.Options{Insecure: true}}
	ctlRef := func(s int) string { return fmt.Sprintf("%s/benchwarm:svc%d.buildctl", h.env.Registry, s) }
	// Warm both.
	if _, err := h.engine.Run(context.Background(), req); err != nil {
		b.Fatal(err)
	}
	for s := range 4 {
		buildctlBuild(b, h.env.BuildkitAddr, filepath.Join(dir, fmt.Sprintf("svc%d", s)), ctlRef(s), false)
	}
	b.ResetTimer()
	var ours, theirs time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		bd, err := h.engine.Run(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)
		for _, s := range bd.Services {
			if s.CachedSteps != s.TotalSteps {
				b.Fatalf("%s: %d of %d steps cached", s.Service, s.CachedSteps, s.TotalSteps)
			}
		}
		start = time.Now()
		for s := range 4 {
			buildctlBuild(b, h.env.BuildkitAddr, filepath.Join(dir, fmt.Sprintf("svc%d", s)), ctlRef(s), false)
		}
		theirs += time.Since(start)
	}
	report(b, ours, theirs)
}
