package web_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

// In a real headless Chromium, a running build's page shows log lines as
// the build prints them, then its final status, without a reload.
func TestBrowserFollowsARunningBuildLive(t *testing.T) {
	s := newSite(t, true, "http://builds.example")
	env := testenv.Build(t)
	s.engine.Solver = testenv.Solver(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "convox.yml"), []byte("services:\n  web:\n    build: .\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM busybox\nRUN for i in 1 2 3 4 5 6; do echo \"tick-$i\"; sleep 1; done; printf '\\033[32mgreen-done\\033[0m\\n'\n"), 0o644)
	started := make(chan string, 1)
	done := make(chan *store.Build, 1)
	go func() {
		b, _ := s.engine.Run(context.Background(), build.Request{App: "shop", Repository: env.Registry + "/shop", SourceDir: dir, NoCache: true,
			Registry: registry.Options{Insecure: true}, Sink: build.SinkFunc(func(e build.Event) {
				if e.Type == build.BuildStarted {
					started <- e.BuildID
				}
			})})
		done <- b
	}()
	id := <-started

	ctx := testenv.Chromium(t)
	tctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.Navigate(s.srv.URL+"/apps/shop/builds/"+id)); err != nil {
		t.Fatal(err)
	}
	// A marker that a reload would lose.
	if _, err := chromedp.Run(tctx, chromedp.Evaluate[bool](`window.notReloaded = true`)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(tctx, chromedp.Poll[bool](`document.getElementById("log").textContent.includes("tick-2")`)); err != nil {
		t.Fatalf("tick-2 never showed: %v", err)
	}
	status, err := chromedp.Run(tctx, chromedp.Text("#status"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		t.Fatal("the line showed only after the build had ended")
	default:
	}
	if status != "running" {
		t.Errorf("status while the log came in: %q", status)
	}
	if _, err := chromedp.Run(tctx, chromedp.Poll[bool](`document.getElementById("status").textContent === "complete"`)); err != nil {
		t.Fatalf("the final status never showed: %v", err)
	}
	b := <-done
	got, err := chromedp.Run(tctx, chromedp.Evaluate[map[string]any](`({
		reloaded: window.notReloaded !== true,
		release: document.getElementById("release").textContent,
		green: document.querySelector("#log .fg-2") ? document.querySelector("#log .fg-2").textContent : "",
		image: document.querySelector("#services td code") ? document.querySelector("#services td code").textContent : "",
		wrap: getComputedStyle(document.getElementById("log")).whiteSpace
	})`))
	if err != nil {
		t.Fatal(err)
	}
	if got["reloaded"] != false || got["release"] != b.Release || got["green"] != "green-done" || got["wrap"] != "pre-wrap" ||
		!strings.HasPrefix(got["image"].(string), env.Registry+"/shop:web."+id) {
		t.Errorf("page after the build: %v (release %s)", got, b.Release)
	}
}
