// Package devenv starts the pieces a real build needs on a machine without a
// Docker engine or registry access: a container registry on 127.0.0.1 seeded
// with a busybox image built from Debian's busybox-static, and a buildkitd
// (OCI worker, overlayfs) that uses that registry as its docker.io mirror, so
// Dockerfiles say `FROM busybox` exactly as users' do.
//
// The tests start these in-process (internal/testenv); `make env` starts them
// as background daemons (cmd/devenv in this package's folder).
package devenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Binary finds a tool the environment runs (buildkitd, buildctl): in
// $CONVOX_BUILD_BIN_DIR, then in the project's bin/ (where `make` builds
// them at the pinned version), then on PATH.
func Binary(name string) (string, error) {
	if dir := os.Getenv("CONVOX_BUILD_BIN_DIR"); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if root, err := ProjectRoot(); err == nil {
		p := filepath.Join(root, "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found in bin/ or on PATH: run `make bin/%s` (or `make test`, which builds it)", name, name)
}

// ProjectRoot is the directory holding the project's go.mod, found from the
// working directory upwards.
func ProjectRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			len(b) > 0 && containsModule(b) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("project root (go.mod of convox-build-action) not found above the working directory")
		}
		dir = parent
	}
}

func containsModule(gomod []byte) bool {
	const want = "module github.com/convox-build-action/convox-build-action\n"
	return len(gomod) >= len(want) && string(gomod[:len(want)]) == want
}
