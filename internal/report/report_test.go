package report_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/report"
	"github.com/convox-build-action/convox-build-action/internal/store"
	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func engine(t *testing.T) *build.Engine { return testenv.Engine(t) }

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReportOfARealBuildThatFailsAtADockerfileLine(t *testing.T) {
	e := engine(t)
	env := testenv.Build(t)
	dir := writeFiles(t, map[string]string{
		"convox.yml":     "services:\n  web:\n    build: ./web\n    buidl: x\n  cache:\n    image: " + env.Registry + "/library/busybox:latest\n",
		"web/Dockerfile": "FROM busybox\nRUN echo compiling\nRUN echo 'error: it broke' && \\\n    exit 3\n",
		"web/index.html": "hi",
	})
	rep := report.New(report.Options{App: "shop", PathPrefix: "apps/shop"})
	_, err := e.Run(context.Background(), build.Request{App: "shop", Repository: env.Registry + "/shop", SourceDir: dir,
		Registry: registry.Options{Insecure: true}, Sink: rep, NoCache: true})
	if err == nil {
		t.Fatal("build succeeded")
	}
	s := rep.Snapshot()
	if s.Status != report.Failed || s.BuildID == "" || s.ReleaseID != "" || !strings.Contains(s.Error, "service web") {
		t.Fatalf("snapshot = %+v", s)
	}
	var dockerfile, yml *report.Annotation
	for i, a := range s.Annotations {
		switch a.Path {
		case "apps/shop/web/Dockerfile":
			dockerfile = &s.Annotations[i]
		case "apps/shop/convox.yml":
			yml = &s.Annotations[i]
		}
	}
	if dockerfile == nil || dockerfile.StartLine != 3 || dockerfile.EndLine != 4 || dockerfile.Level != report.Failure ||
		dockerfile.Title != "service web failed (exit code 3)" || !strings.Contains(dockerfile.Message, "error: it broke") {
		t.Errorf("Dockerfile annotation = %+v (all: %+v)", dockerfile, s.Annotations)
	}
	if yml == nil || yml.StartLine != 4 || yml.StartColumn != 5 || yml.Level != report.Warning || !strings.Contains(yml.Message, `unknown key "buidl"`) {
		t.Errorf("convox.yml annotation = %+v", yml)
	}
	if !strings.Contains(s.LogTail, "error: it broke") || s.LogLines == 0 {
		t.Errorf("tail %q, %d lines", s.LogTail, s.LogLines)
	}
	md := s.Markdown(0)
	for _, want := range []string{"### Convox build of shop: ❌ failed", "**Build:** `" + s.BuildID + "`", "| web | – | ❌ failed |",
		"**Last lines of `[3/3] RUN echo 'error: it broke' &&     exit 3`** (apps/shop/web/Dockerfile:3):", "error: it broke"} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
	if !strings.HasPrefix(s.Title(), "Build "+s.BuildID+" failed: service web") {
		t.Errorf("title %q", s.Title())
	}
}

func TestReportOfABadManifestAnnotatesItsLines(t *testing.T) {
	e := engine(t)
	dir := writeFiles(t, map[string]string{"convox.yml": "services:\n  Web:\n    build: .\n    buidl: x\n", "Dockerfile": "FROM busybox\n"})
	rep := report.New(report.Options{App: "bad"})
	_, err := e.Run(context.Background(), build.Request{App: "bad", Repository: "127.0.0.1:1/bad", SourceDir: dir, Sink: rep})
	if !build.IsInputError(err) {
		t.Fatalf("err = %v", err)
	}
	rep.Fail(err)
	s := rep.Snapshot()
	if s.Status != report.Failed || len(s.Annotations) != 2 {
		t.Fatalf("snapshot = %+v", s)
	}
	a := s.Annotations[0]
	if a.Path != "convox.yml" || a.StartLine != 2 || a.StartColumn != 3 || a.Level != report.Failure || !strings.Contains(a.Message, "service name Web invalid") {
		t.Errorf("annotation = %+v", a)
	}
	// The warning next to the error is annotated too.
	if w := s.Annotations[1]; w.StartLine != 4 || w.Level != report.Warning || !strings.Contains(w.Message, `unknown key "buidl"`) {
		t.Errorf("warning annotation = %+v", w)
	}
}

func TestSummaryOfACompleteBuildAndLimits(t *testing.T) {
	rep := report.New(report.Options{App: "shop", TailBytes: 100})
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	rep.Event(build.Event{Type: build.BuildStarted, BuildID: "BAAAAAAAAAA", Build: &store.Build{ID: "BAAAAAAAAAA", Started: t0}})
	rep.Event(build.Event{Type: build.ServiceQueued, Services: []string{"web", "worker"}})
	rep.Event(build.Event{Type: build.ServiceQueued, Services: []string{"redis"}})
	if got := rep.Snapshot().Title(); got != "Building: 0 of 3 services done" {
		t.Errorf("running title %q", got)
	}
	for i := 0; i < 50; i++ {
		rep.Event(build.Event{Type: build.LogLine, Line: "line " + strings.Repeat("x", i%7)})
	}
	imgs := []store.ServiceImage{
		{Service: "web", Image: "r/shop:web.BAAAAAAAAAA", Digest: "sha256:aa", DurationMS: 12300, CachedSteps: 3, TotalSteps: 4},
		{Service: "worker", Image: "r/shop:worker.BAAAAAAAAAA", Digest: "sha256:aa", DurationMS: 12300, CachedSteps: 3, TotalSteps: 4},
	}
	rep.Event(build.Event{Type: build.ServiceFinished, Services: []string{"web", "worker"}, Images: imgs})
	rep.Event(build.Event{Type: build.ServiceFinished, Services: []string{"redis"}, Images: []store.ServiceImage{
		{Service: "redis", Image: "r/shop:redis.BAAAAAAAAAA", Digest: "sha256:bb", ImageOnly: true, DurationMS: 800}}})
	rep.Event(build.Event{Type: build.BuildFinished, Build: &store.Build{ID: "BAAAAAAAAAA", Release: "RBBBBBBBBBB", Status: store.StatusComplete,
		Started: t0, Ended: t0.Add(125 * time.Second)}})
	s := rep.Snapshot()
	want := "### Convox build of shop: ✅ complete\n\n" +
		"**Build:** `BAAAAAAAAAA` · **Release:** `RBBBBBBBBBB` · 2m05s\n\n" +
		"| Service | Image | Status | Duration | Cached |\n| --- | --- | --- | --- | --- |\n" +
		"| redis | `r/shop:redis.BAAAAAAAAAA@sha256:bb` | ✅ complete | 800ms | copied |\n" +
		"| web | `r/shop:web.BAAAAAAAAAA@sha256:aa` | ✅ complete | 12.3s | 75% (3/4) |\n" +
		"| worker | `r/shop:worker.BAAAAAAAAAA@sha256:aa` | ✅ complete | 12.3s | 75% (3/4) |\n\n"
	if got := s.Markdown(0); got != want {
		t.Errorf("summary:\n%s\nwant:\n%s", got, want)
	}
	if got := s.Title(); got != "Build BAAAAAAAAAA complete: 3 services, 75% of steps cached" {
		t.Errorf("title %q", got)
	}
	if len(s.LogTail) > 100 || !strings.HasSuffix(s.LogTail, "line "+strings.Repeat("x", 49%7)) || s.LogLines != 50 {
		t.Errorf("tail (%d bytes) %q, %d lines", len(s.LogTail), s.LogTail, s.LogLines)
	}
	if got := s.Markdown(200); len(got) > 200 || !strings.HasSuffix(got, "*(summary cut to fit)*\n") {
		t.Errorf("cut summary (%d bytes):\n%s", len(got), got)
	}
}
