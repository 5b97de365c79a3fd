package testenv

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/convox-build-action/convox-build-action/internal/buildkit"
	"github.com/convox-build-action/convox-build-action/internal/devenv"
	"github.com/convox-build-action/convox-build-action/internal/dockerbuildkit"
)

// DockerDaemon is a dockerd (Debian's docker.io) started for the tests, in
// its own directories, without a bridge network or iptables rules:
// containers run with host networking (or none). Nothing can be pulled;
// tests load the images they build (LoadImage).
type DockerDaemon struct {
	// Socket is the daemon's unix socket path.
	Socket string
	// Dir holds its data-root, exec-root, pidfile and log.
	Dir string
	// Client talks to it.
	Client *dockerbuildkit.Docker

	cmd    *exec.Cmd
	exited chan struct{}
}

var (
	dockerOnce sync.Once
	docker     *DockerDaemon
	dockerErr  error
)

// Docker returns the process's dockerd, starting it on first use; it is
// stopped (its containers removed) when the test process ends.
func Docker(t testing.TB) *DockerDaemon {
	t.Helper()
	if !mainCalled {
		t.Fatal("testenv: the package's TestMain must call testenv.Main(m) so the daemons are stopped")
	}
	dockerOnce.Do(func() { docker, dockerErr = startDocker() })
	if dockerErr != nil {
		t.Fatalf("testenv: %v", dockerErr)
	}
	return docker
}

func startDocker() (*DockerDaemon, error) {
	bin, err := exec.LookPath("dockerd")
	if err != nil {
		return nil, fmt.Errorf("dockerd not found on PATH: install Debian's docker.io (make deps does)")
	}
	// Unix socket paths are short (108 bytes): keep the directory near /.
	dir, err := os.MkdirTemp("", "cba-docker-")
	if err != nil {
		return nil, err
	}
	d := &DockerDaemon{Socket: filepath.Join(dir, "docker.sock"), Dir: dir, exited: make(chan struct{})}
	logPath := filepath.Join(dir, "dockerd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--host", "unix://"+d.Socket,
		"--pidfile", filepath.Join(dir, "dockerd.pid"),
		"--bridge=none", "--iptables=false", "--ip-masq=false", "--ip6tables=false",
		"--userland-proxy=false",
		// Where a system containerd runs (as on GitHub's runners),
		// dockerd uses it: keep this daemon's objects apart from the
		// system dockerd's.
		"--containerd-namespace", "cba-test-"+filepath.Base(dir),
		"--containerd-plugins-namespace", "cba-test-plugins-"+filepath.Base(dir),
		"--config-file", writeEmptyConfig(dir),
	)
	if wrapper, err := runcWithoutMissingCaps(dir); err != nil {
		return nil, err
	} else if wrapper != "" {
		cmd.Args = append(cmd.Args, "--add-runtime", "testrunc="+wrapper, "--default-runtime", "testrunc")
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// The daemon dies with the test process, whatever happens to it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting dockerd: %w", err)
	}
	d.cmd = cmd
	go func() { cmd.Wait(); close(d.exited) }()
	d.Client = dockerbuildkit.NewDocker(d.Socket)
	onStop(d.stop)

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-d.exited:
			return nil, fmt.Errorf("dockerd exited at start; its log %s ends:\n%s", logPath, devenv.TailFile(logPath, 20))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := d.Client.Ping(ctx)
		cancel()
		if err == nil {
			return d, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("dockerd did not answer on %s within 60s (%v); its log %s ends:\n%s", d.Socket, err, logPath, devenv.TailFile(logPath, 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// capSysResource is CAP_SYS_RESOURCE's bit.
const capSysResource = 24

// runcWithoutMissingCaps handles sandboxes (some VMs, nested containers)
// whose processes lack CAP_SYS_RESOURCE: there a privileged container,
// which asks for every capability, cannot start. It writes a runtime that
// drops that capability from each container's spec and runs runc, and
// returns its path; "" when the capability is there and runc is used as
// it is.
func runcWithoutMissingCaps(dir string) (string, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "CapBnd:")
		if !ok {
			continue
		}
		var bnd uint64
		if _, err := fmt.Sscanf(strings.TrimSpace(v), "%x", &bnd); err != nil {
			return "", fmt.Errorf("reading CapBnd: %w", err)
		}
		if bnd&(1<<capSysResource) != 0 {
			return "", nil
		}
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		return "", fmt.Errorf("runc not found: install it (apt-get install runc)")
	}
	p := filepath.Join(dir, "runc-without-sys-resource")
	script := `#!/bin/sh
# Written by internal/testenv: this machine does not grant CAP_SYS_RESOURCE,
# so drop it from the container's (or exec'd process's) spec before runc
# applies it.
prev=""
for a in "$@"; do
  f=""
  case "$prev" in
  --bundle|-b) f="$a/config.json" ;;
  --process|-p) f="$a" ;;
  esac
  if [ -n "$f" ]; then
    sed -i -e 's/"CAP_SYS_RESOURCE",//g' -e 's/,"CAP_SYS_RESOURCE"//g' -e 's/"CAP_SYS_RESOURCE"//g' "$f"
  fi
  prev="$a"
done
exec ` + runc + ` "$@"
`
	return p, os.WriteFile(p, []byte(script), 0o755)
}

// writeEmptyConfig gives dockerd a daemon.json of its own, so that the
// machine's /etc/docker/daemon.json cannot change the test daemon.
func writeEmptyConfig(dir string) string {
	p := filepath.Join(dir, "daemon.json")
	os.WriteFile(p, []byte("{}\n"), 0o600)
	return p
}

// stop removes the daemon's containers, stops it and removes its files.
func (d *DockerDaemon) stop() {
	if d.cmd == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, id := range d.containers(ctx) {
		d.Client.RemoveContainer(ctx, id)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
	}
	d.Client.Close()
	// Containers' mounts may linger under data-root: unmount before removal.
	exec.Command("sh", "-c", "grep -o ' "+d.Dir+"[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l").Run()
	os.RemoveAll(d.Dir)
	d.cmd = nil
}

// containers lists the IDs of every container of the daemon.
func (d *DockerDaemon) containers(ctx context.Context) []string {
	ids, _ := d.Client.ContainerIDs(ctx)
	return ids
}

// Run runs `docker` (Debian's client) against the daemon with args and
// returns its combined output.
func (d *DockerDaemon) Run(ctx context.Context, args ...string) (string, error) {
	bin := "/usr/bin/docker" // Debian's docker.io client, of the daemon's version
	if _, err := os.Stat(bin); err != nil {
		bin = "docker"
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"--host", "unix://" + d.Socket}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(d.Dir, "client"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// BuildImage builds the Dockerfile target of contextDir with the test
// buildkitd and loads the result into the daemon as ref. Base images come
// from the test registry (FROM busybox works) or scratch.
func (d *DockerDaemon) BuildImage(t testing.TB, contextDir, dockerfile, target string, args map[string]string, ref string) {
	t.Helper()
	env := Build(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := buildkit.Connect(ctx, env.BuildkitAddr, buildkit.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir := t.TempDir()
	archive := filepath.Join(dir, "image.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Build(ctx, buildkit.BuildRequest{
		ContextDir: contextDir, Dockerfile: dockerfile, Target: target, BuildArgs: args,
		OCIArchive: f, OCIName: ref,
	}); err != nil {
		t.Fatalf("building %s: %v", ref, err)
	}
	if err := d.LoadOCIArchive(ctx, archive, ref, dir); err != nil {
		t.Fatal(err)
	}
}

// LoadOCIArchive loads the single image of an OCI archive (as BuildKit's
// oci exporter writes it) into the daemon as ref. Docker 20.10 loads only
// docker-save archives, so the image is rewritten as one first (same
// layers, same config).
func (d *DockerDaemon) LoadOCIArchive(ctx context.Context, archive, ref, scratch string) error {
	layoutDir := filepath.Join(scratch, "oci-layout")
	if err := untar(archive, layoutDir); err != nil {
		return fmt.Errorf("unpacking %s: %w", archive, err)
	}
	idx, err := layout.ImageIndexFromPath(layoutDir)
	if err != nil {
		return fmt.Errorf("reading OCI layout of %s: %w", archive, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	if len(im.Manifests) != 1 {
		return fmt.Errorf("%s holds %d manifests, want 1", archive, len(im.Manifests))
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		return fmt.Errorf("reading the image of %s: %w", archive, err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	dockerArchive := filepath.Join(scratch, "docker-archive.tar")
	if err := tarball.WriteToFile(dockerArchive, tag, img); err != nil {
		return fmt.Errorf("writing a docker archive of %s: %w", ref, err)
	}
	f, err := os.Open(dockerArchive)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := d.Client.LoadImage(ctx, f); err != nil {
		return fmt.Errorf("loading %s: %w", ref, err)
	}
	return nil
}

func untar(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, filepath.Clean(dir)+string(filepath.Separator)) {
			return fmt.Errorf("entry %q leaves the directory", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			w, err := os.Create(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(w, tr)
			w.Close()
			if err != nil {
				return err
			}
		}
	}
}

// BuildkitImage assembles a moby/buildkit-like image from the project's
// bin/buildkitd and bin/buildctl, the machine's runc and the shared
// libraries these need (no base image can be pulled here), with a
// /etc/buildkit/buildkitd.toml whose docker.io mirror is the test
// registry, and loads it into the daemon as ref (e.g. the name the action
// expects, moby/buildkit:v0.34.2).
func (d *DockerDaemon) BuildkitImage(t testing.TB, ref string) {
	t.Helper()
	env := Build(t)
	root := t.TempDir()
	rootfs := filepath.Join(root, "rootfs")
	var bins []string
	for _, n := range []string{"buildkitd", "buildctl"} {
		p, err := devenv.Binary(n)
		if err != nil {
			t.Fatal(err)
		}
		bins = append(bins, p)
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Fatal("runc not found: install it (apt-get install runc)")
	}
	bins = append(bins, runc)
	for _, b := range bins {
		copyFile(t, b, filepath.Join(rootfs, "usr", "bin", filepath.Base(b)), 0o755)
		for _, lib := range sharedLibs(t, b) {
			copyFile(t, lib, filepath.Join(rootfs, lib), 0o755)
		}
	}
	writeFileT(t, filepath.Join(rootfs, "etc", "buildkit", "buildkitd.toml"), devenv.BuildkitdConfig(env.Registry))
	for _, dir := range []string{"tmp", "var/lib/buildkit", "run"} {
		if err := os.MkdirAll(filepath.Join(rootfs, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := d.loadRootfs(ctx, rootfs, filepath.Join(root, "layer.tar"), ref, map[string]any{
		"Env":        []string{"PATH=/usr/bin:/bin"},
		"Entrypoint": []string{"buildkitd", "--oci-worker=true", "--containerd-worker=false"},
		"Volumes":    map[string]struct{}{"/var/lib/buildkit": {}},
	}); err != nil {
		t.Fatal(err)
	}
}

// loadRootfs loads a directory as a one-layer image named ref with the
// given container config, as a docker-save archive with an uncompressed
// layer: quicker than building 120 MB of binaries (and than compressing
// them in a race-instrumented test binary).
func (d *DockerDaemon) loadRootfs(ctx context.Context, rootfs, layerPath, ref string, config map[string]any) error {
	lf, err := os.Create(layerPath)
	if err != nil {
		return err
	}
	h := sha256.New()
	tr, _ := tarDir(rootfs)
	_, err = io.Copy(io.MultiWriter(lf, h), tr)
	tr.Close()
	if cerr := lf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing the layer of %s: %w", ref, err)
	}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH, "os": "linux", "config": config,
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(h.Sum(nil))}},
	})
	manifest, _ := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{ref}, "Layers": []string{"layer.tar"}}})
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		add := func(name string, size int64, r io.Reader) error {
			if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
				return err
			}
			_, err := io.Copy(tw, r)
			return err
		}
		err := add("manifest.json", int64(len(manifest)), bytes.NewReader(manifest))
		if err == nil {
			err = add("config.json", int64(len(cfg)), bytes.NewReader(cfg))
		}
		if err == nil {
			var f *os.File
			if f, err = os.Open(layerPath); err == nil {
				fi, _ := f.Stat()
				err = add("layer.tar", fi.Size(), f)
				f.Close()
			}
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	if err := d.Client.LoadImage(ctx, pr); err != nil {
		pr.CloseWithError(err)
		return fmt.Errorf("loading %s: %w", ref, err)
	}
	return nil
}

// tarDir streams dir as a tar archive with root-owned entries.
func tarDir(dir string) (io.ReadCloser, error) {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err != nil || p == dir {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			h, err := tar.FileInfoHeader(fi, "")
			if err != nil {
				return err
			}
			h.Name, h.Uid, h.Gid, h.Uname, h.Gname = filepath.ToSlash(rel), 0, 0, "", ""
			if fi.IsDir() {
				h.Name += "/"
			}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if !fi.Mode().IsRegular() {
				return nil
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		})
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr, nil
}

// sharedLibs lists the shared libraries (and the loader) a binary needs,
// as ldd says; none for a static binary.
func sharedLibs(t testing.TB, bin string) []string {
	out, _ := exec.Command("ldd", bin).Output() // fails for static binaries
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				libs = append(libs, f)
			}
		}
	}
	return libs
}

func copyFile(t testing.TB, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

func writeFileT(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// BuildkitVersion is the moby/buildkit version go.mod requires, as `go
// list -m` reports it.
func BuildkitVersion(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/moby/buildkit").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/moby/buildkit: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// StageImage is a stage of the project's Dockerfile built on prebuilt
// files: no golang image can be pulled here, so the Dockerfile's build
// stage is replaced by one holding Binaries (out/NAME, built here from
// their packages, static), Dirs (empty, under the rootfs) and the
// system's CA certificates, and the stage itself is used as written.
type StageImage struct {
	// Stage is the Dockerfile stage ("action", "webhook").
	Stage string
	// Binaries maps out/NAME to the package that makes it ("./cmd/action").
	Binaries map[string]string
	// Dirs are more directories the build stage holds ("out/data"); a
	// directory named tmp is made world-writable and sticky, as /tmp is.
	Dirs []string
}

// BuildStage builds img's stage of the project's Dockerfile with the test
// buildkitd and loads it into d as ref. It returns the stage's text, as
// the Dockerfile has it.
func (d *DockerDaemon) BuildStage(t testing.TB, img StageImage, ref string) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	for name, pkg := range img.Binaries {
		build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(rootfs, "out", name), pkg)
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	for _, sub := range append([]string{"etc/ssl/certs"}, img.Dirs...) {
		if err := os.MkdirAll(filepath.Join(rootfs, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		if filepath.Base(sub) == "tmp" {
			os.Chmod(filepath.Join(rootfs, sub), 0o777|os.ModeSticky)
		}
	}
	certs, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Fatalf("CA certificates: %v (apt-get install ca-certificates)", err)
	}
	writeFileT(t, filepath.Join(rootfs, "etc", "ssl", "certs", "ca-certificates.crt"), string(certs))
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stage := string(df)
	i := strings.Index(stage, "\nFROM scratch AS "+img.Stage+"\n")
	if i < 0 {
		t.Fatalf("the project's Dockerfile has no `FROM scratch AS %s` stage", img.Stage)
	}
	stage = stage[i+1:]
	if j := strings.Index(stage[1:], "\nFROM "); j >= 0 {
		stage = stage[:j+2]
	}
	variant := "# The project's " + img.Stage + " stage on a build stage of prebuilt files.\nFROM scratch AS build\nCOPY rootfs/ /\n" + stage
	writeFileT(t, filepath.Join(dir, "Dockerfile"), variant)
	d.BuildImage(t, dir, "", img.Stage, nil, ref)
	return stage
}

// moduleRoot is the directory of the project's go.mod, found from the
// working directory (a test's package directory) upwards.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}
