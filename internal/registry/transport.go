package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Defaults of Retry.
const (
	DefaultTries    = 5
	DefaultMinDelay = 200 * time.Millisecond
	DefaultMaxDelay = 3 * time.Second
)

// errLoopbackPlainHTTP refuses HTTPS to a loopback registry, so that
// go-containerregistry, which probes HTTPS first, goes straight to HTTP.
var errLoopbackPlainHTTP = errors.New("loopback registries are reached over plain HTTP")

var (
	secureBase   = sync.OnceValue(func() http.RoundTripper { return baseTransport(false) })
	insecureBase = sync.OnceValue(func() http.RoundTripper { return baseTransport(true) })
)

func baseTransport(insecure bool) http.RoundTripper {
	t := remote.DefaultTransport.(*http.Transport).Clone()
	if insecure {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the caller asked for Options.Insecure
	}
	return t
}

// isLoopback reports whether a registry host ("127.0.0.1:5000",
// "localhost", "[::1]:5000") is this machine.
func isLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// retryTransport is the innermost transport of every call: it sends loopback
// registries plain HTTP and retries a request, with exponential backoff, on
// 408, 429 and 5xx answers (but 501 and 505) and on transient network errors.
// A request whose body cannot be replayed (a streamed blob upload) is sent
// once; go-containerregistry retries the whole upload instead (see
// retryUpload).
type retryTransport struct {
	base  http.RoundTripper
	retry Retry

	mu        sync.Mutex
	exhausted map[string]int // host -> attempts at the last request given up on
}

func newRetryTransport(base http.RoundTripper, r Retry) *retryTransport {
	return &retryTransport{base: base, retry: r, exhausted: map[string]int{}}
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "https" && isLoopback(req.URL.Host) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errLoopbackPlainHTTP
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	ctx := req.Context()
	delay := t.retry.MinDelay
	for attempt := 1; ; attempt++ {
		out := req
		if attempt > 1 && req.Body != nil && req.Body != http.NoBody {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			out = req.Clone(ctx)
			out.Body = body
		}
		resp, err := t.base.RoundTrip(out)

		if !replayable || !retryable(resp, err) || ctx.Err() != nil {
			return resp, err
		}
		if attempt >= t.retry.Tries {
			t.mu.Lock()
			t.exhausted[req.URL.Host] = attempt
			t.mu.Unlock()
			return resp, err
		}
		wait := delay
		if resp != nil {
			if ra := retryAfter(resp.Header.Get("Retry-After")); ra > wait {
				wait = ra
			}
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		wait += rand.N(wait/10 + 1) // jitter, so parallel builds do not retry in step
		wait = min(wait, t.retry.MaxDelay)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
		delay = min(delay*2, t.retry.MaxDelay)
	}
}

// gaveUp returns how many attempts were made at the last request to host
// that the transport gave up on, or 0.
func (t *retryTransport) gaveUp(host string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.exhausted[host]
}

// retryable reports whether an answer or a network error is worth another
// try.
func retryable(resp *http.Response, err error) bool {
	if err != nil {
		return transientNetworkError(err)
	}
	return retryableStatus(resp.StatusCode)
}

func retryableStatus(code int) bool {
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
		return true
	case code == http.StatusNotImplemented, code == http.StatusHTTPVersionNotSupported:
		return false
	}
	return code >= 500 && code <= 599
}

// transientNetworkError: connections refused, reset or cut short, and
// timeouts; not TLS or certificate errors, not a cancelled context.
func transientNetworkError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errLoopbackPlainHTTP) {
		return false
	}
	for _, e := range []error{io.EOF, io.ErrUnexpectedEOF, syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE, syscall.ETIMEDOUT} {
		if errors.Is(err, e) {
			return true
		}
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.IsTemporary || dnsErr.IsTimeout
	}
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}

// retryUpload is go-containerregistry's retry predicate. Its own per-request
// retries are switched off (retryTransport does them), so it only retries a
// whole blob upload whose streamed PATCH failed transiently: that request
// could not be replayed by retryTransport.
func retryUpload(err error) bool {
	var uerr *url.Error
	if errors.As(err, &uerr) && strings.EqualFold(uerr.Op, http.MethodPatch) {
		return transientNetworkError(uerr.Err)
	}
	var terr *transport.Error
	return errors.As(err, &terr) && terr.Request != nil &&
		terr.Request.Method == http.MethodPatch && retryableStatus(terr.StatusCode)
}
