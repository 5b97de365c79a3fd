package ghclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"
)

// script answers each request with the next of its responses and records
// what came.
type script struct {
	mu     sync.Mutex
	steps  []func(w http.ResponseWriter)
	bodies []string
	auth   []string
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.bodies = append(s.bodies, string(body))
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	step := s.steps[0]
	if len(s.steps) > 1 {
		s.steps = s.steps[1:]
	}
	s.mu.Unlock()
	step(w)
}

func status(code int, headers map[string]string, body string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for k, v := range headers {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, body)
	}
}

func TestRetriesServerErrorsAndRateLimitsHonouringRetryAfter(t *testing.T) {
	ok := status(201, nil, `{"id": 7}`)
	cases := []struct {
		name  string
		first func(w http.ResponseWriter)
		waits []time.Duration
		tries int
		code  int
	}{
		{"502 then ok", status(502, nil, "bad gateway"), []time.Duration{time.Second}, 2, 201},
		{"secondary rate limit", status(403, map[string]string{"Retry-After": "7"}, `{"message":"You have exceeded a secondary rate limit"}`), []time.Duration{7 * time.Second}, 2, 201},
		{"secondary rate limit without header", status(403, nil, `{"message":"You have exceeded a secondary rate limit."}`), []time.Duration{time.Second}, 2, 201},
		{"429", status(429, map[string]string{"Retry-After": "2"}, ""), []time.Duration{2 * time.Second}, 2, 201},
		{"refusal is not retried", status(403, nil, `{"message":"Resource not accessible by integration"}`), nil, 1, 403},
		{"wait longer than allowed is not retried", status(403, map[string]string{"Retry-After": "3600"}, `{"message":"rate limit"}`), nil, 1, 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &script{steps: []func(http.ResponseWriter){c.first, ok}}
			srv := httptest.NewServer(s)
			defer srv.Close()
			var waits []time.Duration
			gh, err := New(srv.URL+"/api/v3/", "ghs_secrettoken", Options{sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }})
			if err != nil {
				t.Fatal(err)
			}
			run, resp, err := gh.Checks.CreateCheckRun(context.Background(), "o", "r", github.CreateCheckRunOptions{Name: "n", HeadSHA: "abc"})
			if resp == nil || resp.StatusCode != c.code {
				t.Fatalf("response %v, err %v", resp, err)
			}
			if c.code == 201 && run.GetID() != 7 {
				t.Errorf("run = %v", run)
			}
			if len(s.bodies) != c.tries {
				t.Errorf("%d requests, want %d", len(s.bodies), c.tries)
			}
			for i, b := range s.bodies {
				if !strings.Contains(b, `"head_sha":"abc"`) || s.auth[i] != "Bearer ghs_secrettoken" {
					t.Errorf("request %d: body %q auth %q", i, b, s.auth[i])
				}
			}
			if len(waits) != len(c.waits) || (len(waits) > 0 && waits[0] != c.waits[0]) {
				t.Errorf("waits %v, want %v", waits, c.waits)
			}
		})
	}
}

func TestGivesUpAfterMaxRetriesAndErrorsHideSecrets(t *testing.T) {
	s := &script{steps: []func(http.ResponseWriter){status(503, nil, "down")}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	tries := 0
	gh, _ := New(srv.URL+"/", "tok", Options{MaxRetries: 2, sleep: func(context.Context, time.Duration) error { tries++; return nil }})
	_, resp, err := gh.Repositories.Get(context.Background(), "o", "r")
	if err == nil || resp.StatusCode != 503 || len(s.bodies) != 3 || tries != 2 {
		t.Errorf("err %v, %d requests, %d waits", err, len(s.bodies), tries)
	}
	// A signed URL that cannot be reached: the error has no query string.
	hc := &http.Client{Transport: RetryTransport(http.DefaultTransport, Options{MaxRetries: -1})}
	_, err = hc.Get("http://127.0.0.1:1/tarball?X-Amz-Signature=s3cr3tsig&token=abc")
	if !strings.Contains(fmt.Sprint(err), "s3cr3tsig") {
		t.Fatalf("http.Client's own error is expected to hold the URL: %v", err)
	}
	err = Redact(err)
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Errorf("Redact lost the chain: %T", err)
	}
	if err == nil || strings.Contains(err.Error(), "s3cr3tsig") || !strings.Contains(err.Error(), "127.0.0.1:1/tarball") {
		t.Errorf("err = %v", err)
	}
}

func TestEnterpriseURLs(t *testing.T) {
	gh, err := New("https://ghe.example.com/api/v3", "", Options{})
	if err != nil || gh.BaseURL.String() != "https://ghe.example.com/api/v3/" || gh.UploadURL.String() != "https://ghe.example.com/api/uploads/" {
		t.Errorf("base %v upload %v err %v", gh.BaseURL, gh.UploadURL, err)
	}
	gh, _ = New("", "", Options{})
	if gh.BaseURL.String() != "https://api.github.com/" {
		t.Errorf("default base %v", gh.BaseURL)
	}
}
