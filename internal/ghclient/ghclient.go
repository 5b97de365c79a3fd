// Package ghclient makes the go-github clients every front end uses to talk
// to GitHub (github.com or GitHub Enterprise): a token or another
// transport for authentication, retries of server errors and rate limits
// that honour Retry-After, and errors that never hold a token or a signed
// URL's query string. It logs nothing.
package ghclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/convox-build-action/convox-build-action/internal/registry"
)

// Options tune a client. The zero value retries up to DefaultMaxRetries
// times, waiting at most DefaultMaxWait for any one retry.
type Options struct {
	// MaxRetries bounds the retries of one request (default
	// DefaultMaxRetries; negative: none).
	MaxRetries int
	// MaxWait bounds one wait between tries, whatever Retry-After asks
	// (default DefaultMaxWait). A longer Retry-After fails the request.
	MaxWait time.Duration
	// HTTPClient is the base client (default http.DefaultClient's
	// transport, with a 60 s timeout).
	HTTPClient *http.Client
	// UserAgent is sent with every request (default "convox-build").
	UserAgent string
	// sleep waits; tests may replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

// Defaults of Options.
const (
	DefaultMaxRetries = 4
	DefaultMaxWait    = 60 * time.Second
)

// New returns a client for the API at apiURL ("" for github.com;
// "https://ghe.example.com/api/v3/" for GitHub Enterprise) that sends
// token (none when empty) with every request.
func New(apiURL, token string, opts Options) (*github.Client, error) {
	base := opts.HTTPClient
	if base == nil {
		base = &http.Client{Timeout: 60 * time.Second}
	}
	rt := base.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	if token != "" {
		rt = &tokenTransport{token: token, next: rt}
	}
	return NewWithTransport(apiURL, rt, opts)
}

// NewWithTransport is New over rt, which authenticates (such as a GitHub
// App installation's transport).
func NewWithTransport(apiURL string, rt http.RoundTripper, opts Options) (*github.Client, error) {
	timeout := 60 * time.Second
	if opts.HTTPClient != nil && opts.HTTPClient.Timeout > 0 {
		timeout = opts.HTTPClient.Timeout
	}
	hc := &http.Client{Transport: RetryTransport(rt, opts), Timeout: timeout}
	c := github.NewClient(hc)
	if opts.UserAgent != "" {
		c.UserAgent = opts.UserAgent
	} else {
		c.UserAgent = "convox-build"
	}
	if apiURL != "" && strings.TrimSuffix(apiURL, "/") != "https://api.github.com" {
		u := strings.TrimSuffix(apiURL, "/") + "/"
		var err error
		if c, err = c.WithEnterpriseURLs(u, uploadURL(u)); err != nil {
			return nil, fmt.Errorf("GitHub API URL %q: %w", apiURL, err)
		}
	}
	return c, nil
}

// uploadURL is GitHub Enterprise's upload URL for an API URL:
// https://h/api/v3/ -> https://h/api/uploads/; anything else is kept.
func uploadURL(api string) string {
	if strings.HasSuffix(api, "/api/v3/") {
		return strings.TrimSuffix(api, "v3/") + "uploads/"
	}
	return api
}

type tokenTransport struct {
	token string
	next  http.RoundTripper
}

func (t *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+t.token)
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		return nil, errors.New(registry.Redact(err.Error(), []string{t.token}))
	}
	return resp, nil
}

// RetryTransport wraps rt: requests that get a 5xx, a 429, or a 403 that
// says it is a rate limit, or fail to connect, are tried again after the
// wait Retry-After (or X-RateLimit-Reset) asks, else an exponential
// backoff. Bodies are replayed with GetBody (go-github sets it). Errors
// carry URLs without their query strings.
func RetryTransport(rt http.RoundTripper, opts Options) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = DefaultMaxRetries
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = DefaultMaxWait
	}
	if opts.sleep == nil {
		opts.sleep = sleep
	}
	return &retryTransport{next: rt, opts: opts}
}

type retryTransport struct {
	next http.RoundTripper
	opts Options
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	backoff := time.Second
	for attempt := 0; ; attempt++ {
		r := req
		if attempt > 0 && req.Body != nil {
			if req.GetBody == nil {
				return nil, fmt.Errorf("retrying %s %s: the request body cannot be replayed", req.Method, redactURL(req.URL))
			}
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r = req.Clone(req.Context())
			r.Body = body
		}
		resp, err := t.next.RoundTrip(r)
		wait, retry := t.retryable(resp, err, backoff)
		if !retry || attempt >= t.opts.MaxRetries || req.Context().Err() != nil {
			if err != nil {
				return nil, &url.Error{Op: req.Method, URL: redactURL(req.URL), Err: errors.New(registry.Redact(unwrapURLError(err), nil))}
			}
			return resp, nil
		}
		if wait > t.opts.MaxWait {
			if err != nil {
				return nil, err
			}
			return resp, nil // the caller sees the rate limit as it is
		}
		if resp != nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		if serr := t.opts.sleep(req.Context(), wait); serr != nil {
			return nil, serr
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func unwrapURLError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// retryable says whether to try again and after how long.
func (t *retryTransport) retryable(resp *http.Response, err error, backoff time.Duration) (time.Duration, bool) {
	if err != nil {
		var ue *url.Error
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ue) && ue.Timeout()) {
			return 0, false
		}
		return backoff, true
	}
	switch {
	case resp.StatusCode >= 500:
		return retryAfter(resp, backoff), true
	case resp.StatusCode == http.StatusTooManyRequests:
		return retryAfter(resp, backoff), true
	case resp.StatusCode == http.StatusForbidden && isRateLimit(resp):
		return retryAfter(resp, backoff), true
	}
	return 0, false
}

// isRateLimit tells a 403 that is a (primary or secondary) rate limit from
// one that is a refusal, without consuming the body for the caller.
func isRateLimit(resp *http.Response) bool {
	if resp.Header.Get("Retry-After") != "" || resp.Header.Get("X-RateLimit-Remaining") == "0" {
		return true
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	resp.Body = io.NopCloser(strings.NewReader(string(body)))
	return strings.Contains(strings.ToLower(string(body)), "rate limit")
}

// retryAfter is the wait the response asks for: Retry-After in seconds or
// as a date, else X-RateLimit-Reset when no requests remain, else
// fallback.
func retryAfter(resp *http.Response, fallback time.Duration) time.Duration {
	if v := resp.Header.Get("Retry-After"); v != "" {
		if s, err := strconv.Atoi(v); err == nil && s >= 0 {
			return time.Duration(s) * time.Second
		}
		if at, err := http.ParseTime(v); err == nil {
			return max(time.Until(at), 0)
		}
	}
	if resp.Header.Get("X-RateLimit-Remaining") == "0" {
		if s, err := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64); err == nil {
			return max(time.Until(time.Unix(s, 0)), 0) + time.Second
		}
	}
	return fallback
}

// redactURL is u without user information, query or fragment.
func redactURL(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.Fragment = nil, "", ""
	return c.String()
}

// Redact returns err with any URL in it stripped of user information and
// query string (signed URLs carry their credentials there), keeping the
// chain for errors.Is and errors.As. http.Client puts the whole URL in its
// errors: pass them through this before they reach a log or a user.
func Redact(err error) error {
	if err == nil {
		return nil
	}
	msg := registry.Redact(err.Error(), nil)
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
