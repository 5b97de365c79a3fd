package buildkit_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/convox-build-action/convox-build-action/internal/buildkit"
	"github.com/convox-build-action/convox-build-action/internal/devenv"
	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// connect returns a client to the test buildkitd.
func connect(t *testing.T) (*buildkit.Client, *testenv.Env) {
	t.Helper()
	env := testenv.Build(t)
	c, err := buildkit.Connect(context.Background(), env.BuildkitAddr, buildkit.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, env
}

// app writes files (path -> content) into a new directory.
func app(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// logSink collects log lines safely.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (s *logSink) add(l string) { s.mu.Lock(); s.lines = append(s.lines, l); s.mu.Unlock() }
func (s *logSink) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}

func TestBuildPushesImageAndRegistryServesItByDigest(t *testing.T) {
	c, env := connect(t)
	dir := app(t, map[string]string{
		"Dockerfile": "FROM busybox\nARG GREETING=none\nRUN echo \"greeting=$GREETING\" && echo \"$GREETING\" > /greeting\nCMD [\"cat\", \"/greeting\"]\n",
	})
	ref := env.Registry + "/myapp:web.BTESTPUSHAA"
	var logs logSink
	var steps []buildkit.Step
	var stepsMu sync.Mutex
	res, err := c.Build(context.Background(), buildkit.BuildRequest{
		ContextDir: dir,
		BuildArgs:  map[string]string{"GREETING": "hello-from-arg"},
		NoCache:    true,
		Image:      &buildkit.ImageExport{Names: []string{ref}, Push: true},
		Log:        logs.add,
		OnStep: func(s buildkit.Step) {
			stepsMu.Lock()
			steps = append(steps, s)
			stepsMu.Unlock()
		},
	})
	if err != nil {
		t.Fatalf("build: %v\nlogs:\n%s", err, logs.text())
	}
	if !strings.HasPrefix(res.Digest, "sha256:") {
		t.Fatalf("digest = %q, want sha256:...", res.Digest)
	}
	// The registry serves the manifest by the digest the build returned.
	dref, err := name.ParseReference(env.Registry+"/myapp@"+res.Digest, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(dref)
	if err != nil {
		t.Fatalf("reading manifest %s back from the registry: %v", dref, err)
	}
	if desc.Digest.String() != res.Digest {
		t.Errorf("registry digest %s != build digest %s", desc.Digest, res.Digest)
	}
	img, err := desc.Image()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cf.Config.Cmd, " "); got != "cat /greeting" {
		t.Errorf("image CMD = %q, want %q", got, "cat /greeting")
	}
	// The tag resolves to the same digest.
	tref, _ := name.ParseReference(ref, name.Insecure)
	if d, err := remote.Head(tref); err != nil || d.Digest.String() != res.Digest {
		t.Errorf("tag %s -> %v, %v; want %s", ref, d, err, res.Digest)
	}
	// Plain progress, as buildctl prints it, with the RUN output and the
	// build arg's value.
	text := logs.text()
	for _, want := range []string{"#1 [internal] load build definition from Dockerfile", "RUN echo", "greeting=hello-from-arg", "pushing layers"} {
		if !strings.Contains(text, want) {
			t.Errorf("logs lack %q:\n%s", want, text)
		}
	}
	if res.Steps != 1 || res.Cached != 0 {
		t.Errorf("steps = %d cached = %d, want 1 step (RUN; FROM is not counted), none cached", res.Steps, res.Cached)
	}
	var sawRun bool
	for _, s := range steps {
		if s.Dockerfile && strings.Contains(s.Name, "RUN echo") {
			sawRun = true
			if s.Completed.Before(s.Started) || s.Error != "" {
				t.Errorf("RUN step = %+v", s)
			}
		}
	}
	if !sawRun {
		t.Errorf("OnStep never reported the RUN step: %+v", steps)
	}
}

func TestBuildFailingRunNamesStepExitCodeAndOutput(t *testing.T) {
	c, _ := connect(t)
	dir := app(t, map[string]string{
		"Dockerfile": "FROM busybox\nRUN echo ok\nRUN echo \"about to fail\" && \\\n    exit 3\nRUN echo never\n",
	})
	var logs logSink
	_, err := c.Build(context.Background(), buildkit.BuildRequest{ContextDir: dir, Log: logs.add})
	var be *buildkit.BuildError
	if !errors.As(err, &be) {
		t.Fatalf("err = %v (%T), want *buildkit.BuildError", err, err)
	}
	if be.ExitCode != 3 {
		t.Errorf("exit code = %d, want 3", be.ExitCode)
	}
	if !strings.Contains(be.Step, "RUN echo \"about to fail\"") {
		t.Errorf("step = %q, want the failing RUN", be.Step)
	}
	if be.Dockerfile != "Dockerfile" || be.StartLine != 3 || be.EndLine != 4 {
		t.Errorf("location = %s:%d-%d, want Dockerfile:3-4", be.Dockerfile, be.StartLine, be.EndLine)
	}
	if len(be.LogTail) == 0 || !strings.Contains(strings.Join(be.LogTail, "\n"), "about to fail") {
		t.Errorf("log tail = %q, want the step's output", be.LogTail)
	}
	msg := err.Error()
	for _, want := range []string{"RUN echo \"about to fail\"", "exit code: 3", "Dockerfile:3"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if !strings.Contains(logs.text(), "about to fail") {
		t.Errorf("logs lack the step's output:\n%s", logs.text())
	}
}

func TestConnectToNothingFailsWithinBoundNamingAddress(t *testing.T) {
	dir := t.TempDir()
	// A socket that accepts connections and never speaks is the worst case:
	// the client must not hang on it.
	silent := filepath.Join(dir, "silent.sock")
	ln, err := net.Listen("unix", silent)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	var wg sync.WaitGroup
	for addr, why := range map[string]string{
		"unix://" + filepath.Join(dir, "nothing.sock"): "no such file or directory",
		"unix://" + silent: "accepts connections but does not speak the BuildKit API",
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			connectFails(t, addr, why)
		}()
	}
	// An HTTP/2 server that is not buildkitd: the connection works, the
	// API does not. Its own log must not reach our output either.
	var serverLog bytes.Buffer
	h2 := httptest.NewUnstartedServer(h2c.NewHandler(http.NotFoundHandler(), &http2.Server{}))
	h2.Config.ErrorLog = log.New(&serverLog, "", 0)
	h2.Start()
	defer h2.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		connectFails(t, "tcp://"+h2.Listener.Addr().String(), "is not buildkitd")
	}()
	wg.Wait()
	if _, err := buildkit.Connect(context.Background(), "/var/run/buildkitd.sock", buildkit.ConnectOptions{}); err == nil || !strings.Contains(err.Error(), "no scheme") {
		t.Errorf("address without scheme: err = %v", err)
	}
}

func connectFails(t *testing.T, addr, why string) {
	{
		start := time.Now()
		c, err := buildkit.Connect(context.Background(), addr, buildkit.ConnectOptions{})
		elapsed := time.Since(start)
		if err == nil {
			c.Close()
			t.Errorf("connect %s: no error", addr)
			return
		}
		if elapsed > 15*time.Second {
			t.Errorf("connect %s took %s, want < 15s", addr, elapsed)
		}
		if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), why) {
			t.Errorf("error %q does not name %s and say %q", err, addr, why)
		}
	}
}

func TestBuildTargetSecretsPlatformOCIArchiveAndRegistryCache(t *testing.T) {
	c, env := connect(t)
	dir := app(t, map[string]string{
		"docker/Dockerfile.prod": "FROM busybox AS base\nRUN echo base > /base\n" +
			"FROM base AS development\nRUN --mount=type=secret,id=token,required=true md5sum /run/secrets/token && echo dev > /stage\n" +
			"FROM base AS production\nRUN echo prod > /stage\n",
		"file.txt": "context file\n",
	})
	cacheRef := env.Registry + "/cachetest:web.buildcache"
	archive := filepath.Join(t.TempDir(), "web.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	var logs logSink
	req := buildkit.BuildRequest{
		ContextDir:   dir,
		Dockerfile:   "docker/Dockerfile.prod",
		Target:       "development",
		Platforms:    []string{"linux/amd64"},
		Secrets:      map[string][]byte{"token": []byte("s3cr3t")},
		NoCache:      true, // the RUN must run, whatever earlier tests left
		OCIArchive:   f,
		OCIName:      env.Registry + "/cachetest:web.BOCIARCHIVE",
		CacheExports: []buildkit.CacheEntry{{Type: "registry", Attrs: map[string]string{"ref": cacheRef, "mode": "max", "image-manifest": "true", "oci-mediatypes": "true", "ignore-error": "true"}}},
		Log:          logs.add,
	}
	res, err := c.Build(context.Background(), req)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, logs.text())
	}
	if strings.Contains(logs.text(), "s3cr3t") {
		t.Error("the secret's value appears in the build log")
	}
	// md5("s3cr3t"): the RUN step read the secret.
	if !strings.Contains(logs.text(), "a4d80eac9ab26a4a2da04125bc2c096a") {
		t.Errorf("the RUN step did not see the secret:\n%s", logs.text())
	}
	if strings.Contains(logs.text(), "echo prod") {
		t.Error("target development built the production stage")
	}
	// The OCI archive holds an index and blobs.
	names := tarNames(t, archive)
	if !names["index.json"] || !names["oci-layout"] {
		t.Errorf("OCI archive entries = %v, want index.json and oci-layout", names)
	}
	if res.Digest == "" {
		t.Error("no digest for the OCI export")
	}
	// The registry now has the cache, and a second builder-side run that
	// imports it (after a no-cache build, local cache still warm) reports
	// cache hits.
	cref, _ := name.ParseReference(cacheRef, name.Insecure)
	if _, err := remote.Head(cref); err != nil {
		t.Fatalf("cache ref %s not in registry: %v", cacheRef, err)
	}
	req.OCIArchive, req.CacheExports, req.NoCache = nil, nil, false
	req.CacheImports = []buildkit.CacheEntry{{Type: "registry", Attrs: map[string]string{"ref": cacheRef}}}
	res2, err := c.Build(context.Background(), req)
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if res2.Steps != 2 || res2.Cached != res2.Steps {
		t.Log(logs.text())
		t.Errorf("rebuild: %d of %d steps cached, want all", res2.Cached, res2.Steps)
	}
	// A missing secret fails the required mount, naming the step.
	req.Secrets = nil
	req.NoCache = true
	_, err = c.Build(context.Background(), req)
	var be *buildkit.BuildError
	if !errors.As(err, &be) || !strings.Contains(be.Step, "RUN --mount=type=secret") {
		t.Errorf("build without secret: err = %v", err)
	}
}

func TestBuildPullOfMissingImageSaysWhatFailed(t *testing.T) {
	c, _ := connect(t)
	dir := app(t, map[string]string{"Dockerfile": "FROM doesnotexist-convox-test:1.2.3\nRUN true\n"})
	_, err := c.Build(context.Background(), buildkit.BuildRequest{ContextDir: dir})
	if err == nil {
		t.Fatal("no error")
	}
	if !strings.Contains(err.Error(), "doesnotexist-convox-test:1.2.3") || !strings.Contains(err.Error(), "the base image does not exist") {
		t.Errorf("error %q does not name the image", err)
	}
}

func TestBuildPushesToRegistryRequiringAuth(t *testing.T) {
	c, _ := connect(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("pa55word"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("builder:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := testenv.Registry(t, devenv.RegistryOptions{Htpasswd: htpasswd})
	dir := app(t, map[string]string{"Dockerfile": "FROM busybox\nRUN echo private > /private\n"})
	build := func(creds buildkit.Credentials) (*buildkit.Result, error) {
		return c.Build(context.Background(), buildkit.BuildRequest{
			ContextDir:  dir,
			Image:       &buildkit.ImageExport{Names: []string{reg.Addr + "/private:web.BAUTH"}, Push: true},
			Credentials: creds,
		})
	}
	var asked []string
	var mu sync.Mutex
	res, err := build(func(_ context.Context, host string) (string, string, error) {
		mu.Lock()
		asked = append(asked, host)
		mu.Unlock()
		if host == reg.Addr {
			return "builder", "pa55word", nil
		}
		return "", "", nil
	})
	if err != nil {
		t.Fatalf("push with credentials: %v", err)
	}
	if !slices.Contains(asked, reg.Addr) {
		t.Errorf("credentials asked for %v, want %s", asked, reg.Addr)
	}
	ref, _ := name.ParseReference(reg.Addr+"/private@"+res.Digest, name.Insecure)
	if _, err := remote.Get(ref, remote.WithAuth(&authn.Basic{Username: "builder", Password: "pa55word"})); err != nil {
		t.Errorf("pushed image not readable with the credentials: %v", err)
	}
	_, err = build(nil)
	if err == nil {
		t.Fatal("push without credentials succeeded")
	}
	if msg := err.Error(); !strings.Contains(msg, reg.Addr) || !strings.Contains(msg, "401 Unauthorized") {
		t.Errorf("push without credentials: error %q should name %s and the 401", msg, reg.Addr)
	}
}

func tarNames(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		names[h.Name] = true
	}
	return names
}

func TestSyntaxDirectiveThatCannotBePulledIsExplained(t *testing.T) {
	c, _ := connect(t)
	dir := app(t, map[string]string{"Dockerfile": "# syntax=docker/dockerfile:1.99\nFROM busybox\nRUN true\n"})
	_, err := c.Build(context.Background(), buildkit.BuildRequest{ContextDir: dir})
	var be *buildkit.BuildError
	if !errors.As(err, &be) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(be.Hint, `"# syntax=docker/dockerfile:1.99" makes BuildKit pull that frontend image`) || !strings.Contains(err.Error(), be.Hint) {
		t.Errorf("error %q, hint %q", err, be.Hint)
	}
}
