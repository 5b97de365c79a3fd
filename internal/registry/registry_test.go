package registry

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/convox-build-action/convox-build-action/internal/devenv"
)

// fastRetry keeps retry tests quick.
var fastRetry = Retry{Tries: 5, MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}

// isolate keeps the machine's own Docker config out of a test.
func isolate(t *testing.T) {
	t.Helper()
	t.Setenv("HOME", t.TempDir()) // ~/.docker, the default config directory
	t.Setenv("DOCKER_AUTH_CONFIG", "")
}

// startRegistry serves an in-memory registry on 127.0.0.1; with a user it
// requires that user's basic auth.
func startRegistry(t *testing.T, user, password string) string {
	t.Helper()
	var opts devenv.RegistryOptions
	if user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		opts.Htpasswd = filepath.Join(t.TempDir(), "htpasswd")
		if err := os.WriteFile(opts.Htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	reg, err := devenv.StartRegistry(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A connection a client dialled but never used holds up the
		// registry's shutdown for 5 s.
		closeIdleConnections()
		reg.Close()
	})
	return reg.Addr
}

func closeIdleConnections() {
	for _, rt := range []http.RoundTripper{secureBase(), insecureBase(), remote.DefaultTransport, http.DefaultTransport} {
		rt.(*http.Transport).CloseIdleConnections()
	}
}

// pushImage writes a random image to ref and returns its digest.
func pushImage(t *testing.T, ref string) string {
	t.Helper()
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	return push(t, ref, img)
}

func push(t *testing.T, ref string, x remote.Taggable) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	var d v1.Hash
	switch v := x.(type) {
	case v1.Image:
		err = remote.Write(r, v)
		if err == nil {
			d, err = v.Digest()
		}
	case v1.ImageIndex:
		err = remote.WriteIndex(r, v)
		if err == nil {
			d, err = v.Digest()
		}
	}
	if err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	return d.String()
}

// proxy sends requests on to a registry, except that fail may answer a
// request itself with a status (0 passes it on). It records every request.
type proxy struct {
	Addr string
	mu   sync.Mutex
	reqs []string // "METHOD /path -> status"
}

func startProxy(t *testing.T, registry string, fail func(n int, r *http.Request) int) *proxy {
	t.Helper()
	p := &proxy{}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: registry})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		n := len(p.reqs)
		p.reqs = append(p.reqs, r.Method+" "+r.URL.Path)
		p.mu.Unlock()
		if code := fail(n, r); code != 0 {
			if code == http.StatusTooManyRequests {
				w.Header().Set("Retry-After", "1")
			}
			http.Error(w, http.StatusText(code), code)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		closeIdleConnections()
		srv.Close()
	})
	p.Addr = srv.Listener.Addr().String()
	return p
}

func (p *proxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.reqs...)
}

func TestCopyPreservesDigest(t *testing.T) {
	isolate(t)
	ctx := context.Background()
	src, dst := startRegistry(t, "", ""), startRegistry(t, "", "")

	idx, err := random.Index(1024, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		digest string
	}{
		{"image", pushImage(t, src+"/library/postgres:15")},
		{"index", push(t, src+"/library/postgres:15-multi", idx)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from := src + "/library/postgres:15"
			if tc.name == "index" {
				from += "-multi"
			}
			to := dst + "/app:db.BABCDEFGHIJ-" + tc.name
			got, err := Copy(ctx, from, to, Options{Retry: fastRetry})
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.digest {
				t.Errorf("Copy returned %s, want the source's %s", got, tc.digest)
			}
			d, err := Digest(ctx, to, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if d != tc.digest {
				t.Errorf("%s has digest %s, want %s", to, d, tc.digest)
			}
		})
	}

	// Every image of the index came along, by digest.
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range im.Manifests {
		ref := dst + "/app@" + m.Digest.String()
		if d, err := Digest(ctx, ref, Options{}); err != nil || d != m.Digest.String() {
			t.Errorf("Digest(%s) = %s, %v", ref, d, err)
		}
	}
}

func TestCopyToRegistryRequiringAuth(t *testing.T) {
	const user, password = "convox", "s3cret-pa55word"
	ctx := context.Background()
	isolate(t)
	src := startRegistry(t, "", "")
	dst := startRegistry(t, user, password)
	want := pushImage(t, src+"/library/redis:7")

	copyWith := func(t *testing.T, auth *Auth) (string, error) {
		t.Helper()
		return Copy(ctx, src+"/library/redis:7", dst+"/app:cache.BQULMXNMEIU", Options{Auth: auth, Retry: fastRetry})
	}
	newAuth := func(t *testing.T, opts AuthOptions) *Auth {
		t.Helper()
		a, err := NewAuth(opts)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	writeConfig := func(t *testing.T, json string) string {
		t.Helper()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(json), 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	check := func(t *testing.T, got string, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("digest %s, want %s", got, want)
		}
	}

	t.Run("pair", func(t *testing.T) {
		got, err := copyWith(t, newAuth(t, AuthOptions{Pairs: []string{dst + "=" + user + ":" + password}}))
		check(t, got, err)
	})

	t.Run("config file auths", func(t *testing.T) {
		b64 := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
		dir := writeConfig(t, fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, dst, b64))
		t.Setenv("HOME", t.TempDir())          // not read: callers pass the directory
		t.Setenv("DOCKER_CONFIG", t.TempDir()) // nor this
		if _, err := copyWith(t, newAuth(t, AuthOptions{})); err == nil {
			t.Fatal("without a config directory, the push had credentials from somewhere")
		}
		a := newAuth(t, AuthOptions{DockerConfigDir: dir})
		got, err := copyWith(t, a)
		check(t, got, err)
		if s := a.Secrets(); !contains(s, password) || !contains(s, b64) {
			t.Errorf("Secrets() lacks the config file's password or auth field")
		}
	})

	t.Run("credential helper", func(t *testing.T) {
		bin := t.TempDir()
		log := filepath.Join(bin, "calls")
		script := fmt.Sprintf(`#!/bin/sh
echo "$1" >> %q
[ "$1" = get ] || exit 1
read -r host || true
printf '{"ServerURL":"%%s","Username":%q,"Secret":%q}' "$host"
`, log, user, password)
		if err := os.WriteFile(filepath.Join(bin, "docker-credential-test"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		dir := writeConfig(t, fmt.Sprintf(`{"credHelpers": {%q: "test"}}`, dst))
		a := newAuth(t, AuthOptions{DockerConfigDir: dir})
		got, err := copyWith(t, a)
		check(t, got, err)
		u, s, err := a.Credentials(ctx, dst)
		if err != nil || u != user || s != password {
			t.Errorf("Credentials(%s) = %q, %q, %v", dst, u, s, err)
		}
		if !contains(a.Secrets(), password) {
			t.Errorf("Secrets() lacks the helper's secret")
		}
		calls, _ := os.ReadFile(log)
		if n := strings.Count(string(calls), "get"); n != 1 {
			t.Errorf("the helper ran %d times, want once (answers are cached)", n)
		}
	})

	t.Run("credsStore", func(t *testing.T) {
		bin := t.TempDir()
		script := fmt.Sprintf("#!/bin/sh\nprintf '{\"Username\":%q,\"Secret\":%q}'\n", user, password)
		if err := os.WriteFile(filepath.Join(bin, "docker-credential-store"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		got, err := copyWith(t, newAuth(t, AuthOptions{DockerConfigDir: writeConfig(t, `{"credsStore": "store"}`)}))
		check(t, got, err)
	})

	for _, tc := range []struct {
		name string
		auth *Auth
	}{
		{"without credentials", nil},
		{"with a wrong password", newAuth(t, AuthOptions{Pairs: []string{dst + "=" + user + ":not-" + password}})},
		{"with credentials for another host", newAuth(t, AuthOptions{Pairs: []string{src + "=" + user + ":" + password}})},
	} {
		t.Run("fails "+tc.name, func(t *testing.T) {
			_, err := copyWith(t, tc.auth)
			if err == nil {
				t.Fatal("Copy succeeded")
			}
			msg := err.Error()
			wantPrefix := "pushing " + dst + "/app:cache.BQULMXNMEIU: 401 Unauthorized"
			if !strings.HasPrefix(msg, wantPrefix) {
				t.Errorf("error %q, want it to start %q", msg, wantPrefix)
			}
			hint := " (no credentials for " + dst + "; give host=user:password or use docker login)"
			if tc.auth != nil && tc.name == "with a wrong password" {
				hint = " (the credentials for " + dst + " were refused or lack access)"
			}
			if !strings.HasSuffix(msg, hint) {
				t.Errorf("error %q, want it to end %q", msg, hint)
			}
			if strings.Contains(msg, password) {
				t.Errorf("error %q shows the password", msg)
			}
			var rerr *Error
			if !errors.As(err, &rerr) || rerr.StatusCode != http.StatusUnauthorized || rerr.Host != dst || rerr.Op != "pushing" {
				t.Errorf("error %#v, want *Error with status 401 from %s", err, dst)
			}
		})
	}
}

func TestCopyRetries(t *testing.T) {
	isolate(t)
	ctx := context.Background()

	t.Run("503 then 429 then success", func(t *testing.T) {
		src := startRegistry(t, "", "")
		want := pushImage(t, src+"/app:v1")
		p := startProxy(t, src, func(n int, r *http.Request) int {
			switch n {
			case 0:
				return http.StatusServiceUnavailable
			case 1:
				return http.StatusTooManyRequests // with Retry-After: 1, capped at MaxDelay
			}
			return 0
		})
		start := time.Now()
		got, err := Copy(ctx, p.Addr+"/app:v1", startRegistry(t, "", "")+"/app:web.BRETRYRETRY", Options{Retry: fastRetry})
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("digest %s, want %s", got, want)
		}
		if d := time.Since(start); d > 900*time.Millisecond {
			t.Errorf("Copy took %s: Retry-After was not capped by MaxDelay", d)
		}
		reqs := p.requests()
		if len(reqs) < 4 || reqs[0] != "GET /v2/" || reqs[1] != "GET /v2/" || reqs[2] != "GET /v2/" || reqs[3] == "GET /v2/" {
			t.Errorf("requests %q, want the ping /v2/ three times (two failures, one success), then the manifest", reqs)
		}
	})

	t.Run("blob upload", func(t *testing.T) {
		src, dst := startRegistry(t, "", ""), startRegistry(t, "", "")
		pushImage(t, src+"/app:v1")
		failFirstPatch := func() func(int, *http.Request) int {
			var once sync.Once
			return func(_ int, r *http.Request) int {
				code := 0
				if r.Method == http.MethodPatch {
					once.Do(func() { code = http.StatusServiceUnavailable })
				}
				return code
			}
		}
		p := startProxy(t, dst, failFirstPatch())
		if _, err := Copy(ctx, src+"/app:v1", p.Addr+"/app:web.BUPLOADRETR", Options{Retry: fastRetry}); err != nil {
			t.Fatalf("Copy did not retry the failed upload: %v", err)
		}
		patches := 0
		for _, r := range p.requests() {
			if strings.HasPrefix(r, "PATCH ") {
				patches++
			}
		}
		// Three blobs (two layers, the config), one PATCH each, plus the retry.
		if patches != 4 {
			t.Errorf("%d PATCH requests, want 4: %q", patches, p.requests())
		}

		// Without retries the same failure is fatal.
		p = startProxy(t, startRegistry(t, "", ""), failFirstPatch())
		_, err := Copy(ctx, src+"/app:v1", p.Addr+"/app:web.BNORETRYNOW", Options{Retry: Retry{Tries: 1}})
		if err == nil || !strings.Contains(err.Error(), "503 Service Unavailable") {
			t.Errorf("with Tries 1: error %v, want a 503", err)
		}
	})

	t.Run("gives up", func(t *testing.T) {
		src := startRegistry(t, "", "")
		p := startProxy(t, src, func(int, *http.Request) int { return http.StatusServiceUnavailable })
		_, err := Copy(ctx, p.Addr+"/app:v1", src+"/app:web.BGIVEUPNOWX", Options{Retry: fastRetry})
		if err == nil {
			t.Fatal("Copy succeeded")
		}
		want := "pulling " + p.Addr + "/app:v1: 503 Service Unavailable (gave up after 5 attempts)"
		if err.Error() != want {
			t.Errorf("error\n %q, want\n %q", err, want)
		}
		if n := len(p.requests()); n != 5 {
			t.Errorf("%d requests, want 5 (Tries): %q", n, p.requests())
		}
	})

	t.Run("stops waiting when the context ends", func(t *testing.T) {
		src := startRegistry(t, "", "")
		p := startProxy(t, src, func(int, *http.Request) int { return http.StatusServiceUnavailable })
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := Digest(ctx, p.Addr+"/app:v1", Options{Retry: Retry{MinDelay: time.Minute, MaxDelay: time.Minute}})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Digest returned after %s", d)
		}
	})
}

func TestImageConfig(t *testing.T) {
	isolate(t)
	ctx := context.Background()
	reg := startRegistry(t, "", "")

	image := func(t *testing.T, cmd string) v1.Image {
		t.Helper()
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		img, err = mutate.Config(img, v1.Config{Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{cmd}})
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	index := func(t *testing.T, platforms ...string) v1.ImageIndex {
		t.Helper()
		var adds []mutate.IndexAddendum
		for _, p := range platforms {
			pl, err := v1.ParsePlatform(p)
			if err != nil {
				t.Fatal(err)
			}
			adds = append(adds, mutate.IndexAddendum{Add: image(t, "echo "+p), Descriptor: v1.Descriptor{Platform: pl}})
		}
		return mutate.AppendManifests(empty.Index, adds...)
	}

	push(t, reg+"/img:plain", image(t, "echo plain"))
	push(t, reg+"/img:amd64", index(t, "unknown/unknown", "linux/arm64", "linux/amd64"))
	push(t, reg+"/img:firstlinux", index(t, "windows/amd64", "linux/s390x", "linux/arm64"))
	push(t, reg+"/img:nolinux", index(t, "windows/amd64"))

	for ref, want := range map[string]string{
		"plain":      "/bin/sh -c 'echo plain'",
		"amd64":      "/bin/sh -c 'echo linux/amd64'",
		"firstlinux": "/bin/sh -c 'echo linux/s390x'",
	} {
		cf, err := ImageConfig(ctx, reg+"/img:"+ref, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := Entrypoint(cf); got != want {
			t.Errorf("%s: entrypoint %q, want %q", ref, got, want)
		}
	}

	_, err := ImageConfig(ctx, reg+"/img:nolinux", Options{})
	if want := "reading the config of " + reg + "/img:nolinux: the index has no linux image"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
	_, err = ImageConfig(ctx, reg+"/img:missing", Options{})
	var rerr *Error
	if !errors.As(err, &rerr) || rerr.StatusCode != http.StatusNotFound || !strings.HasPrefix(err.Error(), "reading the config of "+reg+"/img:missing: 404 Not Found") {
		t.Errorf("error %v, want a 404 naming the reference", err)
	}
}

func TestOptionsRejected(t *testing.T) {
	for _, r := range []Retry{{Tries: -1}, {MinDelay: time.Second, MaxDelay: time.Millisecond}} {
		if _, err := Digest(context.Background(), "127.0.0.1:1/x:y", Options{Retry: r}); err == nil || !strings.HasPrefix(err.Error(), "registry options: Retry.") {
			t.Errorf("Retry %+v: error %v, want it rejected by name", r, err)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestErrorsAreRedacted(t *testing.T) {
	isolate(t)
	ctx := context.Background()
	const password = "hunter2-secret"
	src, dst := startRegistry(t, "", ""), startRegistry(t, "", "")
	pushImage(t, src+"/app:v1")

	// In front of dst, a gateway that denies manifest pushes with a message
	// echoing the password and a signed URL.
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: dst})
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `{"errors":[{"code":"DENIED","message":"user octo:%s may not push; see https://octo:%s@auth.example/why?sig=abc123 for help"}]}`, password, password)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { closeIdleConnections(); gw.Close() })
	host := gw.Listener.Addr().String()

	auth, err := NewAuth(AuthOptions{Pairs: []string{host + "=octo:" + password}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Copy(ctx, src+"/app:v1", host+"/app:web.BREDACTEDXX", Options{Auth: auth, Retry: fastRetry})
	want := "pushing " + host + "/app:web.BREDACTEDXX: 403 Forbidden: user octo:*** may not push; see https://auth.example/why for help" +
		" (the credentials for " + host + " were refused or lack access)"
	if err == nil || err.Error() != want {
		t.Errorf("error\n %v\nwant\n %s", err, want)
	}
}
