package build_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

func storedLogs(t *testing.T, st store.Store, id string) string {
	t.Helper()
	lines, err := st.ReadLogs(context.Background(), id, 0, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.Text)
		b.WriteByte('\n')
	}
	return b.String()
}

func TestMultiServiceAppBuildsSharesSpecsAndPushesEveryTag(t *testing.T) {
	h := newHarness(t)
	req := h.request(t, "multi")
	var ev events
	req.Sink = build.SinkFunc(ev.add)
	b, err := h.engine.Run(context.Background(), req)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if !regexp.MustCompile(`^B[A-Z]{10}$`).MatchString(b.ID) || !regexp.MustCompile(`^R[A-Z]{10}$`).MatchString(b.Release) {
		t.Errorf("ids = %s / %s, want B + 10 letters and R + 10 letters", b.ID, b.Release)
	}
	if b.Status != store.StatusComplete || b.Ended.Before(b.Started) {
		t.Errorf("status %s, started %s, ended %s", b.Status, b.Started, b.Ended)
	}
	// web and worker share a build spec: two BuildKit builds for three
	// built services.
	if n := h.solver.count(); n != 2 {
		t.Errorf("buildkit builds = %d, want 2 (api; web+worker shared)", n)
	}
	got := map[string]store.ServiceImage{}
	for _, s := range b.Services {
		got[s.Service] = s
	}
	if names := sortedKeys(got); !slices.Equal(names, []string{"api", "cache", "web", "worker"}) {
		t.Fatalf("services = %v", names)
	}
	for svc, si := range got {
		want := h.env.Registry + "/multi:" + svc + "." + b.ID
		if si.Image != want {
			t.Errorf("%s image = %s, want %s", svc, si.Image, want)
		}
		if d := registryDigest(t, si.Image); d != si.Digest {
			t.Errorf("%s: registry has %s, build recorded %s", svc, d, si.Digest)
		}
	}
	if got["web"].Digest != got["worker"].Digest {
		t.Errorf("web and worker digests differ: %s %s", got["web"].Digest, got["worker"].Digest)
	}
	if c := got["cache"]; !c.ImageOnly || c.Digest != h.env.BusyboxDigest {
		t.Errorf("cache = %+v, want an image-only copy of busybox %s", c, h.env.BusyboxDigest)
	}
	if e := got["api"].Entrypoint; e != "cat /built-args /stage" {
		t.Errorf("api entrypoint = %q", e)
	}
	if e := got["web"].Entrypoint; e != "httpd -f -p 3000 -h /app" {
		t.Errorf("web entrypoint = %q", e)
	}
	// Build args: environment filtered to each Dockerfile's ARGs, plus
	// build.args; API_MODE is api's own environment.
	logs := storedLogs(t, h.store, b.ID)
	for _, want := range []string{
		"api | #", "web,worker | #",
		"api: greeting=hello mode=strict extra=from-manifest",
		"web: greeting=hello version=1.2.3",
		"cache | copying image " + h.env.Registry + "/library/busybox:latest",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(logs, "development stage") {
		t.Error("built api's development stage without --development")
	}
	// The release references the build and keeps the manifest.
	rel, err := h.store.GetRelease(context.Background(), b.Release)
	if err != nil || rel.Build != b.ID || !strings.Contains(rel.Manifest, "Dockerfile.api") {
		t.Errorf("release = %+v, %v", rel, err)
	}
	stored, err := h.store.GetBuild(context.Background(), b.ID)
	if err != nil || stored.Status != store.StatusComplete || len(stored.Services) != 4 {
		t.Errorf("stored build = %+v, %v", stored, err)
	}
	// Events: each spec queued, started and finished; the build started
	// and finished once, last.
	if n := len(ev.of(build.ServiceFinished)); n != 3 {
		t.Errorf("service-finished events = %d, want 3", n)
	}
	if last := ev.all[len(ev.all)-1]; last.Type != build.BuildFinished || last.Err != nil {
		t.Errorf("last event = %+v", last)
	}
	if len(ev.of(build.StepFinished)) == 0 || len(ev.of(build.LogLine)) == 0 {
		t.Error("no step or log events")
	}

	// A rebuild without changes takes every step from the cache.
	b2, err := h.engine.Run(context.Background(), h.request(t, "multi"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range b2.Services {
		if !s.ImageOnly && (s.TotalSteps == 0 || s.CachedSteps != s.TotalSteps) {
			t.Errorf("rebuild %s: %d of %d steps cached, want all", s.Service, s.CachedSteps, s.TotalSteps)
		}
	}
	// --no-cache rebuilds every step.
	req3 := h.request(t, "multi")
	req3.NoCache = true
	req3.Services = []string{"api"}
	b3, err := h.engine.Run(context.Background(), req3)
	if err != nil {
		t.Fatal(err)
	}
	if len(b3.Services) != 1 || b3.Services[0].CachedSteps != 0 || b3.Services[0].TotalSteps == 0 {
		t.Errorf("--no-cache api: %+v, want no cached steps", b3.Services)
	}
	// Builds list newest first.
	list, err := h.store.ListBuilds(context.Background(), "multi", 10)
	if err != nil || len(list) != 3 || list[0].ID != b3.ID {
		t.Errorf("builds list = %v, %v", list, err)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestDevelopmentBuildsDevelopmentStage(t *testing.T) {
	h := newHarness(t)
	req := h.request(t, "multi")
	req.Services = []string{"api"}
	req.Development = true
	b, err := h.engine.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if logs := storedLogs(t, h.store, b.ID); !strings.Contains(logs, "[development 1/1] RUN") || strings.Contains(logs, "production stage") {
		t.Errorf("development build log:\n%s", logs)
	}
}

func TestFailingRunFailsBuildNamingServiceStepAndExitCode(t *testing.T) {
	h := newHarness(t)
	req := h.request(t, "failing")
	var ev events
	req.Sink = build.SinkFunc(ev.add)
	start := time.Now()
	b, err := h.engine.Run(context.Background(), req)
	var se *build.ServiceError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want a ServiceError", err)
	}
	// The failure cancels the other service's 30 s build.
	if d := time.Since(start); d > 25*time.Second {
		t.Errorf("build took %s: the failure did not cancel web", d)
	}
	if !slices.Equal(se.Services, []string{"broken"}) || se.Failure == nil {
		t.Fatalf("service error = %+v", se)
	}
	f := se.Failure
	if f.ExitCode != 3 || f.Dockerfile != "Dockerfile.broken" || f.StartLine != 3 || f.EndLine != 4 || !strings.Contains(f.Step, "RUN echo \"error: something went wrong\"") {
		t.Errorf("failure = %+v", f)
	}
	if !slices.ContainsFunc(f.LogTail, func(l string) bool { return strings.Contains(l, "error: something went wrong") }) {
		t.Errorf("log tail = %q", f.LogTail)
	}
	for _, want := range []string{"service broken", "exit code: 3", "Dockerfile.broken:3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	stored, gerr := h.store.GetBuild(context.Background(), b.ID)
	if gerr != nil || stored.Status != store.StatusFailed || stored.Reason != err.Error() || stored.Release != "" {
		t.Errorf("stored = %+v, %v", stored, gerr)
	}
	if logs := storedLogs(t, h.store, b.ID); !strings.Contains(logs, "broken | #") || !strings.Contains(logs, "error: something went wrong") {
		t.Errorf("logs:\n%s", logs)
	}
	if fin := ev.of(build.BuildFinished); len(fin) != 1 || fin[0].Err == nil {
		t.Errorf("build-finished events = %+v", fin)
	}
}

func TestCancelledBuildIsRecordedFailed(t *testing.T) {
	h := newHarness(t)
	req := h.request(t, "failing")
	req.Services = []string{"web"} // RUN sleep 30
	ctx, cancel := context.WithCancel(context.Background())
	req.Sink = build.SinkFunc(func(e build.Event) {
		if e.Type == build.StepFinished && strings.Contains(e.Step.Name, "FROM") {
			cancel()
		}
	})
	start := time.Now()
	b, err := h.engine.Run(ctx, req)
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want cancellation", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("cancel took effect after %s", d)
	}
	stored, gerr := h.store.GetBuild(context.Background(), b.ID)
	if gerr != nil || stored.Status != store.StatusFailed || !strings.Contains(stored.Reason, "cancel") {
		t.Errorf("stored = %+v, %v", stored, gerr)
	}
}

func TestBadInputFailsBeforeAnyBuildIsRecorded(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name string
		edit func(r *build.Request)
		want string
	}{
		{"missing Dockerfile", func(r *build.Request) { os.Remove(filepath.Join(r.SourceDir, "api", "Dockerfile.api")) },
			"no such file: api/Dockerfile.api (service api, convox.yml:13)"},
		{"unknown service", func(r *build.Request) { r.Services = []string{"wbe"} }, `wbe`},
		{"required env", func(r *build.Request) { delete(r.Env, "APP_VERSION") }, "required env: APP_VERSION"},
		{"no repository", func(r *build.Request) { r.Repository = "" }, "no image repository"},
		{"no convox.yml", func(r *build.Request) { os.Remove(filepath.Join(r.SourceDir, "convox.yml")) }, "no such file: convox.yml"},
		{"bad cache", func(r *build.Request) { r.Cache.Type = "s3" }, `unknown cache type "s3"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := h.request(t, "multi")
			c.edit(&req)
			b, err := h.engine.Run(context.Background(), req)
			if err == nil || !build.IsInputError(err) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want an input error containing %q", err, c.want)
			}
			if b != nil {
				t.Errorf("a build was returned: %+v", b)
			}
		})
	}
	if list, _ := h.store.ListBuilds(context.Background(), "multi", 0); len(list) != 0 {
		t.Errorf("builds recorded for bad input: %d", len(list))
	}
	if err := build.CheckBuildID("B123"); err == nil || !strings.Contains(err.Error(), `invalid build ID "B123"`) {
		t.Errorf("CheckBuildID = %v", err)
	}
}

func TestPullOfMissingImageAndUnreachableRegistryFailClearly(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "convox.yml"), []byte("services:\n  web:\n    build: .\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM nosuchimage-convox:9.9\n"), 0o644)
	req := build.Request{App: "missing", Repository: h.env.Registry + "/missing", SourceDir: dir}
	b, err := h.engine.Run(context.Background(), req)
	if err == nil || !strings.Contains(err.Error(), "nosuchimage-convox:9.9") || !strings.Contains(err.Error(), "service web") {
		t.Errorf("err = %v", err)
	}
	if b == nil || b.Status != store.StatusFailed {
		t.Errorf("build = %+v", b)
	}
	// A registry that is down: nothing listens on the port.
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM busybox\nRUN echo x > /x\n"), 0o644)
	req.Repository = "127.0.0.1:1/down"
	b, err = h.engine.Run(context.Background(), req)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("err = %v, want the registry host named", err)
	}
	if b == nil || b.Status != store.StatusFailed {
		t.Errorf("build = %+v", b)
	}
}

func TestSecretsReachRunButNeverLogs(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "convox.yml"), []byte("services:\n  web:\n    build: .\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM busybox\nRUN --mount=type=secret,id=NPM_TOKEN cat /run/secrets/NPM_TOKEN && echo && echo fetched https://bob:pw@cdn.example.com/pkg.tgz?X-Amz-Signature=abc123 \n"), 0o644)
	req := build.Request{App: "secrets", Repository: h.env.Registry + "/secrets", SourceDir: dir, NoCache: true,
		Secrets: map[string][]byte{"NPM_TOKEN": []byte("npm_s3cr3tvalue")}}
	b, err := h.engine.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	logs := storedLogs(t, h.store, b.ID)
	if strings.Contains(logs, "npm_s3cr3tvalue") {
		t.Error("secret value in the build log")
	}
	if !strings.Contains(logs, "***") {
		t.Errorf("the RUN output was not redacted:\n%s", logs)
	}
	// Signed URLs lose their credentials and query strings.
	if strings.Contains(logs, "X-Amz-Signature") || strings.Contains(logs, "bob:pw") || !strings.Contains(logs, "fetched https://cdn.example.com/pkg.tgz") {
		t.Errorf("a signed URL was not redacted:\n%s", logs)
	}
}

func TestDescriptionFromCleanGitHead(t *testing.T) {
	h := newHarness(t)
	req := h.request(t, "demo")
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", req.SourceDir, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	git("add", ".")
	git("commit", "-q", "-m", "Add the demo page")
	sha := git("rev-parse", "HEAD")
	b, err := h.engine.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if want := "build " + sha[:10] + " Add the demo page"; b.Description != want || b.GitSHA != sha {
		t.Errorf("description %q sha %q, want %q %q", b.Description, b.GitSHA, want, sha)
	}
}

func TestMaxParallelBoundsConcurrentSpecs(t *testing.T) {
	h := newHarness(t)
	req := h.request(t, "multi")
	req.MaxParallel = 1
	running, most := 0, 0
	req.Sink = build.SinkFunc(func(e build.Event) {
		switch e.Type {
		case build.ServiceStarted:
			running++
			most = max(most, running)
		case build.ServiceFinished:
			running--
		}
	})
	if _, err := h.engine.Run(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if most != 1 {
		t.Errorf("at most %d specs ran at once with MaxParallel 1", most)
	}
}

func TestPanickingEventHandlerFailsTheBuildInsteadOfTheProcess(t *testing.T) {
	h := newHarness(t)
	req := h.request(t, "demo")
	req.Sink = build.SinkFunc(func(e build.Event) {
		if e.Type == build.ServiceStarted {
			panic("adapter bug")
		}
	})
	b, err := h.engine.Run(context.Background(), req)
	if err == nil || !strings.Contains(err.Error(), "internal error: event handler panicked on service-started event: adapter bug") {
		t.Fatalf("err = %v", err)
	}
	if stored, _ := h.store.GetBuild(context.Background(), b.ID); stored.Status != store.StatusFailed {
		t.Errorf("status = %s, want failed", stored.Status)
	}
}
