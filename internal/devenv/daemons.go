package devenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/buildkit"
)

// Daemons are the long-lived registry and buildkitd that `make env` keeps
// under a state directory, so that a second call finds and reuses them.
type Daemons struct {
	// Dir holds pid files, addresses, logs and the daemons' data.
	Dir string
	// Self is the program that serves the registry when run as
	// `Self registry --dir D --addr A` (the devenv command).
	Self string
	// Log receives progress messages (e.g. os.Stderr).
	Log io.Writer
}

// Running is what Up reports.
type Running struct {
	BuildkitAddr string
	Registry     string
}

// Exports are the shell lines `make env` prints, for
// eval "$(make -s env)": buildkitd's address, the registry to push to
// (plain HTTP), and the registry as docker.io mirror for the pulls
// convox-build makes itself (image-only services such as `image: busybox`),
// as buildkitd already uses it for FROM lines.
func (r *Running) Exports() string {
	return fmt.Sprintf("export BUILDKIT_HOST=%s\nexport CONVOX_BUILD_REGISTRY=%s\nexport CONVOX_BUILD_REGISTRY_INSECURE=true\nexport REGISTRY_MIRRORS=docker.io=%s\n",
		r.BuildkitAddr, r.Registry, r.Registry)
}

// Up starts whatever is not already running and answering, and returns
// the addresses. It is idempotent.
func (d Daemons) Up(ctx context.Context) (*Running, error) {
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return nil, err
	}
	reg, restarted, err := d.registry(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := SeedBusybox(ctx, reg, BusyboxPath); err != nil {
		return nil, err
	}
	addr, err := d.buildkitd(ctx, reg, restarted)
	if err != nil {
		return nil, err
	}
	return &Running{BuildkitAddr: addr, Registry: reg}, nil
}

func (d Daemons) logf(format string, args ...any) {
	if d.Log != nil {
		fmt.Fprintf(d.Log, format+"\n", args...)
	}
}

func (d Daemons) path(name string) string { return filepath.Join(d.Dir, name) }

// registry returns the running registry's address, starting one when
// needed (on its previous port when free, so buildkitd's mirror stays
// valid).
func (d Daemons) registry(ctx context.Context) (addr string, started bool, err error) {
	prev, _ := os.ReadFile(d.path("registry.addr"))
	if pid := readPid(d.path("registry.pid")); pid > 0 && alive(pid) && len(prev) > 0 && RegistryAnswers(ctx, string(prev)) {
		d.logf("registry: running at %s (pid %d)", prev, pid)
		return string(prev), false, nil
	}
	want := "127.0.0.1:0"
	if len(prev) > 0 {
		want = string(prev)
	}
	addr, err = d.startRegistry(ctx, want)
	if err != nil && want != "127.0.0.1:0" {
		addr, err = d.startRegistry(ctx, "127.0.0.1:0")
	}
	if err != nil {
		return "", false, err
	}
	return addr, true, nil
}

func (d Daemons) startRegistry(ctx context.Context, want string) (string, error) {
	os.Remove(d.path("registry.addr"))
	logf, err := os.OpenFile(d.path("registry.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", err
	}
	defer logf.Close()
	cmd := exec.Command(d.Self, "registry", "--dir", d.path("registry"), "--addr", want, "--addr-file", d.path("registry.addr"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("starting registry: %w", err)
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(d.path("registry.addr")); err == nil && len(b) > 0 && RegistryAnswers(ctx, string(b)) {
			os.WriteFile(d.path("registry.pid"), []byte(strconv.Itoa(pid)), 0o600)
			d.logf("registry: started at %s (pid %d)", b, pid)
			return string(b), nil
		}
		select {
		case err := <-exited:
			return "", fmt.Errorf("registry exited at start (%v); its log %s ends:\n%s", err, d.path("registry.log"), TailFile(d.path("registry.log"), 10))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return "", fmt.Errorf("registry did not answer within 10s; see %s", d.path("registry.log"))
		}
	}
}

func (d Daemons) buildkitd(ctx context.Context, registry string, registryRestarted bool) (string, error) {
	root := d.path("buildkitd")
	addr := "unix://" + filepath.Join(root, "buildkitd.sock")
	pid := readPid(d.path("buildkitd.pid"))
	cfg, _ := os.ReadFile(filepath.Join(root, "buildkitd.toml"))
	sameMirror := string(cfg) == BuildkitdConfig(registry)
	if pid > 0 && alive(pid) {
		if sameMirror {
			c, err := buildkit.Connect(ctx, addr, buildkit.ConnectOptions{Timeout: 5 * time.Second})
			if err == nil {
				c.Close()
				d.logf("buildkitd: running at %s (pid %d)", addr, pid)
				return addr, nil
			}
		}
		d.logf("buildkitd: restarting (pid %d) for registry %s", pid, registry)
		stopPid(pid)
	}
	bk, err := StartBuildkitd(ctx, BuildkitdOptions{Root: root, Mirror: registry, Detach: true})
	if err != nil {
		return "", err
	}
	os.WriteFile(d.path("buildkitd.pid"), []byte(strconv.Itoa(bk.Pid)), 0o600)
	d.logf("buildkitd: started at %s (pid %d)", bk.Addr, bk.Pid)
	return bk.Addr, nil
}

// Down stops both daemons; their data stays for the next Up.
func (d Daemons) Down() error {
	var errs []error
	for _, name := range []string{"buildkitd", "registry"} {
		pid := readPid(d.path(name + ".pid"))
		if pid <= 0 || !alive(pid) {
			d.logf("%s: not running", name)
			continue
		}
		if err := stopPid(pid); err != nil {
			errs = append(errs, fmt.Errorf("stopping %s (pid %d): %w", name, pid, err))
			continue
		}
		os.Remove(d.path(name + ".pid"))
		d.logf("%s: stopped (pid %d)", name, pid)
	}
	return errors.Join(errs...)
}

func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	// A zombie is not alive.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) < 3 || f[2] != "Z"
}

func stopPid(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return err
	}
	for i := 0; i < 150; i++ {
		if !alive(pid) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}
