package devenv_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/convox-build-action/convox-build-action/internal/devenv"
)

// TestDaemonsUpTwiceStartsOnceAndBuildctlWorks is `make env` twice, then
// `eval "$(make -s env)"; buildctl debug workers`, then `make env-stop`.
func TestDaemonsUpTwiceStartsOnceAndBuildctlWorks(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	self := filepath.Join(tmp, "devenv")
	if out, err := exec.Command("go", "build", "-o", self, "./cmd/devenv").CombinedOutput(); err != nil {
		t.Fatalf("building devenv: %v\n%s", err, out)
	}
	var log strings.Builder
	d := devenv.Daemons{Dir: filepath.Join(tmp, "env"), Self: self, Log: &log}
	t.Cleanup(func() { d.Down() })

	first, err := d.Up(ctx)
	if err != nil {
		t.Fatalf("first up: %v\n%s", err, log.String())
	}
	second, err := d.Up(ctx)
	if err != nil {
		t.Fatalf("second up: %v\n%s", err, log.String())
	}
	if *first != *second {
		t.Errorf("second up = %+v, want the same daemons as %+v", second, first)
	}
	out := log.String()
	if strings.Count(out, "started") != 2 || strings.Count(out, "running") != 2 {
		t.Errorf("want each daemon started once and reused once; log:\n%s", out)
	}

	buildctl, err := devenv.Binary("buildctl")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(buildctl, "debug", "workers")
	cmd.Env = append(os.Environ(), "BUILDKIT_HOST="+second.BuildkitAddr)
	wout, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(wout), "linux/amd64") {
		t.Fatalf("buildctl debug workers: %v\n%s", err, wout)
	}
	ver, err := exec.Command(buildctl, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(ver), "v0.34.2") {
		t.Errorf("buildctl --version = %q, %v; want the pinned v0.34.2", ver, err)
	}

	// eval "$(make -s env)"; convox-build build testdata/apps/hub: its
	// `image: busybox` service comes from Docker Hub through the mirror.
	exports := second.Exports()
	if want := "export REGISTRY_MIRRORS=docker.io=" + second.Registry + "\n"; !strings.Contains(exports, want) {
		t.Errorf("exports lack %q:\n%s", want, exports)
	}
	cli := filepath.Join(tmp, "convox-build")
	if out, err := exec.Command("go", "build", "-o", cli, "github.com/convox-build-action/convox-build-action/cmd/convox-build").CombinedOutput(); err != nil {
		t.Fatalf("building convox-build: %v\n%s", err, out)
	}
	build := exec.Command("sh", "-c", `eval "$EXPORTS" && "$CLI" build ../../testdata/apps/hub --app hub`)
	build.Env = append(os.Environ(), "EXPORTS="+exports, "CLI="+cli, "DATABASE_URL=sqlite://"+filepath.Join(tmp, "builds.db"),
		"DOCKER_CONFIG="+t.TempDir(), "REGISTRY_MIRRORS=", "CONVOX_BUILD_REGISTRY=")
	bout, err := build.CombinedOutput()
	if err != nil || !strings.Contains(string(bout), "Image: "+second.Registry+"/hub:tools.B") || !strings.Contains(string(bout), "\nRelease: R") {
		t.Errorf("building the hub app in the environment: %v\n%s", err, bout)
	}

	if err := d.Down(); err != nil {
		t.Fatal(err)
	}
	if devenv.RegistryAnswers(ctx, second.Registry) {
		t.Errorf("registry %s still answers after down", second.Registry)
	}
}

func TestBusyboxImageRefusesADynamicBinary(t *testing.T) {
	// /bin/sh (dash or bash) is dynamically linked on Debian.
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	sh, _ = filepath.EvalSymlinks(sh)
	_, err = devenv.BusyboxImage(context.Background(), sh)
	if err == nil || !strings.Contains(err.Error(), "dynamically linked") || !strings.Contains(err.Error(), "busybox-static") {
		t.Errorf("err = %v", err)
	}
	if _, err := devenv.BusyboxImage(context.Background(), devenv.BusyboxPath); err != nil {
		t.Errorf("Debian's busybox-static: %v", err)
	}
}
