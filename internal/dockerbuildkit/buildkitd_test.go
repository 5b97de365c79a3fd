package dockerbuildkit_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/buildkit"
	"github.com/convox-build-action/convox-build-action/internal/dockerbuildkit"
	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestStartReuseAndBuild starts buildkitd in a container of a real dockerd
// through the Engine API, builds and pushes an image through it (dialled
// with buildctl dial-stdio over an exec stream), and finds the same
// container again on a second Start, as a later step of a job would.
func TestStartReuseAndBuild(t *testing.T) {
	env := testenv.Build(t)
	dd := testenv.Docker(t)
	// A test binary carries no module versions (DefaultImage needs them):
	// the action's container test checks DefaultImage in the real binary.
	image := "moby/buildkit:" + testenv.BuildkitVersion(t)
	dd.BuildkitImage(t, image)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var log []string
	opts := dockerbuildkit.Options{Image: image, Container: "test-buildkitd", Volume: "test-buildkitd-state", Log: func(s string) { log = append(log, s) }}
	d, err := dockerbuildkit.Start(ctx, dd.Client, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dd.Client.RemoveContainer(context.Background(), "test-buildkitd") })
	if d.Reused || d.Image != image || d.Addr() != "docker-container://test-buildkitd" {
		t.Fatalf("first Start: %+v", d)
	}
	c, err := buildkit.Connect(ctx, d.Addr(), buildkit.ConnectOptions{Dialer: d.Dialer(), Timeout: 60 * time.Second})
	if err != nil {
		logs, _ := dd.Client.ContainerLogs(ctx, "test-buildkitd", 30)
		t.Fatalf("%v\ncontainer log:\n%s", err, logs)
	}
	defer c.Close()

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM busybox\nRUN echo built-in-a-container > /out\n"), 0o644)
	ref := env.Registry + "/dockerbuildkit/test:1"
	var lines []string
	res, err := c.Build(ctx, buildkit.BuildRequest{ContextDir: dir, Image: &buildkit.ImageExport{Names: []string{ref}, Push: true},
		Log: func(l string) { lines = append(lines, l) }})
	if err != nil {
		t.Fatalf("build through the container: %v\n%s", err, strings.Join(lines, "\n"))
	}
	if !strings.HasPrefix(res.Digest, "sha256:") {
		t.Errorf("digest %q", res.Digest)
	}

	d2, err := dockerbuildkit.Start(ctx, dd.Client, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !d2.Reused {
		t.Errorf("second Start did not reuse the running container; log: %q", log)
	}
	ids, err := dd.Client.ContainerIDs(ctx, dockerbuildkit.Label+"="+image)
	if err != nil || len(ids) != 1 {
		t.Errorf("containers labelled %s: %v, %v; want exactly one", dockerbuildkit.Label, ids, err)
	}
}

func TestStartWithoutDockerSaysSo(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := dockerbuildkit.Start(ctx, dockerbuildkit.NewDocker(sock), dockerbuildkit.Options{Image: "moby/buildkit:v0"})
	if err == nil || !strings.Contains(err.Error(), sock) || !strings.Contains(err.Error(), "Docker socket mounted") {
		t.Fatalf("err = %v, want one naming %s and the socket mount", err, sock)
	}
}

func TestParseAddr(t *testing.T) {
	for addr, want := range map[string]string{
		"docker-container://buildkitd":          "buildkitd",
		"docker-container://b/":                 "b",
		"docker-container://b?context=x":        "b",
		"docker-container://":                   "",
		"unix:///run/buildkit/buildkitd.sock":   "",
		"tcp://docker-container://not-this-one": "",
	} {
		got, ok := dockerbuildkit.ParseAddr(addr)
		if got != want || ok != (want != "") {
			t.Errorf("ParseAddr(%q) = %q, %v", addr, got, ok)
		}
	}
}
