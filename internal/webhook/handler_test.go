package webhook_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/convox-build-action/convox-build-action/internal/queue"
	"github.com/convox-build-action/convox-build-action/internal/store"
	"github.com/convox-build-action/convox-build-action/internal/testenv"
	"github.com/convox-build-action/convox-build-action/internal/webhook"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var secret = []byte("It's a Secret to Everybody")

// server is a webhook handler on a real queue, with its log.
type server struct {
	q   *queue.Queue
	srv *httptest.Server
	log *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func sqliteQueue(t *testing.T) *queue.Queue { return sqliteQueueOpts(t, queue.Options{}) }

func sqliteQueueOpts(t *testing.T, opts queue.Options) *queue.Queue {
	db, err := store.OpenSQLiteDB(filepath.Join(t.TempDir(), "q.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	q, err := queue.NewSQLite(t.Context(), db, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	return q
}

func postgresQueue(t *testing.T) *queue.Queue {
	q, err := queue.OpenPostgres(t.Context(), testenv.PostgresURL(t), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	return q
}

func newServer(t *testing.T, q *queue.Queue, opts webhook.Options) *server {
	t.Helper()
	s := &server{q: q, log: &syncBuffer{}}
	opts.Acceptor = q
	if opts.Secret == nil {
		opts.Secret = secret
	}
	opts.Logger = slog.New(slog.NewJSONHandler(s.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := webhook.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.srv = httptest.NewServer(h)
	t.Cleanup(s.srv.Close)
	return s
}

// deliver sends body as GitHub would, signed with key.
func (s *server) deliver(t *testing.T, key []byte, event, delivery string, body []byte) (int, webhook.Response) {
	t.Helper()
	req, err := testenv.WebhookRequest(s.srv.URL, key, event, delivery, body)
	if err != nil {
		t.Fatal(err)
	}
	return s.do(t, req)
}

func (s *server) do(t *testing.T, req *http.Request) (int, webhook.Response) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r webhook.Response
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("response body: %v", err)
	}
	return resp.StatusCode, r
}

func (s *server) jobs(t *testing.T) []queue.JobInfo {
	t.Helper()
	jobs, err := s.q.Jobs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

// edit returns payload with changes applied to its decoded JSON.
func edit(t *testing.T, payload []byte, change func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatal(err)
	}
	change(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func obj(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		m = m[p].(map[string]any)
	}
	return m
}

// TestRouting delivers each real payload, signed, and checks what the
// server answered and queued.
func TestRouting(t *testing.T) {
	s := newServer(t, sqliteQueue(t), webhook.Options{})
	type want struct {
		status  int
		outcome string // prefix
		sha     string // of the build, if any
		branch  string
		rebuild bool
	}
	for i, tc := range []struct {
		event, file string
		want        want
	}{
		{"ping", "ping/payload.json", want{200, "pong", "", "", false}},
		{"push", "push/with-new-branch.payload.json", want{202, "build B", "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "master", false}},
		{"push", "push/with-no-username-committer.payload.json", want{202, "build B", "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "master", false}},
		{"push", "push/payload.json", want{202, "ignored: refs/tags/simple-tag was deleted", "", "", false}},
		{"push", "push/with-installation.payload.json", want{202, "ignored: refs/tags/simple-tag was deleted", "", "", false}},
		{"pull_request", "pull_request/opened.payload.json", want{202, "build B", "ec26c3e57ca3a959ca5aad62de7213c562f8c821", "changes", false}},
		{"pull_request", "pull_request/synchronize.payload.json", want{202, "build B", "ec26c3e57ca3a959ca5aad62de7213c562f8c821", "changes", false}},
		{"pull_request", "pull_request/reopened.payload.json", want{202, "build B", "ec26c3e57ca3a959ca5aad62de7213c562f8c821", "changes", false}},
		{"pull_request", "pull_request/closed.payload.json", want{202, "ignored: pull request closed", "", "", false}},
		{"pull_request", "pull_request/labeled.payload.json", want{202, "ignored: pull request labeled", "", "", false}},
		{"check_suite", "check_suite/requested.payload.json", want{202, "build B", "f95f852bd8fca8fcc58a9a2d6c842781e32a215e", "master", false}},
		{"check_suite", "check_suite/rerequested.payload.json", want{202, "build B", "ec26c3e57ca3a959ca5aad62de7213c562f8c821", "changes", true}},
		{"check_suite", "check_suite/completed.payload.json", want{202, "ignored: check suite completed", "", "", false}},
		{"check_run", "check_run/rerequested.payload.json", want{202, "build B", "d6fde92930d4715a2b49857d24b940956b26d2d3", "master", true}},
		{"check_run", "check_run/created.payload.json", want{202, "ignored: check run created", "", "", false}},
		{"check_run", "check_run/requested_action.payload.json", want{202, "ignored: check run requested_action", "", "", false}},
		{"installation", "installation/created.payload.json", want{202, "installation 957387 active", "", "", false}},
		{"installation_repositories", "installation_repositories/added.payload.json", want{202, "installation 957387 active", "", "", false}},
		{"installation", "installation/suspend.payload.json", want{202, "installation 16598467 suspended", "", "", false}},
		{"create", "create/payload.json", want{202, "ignored: event not handled", "", "", false}},
		{"delete", "delete/with-installation.payload.json", want{202, "ignored: event not handled", "", "", false}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			delivery := fmt.Sprintf("route-%d", i)
			status, resp := s.deliver(t, secret, tc.event, delivery, testenv.GitHubPayload(t, tc.file))
			if status != tc.want.status || !strings.HasPrefix(resp.Outcome, tc.want.outcome) || resp.Delivery != delivery {
				t.Fatalf("%s: %d %+v; want %d, outcome %q", tc.file, status, resp, tc.want.status, tc.want.outcome)
			}
			if tc.want.sha == "" {
				if len(resp.Builds) != 0 {
					t.Errorf("builds %v, want none", resp.Builds)
				}
				return
			}
			if len(resp.Builds) != 1 {
				t.Fatalf("builds %v, want one", resp.Builds)
			}
			b, err := s.q.Build(t.Context(), resp.Builds[0])
			if err != nil {
				t.Fatal(err)
			}
			if b.SHA != tc.want.sha || b.Branch != tc.want.branch || b.App != "hello-world" || b.Event != tc.event || b.InstallationID == 0 {
				t.Errorf("build %+v; want %s on %s, app hello-world", b, tc.want.sha, tc.want.branch)
			}
		})
	}
	// push, pull_request, check_suite of one commit make one build; a
	// re-run makes another.
	bySHA := map[string]int{}
	builds, err := s.q.Builds(t.Context(), "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range builds {
		bySHA[b.SHA[:7]]++
	}
	if want := map[string]int{"6113728": 1, "ec26c3e": 2, "f95f852": 1, "d6fde92": 1}; fmt.Sprint(bySHA) != fmt.Sprint(want) {
		t.Errorf("builds per commit %v, want %v", bySHA, want)
	}
	if jobs := s.jobs(t); len(jobs) != len(builds) {
		t.Errorf("%d jobs for %d builds", len(jobs), len(builds))
	}
	in, err := s.q.Installation(t.Context(), 957387)
	if err != nil || in.Account != "Codertocat" || in.State != "active" || !slices.Equal(in.Repositories, []string{"Codertocat/Hello-World", "Codertocat/Space"}) {
		t.Errorf("installation %+v, %v", in, err)
	}
	if in, err := s.q.Installation(t.Context(), 16598467); err != nil || in.State != "suspended" {
		t.Errorf("suspended installation %+v, %v", in, err)
	}
	d, err := s.q.Delivery(t.Context(), "route-3")
	if err != nil || d.Event != "push" || d.Repository != "Codertocat/Hello-World" || d.Outcome != "ignored: refs/tags/simple-tag was deleted" {
		t.Errorf("tag deletion delivery record %+v, %v", d, err)
	}
	// The log says what happened to each delivery, never with its body.
	log := s.log.String()
	for _, leak := range []string{"Codertocat@users.noreply.github.com", string(secret)} {
		if strings.Contains(log, leak) {
			t.Errorf("log contains %q", leak)
		}
	}
	if !strings.Contains(log, `"delivery_id":"route-1"`) || !strings.Contains(log, `"build_id":"B`) {
		t.Errorf("log lacks delivery and build IDs:\n%s", log)
	}
}

func TestSignatures(t *testing.T) {
	s := newServer(t, sqliteQueue(t), webhook.Options{})
	body := testenv.GitHubPayload(t, "push/with-new-branch.payload.json")
	goodSig := testenv.SignWebhook(secret, body)
	for _, tc := range []struct {
		name   string
		mutate func(r *http.Request)
		want   string
	}{
		{"missing", func(r *http.Request) { r.Header.Del("X-Hub-Signature-256") }, "no X-Hub-Signature-256 header"},
		{"wrong secret", func(r *http.Request) {
			r.Header.Set("X-Hub-Signature-256", testenv.SignWebhook([]byte("another secret"), body))
		}, "bad signature"},
		{"SHA-1 only", func(r *http.Request) {
			r.Header.Del("X-Hub-Signature-256")
			r.Header.Set("X-Hub-Signature", "sha1=0123456789abcdef0123456789abcdef01234567")
		}, "no X-Hub-Signature-256 header"},
		{"garbage", func(r *http.Request) { r.Header.Set("X-Hub-Signature-256", "sha256=zz") }, "bad signature"},
		{"body changed", func(r *http.Request) {
			r.Body = http.NoBody
			changed := bytes.Replace(body, []byte("master"), []byte("mastex"), 1)
			r.Body, r.ContentLength = nopCloser{bytes.NewReader(changed)}, int64(len(changed))
			r.Header.Set("X-Hub-Signature-256", goodSig)
		}, "bad signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := testenv.WebhookRequest(s.srv.URL, secret, "push", "sig-"+tc.name, body)
			if err != nil {
				t.Fatal(err)
			}
			tc.mutate(req)
			status, resp := s.do(t, req)
			if status != http.StatusUnauthorized || resp.Error != tc.want {
				t.Errorf("%d %+v; want 401 %q", status, resp, tc.want)
			}
		})
	}
	if jobs := s.jobs(t); len(jobs) != 0 {
		t.Errorf("refused deliveries queued %d jobs", len(jobs))
	}
	if _, err := s.q.Delivery(t.Context(), "sig-missing"); err == nil {
		t.Error("a refused delivery was recorded")
	}
	log := s.log.String()
	if !strings.Contains(log, `"msg":"delivery refused: bad signature"`) || strings.Contains(log, "Codertocat@users.noreply.github.com") {
		t.Errorf("log of refused deliveries:\n%s", log)
	}

	// And the good one passes.
	if status, _ := s.deliver(t, secret, "push", "sig-good", body); status != http.StatusAccepted {
		t.Errorf("good signature: %d", status)
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func TestEmptySecretRefused(t *testing.T) {
	if _, err := webhook.New(webhook.Options{Secret: []byte{}, Acceptor: sqliteQueue(t)}); err == nil || !strings.Contains(err.Error(), "secret is empty") {
		t.Errorf("New with an empty secret: %v", err)
	}
}

func TestRequestLimits(t *testing.T) {
	s := newServer(t, sqliteQueue(t), webhook.Options{MaxBody: 16 << 10})
	big := edit(t, testenv.GitHubPayload(t, "push/with-new-branch.payload.json"), func(m map[string]any) {
		obj(m, "head_commit")["message"] = strings.Repeat("x", 16<<10)
	})
	if status, resp := s.deliver(t, secret, "push", "big", big); status != http.StatusRequestEntityTooLarge {
		t.Errorf("body over the cap: %d %+v", status, resp)
	}
	get, _ := http.NewRequest(http.MethodGet, s.srv.URL, nil)
	if status, _ := s.do(t, get); status != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", status)
	}
	if status, resp := s.deliver(t, secret, "push", "bad-json", []byte(`{"ref": 3`)); status != http.StatusBadRequest || !strings.Contains(resp.Error, "reading the push payload") {
		t.Errorf("malformed payload: %d %+v", status, resp)
	}
	req, _ := testenv.WebhookRequest(s.srv.URL, secret, "push", "", testenv.GitHubPayload(t, "push/with-new-branch.payload.json"))
	if status, _ := s.do(t, req); status != http.StatusBadRequest {
		t.Errorf("no delivery ID: %d", status)
	}
	req, _ = testenv.WebhookRequest(s.srv.URL, secret, "push", "xml", []byte("<push/>"))
	req.Header.Set("Content-Type", "application/xml")
	if status, _ := s.do(t, req); status != http.StatusUnsupportedMediaType {
		t.Errorf("XML: %d", status)
	}
	// GitHub's form encoding carries the payload in a field.
	form := []byte("payload=" + strings.ReplaceAll(string(testenv.GitHubPayload(t, "ping/payload.json")), "\n", ""))
	req, _ = testenv.WebhookRequest(s.srv.URL, secret, "ping", "form", []byte(strings.NewReplacer("{", "%7B", "}", "%7D", "\"", "%22", " ", "+", ":", "%3A", ",", "%2C").Replace(string(form))))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if status, _ := s.do(t, req); status != http.StatusOK {
		t.Errorf("form-encoded ping: %d", status)
	}
}

// TestRedelivery sends one delivery several times, concurrently too, on
// both databases: one build job.
func TestRedelivery(t *testing.T) {
	for _, b := range []struct {
		name string
		q    func(*testing.T) *queue.Queue
	}{{"sqlite", sqliteQueue}, {"postgres", postgresQueue}} {
		t.Run(b.name, func(t *testing.T) {
			s := newServer(t, b.q(t), webhook.Options{})
			body := testenv.GitHubPayload(t, "push/with-new-branch.payload.json")
			status, first := s.deliver(t, secret, "push", "72d3162e-cc78-11e3-81ab-4c9367dc0958", body)
			if status != http.StatusAccepted || first.Duplicate || len(first.Builds) != 1 {
				t.Fatalf("first delivery: %d %+v", status, first)
			}
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					status, again := s.deliver(t, secret, "push", "72d3162e-cc78-11e3-81ab-4c9367dc0958", body)
					if status != http.StatusOK || !again.Duplicate || again.Outcome != first.Outcome {
						t.Errorf("redelivery: %d %+v", status, again)
					}
				})
			}
			wg.Wait()
			if jobs := s.jobs(t); len(jobs) != 1 || jobs[0].BuildID != first.Builds[0] {
				t.Errorf("jobs %+v, want the one build job of %s", jobs, first.Builds[0])
			}
			// A new delivery of the same commit (a pull_request, a
			// check_suite) is recorded but makes no second build.
			status, other := s.deliver(t, secret, "push", "another-delivery", body)
			if status != http.StatusAccepted || other.Duplicate || len(other.Builds) != 1 || other.Builds[0] != first.Builds[0] ||
				!strings.Contains(other.Outcome, "already queued") {
				t.Errorf("same commit, new delivery: %d %+v", status, other)
			}
			if jobs := s.jobs(t); len(jobs) != 1 {
				t.Errorf("%d jobs, want 1", len(jobs))
			}
		})
	}
}

func TestForkPolicy(t *testing.T) {
	fork := edit(t, testenv.GitHubPayload(t, "pull_request/opened.payload.json"), func(m map[string]any) {
		head := obj(m, "pull_request", "head", "repo")
		head["full_name"] = "forker/Hello-World"
		head["fork"] = true
		obj(head, "owner")["login"] = "forker"
	})
	t.Run("not built", func(t *testing.T) {
		s := newServer(t, sqliteQueue(t), webhook.Options{})
		status, resp := s.deliver(t, secret, "pull_request", "fork-1", fork)
		if status != http.StatusAccepted || len(resp.Builds) != 0 || resp.Outcome != "notice: Not built: pull request from a fork" {
			t.Fatalf("%d %+v", status, resp)
		}
		jobs := s.jobs(t)
		if len(jobs) != 1 || jobs[0].Notice == nil {
			t.Fatalf("jobs %+v, want one notice", jobs)
		}
		n := jobs[0].Notice
		if n.Owner != "Codertocat" || n.Repo != "Hello-World" || n.SHA != "ec26c3e57ca3a959ca5aad62de7213c562f8c821" || n.InstallationID != 1 ||
			!strings.Contains(n.Summary, "Pull request #2 comes from forker/Hello-World") {
			t.Errorf("notice %+v", n)
		}
		// A re-run of that neutral check does not build the fork either.
		rerun := edit(t, testenv.GitHubPayload(t, "check_run/rerequested.payload.json"), func(m map[string]any) {
			obj(m, "check_run")["external_id"] = webhook.NoticeExternalID
		})
		if status, resp := s.deliver(t, secret, "check_run", "fork-rerun", rerun); status != http.StatusAccepted || len(resp.Builds) != 0 {
			t.Errorf("re-run of the notice: %d %+v", status, resp)
		}
	})
	t.Run("built when allowed", func(t *testing.T) {
		s := newServer(t, sqliteQueue(t), webhook.Options{Policy: webhook.Policy{BuildForks: true}})
		status, resp := s.deliver(t, secret, "pull_request", "fork-2", fork)
		if status != http.StatusAccepted || len(resp.Builds) != 1 {
			t.Fatalf("%d %+v", status, resp)
		}
		b, _ := s.q.Build(t.Context(), resp.Builds[0])
		if b.Branch != "pull/2" || b.Ref != "refs/pull/2/head" || b.Owner != "Codertocat" {
			t.Errorf("fork build %+v", b)
		}
	})
}

func TestTagPolicy(t *testing.T) {
	tag := edit(t, testenv.GitHubPayload(t, "push/with-new-branch.payload.json"), func(m map[string]any) {
		m["ref"] = "refs/tags/v1.0"
	})
	s := newServer(t, sqliteQueue(t), webhook.Options{})
	if status, resp := s.deliver(t, secret, "push", "tag-1", tag); status != http.StatusAccepted || len(resp.Builds) != 0 ||
		resp.Outcome != "ignored: tag v1.0 pushed: tags are not built on this server" {
		t.Errorf("tag push, tags off: %d %+v", status, resp)
	}
	s = newServer(t, sqliteQueue(t), webhook.Options{Policy: webhook.Policy{BuildTags: true}})
	status, resp := s.deliver(t, secret, "push", "tag-2", tag)
	if status != http.StatusAccepted || len(resp.Builds) != 1 {
		t.Fatalf("tag push, tags on: %d %+v", status, resp)
	}
	if b, _ := s.q.Build(t.Context(), resp.Builds[0]); b.Ref != "refs/tags/v1.0" || b.Branch != "" {
		t.Errorf("tag build %+v", b)
	}
	// A tag deletion is skipped even when tags are built.
	if status, resp := s.deliver(t, secret, "push", "tag-3", testenv.GitHubPayload(t, "push/with-installation.payload.json")); status != http.StatusAccepted || len(resp.Builds) != 0 {
		t.Errorf("tag deletion: %d %+v", status, resp)
	}
}

func TestAppFilter(t *testing.T) {
	rerun := testenv.GitHubPayload(t, "check_run/rerequested.payload.json") // app 2
	s := newServer(t, sqliteQueue(t), webhook.Options{Policy: webhook.Policy{AppID: 2}})
	if status, resp := s.deliver(t, secret, "check_run", "app-1", rerun); status != http.StatusAccepted || len(resp.Builds) != 1 {
		t.Errorf("our app's check run: %d %+v", status, resp)
	}
	s = newServer(t, sqliteQueue(t), webhook.Options{Policy: webhook.Policy{AppID: 99}})
	if status, resp := s.deliver(t, secret, "check_run", "app-2", rerun); status != http.StatusAccepted || resp.Outcome != "ignored: check run of another app (2)" {
		t.Errorf("another app's check run: %d %+v", status, resp)
	}
}

func TestAppName(t *testing.T) {
	for in, want := range map[string]string{
		"Hello-World": "hello-world", "my_app.v2": "my-app-v2", "--x--": "x", "": "app", "Ünïcode": "n-code",
	} {
		if got := webhook.AppName(in); got != want {
			t.Errorf("AppName(%q) = %q, want %q", in, got, want)
		}
	}
}
