package manifest

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestReadFileLinks: convox.yml, like a Dockerfile, must stay inside the
// source directory; links inside it are followed.
func TestReadFileLinks(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "shadow")
	if err := os.WriteFile(secret, []byte("root:SECRET-HASH:19000::::::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "convox.yml"), []byte("services: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := writeFiles(t, map[string]string{"real.yml": "services:\n  web: {}\n", "sub/convox.yml": "services: {}\n"})
	links := map[string]string{
		"escape.yml":        secret,
		"relative.yml":      "../" + filepath.Base(outside) + "/shadow",
		"linkdir":           outside,
		"inside.yml":        "real.yml",
		"insidedir":         "sub",
		"chain.yml":         "inside.yml",
		"absolute-self.yml": filepath.Join(src, "real.yml"),
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(src, name)); err != nil {
			t.Fatal(err)
		}
	}
	// relative.yml points at ../<outside>/shadow: make that path exist
	// next to src.
	if err := os.Symlink(outside, filepath.Join(filepath.Dir(src), filepath.Base(outside))); err != nil && !errors.Is(err, fs.ErrExist) {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(src, "fifo.yml"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, want string
	}{
		{"escape.yml", "escape.yml is, or is under, a link to outside the source directory " + src + "; refusing to follow it (links must stay inside the source directory)"},
		{"relative.yml", "relative.yml is, or is under, a link to outside the source directory " + src + "; refusing to follow it (links must stay inside the source directory)"},
		{"linkdir/convox.yml", "linkdir/convox.yml is, or is under, a link to outside the source directory " + src + "; refusing to follow it (links must stay inside the source directory)"},
		{"absolute-self.yml", "absolute-self.yml is, or is under, a link to outside the source directory " + src + "; refusing to follow it (links must stay inside the source directory)"},
		{"../x/convox.yml", "../x/convox.yml is outside the source directory " + src + "; give a path inside it"},
		{"fifo.yml", "fifo.yml is not a regular file"},
		{"sub", "sub is not a regular file"},
		{"inside.yml", ""},
		{"chain.yml", ""},
		{"insidedir/convox.yml", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := ReadFile(src, tt.name)
			if tt.want == "" {
				if err != nil || len(data) == 0 {
					t.Fatalf("got %q, %v", data, err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error %v\nwant %s", err, tt.want)
			}
			if strings.Contains(err.Error(), "SECRET") || data != nil {
				t.Errorf("the target leaked: %q %v", data, err)
			}
		})
	}
	_, err := ReadFile(src, "missing.yml")
	if !os.IsNotExist(err) || err.Error() != "open missing.yml: no such file or directory" {
		t.Errorf("missing: %v (IsNotExist %v)", err, os.IsNotExist(err))
	}
}

// TestLoadDockerfiles: Load reports a missing, empty, unparsable or
// misplaced Dockerfile of each service that builds, at the service's build
// in convox.yml, naming the Dockerfile and its line.
func TestLoadDockerfiles(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"app/convox.yml": "services:\n" +
			"  ok:\n    build: .\n" +
			"  missing:\n    build: nowhere\n" +
			"  empty:\n    build:\n      path: .\n      manifest: Dockerfile.empty\n" +
			"  bad:\n    build:\n      manifest: Dockerfile.bad\n" +
			"  dir:\n    build:\n      manifest: docker\n" +
			"  noform:\n    build:\n      manifest: Dockerfile.noform\n" +
			"  implicit: {}\n" +
			"  image:\n    image: busybox\n" +
			"  outside:\n    build: ../other\n",
		"app/Dockerfile":         "FROM busybox\n",
		"app/Dockerfile.empty":   "# nothing here\n",
		"app/Dockerfile.bad":     "FROM busybox\nRUN true\nFORM x\n",
		"app/Dockerfile.noform":  "ARG A\n",
		"app/docker/placeholder": "",
		"other/Dockerfile":       "FROM busybox\n",
	})
	t.Chdir(dir)
	_, err := Load(context.Background(), "app/convox.yml", Options{})
	want := strings.Join([]string{
		"app/convox.yml:5:12: service missing: no such file: app/nowhere/Dockerfile",
		"app/convox.yml:9:17: service empty: app/Dockerfile.empty is empty: it has no instructions",
		"app/convox.yml:12:17: service bad: app/Dockerfile.bad:3: unknown instruction: FORM (did you mean FROM?)",
		"app/convox.yml:15:17: service dir: app/docker is a directory, not a Dockerfile",
		"app/convox.yml:18:17: service noform: app/Dockerfile.noform: dockerfile contains no stages to build",
		`app/convox.yml:23:12: service outside: build path "../other" is outside the source directory`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}
