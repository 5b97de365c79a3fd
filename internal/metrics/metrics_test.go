package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/ghclient"
	"github.com/convox-build-action/convox-build-action/internal/metrics"
)

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

func TestMetricsCountWhatTheServerReports(t *testing.T) {
	m := metrics.New(metrics.Sources{
		QueueDepth: func(context.Context) (map[string]int, error) {
			return map[string]int{"available": 3, "running": 1}, nil
		},
		BuildsByStatus: func(context.Context) (map[string]int, error) { return map[string]int{"complete": 7, "failed": 2}, nil },
	})
	m.Delivery("push", "accepted")
	m.Delivery("push", "accepted")
	m.Delivery("ping", "ignored")
	m.Delivery("", "unauthorized")
	m.BuildFinished("success", 42*time.Second)
	m.BuildFinished("failure", 3*time.Second)

	// A real go-github client through the counting transport.
	gh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/missing") {
			w.WriteHeader(404)
			io.WriteString(w, `{"message":"Not Found"}`)
			return
		}
		io.WriteString(w, `{"id":1}`)
	}))
	defer gh.Close()
	client, err := ghclient.New(gh.URL+"/api/v3/", "t", ghclient.Options{MaxRetries: -1, HTTPClient: &http.Client{Transport: m.GitHubTransport(http.DefaultTransport)}})
	if err != nil {
		t.Fatal(err)
	}
	client.Repositories.Get(context.Background(), "o", "r")
	client.Repositories.Get(context.Background(), "o", "missing")
	dead, _ := ghclient.New("http://127.0.0.1:1/", "t", ghclient.Options{MaxRetries: -1, HTTPClient: &http.Client{Transport: m.GitHubTransport(nil)}})
	dead.Repositories.Get(context.Background(), "o", "r")

	out := scrape(t, m)
	for _, want := range []string{
		`convox_build_webhook_deliveries_total{event="push",result="accepted"} 2`,
		`convox_build_webhook_deliveries_total{event="ping",result="ignored"} 1`,
		`convox_build_webhook_deliveries_total{event="unknown",result="unauthorized"} 1`,
		`convox_build_queue_jobs{state="available"} 3`,
		`convox_build_builds{status="complete"} 7`,
		`convox_build_builds_finished_total{conclusion="success"} 1`,
		`convox_build_build_duration_seconds_bucket{conclusion="success",le="60"} 1`,
		`convox_build_build_duration_seconds_bucket{conclusion="success",le="30"} 0`,
		`convox_build_github_api_requests_total{code="200",method="GET"} 1`,
		`convox_build_github_api_requests_total{code="404",method="GET"} 1`,
		`convox_build_github_api_requests_total{code="none",method="GET"} 1`,
		`convox_build_github_api_errors_total{kind="404"} 1`,
		`convox_build_github_api_errors_total{kind="transport"} 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestASourceThatFailsShowsAsAScrapeError(t *testing.T) {
	m := metrics.New(metrics.Sources{BuildsByStatus: func(context.Context) (map[string]int, error) { return nil, errors.New("database is gone") }})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), "database is gone") {
		t.Errorf("scrape: %d %s", rec.Code, rec.Body.String())
	}
}
