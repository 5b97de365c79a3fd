package buildkit_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
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

// TestInternalPackagesReadNoEnvironment keeps configuration explicit: below
// the front ends, packages take settings from their callers (a lookup
// function at most), never from the process environment. The test and
// development environments (testenv, devenv) are tools, not the product.
func TestInternalPackagesReadNoEnvironment(t *testing.T) {
	root := filepath.Join("..", "..", "internal")
	forbidden := map[string]bool{"Getenv": true, "LookupEnv": true, "Environ": true, "ExpandEnv": true, "UserHomeDir": true}
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() && (rel == "testenv" || rel == "devenv" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		files++
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "os" && forbidden[sel.Sel.Name] {
					t.Errorf("%s calls os.%s: take the setting from the caller", rel, sel.Sel.Name)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 20 {
		t.Fatalf("found only %d source files under %s", files, root)
	}
}
