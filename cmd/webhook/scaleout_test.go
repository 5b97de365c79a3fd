package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/queue"
	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

// pullRequestPayload is the real pull_request payload, opened from branch
// of owner/repo itself (not a fork) at sha.
func pullRequestPayload(t testing.TB, owner, repo, branch, sha string, number int) []byte {
	return edit(t, testenv.GitHubPayload(t, "pull_request/opened.payload.json"), func(m map[string]any) {
		m["number"] = number
		pr := m["pull_request"].(map[string]any)
		pr["number"], pr["title"] = number, "Change "+branch
		head := pr["head"].(map[string]any)
		head["sha"], head["ref"] = sha, branch
		hr := head["repo"].(map[string]any)
		hr["name"], hr["full_name"] = repo, owner+"/"+repo
		r := m["repository"].(map[string]any)
		r["name"], r["full_name"] = repo, owner+"/"+repo
		r["owner"].(map[string]any)["login"] = owner
	})
}

// logged counts, per build among ids, the lines of p's log that say msg
// about it ("build started": once per run, and again after waiting for
// another process; "build finished": once per run that ended).
func logged(p *proc, msg string, ids map[string]bool) map[string]int {
	out := map[string]int{}
	for _, e := range p.log.entries() {
		if id, _ := e["build_id"].(string); e["msg"] == msg && ids[id] {
			out[id]++
		}
	}
	return out
}

// TestTwoProcessesOnePostgres runs two server processes on one
// PostgreSQL and one fake GitHub. 20 deliveries for 10 commits (a push to
// one process and a pull request to the other, per commit, all at once):
// each commit is built exactly once (one Build, one check run created and
// completed once, one image pushed). Then the process running a build is
// killed (SIGKILL) and the other one finishes it, on the same check run.
func TestTwoProcessesOnePostgres(t *testing.T) {
	w := newWorld(t, "postgres")
	w.extra["HEARTBEAT_INTERVAL"] = "1s"
	w.extra["WORKERS"] = "3"
	p1 := w.start()
	dir2 := t.TempDir()
	p2 := w.startWith(map[string]string{"DATA_DIR": dir2, "HOME": dir2})
	procs := []*proc{p1, p2}
	st := w.openStore()

	const commits = 10
	shas := make([]string, commits)
	for i := range shas {
		shas[i] = w.commit("acme", "scale", app(fmt.Sprintf("scale-%d", i), 2))
	}
	type answer struct {
		status int
		builds []any
	}
	answers := make([][2]answer, commits)
	var wg sync.WaitGroup
	began := time.Now()
	for i, sha := range shas {
		branch := fmt.Sprintf("feature-%d", i)
		for k, event := range []string{"push", "pull_request"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := pushPayload(t, "acme", "scale", branch, sha, "Commit "+branch)
				if event == "pull_request" {
					body = pullRequestPayload(t, "acme", "scale", branch, sha, 100+i)
				}
				status, resp := procs[(i+k)%2].deliver(event, fmt.Sprintf("%s-%s", event, sha[:12]), body)
				builds, _ := resp["builds"].([]any)
				answers[i][k] = answer{status, builds}
			}()
		}
	}
	wg.Wait()
	ids := map[string]bool{}
	idOf := map[string]string{} // sha -> build ID
	for i, a := range answers {
		if a[0].status != http.StatusAccepted || a[1].status != http.StatusAccepted ||
			len(a[0].builds) != 1 || fmt.Sprint(a[0].builds) != fmt.Sprint(a[1].builds) {
			t.Fatalf("commit %d: push answered %d %v, pull request %d %v; want 202 and the same one build", i, a[0].status, a[0].builds, a[1].status, a[1].builds)
		}
		id := a[0].builds[0].(string)
		ids[id], idOf[shas[i]] = true, id
	}
	if len(ids) != commits {
		t.Fatalf("%d build IDs for %d commits", len(ids), commits)
	}
	for _, id := range idOf {
		if c := w.completed(id, 5*time.Minute); c.Conclusion != "success" {
			t.Errorf("build %s: %s %q", id, c.Conclusion, c.Title)
		}
	}
	t.Logf("20 deliveries for 10 commits: all built in %v", time.Since(began).Round(100*time.Millisecond))

	// One Build per commit, complete, with its image in the registry.
	builds, err := st.ListBuilds(t.Context(), "scale", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(builds) != commits {
		t.Errorf("%d Builds of app scale, want %d", len(builds), commits)
	}
	for _, b := range builds {
		if idOf[b.GitSHA] != b.ID || b.Status != store.StatusComplete || len(b.Services) != 1 {
			t.Errorf("build %s of %s: %s, %d services (the deliveries answered %s)", b.ID, b.GitSHA, b.Status, len(b.Services), idOf[b.GitSHA])
			continue
		}
		if d, err := registry.Digest(t.Context(), b.Services[0].Image, registry.Options{}); err != nil || d != b.Services[0].Digest {
			t.Errorf("registry has %s at %s (%v); the build says %s", d, b.Services[0].Image, err, b.Services[0].Digest)
		}
	}
	// One check run per commit, created once and completed once.
	for _, sha := range shas {
		var runs []testenv.FakeCheckRun
		for _, c := range w.gh.CheckRuns() {
			if c.HeadSHA == sha {
				runs = append(runs, c)
			}
		}
		if len(runs) != 1 {
			t.Errorf("commit %s: %d check runs", sha[:7], len(runs))
			continue
		}
		completed := 0
		for _, s := range runs[0].StatusHistory {
			if s == "completed" {
				completed++
			}
		}
		if completed != 1 || runs[0].ExternalID != idOf[sha] {
			t.Errorf("commit %s: check run of %s went through %v", sha[:7], runs[0].ExternalID, runs[0].StatusHistory)
		}
	}
	if n := len(w.gh.RequestsTo("POST", "/repos/acme/scale/check-runs")); n != commits {
		t.Errorf("%d check runs created, want %d", n, commits)
	}
	// One image build (and push) per commit, as buildkitd saw them.
	images := testenv.ImageBuilds(t, w.env.BuildkitAddr)
	scale := 0
	for name, n := range images {
		if strings.HasPrefix(name, w.env.Registry+"/acme/scale:") {
			scale += n
		}
	}
	for id := range ids {
		if n := images[w.env.Registry+"/acme/scale:web."+id]; n != 1 {
			t.Errorf("buildkitd built the image of %s %d times", id, n)
		}
	}
	if scale != commits {
		t.Errorf("buildkitd built %d images of acme/scale, want %d", scale, commits)
	}
	// Each build ran once, by one process or the other.
	s1, s2 := logged(p1, "build finished", ids), logged(p2, "build finished", ids)
	for id := range ids {
		if s1[id]+s2[id] != 1 {
			t.Errorf("build %s ran %d times in process 1 and %d in process 2", id, s1[id], s2[id])
		}
	}
	t.Logf("builds run by process 1: %d, by process 2: %d", len(s1), len(s2))

	// Kill the process running a build: the other finishes it.
	sha := w.commit("acme", "scale", app("killed", 15))
	id := p1.push("acme", "scale", "killed", sha, "Killed mid-build")
	waitFor(t, 2*time.Minute, "the build to run", func() bool {
		c, ok := w.checkRun(id)
		return ok && c.Status == "in_progress" && strings.Contains(c.Text, "step 2 of killed")
	})
	one := map[string]bool{id: true}
	victim, survivor := p1, p2
	if logged(p2, "build started", one)[id] > 0 {
		victim, survivor = p2, p1
	}
	if logged(victim, "build started", one)[id] != 1 {
		t.Fatalf("neither process says it started %s", id)
	}
	before, _ := w.checkRun(id)
	victim.signal(syscall.SIGKILL)
	victim.wait(30 * time.Second)
	killed := time.Now()
	c := w.completed(id, 3*time.Minute)
	took := time.Since(killed)
	var recovered time.Duration
	for _, e := range survivor.logsOf(id) {
		if e["msg"] == "build recovered: its process stopped mid-build; running it again" {
			at, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(e["time"]))
			recovered = at.Sub(killed)
		}
	}
	t.Logf("after the kill: the surviving process took the build over in %v and completed it %v after the kill (heartbeat 1s, a 15 s build)",
		recovered.Round(100*time.Millisecond), took.Round(100*time.Millisecond))
	if recovered <= 0 || logged(survivor, "build finished", one)[id] != 1 {
		t.Errorf("the surviving process did not take the build over (recovered after %v, finished it %d times)", recovered, logged(survivor, "build finished", one)[id])
	}
	if c.ID != before.ID || c.Conclusion != "success" || slices.Index(c.StatusHistory, "completed") != len(c.StatusHistory)-1 {
		t.Errorf("check run %d (was %d): %s %v", c.ID, before.ID, c.Conclusion, c.StatusHistory)
	}
	if b, err := st.GetBuild(t.Context(), id); err != nil || b.Status != store.StatusComplete {
		t.Errorf("the killed build: %+v, %v", b, err)
	}
	if rec, err := w.openQueue().Build(t.Context(), id); err != nil || rec.Run != 2 || rec.State != queue.StateDone || rec.Conclusion != "success" {
		t.Errorf("queue record %+v, %v", rec, err)
	}
	survivor.noSecrets()
}

// TestTwoBuildkitHosts runs the server with BUILDKIT_HOST naming two
// buildkitds: builds at once are spread over both; once one host is
// stopped, new builds go to the other and succeed.
func TestTwoBuildkitHosts(t *testing.T) {
	a, b := testenv.ExtraBuildkitd(t), testenv.ExtraBuildkitd(t)
	w := newWorld(t, "sqlite")
	w.extra["BUILDKIT_HOST"] = a.Addr + "," + b.Addr
	w.extra["WORKERS"] = "4"
	p := w.start()

	pushAll := func(tag string, n int) []string {
		ids := make([]string, n)
		var wg sync.WaitGroup
		for i := range ids {
			sha := w.commit("acme", "hosts", app(fmt.Sprintf("%s-%d", tag, i), 3))
			wg.Add(1)
			go func() {
				defer wg.Done()
				ids[i] = p.push("acme", "hosts", fmt.Sprintf("%s-%d", tag, i), sha, "Build "+tag)
			}()
		}
		wg.Wait()
		for _, id := range ids {
			if c := w.completed(id, 5*time.Minute); c.Conclusion != "success" {
				t.Errorf("build %s: %s %q", id, c.Conclusion, c.Title)
			}
		}
		return ids
	}
	image := func(id string) string { return w.env.Registry + "/acme/hosts:web." + id }

	ids := pushAll("spread", 8)
	onA, onB := testenv.ImageBuilds(t, a.Addr), testenv.ImageBuilds(t, b.Addr)
	perHost := map[string]int{}
	for _, id := range ids {
		switch na, nb := onA[image(id)], onB[image(id)]; {
		case na == 1 && nb == 0:
			perHost["a"]++
		case na == 0 && nb == 1:
			perHost["b"]++
		default:
			t.Errorf("build %s: built %d times on a and %d on b", id, na, nb)
		}
	}
	t.Logf("8 builds at once (4 workers) over two hosts: %v", perHost)
	if perHost["a"] < 2 || perHost["b"] < 2 {
		t.Errorf("builds per host %v: not spread over both", perHost)
	}

	a.Stop()
	stopped := time.Now()
	after := pushAll("after", 3)
	t.Logf("host a stopped: 3 builds completed on b %v later", time.Since(stopped).Round(100*time.Millisecond))
	onB = testenv.ImageBuilds(t, b.Addr)
	for _, id := range after {
		if onB[image(id)] != 1 {
			t.Errorf("build %s after a stopped: %d builds on b", id, onB[image(id)])
		}
	}
	// Each build's log says where it went only when a host was left out.
	st := w.openStore()
	mentions := 0
	for _, id := range after {
		lines, err := st.ReadLogs(t.Context(), id, 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		var all []string
		for _, l := range lines {
			all = append(all, l.Text)
		}
		if strings.Contains(strings.Join(all, "\n"), "buildkitd "+a.Addr+" is unavailable") {
			mentions++
		}
	}
	if mentions < 1 {
		t.Error("no build log says that host a was unavailable")
	}
	p.noSecrets()

	// A server started while a is still down starts, and builds on b.
	p.signal(syscall.SIGTERM)
	if code := p.wait(time.Minute); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	restarted := time.Now()
	p = w.start()
	t.Logf("the server started in %v with host a down", time.Since(restarted).Round(100*time.Millisecond))
	last := pushAll("restarted", 1)
	if n := testenv.ImageBuilds(t, b.Addr)[image(last[0])]; n != 1 {
		t.Errorf("the build after the restart: %d builds on b", n)
	}
}
