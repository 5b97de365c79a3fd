package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/api"
)

// get fetches path from the server with the given headers.
func (p *proc) get(path string, headers map[string]string) (int, string, http.Header) {
	t := p.w.t
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+p.addr+path, nil)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

// TestOperationsAPIAndPages: the server process serves /readyz, /metrics,
// the builds API under its token and the build pages, on the builds it
// made from deliveries.
func TestOperationsAPIAndPages(t *testing.T) {
	w := newWorld(t, "sqlite")
	w.extra["API_TOKEN"] = "e2e-api-token-0123456789"
	w.extra["PUBLIC_PAGES"] = "true"
	p := w.start()

	if code, body, _ := p.get("/readyz", nil); code != 200 || !strings.Contains(body, `"database":"ok"`) || !strings.Contains(body, `"buildkit":`) {
		t.Errorf("readyz: %d %s", code, body)
	}
	sha := w.commit("acme", "shop", app("ops", 1))
	id := p.push("acme", "shop", "main", sha, "Ops")
	if c := w.completed(id, 3*time.Minute); c.Conclusion != "success" {
		t.Fatalf("check run %+v", c)
	}
	p.deliver("ping", "ping-"+randomHex(4), []byte(`{"zen":"hi"}`))

	// The API, through its client, as the remote CLI uses it.
	client := &api.Client{BaseURL: "http://" + p.addr, Token: "e2e-api-token-0123456789"}
	list, err := client.ListBuilds(t.Context(), "shop", 0)
	if err != nil || len(list) != 1 || list[0].ID != id || list[0].GitSHA != sha || list[0].Status != "complete" {
		t.Errorf("API builds = %+v, %v", list, err)
	}
	if code, _, _ := p.get("/apps/shop/builds", map[string]string{"Authorization": "Bearer wrong"}); code != 401 {
		t.Errorf("API with a wrong token: %d", code)
	}
	// One address, two readers: a program gets JSON, a browser the page.
	code, body, h := p.get("/apps/shop/builds/"+id, map[string]string{"Authorization": "Bearer e2e-api-token-0123456789"})
	var b api.Build
	if code != 200 || h.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(body), &b) != nil || b.ID != id {
		t.Errorf("API build: %d %s", code, body)
	}
	code, body, h = p.get("/apps/shop/builds/"+id, map[string]string{"Accept": "text/html,application/xhtml+xml"})
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(body, "step 1 of ops") {
		t.Errorf("build page: %d %.300s", code, body)
	}
	if code, body, _ := p.get("/", map[string]string{"Accept": "text/html"}); code != 200 || !strings.Contains(body, id) {
		t.Errorf("index: %d", code)
	}

	_, metrics, _ := p.get("/metrics", nil)
	for _, want := range []string{
		`convox_build_webhook_deliveries_total{event="push",result="accepted"} 1`,
		`convox_build_webhook_deliveries_total{event="ping",result="pong"} 1`,
		`convox_build_builds{status="complete"} 1`,
		`convox_build_builds_finished_total{conclusion="success"} 1`,
		`convox_build_build_duration_seconds_count{conclusion="success"} 1`,
		`convox_build_github_api_requests_total{code="201",method="POST"}`,
		`convox_build_queue_jobs{state="available"} 0`,
		`convox_build_builds{status="failed"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(metrics, "e2e-api-token") || strings.Contains(metrics, string(w.secret)) {
		t.Error("a secret in the metrics")
	}
	p.noSecrets()
}
