package testenv

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// GitHubRequest is one request the fake GitHub received.
type GitHubRequest struct {
	Method string
	// Path is the API path, without GitHub Enterprise's /api/v3 prefix:
	// "/repos/acme/shop/check-runs".
	Path   string
	Query  url.Values
	Header http.Header
	// Body is the decoded JSON body (nil when it is not a JSON object);
	// Raw the bytes.
	Body map[string]any
	Raw  []byte
}

// GitHubResponse is a scripted answer.
type GitHubResponse struct {
	Status int
	Body   string
	Header http.Header
}

// GitHub is a recording fake of GitHub's REST API for the real go-github
// client: it records every request and answers the endpoints builds report
// to (check runs created and updated, commit statuses), and anything a
// test scripts (Respond, Handle). Unknown paths get GitHub's 404. It serves
// both api.github.com's paths and GitHub Enterprise's (/api/v3/...).
type GitHub struct {
	// URL is the server's base URL (http://127.0.0.1:PORT), for
	// GITHUB_API_URL or go-github's enterprise URLs.
	URL string

	mu       sync.Mutex
	reqs     []GitHubRequest
	scripted map[string][]GitHubResponse // "METHOD /path": answers in turn, the last one repeated
	handlers []githubHandler
	nextID   int64
}

type githubHandler struct {
	method, prefix string
	h              http.HandlerFunc
}

// FakeGitHub starts a fake GitHub, closed when the test ends.
func FakeGitHub(t testing.TB) *GitHub {
	g := &GitHub{scripted: map[string][]GitHubResponse{}, nextID: 1000}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	g.URL = srv.URL
	return g
}

// Respond scripts the answers to method and path (without /api/v3): each
// request takes the next answer, and the last one answers every request
// after it. Scripted answers win over the built-in endpoints and Handle.
func (g *GitHub) Respond(method, path string, answers ...GitHubResponse) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.scripted[method+" "+path] = answers
}

// Handle serves requests of method whose path starts with prefix with h
// (after the scripted answers, before the built-in endpoints); the
// request's URL.Path has no /api/v3 prefix. Later calls win.
func (g *GitHub) Handle(method, prefix string, h http.HandlerFunc) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.handlers = append([]githubHandler{{method, prefix, h}}, g.handlers...)
}

// Requests returns what the fake received so far, in order.
func (g *GitHub) Requests() []GitHubRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]GitHubRequest(nil), g.reqs...)
}

// RequestsTo returns the requests of method whose path starts with
// prefix.
func (g *GitHub) RequestsTo(method, prefix string) []GitHubRequest {
	var out []GitHubRequest
	for _, r := range g.Requests() {
		if r.Method == method && strings.HasPrefix(r.Path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

func (g *GitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	r.URL.Path = strings.TrimPrefix(r.URL.Path, "/api/v3")
	req := GitHubRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Raw: raw}
	if len(raw) > 0 {
		var body map[string]any
		if json.Unmarshal(raw, &body) == nil {
			req.Body = body
		}
	}
	g.mu.Lock()
	g.reqs = append(g.reqs, req)
	key := r.Method + " " + r.URL.Path
	var scripted *GitHubResponse
	if answers := g.scripted[key]; len(answers) > 0 {
		a := answers[0]
		scripted = &a
		if len(answers) > 1 {
			g.scripted[key] = answers[1:]
		}
	}
	var handler http.HandlerFunc
	for _, h := range g.handlers {
		if h.method == r.Method && strings.HasPrefix(r.URL.Path, h.prefix) {
			handler = h.h
			break
		}
	}
	g.mu.Unlock()

	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	switch {
	case scripted != nil:
		for k, v := range scripted.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(scripted.Status)
		io.WriteString(w, scripted.Body)
	case handler != nil:
		r.Body = io.NopCloser(strings.NewReader(string(raw)))
		handler(w, r)
	default:
		g.builtIn(w, r, req)
	}
}

// builtIn answers check runs and commit statuses as GitHub does, echoing
// what was sent.
func (g *GitHub) builtIn(w http.ResponseWriter, r *http.Request, req GitHubRequest) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	answer := func(status int, v any) {
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	// /repos/{owner}/{repo}/check-runs[/{id}] and /repos/{owner}/{repo}/statuses/{sha}
	if len(parts) >= 4 && parts[0] == "repos" {
		owner, repo := parts[1], parts[2]
		switch {
		case r.Method == http.MethodPost && len(parts) == 4 && parts[3] == "check-runs":
			g.mu.Lock()
			g.nextID++
			id := g.nextID
			g.mu.Unlock()
			out := map[string]any{}
			for k, v := range req.Body {
				out[k] = v
			}
			out["id"] = id
			out["html_url"] = fmt.Sprintf("%s/%s/%s/runs/%d", g.URL, owner, repo, id)
			answer(http.StatusCreated, out)
			return
		case r.Method == http.MethodPatch && len(parts) == 5 && parts[3] == "check-runs":
			id, err := strconv.ParseInt(parts[4], 10, 64)
			if err == nil {
				out := map[string]any{}
				for k, v := range req.Body {
					out[k] = v
				}
				out["id"] = id
				answer(http.StatusOK, out)
				return
			}
		case r.Method == http.MethodPost && len(parts) == 5 && parts[3] == "statuses":
			out := map[string]any{"id": 1}
			for k, v := range req.Body {
				out[k] = v
			}
			answer(http.StatusCreated, out)
			return
		}
	}
	answer(http.StatusNotFound, map[string]string{"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
}
