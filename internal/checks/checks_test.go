package checks_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	gogithub "github.com/google/go-github/v60/github"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/checks"
	"github.com/convox-build-action/convox-build-action/internal/ghclient"
	"github.com/convox-build-action/convox-build-action/internal/report"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

// request is what GitHub received.
type request struct {
	Method, Path string
	Body         map[string]any
}

// github records requests and answers check-run and status calls; a path
// listed in refuse gets 403.
type github struct {
	mu     sync.Mutex
	reqs   []request
	refuse map[string]bool
}

func (g *github) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	data, _ := io.ReadAll(r.Body)
	r.URL.Path = strings.TrimPrefix(r.URL.Path, "/api/v3") // GitHub Enterprise's prefix
	var body map[string]any
	json.Unmarshal(data, &body)
	g.mu.Lock()
	g.reqs = append(g.reqs, request{r.Method, r.URL.Path, body})
	refused := g.refuse[r.Method+" "+r.URL.Path]
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case refused:
		w.WriteHeader(403)
		io.WriteString(w, `{"message":"Resource not accessible by integration"}`)
	case r.Method == "POST" && r.URL.Path == "/repos/acme/shop/check-runs":
		w.WriteHeader(201)
		io.WriteString(w, `{"id": 42, "html_url": "https://github.example/acme/shop/runs/42"}`)
	case r.Method == "PATCH" && r.URL.Path == "/repos/acme/shop/check-runs/42":
		io.WriteString(w, `{"id": 42}`)
	case r.Method == "POST" && strings.HasPrefix(r.URL.Path, "/repos/acme/shop/statuses/"):
		w.WriteHeader(201)
		io.WriteString(w, `{"id": 1}`)
	default:
		w.WriteHeader(404)
		io.WriteString(w, `{"message":"Not Found"}`)
	}
}

func (g *github) requests() []request {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]request(nil), g.reqs...)
}

func newGitHub(t *testing.T, refuse ...string) (*github, func() *gogithub.Client) {
	g := &github{refuse: map[string]bool{}}
	for _, r := range refuse {
		g.refuse[r] = true
	}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return g, func() *gogithub.Client {
		c, err := ghclient.New(srv.URL+"/api/v3/", "tok", ghclient.Options{MaxRetries: -1})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
}

func opts() checks.Options {
	return checks.Options{Owner: "acme", Repo: "shop", HeadSHA: "0123456789abcdef0123456789abcdef01234567", Name: "convox build (shop)",
		DetailsURL: "https://github.example/acme/shop/actions/runs/9", ExternalID: "BAAAAAAAAAA", UpdateInterval: 200 * time.Millisecond}
}

// finished is a report of a failed build with n annotations and a long log.
func finished(n int) report.Snapshot {
	rep := report.New(report.Options{App: "shop"})
	rep.Event(build.Event{Type: build.BuildStarted, BuildID: "BAAAAAAAAAA", Build: &store.Build{ID: "BAAAAAAAAAA", Started: time.Now()}})
	for i := 0; i < n; i++ {
		rep.Event(build.Event{Type: build.Warned, Warning: &build.Warning{Kind: build.WarningManifest, File: "convox.yml", Line: i + 1, Col: 3, Message: "unknown key"}})
	}
	for i := 0; i < 4000; i++ {
		rep.Event(build.Event{Type: build.LogLine, Line: strings.Repeat("é", 20) + " line " + string(rune('a'+i%26))})
	}
	rep.Event(build.Event{Type: build.LogLine, Line: "the very last line"})
	rep.Event(build.Event{Type: build.BuildFinished, Build: &store.Build{ID: "BAAAAAAAAAA", Status: store.StatusFailed, Reason: "service web: boom"}})
	return rep.Snapshot()
}

func TestCheckRunLifecycleWithLimits(t *testing.T) {
	g, client := newGitHub(t)
	gh := client()
	ctx := context.Background()
	run, err := checks.Start(ctx, gh, opts())
	if err != nil || run.Mode() != checks.ModeCheckRun || run.ID() != 42 || run.URL() != "https://github.example/acme/shop/runs/42" {
		t.Fatalf("start: %v %+v", err, run)
	}
	s := finished(120)
	// Within the interval of the creation: nothing is sent.
	if err := run.Progress(ctx, s); err != nil {
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond)
	if err := run.Progress(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := run.Progress(ctx, s); err != nil { // within the interval again
		t.Fatal(err)
	}
	if err := run.Complete(ctx, s, checks.Conclusion(s)); err != nil {
		t.Fatal(err)
	}
	if err := run.Progress(ctx, s); err != nil { // after completion: nothing
		t.Fatal(err)
	}
	reqs := g.requests()
	var kinds []string
	for _, r := range reqs {
		kinds = append(kinds, r.Method+" "+r.Path)
	}
	want := []string{"POST /repos/acme/shop/check-runs", "PATCH /repos/acme/shop/check-runs/42", "PATCH /repos/acme/shop/check-runs/42", "PATCH /repos/acme/shop/check-runs/42", "PATCH /repos/acme/shop/check-runs/42"}
	if strings.Join(kinds, ",") != strings.Join(want, ",") {
		t.Fatalf("requests:\n%s", strings.Join(kinds, "\n"))
	}
	create := reqs[0].Body
	if create["name"] != "convox build (shop)" || create["head_sha"] != opts().HeadSHA || create["status"] != "in_progress" ||
		create["external_id"] != "BAAAAAAAAAA" || create["details_url"] != opts().DetailsURL || create["started_at"] == nil {
		t.Errorf("create = %v", create)
	}
	if p := reqs[1].Body; p["status"] != "in_progress" {
		t.Errorf("progress = %v", p)
	}
	done := reqs[2].Body
	out := done["output"].(map[string]any)
	text := out["text"].(string)
	if done["status"] != "completed" || done["conclusion"] != "failure" || done["completed_at"] == nil {
		t.Errorf("completion = %v", done)
	}
	// The tail is 60,000 bytes (fewer characters when they are not ASCII).
	if n := len([]rune(text)); n > checks.MaxText || len(text) < checks.LogTail || !strings.Contains(text, "the very last line") {
		t.Errorf("text: %d characters, ends %q", n, text[len(text)-40:])
	}
	if !strings.HasPrefix(out["title"].(string), "Build BAAAAAAAAAA failed: service web: boom") || len([]rune(out["summary"].(string))) > checks.MaxText {
		t.Errorf("title %q", out["title"])
	}
	// 120 annotations: 50 with the completion, then 50 and 20.
	counts := []int{}
	for _, r := range reqs[2:] {
		o := r.Body["output"].(map[string]any)
		anns := o["annotations"].([]any)
		counts = append(counts, len(anns))
		if o["title"] == nil || o["summary"] == nil {
			t.Errorf("an annotation update lacks title or summary: %v", o)
		}
	}
	if len(counts) != 3 || counts[0] != 50 || counts[1] != 50 || counts[2] != 20 {
		t.Errorf("annotations per request %v", counts)
	}
	a := reqs[4].Body["output"].(map[string]any)["annotations"].([]any)[19].(map[string]any)
	if a["path"] != "convox.yml" || a["start_line"] != float64(120) || a["annotation_level"] != "warning" || a["start_column"] != float64(3) {
		t.Errorf("last annotation = %v", a)
	}
}

func TestFollowUpdatesWhileTheBuildRunsAndNeverAfterCompletion(t *testing.T) {
	g, client := newGitHub(t)
	ctx := context.Background()
	o := opts()
	o.UpdateInterval = 50 * time.Millisecond
	run, err := checks.Start(ctx, client(), o)
	if err != nil {
		t.Fatal(err)
	}
	rep := report.New(report.Options{App: "shop"})
	fctx, cancel := context.WithCancel(ctx)
	followed := make(chan error, 1)
	go func() { followed <- run.Follow(fctx, rep) }()
	// 2 s of a log line every 5 ms: updates come, at most one per interval.
	start := time.Now()
	for i := 0; i < 400; i++ {
		rep.Event(build.Event{Type: build.LogLine, Line: "working"})
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	elapsed := time.Since(start)
	if err := <-followed; err != nil {
		t.Fatal(err)
	}
	rep.Event(build.Event{Type: build.BuildFinished, Build: &store.Build{ID: "BAAAAAAAAAA", Status: store.StatusComplete}})
	if err := run.Complete(ctx, rep.Snapshot(), checks.Success); err != nil {
		t.Fatal(err)
	}
	reqs := g.requests()
	updates := len(reqs) - 2
	if most := int(elapsed/o.UpdateInterval) + 1; updates < 5 || updates > most {
		t.Errorf("%d progress updates in %s at a 50 ms interval, want 5 to %d", updates, elapsed, most)
	}
	if last := reqs[len(reqs)-1].Body; last["status"] != "completed" || last["conclusion"] != "success" {
		t.Errorf("last request = %v", last)
	}
}

func TestForbiddenCheckRunsFallBackToCommitStatuses(t *testing.T) {
	g, client := newGitHub(t, "POST /repos/acme/shop/check-runs")
	ctx := context.Background()
	run, err := checks.Start(ctx, client(), opts())
	if err != nil || run.Mode() != checks.ModeStatus {
		t.Fatalf("start: %v", err)
	}
	s := finished(3)
	if err := run.Complete(ctx, s, checks.Failure); err != nil {
		t.Fatal(err)
	}
	reqs := g.requests()
	if len(reqs) != 3 || reqs[1].Path != "/repos/acme/shop/statuses/"+opts().HeadSHA {
		t.Fatalf("requests = %+v", reqs)
	}
	if b := reqs[1].Body; b["state"] != "pending" || b["context"] != "convox build (shop)" || b["target_url"] != opts().DetailsURL {
		t.Errorf("pending status = %v", b)
	}
	if b := reqs[2].Body; b["state"] != "failure" || len(b["description"].(string)) > 140 {
		t.Errorf("final status = %v", b)
	}

	// Neither allowed: Unavailable, which callers warn about.
	_, client = newGitHub(t, "POST /repos/acme/shop/check-runs", "POST /repos/acme/shop/statuses/"+opts().HeadSHA)
	if _, err := checks.Start(ctx, client(), opts()); !checks.IsUnavailable(err) || !strings.Contains(err.Error(), "Resource not accessible") {
		t.Errorf("err = %v", err)
	}
}

func TestSkipCreatesACompletedNeutralRun(t *testing.T) {
	g, client := newGitHub(t)
	if err := checks.Skip(context.Background(), client(), opts(), "No convox.yml", "This commit has no convox.yml: nothing to build."); err != nil {
		t.Fatal(err)
	}
	b := g.requests()[0].Body
	if b["status"] != "completed" || b["conclusion"] != "neutral" || b["output"].(map[string]any)["title"] != "No convox.yml" {
		t.Errorf("request = %v", b)
	}
}
