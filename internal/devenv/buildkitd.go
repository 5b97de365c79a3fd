package devenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/buildkit"
)

// BuildkitdOptions configure StartBuildkitd.
type BuildkitdOptions struct {
	// Bin is the buildkitd binary (default: Binary("buildkitd")).
	Bin string
	// Root is buildkitd's state directory; its socket is Root/buildkitd.sock.
	Root string
	// Mirror is a registry host (127.0.0.1:PORT) that serves docker.io.
	Mirror string
	// LogFile receives buildkitd's output (default Root/buildkitd.log).
	LogFile string
	// Detach starts buildkitd in its own session so that it outlives the
	// caller (for `make env`); otherwise Stop ends it.
	Detach bool
	// TCPAddr, when set ("127.0.0.1:PORT"), is a second listener, with
	// mutual TLS when TLS is set.
	TCPAddr string
	// TLS are PEM files for the TCP listener: the server's certificate and
	// key and the CA that client certificates must chain to.
	TLS *TLSFiles
}

// TLSFiles are PEM file paths.
type TLSFiles struct{ CA, Cert, Key string }

// Buildkitd is a running buildkitd.
type Buildkitd struct {
	// Addr is the unix:// address of its socket.
	Addr string
	Pid  int

	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
}

// BuildkitdConfig is the buildkitd.toml for a daemon whose docker.io
// images come from the registry at mirror.
func BuildkitdConfig(mirror string) string {
	var b strings.Builder
	b.WriteString("# written by convox-build-action's devenv\n")
	b.WriteString("[worker.oci]\n  enabled = true\n  snapshotter = \"overlayfs\"\n  gc = true\n  gckeepstorage = \"10GB\"\n")
	b.WriteString("[worker.containerd]\n  enabled = false\n")
	if mirror != "" {
		fmt.Fprintf(&b, "[registry.\"docker.io\"]\n  mirrors = [%q]\n", mirror)
		fmt.Fprintf(&b, "[registry.%q]\n  http = true\n  insecure = true\n", mirror)
	}
	return b.String()
}

// StartBuildkitd starts buildkitd and waits until it answers.
func StartBuildkitd(ctx context.Context, opts BuildkitdOptions) (*Buildkitd, error) {
	if opts.Root == "" {
		return nil, errors.New("starting buildkitd: no root directory")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return nil, errors.New("starting buildkitd: runc not found on PATH: install it (apt-get install runc)")
	}
	bin := opts.Bin
	if bin == "" {
		var err error
		if bin, err = Binary("buildkitd"); err != nil {
			return nil, err
		}
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("starting buildkitd: %w", err)
	}
	configPath := filepath.Join(root, "buildkitd.toml")
	if err := os.WriteFile(configPath, []byte(BuildkitdConfig(opts.Mirror)), 0o600); err != nil {
		return nil, fmt.Errorf("writing buildkitd config: %w", err)
	}
	sock := filepath.Join(root, "buildkitd.sock")
	os.Remove(sock)
	addr := "unix://" + sock
	logPath := opts.LogFile
	if logPath == "" {
		logPath = filepath.Join(root, "buildkitd.log")
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("starting buildkitd: %w", err)
	}
	defer logf.Close()

	cmd := exec.Command(bin,
		"--root", filepath.Join(root, "state"),
		"--addr", addr,
		"--config", configPath,
		"--oci-worker=true", "--containerd-worker=false",
	)
	if opts.TCPAddr != "" {
		cmd.Args = append(cmd.Args, "--addr", "tcp://"+opts.TCPAddr)
	}
	if opts.TLS != nil {
		cmd.Args = append(cmd.Args, "--tlscacert", opts.TLS.CA, "--tlscert", opts.TLS.Cert, "--tlskey", opts.TLS.Key)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: opts.Detach, Pdeathsig: pdeathsig(opts.Detach)}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting buildkitd %s: %w", bin, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	d := &Buildkitd{Addr: addr, Pid: cmd.Process.Pid, cmd: cmd}

	// Wait for the socket, then for the daemon to answer.
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			return nil, fmt.Errorf("buildkitd exited at start (%v); its log %s ends:\n%s", waitErr, logPath, TailFile(logPath, 15))
		default:
		}
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return nil, fmt.Errorf("buildkitd did not create %s within 30s; its log %s ends:\n%s", sock, logPath, TailFile(logPath, 15))
		}
		time.Sleep(50 * time.Millisecond)
	}
	c, err := buildkit.Connect(ctx, addr, buildkit.ConnectOptions{Timeout: 20 * time.Second})
	if err != nil {
		cmd.Process.Kill()
		return nil, fmt.Errorf("%w; buildkitd log %s ends:\n%s", err, logPath, TailFile(logPath, 15))
	}
	c.Close()
	if opts.Detach {
		cmd.Process.Release()
	} else {
		d.exited = exited
	}
	return d, nil
}

// Stop ends a buildkitd this process started (not a detached one): SIGTERM,
// then SIGKILL after 15 s. Stopping twice is fine.
func (d *Buildkitd) Stop() error {
	if d.cmd == nil || d.exited == nil {
		return nil
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
	}
	return nil
}

func pdeathsig(detach bool) syscall.Signal {
	if detach {
		return 0
	}
	return syscall.SIGKILL
}

// TailFile is the last n lines of the file at path, for errors that point
// at a daemon's log.
func TailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
