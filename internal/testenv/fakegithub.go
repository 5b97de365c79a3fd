package testenv

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/devenv"
)

// FakeGitHubApp is a recording fake of the GitHub API as a GitHub App's
// server uses it, for the real go-github client and ghinstallation. It
// checks the App's JWT and issues installation access tokens (POST
// /app/installations/{id}/access_tokens); answers GET
// /repos/{o}/{r}/tarball/{sha} with a 302 to a signed-looking URL (a
// token in the query string) that serves the commit's tarball; creates,
// updates and lists check runs; records commit statuses. It records every
// request (method, path, headers, decoded JSON body), and fails requests
// a test scripts with FailNext (5xx, 403, secondary rate limits with
// Retry-After). It serves GitHub Enterprise's paths (/api/v3/...) and
// api.github.com's alike.
type FakeGitHubApp struct {
	// URL is the server (http://127.0.0.1:PORT); APIURL its API base in
	// GitHub Enterprise's form (URL + "/api/v3/"), for go-github and
	// GITHUB_API_URL.
	URL, APIURL string
	// AppID and PrivateKey (PEM) are the App's: requests to /app/... must
	// carry a JWT signed with that key.
	AppID      int64
	PrivateKey []byte

	key *rsa.PrivateKey

	mu        sync.Mutex
	reqs      []FakeGitHubAppRequest
	failures  []fakeGitHubAppFailure
	tarballs  map[string][]byte // "owner/repo@sha"
	tokens    map[string]int64  // installation token -> installation ID
	signed    map[string]string // signed-URL token -> "owner/repo@sha"
	signedURL []string
	runs      map[int64]*FakeCheckRun
	runOrder  []int64
	statuses  []FakeCommitStatus
	nextID    int64
}

// FakeGitHubAppRequest is one request the fake received.
type FakeGitHubAppRequest struct {
	Method string
	// Path is the API path without /api/v3: "/repos/o/r/check-runs".
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
	// JSON is the decoded body when it is a JSON object.
	JSON map[string]any
	// Status is what the fake answered.
	Status int
	Time   time.Time
}

// FakeResponse is a scripted answer.
type FakeResponse struct {
	Status int
	Header http.Header
	Body   string
}

type fakeGitHubAppFailure struct {
	method, prefix string
	resp           FakeResponse
}

// FakeCheckRun is a check run as the fake holds it: every field as last
// set, and each create or update request's JSON in order.
type FakeCheckRun struct {
	ID                                int64
	Owner, Repo                       string
	Name, HeadSHA, Status, Conclusion string
	ExternalID, DetailsURL            string
	Title, Summary, Text              string
	Annotations                       []map[string]any
	Requests                          []map[string]any
	Created, Completed                time.Time
	StatusHistory                     []string
}

// FakeCommitStatus is a commit status the fake was sent.
type FakeCommitStatus struct {
	Owner, Repo, SHA                       string
	State, Context, Description, TargetURL string
}

// NewFakeGitHubApp starts the fake, with a new App key, closed when the
// test ends.
func NewFakeGitHubApp(t testing.TB) *FakeGitHubApp {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &FakeGitHubApp{
		AppID:      4242,
		PrivateKey: pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		key:        key,
		tarballs:   map[string][]byte{},
		tokens:     map[string]int64{},
		signed:     map[string]string{},
		runs:       map[int64]*FakeCheckRun{},
		nextID:     9000,
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	f.APIURL = srv.URL + "/api/v3/"
	return f
}

// SetTarball serves tgz as the tarball of owner/repo at sha.
func (f *FakeGitHubApp) SetTarball(owner, repo, sha string, tgz []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tarballs[strings.ToLower(owner+"/"+repo)+"@"+sha] = tgz
}

// AddCommit serves the files under dir as the tarball of owner/repo at
// sha, made as GitHub makes it: a pax global header carrying the commit,
// and every path under the directory "owner-repo-sha7/".
func (f *FakeGitHubApp) AddCommit(t testing.TB, owner, repo, sha, dir string) {
	t.Helper()
	tgz, err := GitHubTarball(owner, repo, sha, os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	f.SetTarball(owner, repo, sha, tgz)
}

// GitHubTarball is the tarball GitHub serves for owner/repo at sha with
// the files of fsys.
func GitHubTarball(owner, repo, sha string, fsys fs.FS) ([]byte, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header",
		PAXRecords: map[string]string{"comment": sha}}); err != nil {
		return nil, err
	}
	short := sha
	if len(short) > 7 {
		short = short[:7]
	}
	top := fmt.Sprintf("%s-%s-%s/", owner, repo, short)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: top, Mode: 0o775}); err != nil {
		return nil, err
	}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name = top + p
		h.Uname, h.Gname, h.Uid, h.Gid = "", "", 0, 0
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := fs.ReadLink(fsys, p)
			if err != nil {
				return err
			}
			h.Linkname = target
		}
		if d.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			if _, err := tw.Write(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// FailNext answers the next n requests of method whose path (without
// /api/v3) starts with prefix with resp, before anything else.
func (f *FakeGitHubApp) FailNext(method, prefix string, n int, resp FakeResponse) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.failures = append(f.failures, fakeGitHubAppFailure{method, prefix, resp})
	}
}

// SecondaryRateLimit is GitHub's answer when a client hits a secondary
// rate limit, asking to wait retryAfter seconds.
func SecondaryRateLimit(retryAfter int) FakeResponse {
	return FakeResponse{
		Status: http.StatusForbidden,
		Header: http.Header{"Retry-After": {strconv.Itoa(retryAfter)}, "Content-Type": {"application/json"}},
		Body:   `{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.","documentation_url":"https://docs.github.com/rest/overview/resources-in-the-rest-api#secondary-rate-limits"}`,
	}
}

// Requests returns every request received, in order.
func (f *FakeGitHubApp) Requests() []FakeGitHubAppRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]FakeGitHubAppRequest(nil), f.reqs...)
}

// RequestsTo returns the requests of method ("" for any) whose path
// starts with prefix.
func (f *FakeGitHubApp) RequestsTo(method, prefix string) []FakeGitHubAppRequest {
	var out []FakeGitHubAppRequest
	for _, r := range f.Requests() {
		if (method == "" || r.Method == method) && strings.HasPrefix(r.Path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// CheckRuns returns copies of the check runs, in the order they were
// created.
func (f *FakeGitHubApp) CheckRuns() []FakeCheckRun {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []FakeCheckRun
	for _, id := range f.runOrder {
		c := *f.runs[id]
		c.Annotations = append([]map[string]any(nil), c.Annotations...)
		c.Requests = append([]map[string]any(nil), c.Requests...)
		c.StatusHistory = append([]string(nil), c.StatusHistory...)
		out = append(out, c)
	}
	return out
}

// CommitStatuses returns the commit statuses received, in order.
func (f *FakeGitHubApp) CommitStatuses() []FakeCommitStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]FakeCommitStatus(nil), f.statuses...)
}

// Secrets returns every installation token and signed tarball URL the
// fake handed out: none may appear in a log.
func (f *FakeGitHubApp) Secrets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for tok := range f.tokens {
		out = append(out, tok)
	}
	for tok := range f.signed {
		out = append(out, tok)
	}
	return append(out, f.signedURL...)
}

func (f *FakeGitHubApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := FakeGitHubAppRequest{
		Method: r.Method,
		Path:   strings.TrimPrefix(r.URL.Path, "/api/v3"),
		Query:  r.URL.Query(),
		Header: r.Header.Clone(),
		Body:   body,
		Time:   time.Now(),
	}
	if len(body) > 0 {
		var m map[string]any
		if json.Unmarshal(body, &m) == nil {
			req.JSON = m
		}
	}
	rec := &statusRecorder{ResponseWriter: w}
	f.serve(rec, r, req)
	req.Status = rec.status
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func fakeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func fakeMessage(w http.ResponseWriter, status int, msg string) {
	fakeJSON(w, status, map[string]string{"message": msg, "documentation_url": "https://docs.github.com/rest"})
}

func (f *FakeGitHubApp) serve(w http.ResponseWriter, r *http.Request, req FakeGitHubAppRequest) {
	f.mu.Lock()
	for i, fl := range f.failures {
		if fl.method == req.Method && strings.HasPrefix(req.Path, fl.prefix) {
			f.failures = append(f.failures[:i], f.failures[i+1:]...)
			f.mu.Unlock()
			for k, v := range fl.resp.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(fl.resp.Status)
			io.WriteString(w, fl.resp.Body)
			return
		}
	}
	f.mu.Unlock()

	parts := strings.Split(strings.Trim(req.Path, "/"), "/")
	switch {
	case req.Method == http.MethodPost && len(parts) == 4 && parts[0] == "app" && parts[1] == "installations" && parts[3] == "access_tokens":
		f.accessToken(w, r, parts[2])
	case len(parts) >= 4 && parts[0] == "_codeload":
		f.codeload(w, req)
	case len(parts) >= 3 && parts[0] == "repos":
		inst, ok := f.installationOf(r)
		if !ok {
			fakeMessage(w, http.StatusUnauthorized, "Bad credentials")
			return
		}
		_ = inst
		f.repos(w, req, parts[1], parts[2], parts[3:])
	default:
		fakeMessage(w, http.StatusNotFound, "Not Found")
	}
}

// installationOf checks the request's installation token.
func (f *FakeGitHubApp) installationOf(r *http.Request) (int64, bool) {
	auth := r.Header.Get("Authorization")
	tok := strings.TrimPrefix(strings.TrimPrefix(auth, "token "), "Bearer ")
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.tokens[tok]
	return id, ok
}

func (f *FakeGitHubApp) accessToken(w http.ResponseWriter, r *http.Request, id string) {
	if err := f.checkJWT(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")); err != nil {
		fakeMessage(w, http.StatusUnauthorized, "A JSON web token could not be decoded: "+err.Error())
		return
	}
	inst, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		fakeMessage(w, http.StatusNotFound, "Not Found")
		return
	}
	tok := "ghs_" + fakeRandom(18)
	f.mu.Lock()
	f.tokens[tok] = inst
	f.mu.Unlock()
	fakeJSON(w, http.StatusCreated, map[string]any{
		"token":       tok,
		"expires_at":  time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		"permissions": map[string]string{"checks": "write", "contents": "read", "statuses": "write"},
	})
}

// checkJWT verifies an App JWT (RS256, signed with the App's key, issued
// by the App, not expired).
func (f *FakeGitHubApp) checkJWT(token string) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return fmt.Errorf("not a JWT")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&f.key.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return err
	}
	var claims struct {
		Iss string `json:"iss"`
		Exp int64  `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return err
	}
	if claims.Iss != strconv.FormatInt(f.AppID, 10) {
		return fmt.Errorf("issuer %q is not App %d", claims.Iss, f.AppID)
	}
	if time.Unix(claims.Exp, 0).Before(time.Now()) {
		return fmt.Errorf("expired")
	}
	return nil
}

func (f *FakeGitHubApp) codeload(w http.ResponseWriter, req FakeGitHubAppRequest) {
	f.mu.Lock()
	key, ok := f.signed[req.Query.Get("token")]
	tgz := f.tarballs[key]
	f.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	w.Header().Set("Content-Type", "application/x-gzip")
	w.Write(tgz)
}

func (f *FakeGitHubApp) repos(w http.ResponseWriter, req FakeGitHubAppRequest, owner, repo string, rest []string) {
	switch {
	case req.Method == http.MethodGet && len(rest) == 2 && rest[0] == "tarball":
		key := strings.ToLower(owner+"/"+repo) + "@" + rest[1]
		f.mu.Lock()
		_, ok := f.tarballs[key]
		var loc string
		if ok {
			tok := fakeRandom(20)
			f.signed[tok] = key
			loc = fmt.Sprintf("%s/_codeload/%s/%s/legacy.tar.gz/%s?token=%s", f.URL, owner, repo, rest[1], tok)
			f.signedURL = append(f.signedURL, loc)
		}
		f.mu.Unlock()
		if !ok {
			fakeMessage(w, http.StatusNotFound, "Not Found")
			return
		}
		w.Header().Set("Location", loc)
		w.WriteHeader(http.StatusFound)
	case req.Method == http.MethodPost && len(rest) == 1 && rest[0] == "check-runs":
		f.createCheckRun(w, req, owner, repo)
	case req.Method == http.MethodPatch && len(rest) == 2 && rest[0] == "check-runs":
		id, _ := strconv.ParseInt(rest[1], 10, 64)
		f.updateCheckRun(w, req, id)
	case req.Method == http.MethodGet && len(rest) == 3 && rest[0] == "commits" && rest[2] == "check-runs":
		f.listCheckRuns(w, req, owner, repo, rest[1])
	case req.Method == http.MethodPost && len(rest) == 2 && rest[0] == "statuses":
		st := FakeCommitStatus{Owner: owner, Repo: repo, SHA: rest[1]}
		st.State, _ = req.JSON["state"].(string)
		st.Context, _ = req.JSON["context"].(string)
		st.Description, _ = req.JSON["description"].(string)
		st.TargetURL, _ = req.JSON["target_url"].(string)
		f.mu.Lock()
		f.statuses = append(f.statuses, st)
		f.nextID++
		id := f.nextID
		f.mu.Unlock()
		fakeJSON(w, http.StatusCreated, map[string]any{"id": id, "state": st.State, "context": st.Context})
	default:
		fakeMessage(w, http.StatusNotFound, "Not Found")
	}
}

func (f *FakeGitHubApp) createCheckRun(w http.ResponseWriter, req FakeGitHubAppRequest, owner, repo string) {
	if req.JSON == nil || req.JSON["name"] == nil || req.JSON["head_sha"] == nil {
		fakeMessage(w, http.StatusUnprocessableEntity, "Invalid request: name and head_sha are required")
		return
	}
	f.mu.Lock()
	f.nextID++
	c := &FakeCheckRun{ID: f.nextID, Owner: owner, Repo: repo, Status: "queued", Created: time.Now()}
	f.runs[c.ID] = c
	f.runOrder = append(f.runOrder, c.ID)
	resp := c.apply(req.JSON)
	f.mu.Unlock()
	fakeJSON(w, http.StatusCreated, resp)
}

func (f *FakeGitHubApp) updateCheckRun(w http.ResponseWriter, req FakeGitHubAppRequest, id int64) {
	f.mu.Lock()
	c, ok := f.runs[id]
	var resp map[string]any
	if ok {
		resp = c.apply(req.JSON)
	}
	f.mu.Unlock()
	if !ok {
		fakeMessage(w, http.StatusNotFound, "Not Found")
		return
	}
	fakeJSON(w, http.StatusOK, resp)
}

func (f *FakeGitHubApp) listCheckRuns(w http.ResponseWriter, req FakeGitHubAppRequest, owner, repo, ref string) {
	f.mu.Lock()
	var list []map[string]any
	for _, id := range f.runOrder {
		c := f.runs[id]
		if strings.EqualFold(c.Owner+"/"+c.Repo, owner+"/"+repo) && c.HeadSHA == ref &&
			(req.Query.Get("check_name") == "" || req.Query.Get("check_name") == c.Name) {
			list = append(list, c.json())
		}
	}
	f.mu.Unlock()
	fakeJSON(w, http.StatusOK, map[string]any{"total_count": len(list), "check_runs": list})
}

// apply merges a create or update request into the check run, as GitHub
// does: fields replace, annotations add up.
func (c *FakeCheckRun) apply(m map[string]any) map[string]any {
	c.Requests = append(c.Requests, m)
	str := func(k string, dst *string) {
		if v, ok := m[k].(string); ok {
			*dst = v
		}
	}
	str("name", &c.Name)
	str("head_sha", &c.HeadSHA)
	str("external_id", &c.ExternalID)
	str("details_url", &c.DetailsURL)
	if v, ok := m["status"].(string); ok {
		c.Status = v
	}
	if v, ok := m["conclusion"].(string); ok && v != "" {
		c.Conclusion = v
		c.Status = "completed"
	}
	if c.Status == "completed" && c.Completed.IsZero() {
		c.Completed = time.Now()
	}
	if n := len(c.StatusHistory); n == 0 || c.StatusHistory[n-1] != c.Status {
		c.StatusHistory = append(c.StatusHistory, c.Status)
	}
	if out, ok := m["output"].(map[string]any); ok {
		if v, ok := out["title"].(string); ok {
			c.Title = v
		}
		if v, ok := out["summary"].(string); ok {
			c.Summary = v
		}
		if v, ok := out["text"].(string); ok {
			c.Text = v
		}
		if anns, ok := out["annotations"].([]any); ok {
			for _, a := range anns {
				if am, ok := a.(map[string]any); ok {
					c.Annotations = append(c.Annotations, am)
				}
			}
		}
	}
	return c.json()
}

func (c *FakeCheckRun) json() map[string]any {
	m := map[string]any{
		"id": c.ID, "name": c.Name, "head_sha": c.HeadSHA, "status": c.Status,
		"external_id": c.ExternalID, "details_url": c.DetailsURL,
		"html_url": fmt.Sprintf("https://github.com/%s/%s/runs/%d", c.Owner, c.Repo, c.ID),
		"output":   map[string]any{"title": c.Title, "summary": c.Summary, "text": c.Text, "annotations_count": len(c.Annotations)},
	}
	if c.Conclusion != "" {
		m["conclusion"] = c.Conclusion
	}
	return m
}

func fakeRandom(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// SignWebhook is the X-Hub-Signature-256 of body with secret.
func SignWebhook(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// WebhookRequest is a delivery as GitHub sends it: body signed with
// secret, with its event and delivery ID headers.
func WebhookRequest(url string, secret []byte, event, delivery string, body []byte) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/044aadd")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-GitHub-Hook-ID", "292430182")
	req.Header.Set("X-Hub-Signature-256", SignWebhook(secret, body))
	return req, nil
}

// GitHubPayload reads a real webhook payload from the project's
// testdata/github-payloads (e.g. "push/with-new-branch.payload.json").
func GitHubPayload(t testing.TB, name string) []byte {
	t.Helper()
	dir, err := devenv.ProjectRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "testdata", "github-payloads", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
