package build_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/convox-build-action/convox-build-action/internal/build"
)

// A registry cache kept in a repository of its own: the cache images go
// there, none beside the images.
func TestRegistryCacheInAnotherRepository(t *testing.T) {
	h := newHarness(t)
	req := h.request(t, "multi")
	req.App, req.Repository = "cacherepo", h.env.Registry+"/cacherepo"
	req.Services = []string{"api"}
	req.Cache = build.Cache{Type: build.CacheRegistry, Repository: h.env.Registry + "/shared-cache"}
	if _, err := h.engine.Run(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	registryDigest(t, h.env.Registry+"/shared-cache:api.buildcache")
	if exists(t, req.Repository+":api.buildcache") {
		t.Errorf("a cache image was written beside the images too")
	}
	for _, bad := range []build.Cache{
		{Type: build.CacheRegistry, Repository: "r.example/cache:tag"},
		{Type: build.CacheInline, Repository: "r.example/cache"},
	} {
		if err := bad.Validate(); build.InputField(err) != build.FieldCache {
			t.Errorf("%+v: Validate() = %v, want a cache InputError", bad, err)
		}
	}
}

// NoPush builds every service and reports BuildKit's digests, pushes no
// image, and resolves an image-only service without copying it.
func TestNoPushBuildsWithoutPushing(t *testing.T) {
	h := newHarness(t)
	req := h.request(t, "multi")
	req.App, req.Repository = "nopush", h.env.Registry+"/nopush"
	req.NoPush = true
	req.Cache = build.Cache{Type: build.CacheNone}
	b, err := h.engine.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Services) != 4 {
		t.Fatalf("services %+v", b.Services)
	}
	for _, s := range b.Services {
		if !strings.HasPrefix(s.Digest, "sha256:") {
			t.Errorf("%s: digest %q", s.Service, s.Digest)
		}
		if s.ImageOnly {
			if s.Image != h.env.Registry+"/library/busybox:latest" {
				t.Errorf("image-only service recorded as %s, want its own image", s.Image)
			}
			continue
		}
		if exists(t, s.Image) {
			t.Errorf("%s was pushed", s.Image)
		}
	}
}

func exists(t *testing.T, ref string) bool {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Head(r)
	return err == nil
}
