// Package testenv gives tests the real things they run against: a buildkitd
// and a registry seeded with busybox (this file), and a PostgreSQL server
// (postgres.go). Each is started once per test process, on first use, and
// stopped when the process ends; a package that uses them calls Main from
// its TestMain. Nothing here skips: a missing prerequisite fails the test
// with what to install.
package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/convox-build-action/convox-build-action/internal/devenv"
)

// Env is a running build environment.
type Env struct {
	// BuildkitAddr is buildkitd's unix:// address.
	BuildkitAddr string
	// Registry is the registry host ("127.0.0.1:PORT"); it serves
	// library/busybox:latest and is buildkitd's docker.io mirror.
	Registry string
	// BusyboxDigest is the digest of the seeded busybox image.
	BusyboxDigest string
	// Dir is a scratch directory that lives as long as the environment.
	Dir string
}

var (
	mainCalled bool
	envOnce    sync.Once
	env        *Env
	envErr     error
	stops      []func()
	stopsMu    sync.Mutex
)

// Main runs the package's tests and then stops what they started. Call it
// from TestMain: func TestMain(m *testing.M) { testenv.Main(m) }.
func Main(m *testing.M) {
	mainCalled = true
	code := m.Run()
	stopAll()
	StopPostgres()
	os.Exit(code)
}

func onStop(f func()) {
	stopsMu.Lock()
	defer stopsMu.Unlock()
	stops = append(stops, f)
}

func stopAll() {
	stopsMu.Lock()
	defer stopsMu.Unlock()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
	stops = nil
}

// Build returns the process's build environment, starting it on first use.
func Build(t testing.TB) *Env {
	t.Helper()
	if !mainCalled {
		t.Fatal("testenv: the package's TestMain must call testenv.Main(m) so the daemons are stopped")
	}
	envOnce.Do(func() { env, envErr = startBuild() })
	if envErr != nil {
		t.Fatalf("testenv: %v", envErr)
	}
	return env
}

func startBuild() (*Env, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "convox-build-testenv-")
	if err != nil {
		return nil, err
	}
	onStop(func() { os.RemoveAll(dir) })
	reg, err := devenv.StartRegistry(ctx, devenv.RegistryOptions{})
	if err != nil {
		return nil, err
	}
	onStop(func() { reg.Close() })
	dg, err := devenv.SeedBusybox(ctx, reg.Addr, devenv.BusyboxPath)
	if err != nil {
		return nil, fmt.Errorf("seeding busybox: %w", err)
	}
	bk, err := devenv.StartBuildkitd(ctx, devenv.BuildkitdOptions{Root: filepath.Join(dir, "buildkitd"), Mirror: reg.Addr})
	if err != nil {
		return nil, err
	}
	onStop(func() { bk.Stop() })
	return &Env{BuildkitAddr: bk.Addr, Registry: reg.Addr, BusyboxDigest: dg, Dir: dir}, nil
}

// Registry starts an extra registry for one test, stopped when the test
// ends; opts as for devenv.StartRegistry (e.g. with an htpasswd file).
func Registry(t testing.TB, opts devenv.RegistryOptions) *devenv.Registry {
	t.Helper()
	r, err := devenv.StartRegistry(context.Background(), opts)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
