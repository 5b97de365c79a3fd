package action

import (
	"strings"
	"testing"

	"github.com/convox-build-action/convox-build-action/internal/build"
)

func TestCacheRule(t *testing.T) {
	inActions := &runContext{ResultsURL: "https://results.example/", RuntimeToken: "tok"}
	outside := &runContext{}
	gha := build.Cache{Type: build.CacheGHA, GHAURLV2: "https://results.example/", GHAToken: "tok"}
	cases := []struct {
		name           string
		push           bool
		from, to       string
		rc             *runContext
		want           build.Cache
		wantErr, input string
	}{
		{name: "default with push: registry, even in Actions", push: true, rc: inActions, want: build.Cache{Type: build.CacheRegistry}},
		{name: "default without push in Actions: gha", push: false, rc: inActions, want: gha},
		{name: "default without push elsewhere: none", push: false, rc: outside, want: build.Cache{Type: build.CacheNone}},
		{name: "registry with a repository", push: true, from: "type=registry,ref=ghcr.io/acme/cache", rc: outside, want: build.Cache{Type: build.CacheRegistry, Repository: "ghcr.io/acme/cache"}},
		{name: "bare reference", push: true, to: "ghcr.io/acme/cache", rc: outside, want: build.Cache{Type: build.CacheRegistry, Repository: "ghcr.io/acme/cache"}},
		{name: "mode=max accepted", push: true, to: "type=gha,mode=max", rc: inActions, want: gha},
		{name: "same both ways", push: true, from: "type=gha", to: "type=gha,mode=max,ignore-error=true", rc: inActions, want: gha},
		{name: "local", push: true, from: "type=local,src=.cache", to: "type=local,dest=.cache", rc: outside, want: build.Cache{Type: build.CacheLocal, Dir: "/ws/.cache"}},
		{name: "inline", push: true, to: "type=inline", rc: outside, want: build.Cache{Type: build.CacheInline}},
		{name: "none", push: true, to: "type=none", rc: outside, want: build.Cache{Type: build.CacheNone}},
		{name: "gha outside Actions", push: true, to: "type=gha", rc: outside, input: "cache-to", wantErr: "needs the runner's cache service"},
		{name: "different caches", push: true, from: "type=gha", to: "type=inline", rc: inActions, input: "cache-to", wantErr: "name different caches"},
		{name: "tagged ref", push: true, from: "type=registry,ref=ghcr.io/acme/cache:v1", rc: outside, input: "cache-from", wantErr: "without a tag"},
		{name: "unknown attribute", push: true, to: "type=registry,compression=zstd", rc: outside, input: "cache-to", wantErr: "compression=zstd is not supported"},
		{name: "unknown type", push: true, to: "type=s3,bucket=b", rc: outside, input: "cache-to", wantErr: "type=s3 is not supported"},
		{name: "no type", push: true, to: "ref=x,mode=max", rc: outside, input: "cache-to", wantErr: "has no type="},
		{name: "registry beside unpushed images", push: false, to: "type=registry", rc: outside, input: "cache-to", wantErr: "push: false"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := cacheFor(&inputs{Push: c.push, CacheFrom: c.from, CacheTo: c.to}, c.rc, "/ws")
			if c.wantErr != "" {
				ie, ok := err.(*InputError)
				if !ok || ie.Input != c.input || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want an error of input %s containing %q", err, c.input, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("cacheFor = %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

func FuzzCacheSpec(f *testing.F) {
	for _, s := range []string{"type=registry,ref=ghcr.io/a/b", "type=gha", "type=local,src=x", "ghcr.io/a/b", ",,=", "type=registry,ref=a:b@c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		c, err := parseCacheSpec("cache-from", spec, "/ws", build.Cache{Type: build.CacheGHA})
		if err == nil && spec != "" && c.Type == "" {
			t.Errorf("%q: no type and no error", spec)
		}
	})
}
