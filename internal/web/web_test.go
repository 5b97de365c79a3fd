package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/store"
	"github.com/convox-build-action/convox-build-action/internal/testenv"
	"github.com/convox-build-action/convox-build-action/internal/web"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// fakeGitHub answers GitHub's OAuth token exchange, /user and
// /repos/{owner}/{repo} for two users, and counts repository lookups.
type fakeGitHub struct {
	mu      sync.Mutex
	lookups int
}

func (g *fakeGitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	tokens := map[string]string{"Bearer gho_alice": "alice", "Bearer gho_bob": "bob"}
	readable := map[string]bool{"alice /api/v3/repos/acme/shop": true, "bob /api/v3/repos/acme/other": true}
	switch {
	case r.Method == "POST" && r.URL.Path == "/login/oauth/access_token":
		r.ParseForm()
		if r.Form.Get("client_id") != "Iv1.client" || r.Form.Get("client_secret") != "oauth-s3cret" {
			w.WriteHeader(401)
			return
		}
		user := map[string]string{"code-alice": "gho_alice", "code-bob": "gho_bob"}[r.Form.Get("code")]
		if user == "" {
			io.WriteString(w, `{"error":"bad_verification_code"}`)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"access_token": user, "token_type": "bearer"})
	case r.URL.Path == "/api/v3/user":
		login := tokens[r.Header.Get("Authorization")]
		if login == "" {
			w.WriteHeader(401)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"login": login, "id": 1})
	case strings.HasPrefix(r.URL.Path, "/api/v3/repos/"):
		g.mu.Lock()
		g.lookups++
		g.mu.Unlock()
		if readable[tokens[r.Header.Get("Authorization")]+" "+r.URL.Path] {
			io.WriteString(w, `{"id": 5, "full_name": "acme/x", "private": true}`)
			return
		}
		w.WriteHeader(404)
		io.WriteString(w, `{"message":"Not Found"}`)
	default:
		w.WriteHeader(404)
	}
}

type site struct {
	srv    *httptest.Server
	gh     *fakeGitHub
	store  store.Store
	engine *build.Engine
}

// newSite serves the pages over a store holding two builds of two apps
// from two repositories, with a log in colour.
func newSite(t *testing.T, public bool, publicURL string) *site {
	t.Helper()
	st := testenv.Store(t)
	ctx := context.Background()
	now := time.Now().UTC()
	for _, b := range []*store.Build{
		{ID: "BSHOPAAAAAA", App: "shop", Status: store.StatusComplete, Release: "RSHOPAAAAAA", GitSHA: "0123456789abcdef", Description: "build 0123456789 Add cart",
			Started: now.Add(-time.Minute), Ended: now, Services: []store.ServiceImage{{Service: "web", Image: "r/shop:web.BSHOPAAAAAA", Digest: "sha256:abc"}}},
		{ID: "BOTHERAAAAA", App: "other", Status: store.StatusFailed, Reason: "service api: boom", Started: now.Add(-2 * time.Minute), Ended: now},
	} {
		if err := st.CreateBuild(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	st.AppendLogs(ctx, "BSHOPAAAAAA", []string{"#1 [internal] load build definition", "\x1b[31merror\x1b[0m <script>alert(1)</script>", strings.Repeat("long-", 300)})
	gh := &fakeGitHub{}
	ghSrv := httptest.NewServer(gh)
	t.Cleanup(ghSrv.Close)
	eng := &build.Engine{Store: st}
	repos := map[string]string{"shop": "acme/shop", "other": "acme/other"}
	w, err := web.New(web.Options{Engine: eng, PublicURL: publicURL, Public: public, ClientID: "Iv1.client", ClientSecret: "oauth-s3cret",
		GitHubURL: ghSrv.URL, APIURL: ghSrv.URL + "/api/v3/", SessionSecret: []byte("a-session-secret-of-32-bytes-!!!"),
		Repository: func(_ context.Context, b *store.Build) (string, error) { return repos[b.App], nil }, LogPoll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	w.Register(mux)
	mux.HandleFunc("GET /apps/{app}/builds/{id}", w.BuildPage)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &site{srv: srv, gh: gh, store: st, engine: eng}
}

// browser is a client with cookies that does not follow redirects.
func browser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func fetch(t *testing.T, c *http.Client, url string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", "text/html")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func TestPublicPagesShowBuildsAndRenderTheLogSafely(t *testing.T) {
	s := newSite(t, true, "http://builds.example")
	c := browser(t)
	code, body, h := fetch(t, c, s.srv.URL+"/")
	if code != 200 || !strings.Contains(body, `<a href="/apps/shop/builds/BSHOPAAAAAA">BSHOPAAAAAA</a>`) || !strings.Contains(body, "BOTHERAAAAA") ||
		!strings.Contains(body, "<code>0123456789</code>") {
		t.Errorf("index: %d\n%s", code, body)
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	code, body, _ = fetch(t, c, s.srv.URL+"/apps/shop/builds/BSHOPAAAAAA")
	for _, want := range []string{
		`<span class="fg-1">error</span> &lt;script&gt;alert(1)&lt;/script&gt;`,
		"<code>r/shop:web.BSHOPAAAAAA</code>", "<code>sha256:abc</code>", `data-ended="true"`,
		`<link rel="stylesheet" href="/assets/style.css">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("build page lacks %q", want)
		}
	}
	if code != 200 || strings.Contains(body, "<script>alert") || strings.Contains(body, "http://") && strings.Contains(body, "src=\"http") {
		t.Errorf("build page: %d", code)
	}
	for _, path := range []string{"/apps/other/builds/BSHOPAAAAAA", "/apps/shop/builds/BNOPEAAAAAA", "/apps/shop/builds/x"} {
		if code, body, _ := fetch(t, c, s.srv.URL+path); code != 404 || !strings.Contains(body, "no such build") {
			t.Errorf("%s: %d", path, code)
		}
	}
	if code, body, _ := fetch(t, c, s.srv.URL+"/assets/build.js"); code != 200 || !strings.Contains(body, "EventSource") {
		t.Errorf("asset: %d", code)
	}
	if code, _, _ := fetch(t, c, s.srv.URL+"/assets/build.html"); code != 404 {
		t.Errorf("templates are served: %d", code)
	}
}

// signIn goes through GitHub's web flow as the user whose code is given
// and returns the session cookie it set.
func signIn(t *testing.T, s *site, c *http.Client, code, next string) *http.Cookie {
	t.Helper()
	status, _, h := fetch(t, c, s.srv.URL+next)
	if status != 302 || h.Get("Location") != "/login?next="+url.QueryEscape(next) {
		t.Fatalf("signed-out visit to %s: %d -> %q", next, status, h.Get("Location"))
	}
	status, _, h = fetch(t, c, s.srv.URL+h.Get("Location"))
	auth, _ := url.Parse(h.Get("Location"))
	q := auth.Query()
	if status != 302 || !strings.HasSuffix(auth.Path, "/login/oauth/authorize") || q.Get("client_id") != "Iv1.client" || q.Get("state") == "" ||
		q.Get("redirect_uri") != "https://builds.example/login/callback" {
		t.Fatalf("login: %d -> %s", status, auth)
	}
	status, _, h = fetch(t, c, s.srv.URL+"/login/callback?code="+code+"&state="+url.QueryEscape(q.Get("state")))
	if status != 302 || h.Get("Location") != next {
		t.Fatalf("callback: %d -> %q", status, h.Get("Location"))
	}
	for _, ck := range (&http.Response{Header: h}).Cookies() {
		if ck.Name == "convox_build_session" && ck.Value != "" {
			return ck
		}
	}
	t.Fatal("no session cookie")
	return nil
}

func TestSignInWithGitHubAndAccessByRepository(t *testing.T) {
	s := newSite(t, false, "https://builds.example")
	c := browser(t)
	ck := signIn(t, s, c, "code-alice", "/apps/shop/builds/BSHOPAAAAAA")
	if !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteLaxMode || strings.Contains(ck.Value, "gho_alice") {
		t.Errorf("session cookie %+v", ck)
	}
	get := func(path string, cookie *http.Cookie) (int, string) {
		req, _ := http.NewRequest("GET", s.srv.URL+path, nil)
		req.Header.Set("Accept", "text/html")
		// Only the cookie given: a fresh client, no jar.
		bare := &http.Client{CheckRedirect: c.CheckRedirect}
		if cookie != nil {
			req.AddCookie(cookie)
		}
		resp, err := bare.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/apps/shop/builds/BSHOPAAAAAA", ck); code != 200 || !strings.Contains(body, "alice") {
		t.Errorf("alice on shop: %d", code)
	}
	// alice cannot read acme/other: its build is not found, and the index
	// does not list it.
	if code, _ := get("/apps/other/builds/BOTHERAAAAA", ck); code != 404 {
		t.Errorf("alice on other: %d", code)
	}
	if code, _ := get("/apps/other/builds/BOTHERAAAAA/events", ck); code != 404 {
		t.Errorf("alice on other's events: %d", code)
	}
	if code, body := get("/", ck); code != 200 || !strings.Contains(body, "BSHOPAAAAAA") || strings.Contains(body, "BOTHERAAAAA") {
		t.Errorf("alice's index: %d\n%s", code, body)
	}
	// GitHub's answers are cached: more visits, no more lookups.
	s.gh.mu.Lock()
	before := s.gh.lookups
	s.gh.mu.Unlock()
	get("/apps/shop/builds/BSHOPAAAAAA", ck)
	get("/", ck)
	s.gh.mu.Lock()
	if s.gh.lookups != before {
		t.Errorf("%d more repository lookups, want 0 (cached)", s.gh.lookups-before)
	}
	s.gh.mu.Unlock()

	// A forged or altered cookie is no session: back to signing in.
	for _, v := range []string{ck.Value[:len(ck.Value)-2] + "AA", "eyJsIjoiYWxpY2UifQ", ""} {
		if code, _ := get("/apps/shop/builds/BSHOPAAAAAA", &http.Cookie{Name: "convox_build_session", Value: v}); code != 302 {
			t.Errorf("forged cookie %q: %d, want a redirect to sign in", v, code)
		}
	}
	// The events stream refuses a visitor without a session outright.
	if code, body := get("/apps/shop/builds/BSHOPAAAAAA/events", nil); code != 404 {
		t.Errorf("events without a session: %d %s", code, body)
	}
	// A callback without the state the login set is refused.
	if code, body := get("/login/callback?code=code-alice&state=guess", nil); code != 400 || !strings.Contains(body, "could not be checked") {
		t.Errorf("callback without state: %d", code)
	}
	// Signing out clears the cookie.
	resp, _ := c.Post(s.srv.URL+"/logout", "", nil)
	if resp.StatusCode != 303 || !strings.Contains(resp.Header.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("logout: %d %q", resp.StatusCode, resp.Header.Get("Set-Cookie"))
	}
}

func TestEventsStreamLinesAndStatusUntilTheBuildEnds(t *testing.T) {
	s := newSite(t, true, "http://builds.example")
	ctx := context.Background()
	now := time.Now().UTC()
	b := &store.Build{ID: "BLIVEAAAAAA", App: "shop", Status: store.StatusRunning, Started: now, Heartbeat: now}
	s.store.CreateBuild(ctx, b)
	s.store.AppendLogs(ctx, b.ID, []string{"one", "two"})
	resp, err := http.Get(s.srv.URL + "/apps/shop/builds/BLIVEAAAAAA/events?after=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		s.store.AppendLogs(ctx, b.ID, []string{"\x1b[32mthree\x1b[0m"})
		b.Status, b.Ended, b.Release = store.StatusComplete, time.Now(), "RLIVEAAAAAA"
		s.store.UpdateBuild(ctx, b)
	}()
	body, _ := io.ReadAll(resp.Body)
	got := string(body)
	for _, want := range []string{
		"id: 2\nevent: lines\ndata: {\"seq\":2,\"lines\":[\"two\"]}\n\n",
		"event: status\ndata: {\"status\":\"running\"",
		"id: 3\nevent: lines\ndata: {\"seq\":3,\"lines\":[\"\\u003cspan class=\\\"fg-2\\\"\\u003ethree\\u003c/span\\u003e\"]}",
		"event: status\ndata: {\"status\":\"complete\",\"release\":\"RLIVEAAAAAA\"",
		"event: end\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("stream lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, `"one"`) {
		t.Error("lines before ?after= were sent")
	}
}
