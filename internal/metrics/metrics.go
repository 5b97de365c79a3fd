// Package metrics is the server's Prometheus metrics: webhook deliveries
// by event and result, queue depth, builds by status, build durations, and
// calls to GitHub's API with their errors. Parts of the server report to
// it through small methods; the rest it reads when scraped.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the server's metrics on a registry of its own.
type Metrics struct {
	reg        *prometheus.Registry
	deliveries *prometheus.CounterVec
	builds     *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	ghCalls    *prometheus.CounterVec
	ghErrors   *prometheus.CounterVec
}

// Sources are what the metrics read when scraped; nil ones are left out.
type Sources struct {
	// QueueDepth counts jobs waiting, by state ("available", "running",
	// "retryable"...).
	QueueDepth func(ctx context.Context) (map[string]int, error)
	// BuildsByStatus counts the builds in the store, by status.
	BuildsByStatus func(ctx context.Context) (map[string]int, error)
}

// New returns the metrics, reading src when scraped.
func New(src Sources) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "convox_build_webhook_deliveries_total",
		Help: "Webhook deliveries received, by event and result (accepted, duplicate, ignored, unauthorized, invalid, error).",
	}, []string{"event", "result"})
	m.builds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "convox_build_builds_finished_total",
		Help: "Builds this process finished, by conclusion (success, failure, cancelled, neutral).",
	}, []string{"conclusion"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "convox_build_build_duration_seconds",
		Help:    "How long builds took, from start to end, by conclusion.",
		Buckets: []float64{5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600},
	}, []string{"conclusion"})
	m.ghCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "convox_build_github_api_requests_total",
		Help: "Requests to GitHub's API, by method and response status code.",
	}, []string{"method", "code"})
	m.ghErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "convox_build_github_api_errors_total",
		Help: "Requests to GitHub's API that failed: no response (transport) or a status of 400 and above.",
	}, []string{"kind"})
	m.reg.MustRegister(m.deliveries, m.builds, m.duration, m.ghCalls, m.ghErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if src.QueueDepth != nil {
		m.reg.MustRegister(&mapGauge{desc: prometheus.NewDesc("convox_build_queue_jobs", "Jobs in the queue, by state.", []string{"state"}, nil), read: src.QueueDepth})
	}
	if src.BuildsByStatus != nil {
		m.reg.MustRegister(&mapGauge{desc: prometheus.NewDesc("convox_build_builds", "Builds in the store, by status.", []string{"status"}, nil), read: src.BuildsByStatus})
	}
	return m
}

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Delivery counts a webhook delivery.
func (m *Metrics) Delivery(event, result string) {
	if event == "" {
		event = "unknown"
	}
	m.deliveries.WithLabelValues(event, result).Inc()
}

// BuildFinished counts a finished build and observes how long it took.
func (m *Metrics) BuildFinished(conclusion string, took time.Duration) {
	m.builds.WithLabelValues(conclusion).Inc()
	if took > 0 {
		m.duration.WithLabelValues(conclusion).Observe(took.Seconds())
	}
}

// GitHubTransport wraps rt (the transport of a go-github client) to count
// each request to GitHub and each error.
func (m *Metrics) GitHubTransport(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if err != nil {
			m.ghCalls.WithLabelValues(req.Method, "none").Inc()
			m.ghErrors.WithLabelValues("transport").Inc()
			return nil, err
		}
		m.ghCalls.WithLabelValues(req.Method, strconv.Itoa(resp.StatusCode)).Inc()
		if resp.StatusCode >= 400 {
			m.ghErrors.WithLabelValues(strconv.Itoa(resp.StatusCode)).Inc()
		}
		return resp, nil
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// mapGauge is a gauge with one label whose values are read when scraped.
type mapGauge struct {
	desc *prometheus.Desc
	read func(ctx context.Context) (map[string]int, error)
}

func (g *mapGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *mapGauge) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := g.read(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(g.desc, err)
		return
	}
	for label, n := range counts {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(n), label)
	}
}
