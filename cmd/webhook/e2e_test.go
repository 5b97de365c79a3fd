package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/queue"
	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

const convoxYML = "services:\n  web:\n    build: .\n"

// app is a one-service app whose build takes about seconds s and prints
// numbered steps; tag makes every commit's build distinct (no cache hit).
func app(tag string, seconds int) map[string]string {
	return map[string]string{
		"convox.yml": convoxYML,
		"VERSION":    tag + "\n",
		"Dockerfile": fmt.Sprintf("FROM busybox\nCOPY VERSION /VERSION\nRUN for i in $(seq 1 %d); do echo \"step $i of %s\"; sleep 1; done\n", seconds, tag),
	}
}

// openStore reads the server's builds (beside the running server).
func (w *world) openStore() store.Store {
	w.t.Helper()
	dbURL := w.dbURL
	if dbURL == "" {
		dbURL = "sqlite://" + filepath.Join(w.dataDir, "builds.db")
	}
	st, err := store.Open(w.t.Context(), dbURL)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { st.Close() })
	return st
}

// openQueue reads the server's queue records.
func (w *world) openQueue() *queue.Queue {
	w.t.Helper()
	var q *queue.Queue
	var err error
	if w.dbURL == "" {
		db, derr := store.OpenSQLiteDB(filepath.Join(w.dataDir, "builds.db"))
		if derr != nil {
			w.t.Fatal(derr)
		}
		w.t.Cleanup(func() { db.Close() })
		q, err = queue.NewSQLite(w.t.Context(), db, queue.Options{})
	} else {
		q, err = queue.OpenPostgres(w.t.Context(), w.dbURL, queue.Options{})
		if err == nil {
			w.t.Cleanup(q.Close)
		}
	}
	if err != nil {
		w.t.Fatal(err)
	}
	return q
}

func annotationAt(c testenv.FakeCheckRun, path string, line int) map[string]any {
	for _, a := range c.Annotations {
		if a["path"] == path && a["start_line"] == float64(line) {
			return a
		}
	}
	return nil
}

// TestEndToEnd runs the server process against buildkitd, a registry and
// the fake GitHub: signed deliveries in, builds, images, check runs out.
func TestEndToEnd(t *testing.T) {
	w := newWorld(t, "sqlite")
	p := w.start()
	st := w.openStore()

	t.Run("push builds and reports success", func(t *testing.T) {
		sha := w.commit("acme", "shop", app("ok", 3))
		id := p.push("acme", "shop", "main", sha, "Add the shop\n\nWith a body.")
		c := w.completed(id, 3*time.Minute)
		if c.Conclusion != "success" || c.Name != "convox build (shop)" || c.HeadSHA != sha ||
			c.DetailsURL != "https://builds.example.test/apps/shop/builds/"+id {
			t.Errorf("check run %+v", c)
		}
		if !slices.Equal(c.StatusHistory, []string{"queued", "in_progress", "completed"}) {
			t.Errorf("check run went through %v, want queued, in_progress, completed", c.StatusHistory)
		}
		// An in-progress update carried the running log.
		live := false
		for _, r := range c.Requests {
			out, _ := r["output"].(map[string]any)
			if r["status"] == "in_progress" && out != nil && strings.Contains(fmt.Sprint(out["text"]), "step 1 of ok") {
				live = true
			}
		}
		if !live {
			t.Errorf("no in_progress update carried the log: %v", c.Requests)
		}
		b, err := st.GetBuild(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if b.Status != store.StatusComplete || b.App != "shop" || b.GitSHA != sha || b.Release == "" ||
			b.Description != "Add the shop" || len(b.Services) != 1 {
			t.Fatalf("build %+v", b)
		}
		img := b.Services[0]
		if img.Image != w.env.Registry+"/acme/shop:web."+id {
			t.Errorf("image %s", img.Image)
		}
		digest, err := registry.Digest(t.Context(), img.Image, registry.Options{})
		if err != nil || digest != img.Digest {
			t.Errorf("registry has %s at %s (%v); the build says %s", digest, img.Image, err, img.Digest)
		}
		if !strings.Contains(c.Summary, img.Digest) || !strings.Contains(c.Text, "step 3 of ok") {
			t.Errorf("summary %q\ntext %q", c.Summary, c.Text)
		}
		if rel, err := st.GetRelease(t.Context(), b.Release); err != nil || rel.Build != id {
			t.Errorf("release %+v, %v", rel, err)
		}
		// Every log line about the build carries its delivery too.
		entries := p.logsOf(id)
		if len(entries) < 3 {
			t.Errorf("only %d log lines about %s", len(entries), id)
		}
		for _, e := range entries {
			if e["delivery_id"] != "push-"+sha[:12] {
				t.Errorf("log line without the delivery ID: %v", e)
			}
		}
	})

	t.Run("failing Dockerfile reports failure at its line", func(t *testing.T) {
		sha := w.commit("acme", "shop", map[string]string{
			"convox.yml": convoxYML,
			"Dockerfile": "FROM busybox\nCOPY . /src\nRUN echo \"compiling\" && echo \"error: it broke\" && exit 3\n",
		})
		id := p.push("acme", "shop", "broken", sha, "Break it")
		c := w.completed(id, 3*time.Minute)
		if c.Conclusion != "failure" {
			t.Fatalf("conclusion %q", c.Conclusion)
		}
		a := annotationAt(c, "Dockerfile", 3)
		if a == nil || a["annotation_level"] != "failure" || !strings.Contains(fmt.Sprint(a["title"]), "exit code 3") ||
			!strings.Contains(fmt.Sprint(a["message"]), "error: it broke") {
			t.Errorf("annotations %v; want a failure at Dockerfile:3", c.Annotations)
		}
		b, err := st.GetBuild(t.Context(), id)
		if err != nil || b.Status != store.StatusFailed || !strings.Contains(b.Reason, "exit code: 3") {
			t.Errorf("build %+v, %v", b, err)
		}
	})

	t.Run("a newer push cancels the older build", func(t *testing.T) {
		slow := w.commit("acme", "shop", app("slow", 60))
		first := p.push("acme", "shop", "feature", slow, "Slow")
		waitFor(t, 2*time.Minute, "the first build to run", func() bool {
			c, ok := w.checkRun(first)
			return ok && c.Status == "in_progress"
		})
		quick := w.commit("acme", "shop", app("quick", 1))
		second := p.push("acme", "shop", "feature", quick, "Quick")
		c := w.completed(first, time.Minute)
		if c.Conclusion != "cancelled" || !strings.Contains(c.Title, quick[:7]) || !strings.Contains(c.Summary, quick) {
			t.Errorf("superseded check run: %s %q %q", c.Conclusion, c.Title, c.Summary)
		}
		if c2 := w.completed(second, 3*time.Minute); c2.Conclusion != "success" {
			t.Errorf("superseding build: %s %q", c2.Conclusion, c2.Title)
		}
		b, err := st.GetBuild(t.Context(), first)
		if err != nil || b.Status != store.StatusFailed || !strings.Contains(b.Reason, "superseded by commit "+quick) {
			t.Errorf("cancelled build %+v, %v", b, err)
		}
	})

	t.Run("GitHub's failures are retried", func(t *testing.T) {
		w.gh.FailNext("POST", "/repos/acme/shop/check-runs", 2, testenv.FakeResponse{Status: http.StatusBadGateway})
		w.gh.FailNext("PATCH", "/repos/acme/shop/check-runs/", 1, testenv.SecondaryRateLimit(1))
		w.gh.FailNext("GET", "/repos/acme/shop/tarball/", 1, testenv.FakeResponse{Status: http.StatusServiceUnavailable})
		sha := w.commit("acme", "shop", app("flaky", 1))
		id := p.push("acme", "shop", "flaky", sha, "Flaky GitHub")
		if c := w.completed(id, 3*time.Minute); c.Conclusion != "success" {
			t.Errorf("conclusion %q", c.Conclusion)
		}
		var statuses []int
		for _, r := range w.gh.RequestsTo("", "/repos/acme/shop/") {
			if r.Status >= 400 {
				statuses = append(statuses, r.Status)
			}
		}
		if fmt.Sprint(statuses) != "[502 502 503 403]" {
			t.Errorf("failed requests %v, want the scripted 502 502 503 403, each retried", statuses)
		}
	})

	t.Run("Re-run rebuilds the commit", func(t *testing.T) {
		sha := w.commit("acme", "shop", app("rerun", 1))
		first := p.push("acme", "shop", "rerun", sha, "Rerun me")
		c := w.completed(first, 3*time.Minute)
		body := edit(t, testenv.GitHubPayload(t, "check_run/rerequested.payload.json"), func(m map[string]any) {
			cr := m["check_run"].(map[string]any)
			cr["id"], cr["head_sha"], cr["external_id"] = c.ID, sha, first
			cr["app"].(map[string]any)["id"] = w.gh.AppID
			cr["check_suite"].(map[string]any)["head_branch"] = "rerun"
			repo := m["repository"].(map[string]any)
			repo["name"], repo["full_name"] = "shop", "acme/shop"
			repo["owner"].(map[string]any)["login"] = "acme"
		})
		status, resp := p.deliver("check_run", "rerun-"+sha[:8], body)
		builds, _ := resp["builds"].([]any)
		if status != http.StatusAccepted || len(builds) != 1 || builds[0] == first {
			t.Fatalf("re-run: %d %v", status, resp)
		}
		second := builds[0].(string)
		c2 := w.completed(second, 3*time.Minute)
		if c2.Conclusion != "success" || c2.HeadSHA != sha || c2.ID == c.ID {
			t.Errorf("re-run check run %+v", c2)
		}
	})

	t.Run("a commit without convox.yml is neutral", func(t *testing.T) {
		sha := w.commit("acme", "docs", map[string]string{"README.md": "# docs\n"})
		id := p.push("acme", "docs", "main", sha, "Docs")
		c := w.completed(id, time.Minute)
		if c.Conclusion != "neutral" || c.Title != "Not built: no convox.yml" {
			t.Errorf("check run %s %q", c.Conclusion, c.Title)
		}
	})

	t.Run("a pull request from a fork gets a neutral check", func(t *testing.T) {
		body := edit(t, testenv.GitHubPayload(t, "pull_request/opened.payload.json"), func(m map[string]any) {
			head := m["pull_request"].(map[string]any)["head"].(map[string]any)
			head["sha"] = "feedfacefeedfacefeedfacefeedfacefeedface"
			repo := head["repo"].(map[string]any)
			repo["full_name"], repo["fork"] = "forker/Hello-World", true
		})
		if status, resp := p.deliver("pull_request", "fork-pr", body); status != http.StatusAccepted || resp["builds"] != nil {
			t.Fatalf("%d %v", status, resp)
		}
		waitFor(t, time.Minute, "the neutral check", func() bool {
			for _, c := range w.gh.CheckRuns() {
				if c.HeadSHA == "feedfacefeedfacefeedfacefeedfacefeedface" {
					return c.Conclusion == "neutral" && c.Title == "Not built: pull request from a fork" && c.Owner == "Codertocat"
				}
			}
			return false
		})
	})

	t.Run("redelivery", func(t *testing.T) {
		sha := w.commit("acme", "shop", app("again", 1))
		body := pushPayload(t, "acme", "shop", "again", sha, "Again")
		s1, r1 := p.deliver("push", "redelivered", body)
		s2, r2 := p.deliver("push", "redelivered", body)
		if s1 != http.StatusAccepted || s2 != http.StatusOK || r2["duplicate"] != true || fmt.Sprint(r1["builds"]) == "" {
			t.Errorf("deliveries: %d %v, then %d %v", s1, r1, s2, r2)
		}
		id := r1["builds"].([]any)[0].(string)
		w.completed(id, 3*time.Minute)
	})

	if status, _ := get(t, "http://"+p.addr+"/healthz"); status != http.StatusOK {
		t.Errorf("/healthz: %d", status)
	}
	p.noSecrets()
}

func get(t *testing.T, url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	fmt.Fprint(&b, resp.Body)
	return resp.StatusCode, b.String()
}

// TestCrashRecovery kills the server (SIGKILL) in the middle of a build
// and starts it again: within 60 s the build runs again, its check run is
// completed (the same one, never left in progress) and the Build ends.
func TestCrashRecovery(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, db)
			p := w.start()
			sha := w.commit("acme", "crash", app("crash-"+db, 10))
			id := p.push("acme", "crash", "main", sha, "Crash")
			waitFor(t, 2*time.Minute, "the build to run", func() bool {
				c, ok := w.checkRun(id)
				return ok && c.Status == "in_progress" && strings.Contains(c.Text, "step 2 of crash")
			})
			p.cmd.Process.Signal(syscall.SIGKILL)
			p.wait(30 * time.Second)
			killed := time.Now()
			before, _ := w.checkRun(id)

			p2 := w.start()
			restarted := time.Now()
			c := w.completed(id, 3*time.Minute)
			took := time.Since(restarted)
			t.Logf("%s: the check run completed %v after the restart (%v after the kill)", db, took.Round(100*time.Millisecond), time.Since(killed).Round(100*time.Millisecond))
			var retried time.Duration
			for _, e := range p2.logsOf(id) {
				if e["msg"] == "build recovered: its process stopped mid-build; running it again" {
					at, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(e["time"]))
					retried = at.Sub(restarted)
				}
			}
			t.Logf("%s: the job was retried %v after the restart", db, retried.Round(100*time.Millisecond))
			if retried <= 0 || retried > 60*time.Second {
				t.Errorf("job retried %v after the restart; want within 60s", retried)
			}
			if c.ID != before.ID || c.Conclusion != "success" || c.StatusHistory[len(c.StatusHistory)-1] != "completed" {
				t.Errorf("check run %d (was %d): %s %v", c.ID, before.ID, c.Conclusion, c.StatusHistory)
			}
			b, err := w.openStore().GetBuild(t.Context(), id)
			if err != nil || (b.Status != store.StatusComplete && (b.Status != store.StatusFailed || b.Reason == "")) {
				t.Errorf("build %+v, %v", b, err)
			}
			if b.Status != store.StatusComplete {
				t.Errorf("build %s ended %s (%s); the resumed build should complete", id, b.Status, b.Reason)
			}
			rec, err := w.openQueue().Build(t.Context(), id)
			if err != nil || rec.Run != 2 || rec.State != queue.StateDone || rec.Conclusion != "success" {
				t.Errorf("queue record %+v, %v", rec, err)
			}
			p2.noSecrets()
		})
	}
}

// TestDrain sends SIGTERM: the running build finishes, a queued one stays
// queued for the next process; with a short drain deadline a running
// build goes back to the queue and the next process finishes it on the
// same check run.
func TestDrain(t *testing.T) {
	w := newWorld(t, "sqlite")
	w.extra["WORKERS"] = "1"
	p := w.start()
	a := p.push("acme", "drain", "a", w.commit("acme", "drain", app("drain-a", 4)), "A")
	waitFor(t, 2*time.Minute, "build a to run", func() bool {
		c, ok := w.checkRun(a)
		return ok && c.Status == "in_progress"
	})
	b := p.push("acme", "drain", "b", w.commit("acme", "drain", app("drain-b", 1)), "B")
	p.signal(syscall.SIGTERM)
	if code := p.wait(2 * time.Minute); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	if c, _ := w.checkRun(a); c.Status != "completed" || c.Conclusion != "success" {
		t.Errorf("the running build after a drain: %s %s", c.Status, c.Conclusion)
	}
	if _, ok := w.checkRun(b); ok {
		t.Error("the queued build started during the drain")
	}
	st := w.openStore()
	if _, err := st.GetBuild(t.Context(), b); err == nil {
		t.Error("the queued build was recorded during the drain")
	}

	w.extra["DRAIN_TIMEOUT"] = "2s"
	p2 := w.start()
	if c := w.completed(b, 3*time.Minute); c.Conclusion != "success" {
		t.Errorf("the queued build after the restart: %s", c.Conclusion)
	}
	long := p2.push("acme", "drain", "c", w.commit("acme", "drain", app("drain-c", 30)), "C")
	waitFor(t, 2*time.Minute, "build c to run", func() bool {
		c, ok := w.checkRun(long)
		return ok && c.Status == "in_progress"
	})
	stopped := time.Now()
	p2.signal(syscall.SIGTERM)
	if code := p2.wait(time.Minute); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	t.Logf("handed back and exited %v after SIGTERM (drain deadline 2s)", time.Since(stopped).Round(100*time.Millisecond))
	first, _ := w.checkRun(long)
	if first.Status == "completed" {
		t.Fatalf("the long build completed during a 2s drain: %s", first.Conclusion)
	}
	w.start()
	c := w.completed(long, 3*time.Minute)
	if c.ID != first.ID || c.Conclusion != "success" {
		t.Errorf("handed-back build: check run %d (was %d) %s", c.ID, first.ID, c.Conclusion)
	}
	if bc, err := st.GetBuild(t.Context(), long); err != nil || bc.Status != store.StatusComplete {
		t.Errorf("handed-back build %+v, %v", bc, err)
	}
}

// TestBuildTimeout: a build over BUILD_TIMEOUT is stopped and reported as
// failed.
func TestBuildTimeout(t *testing.T) {
	w := newWorld(t, "sqlite")
	w.extra["BUILD_TIMEOUT"] = "4s"
	p := w.start()
	id := p.push("acme", "slow", "main", w.commit("acme", "slow", app("timeout", 60)), "Slow")
	c := w.completed(id, 2*time.Minute)
	if c.Conclusion != "failure" || c.Title != "Build timed out" || !strings.Contains(c.Summary, "took longer than 4s") {
		t.Errorf("check run: %s %q %q", c.Conclusion, c.Title, c.Summary)
	}
	b, err := w.openStore().GetBuild(t.Context(), id)
	if err != nil || b.Status != store.StatusFailed || !strings.Contains(b.Reason, "took longer than 4s") {
		t.Errorf("build %+v, %v", b, err)
	}
}

// TestSupersedeQueued: a build superseded while it waits in the queue is
// never built; its check run is cancelled, naming the newer commit.
func TestSupersedeQueued(t *testing.T) {
	w := newWorld(t, "sqlite")
	w.extra["WORKERS"] = "1"
	p := w.start()
	busy := p.push("acme", "queued", "busy", w.commit("acme", "queued", app("busy", 4)), "Busy")
	waitFor(t, 2*time.Minute, "the first build to run", func() bool {
		c, ok := w.checkRun(busy)
		return ok && c.Status == "in_progress"
	})
	waiting := p.push("acme", "queued", "main", w.commit("acme", "queued", app("waiting", 1)), "Waiting")
	newer := w.commit("acme", "queued", app("newer", 1))
	latest := p.push("acme", "queued", "main", newer, "Newer")
	c := w.completed(waiting, 2*time.Minute)
	if c.Conclusion != "cancelled" || !strings.Contains(c.Summary, newer) || slices.Contains(c.StatusHistory, "in_progress") {
		t.Errorf("superseded queued build: %s %v %q", c.Conclusion, c.StatusHistory, c.Summary)
	}
	if _, err := w.openStore().GetBuild(t.Context(), waiting); err == nil {
		t.Error("the superseded build was built")
	}
	for _, id := range []string{busy, latest} {
		if c := w.completed(id, 2*time.Minute); c.Conclusion != "success" {
			t.Errorf("build %s: %s", id, c.Conclusion)
		}
	}
}
