package registry

import (
	"context"
	"errors"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/convox-build-action/convox-build-action/internal/devenv"
)

func TestParseMirrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string][]string
		err  string
	}{
		{"", map[string][]string{}, ""},
		{"docker.io=mirror.example.com", map[string][]string{"docker.io": {"mirror.example.com"}}, ""},
		{" index.docker.io = 127.0.0.1:5000 , ghcr.io=Mirror.Example.com:443,registry-1.docker.io=m2.example,", map[string][]string{
			"docker.io": {"127.0.0.1:5000", "m2.example"}, "ghcr.io": {"mirror.example.com:443"},
		}, ""},
		{"docker.io", nil, `"docker.io": want host=mirror, e.g. docker.io=mirror.example.com`},
		{"docker.io=", nil, `"docker.io=": want host=mirror`},
		{"=m.example", nil, `"=m.example": want host=mirror`},
		{"docker.io=https://m.example", nil, `"docker.io=https://m.example": mirror "https://m.example" must be a host[:port] without scheme or path`},
		{"docker.io=m.example/dockerhub", nil, `mirror "m.example/dockerhub" must be a host[:port] without scheme or path`},
		{"docker.io=m example", nil, `"docker.io=m example": mirror "m example" is not a registry host[:port] (a name with a dot or a port, or localhost)`},
		{"my host=m.example", nil, `"my host=m.example": registry "my host" is not a registry host[:port]`},
		{"docker.io=!0", nil, `mirror "!0" is not a registry host[:port]`},
		{"docker.io=mirror", nil, `mirror "mirror" is not a registry host[:port]`},
		{"docker.io=localhost,quay.io=mirror:5000", map[string][]string{"docker.io": {"localhost"}, "quay.io": {"mirror:5000"}}, ""},
	} {
		got, err := ParseMirrors(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseMirrors(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseMirrors(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// TestCopyBusyboxFromDockerHubThroughMirror is `image: busybox` on a machine
// that cannot reach Docker Hub: the copy, the config read and the digest
// all come from the mirror.
func TestCopyBusyboxFromDockerHubThroughMirror(t *testing.T) {
	isolate(t)
	ctx := context.Background()
	mirror, dst := startRegistry(t, "", ""), startRegistry(t, "", "")
	want, err := devenv.SeedBusybox(ctx, mirror, devenv.BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	seen := startProxy(t, mirror, func(int, *http.Request) int { return 0 })
	opts := Options{Mirrors: map[string][]string{"docker.io": {seen.Addr}}, Retry: fastRetry}

	got, err := Copy(ctx, "busybox", dst+"/app:tools.BMIRRORTEST", opts)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("Copy returned %s, want the mirror's busybox %s", got, want)
	}
	if d, err := Digest(ctx, dst+"/app:tools.BMIRRORTEST", Options{}); err != nil || d != want {
		t.Errorf("copied image has digest %s, %v; want %s", d, err, want)
	}
	if d, err := Digest(ctx, "docker.io/library/busybox:latest", opts); err != nil || d != want {
		t.Errorf("Digest(busybox) = %s, %v; want %s", d, err, want)
	}
	cf, err := ImageConfig(ctx, "busybox@"+want, opts)
	if err != nil || cf.OS != "linux" {
		t.Errorf("ImageConfig(busybox@digest) = %+v, %v", cf, err)
	}
	reqs := strings.Join(seen.requests(), "\n")
	if !strings.Contains(reqs, "GET /v2/library/busybox/manifests/latest") || !strings.Contains(reqs, "/v2/library/busybox/manifests/"+want) {
		t.Errorf("the mirror was not asked for library/busybox by tag and digest:\n%s", reqs)
	}

	// Without the mirror, Docker Hub is asked, and here it cannot answer.
	if _, err := Copy(ctx, "busybox", dst+"/app:tools.BNOMIRRORXX", Options{Retry: Retry{Tries: 1}}); err == nil ||
		!strings.HasPrefix(err.Error(), "pulling index.docker.io/library/busybox:latest: ") {
		t.Errorf("copy without mirror: %v", err)
	}
}

func TestMirrorFallsBackToTheRegistry(t *testing.T) {
	isolate(t)
	ctx := context.Background()
	origin, empty, dst := startRegistry(t, "", ""), startRegistry(t, "", ""), startRegistry(t, "", "")
	want := pushImage(t, origin+"/library/redis:7")
	src := origin + "/library/redis:7"

	// A mirror that lacks the image: 404, then the origin.
	lacking := startProxy(t, empty, func(int, *http.Request) int { return 0 })
	// A mirror that has the manifest but loses every blob: the copy starts
	// from it, fails reading a blob, and starts again from the origin.
	partial := startRegistry(t, "", "")
	if _, err := Copy(ctx, src, partial+"/library/redis:7", Options{}); err != nil {
		t.Fatal(err)
	}
	losing := startProxy(t, partial, func(_ int, r *http.Request) int {
		if strings.Contains(r.URL.Path, "/blobs/") {
			return http.StatusNotFound
		}
		return 0
	})
	// A mirror that is down: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()

	for i, tc := range []struct {
		name   string
		mirror string
		asked  *proxy
	}{
		{"mirror lacks the image", lacking.Addr, lacking},
		{"mirror loses blobs", losing.Addr, losing},
		{"mirror down", down, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{Mirrors: map[string][]string{origin: {tc.mirror}}, Retry: fastRetry}
			// A repository of its own: blobs already there would not be
			// read from the mirror.
			to := dst + "/app" + string(rune('a'+i)) + ":cache.BFALLBACKXX"
			got, err := Copy(ctx, src, to, opts)
			if err != nil || got != want {
				t.Fatalf("Copy = %s, %v; want %s from the origin", got, err, want)
			}
			if d, err := Digest(ctx, to, Options{}); err != nil || d != want {
				t.Errorf("copied %s, %v; want %s", d, err, want)
			}
			if cf, err := ImageConfig(ctx, src, opts); err != nil || cf == nil {
				t.Errorf("ImageConfig through the mirror: %v", err)
			}
			if tc.asked != nil && !strings.Contains(strings.Join(tc.asked.requests(), "\n"), "/v2/library/redis/manifests/7") {
				t.Errorf("the mirror was not asked first: %v", tc.asked.requests())
			}
			if tc.asked == losing && !strings.Contains(strings.Join(tc.asked.requests(), "\n"), "GET /v2/library/redis/blobs/") {
				t.Errorf("the copy did not start from the mirror's blobs: %v", tc.asked.requests())
			}
		})
	}

	// Pushes never go to a mirror, even one set for the destination.
	watch := startProxy(t, empty, func(int, *http.Request) int { return 0 })
	if _, err := Copy(ctx, src, dst+"/app:web.BPUSHDIRECT", Options{Mirrors: map[string][]string{dst: {watch.Addr}}}); err != nil {
		t.Fatal(err)
	}
	if r := watch.requests(); len(r) != 0 {
		t.Errorf("a push went to the destination's mirror: %v", r)
	}

	// When the origin fails too, the error is the origin's and says what
	// the mirror answered.
	_, err = Copy(ctx, origin+"/library/missing:1", dst+"/app:x.BMISSINGXXX", Options{Mirrors: map[string][]string{origin: {lacking.Addr}}, Retry: fastRetry})
	wantErr := "pulling " + origin + "/library/missing:1: 404 Not Found: "
	var rerr *Error
	if err == nil || !strings.HasPrefix(err.Error(), wantErr) || !strings.Contains(err.Error(), " (mirror "+lacking.Addr+": 404 Not Found") ||
		!errors.As(err, &rerr) || rerr.Host != origin || rerr.StatusCode != http.StatusNotFound {
		t.Errorf("error %v, want it to start %q and name the mirror's answer", err, wantErr)
	}
}

func FuzzParseMirrors(f *testing.F) {
	for _, s := range []string{"", "docker.io=mirror.example.com", "a=b,c=d:5000,", "docker.io=https://x", "=", ",,", "x=y/z", "index.docker.io=[::1]:5000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMirrors(s)
		if err != nil {
			return
		}
		for host, mirrors := range m {
			if host != canonicalHost(host) || checkHost(host) != nil || len(mirrors) == 0 {
				t.Fatalf("ParseMirrors(%q): bad host %q -> %v", s, host, mirrors)
			}
			for _, mirror := range mirrors {
				if checkHost(mirror) != nil || strings.Contains(mirror, "/") {
					t.Fatalf("ParseMirrors(%q): bad mirror %q", s, mirror)
				}
				// The mirror reference of an image parses.
				if _, err := name.ParseReference(mirror + "/library/busybox:latest"); err != nil {
					t.Fatalf("ParseMirrors(%q): mirror %q gives no reference: %v", s, mirror, err)
				}
			}
		}
	})
}
