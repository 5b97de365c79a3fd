package buildkit_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestImportBoundaries enforces DESIGN.md's seams: only internal/buildkit
// and its subpackages (internal/buildkit/dockerfile, which reads
// Dockerfiles without linking the client) import moby/buildkit; the engine and the store never import GitHub
// packages; front ends (cmd/*) never import BuildKit.
func TestImportBoundaries(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}} {{join .TestImports \" \"}}", "github.com/convox-build-action/convox-build-action/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/convox-build-action/convox-build-action/"
	rules := []struct {
		who       func(pkg string) bool
		forbidden string
		why       string
	}{
		{func(p string) bool {
			return p != mod+"internal/buildkit" && !strings.HasPrefix(p, mod+"internal/buildkit/")
		}, "github.com/moby/buildkit", "only internal/buildkit (and its subpackages) talks to BuildKit"},
		{func(p string) bool { return strings.HasPrefix(p, mod+"cmd/") }, mod + "internal/buildkit", "front ends go through the engine"},
		{func(p string) bool {
			return strings.HasPrefix(p, mod+"internal/build") || strings.HasPrefix(p, mod+"internal/store") || strings.HasPrefix(p, mod+"internal/manifest")
		}, "github.com/google/go-github", "the engine never talks to GitHub"},
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg, imports := f[0], f[1:]
		checked++
		for _, r := range rules {
			if !r.who(pkg) {
				continue
			}
			for _, imp := range imports {
				if imp == r.forbidden || strings.HasPrefix(imp, r.forbidden+"/") {
					t.Errorf("%s imports %s: %s", pkg, imp, r.why)
				}
			}
		}
	}
	if checked < 3 {
		t.Fatalf("go list found only %d packages", checked)
	}
}

// TestBuildkitVersionPinnedTwice checks that tools/buildkit (which builds
// the buildkitd the tests run) requires the client's moby/buildkit version.
func TestBuildkitVersionPinnedTwice(t *testing.T) {
	re := regexp.MustCompile(`(?m)^\s*(?:require\s+)?github\.com/moby/buildkit (v\S+)`)
	version := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		m := re.FindSubmatch(b)
		if m == nil {
			t.Fatalf("%s does not require github.com/moby/buildkit", path)
		}
		return string(m[1])
	}
	root := filepath.Join("..", "..")
	main, tools := version(filepath.Join(root, "go.mod")), version(filepath.Join(root, "tools", "buildkit", "go.mod"))
	if main != tools {
		t.Errorf("moby/buildkit %s in go.mod but %s in tools/buildkit/go.mod", main, tools)
	}
}
