package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/convox-build-action/convox-build-action/internal/buildkit"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

// Cache types for Cache.Type.
const (
	// CacheRegistry keeps a cache image per service beside the images,
	// <repository>:<service>.buildcache (the default).
	CacheRegistry = "registry"
	// CacheLocal keeps the cache in a directory, one subdirectory per
	// service.
	CacheLocal = "local"
	// CacheInline embeds cache metadata in the pushed images and imports
	// it from the app's last complete build.
	CacheInline = "inline"
	// CacheGHA uses the GitHub Actions cache service (in Actions only).
	CacheGHA = "gha"
	// CacheNone neither imports nor exports a cache.
	CacheNone = "none"
)

// Cache says where build cache comes from and goes to. The zero value is
// the registry cache.
type Cache struct {
	// Type is one of the Cache* constants; "" means CacheRegistry.
	Type string
	// Dir is the directory for CacheLocal.
	Dir string
	// Repository, for CacheRegistry, keeps the cache images in another
	// repository than the build's: <Repository>:<service>.buildcache
	// (default: the build's repository).
	Repository string
	// GHAURL (the v1 cache service, ACTIONS_CACHE_URL in a job),
	// GHAURLV2 (the v2 service, ACTIONS_RESULTS_URL) and GHAToken
	// (ACTIONS_RUNTIME_TOKEN) reach the GitHub Actions cache for CacheGHA:
	// the token and one of the URLs are required.
	GHAURL, GHAURLV2, GHAToken string
}

// ErrNoGHACache is the Cache error for CacheGHA without the GitHub Actions
// cache service's address and token.
var ErrNoGHACache = errors.New("cache type gha needs the GitHub Actions cache service's URL and token, which only a GitHub Actions job has")

// Validate checks the cache settings before a build starts.
func (c Cache) Validate() error {
	if c.Repository != "" {
		if c.Type != "" && c.Type != CacheRegistry {
			return &InputError{Field: FieldCache, Err: fmt.Errorf("a cache repository (%s) goes with cache type registry, not %s", c.Repository, c.Type)}
		}
		if strings.ContainsAny(c.Repository[strings.LastIndex(c.Repository, "/")+1:], ":@ ") {
			return &InputError{Field: FieldCache, Err: fmt.Errorf("invalid cache repository %q: give host/path without a tag", c.Repository)}
		}
	}
	switch c.Type {
	case "", CacheRegistry, CacheInline, CacheNone:
		return nil
	case CacheLocal:
		if c.Dir == "" {
			return &InputError{Field: FieldCache, Err: errors.New("cache type local needs a directory")}
		}
		return nil
	case CacheGHA:
		if c.GHAToken == "" || (c.GHAURL == "" && c.GHAURLV2 == "") {
			return &InputError{Field: FieldCache, Err: ErrNoGHACache}
		}
		return nil
	default:
		return &InputError{Field: FieldCache, Err: fmt.Errorf("unknown cache type %q: use registry, local, inline, gha or none", c.Type)}
	}
}

// cacheRef is the registry cache image of a service.
func cacheRef(repository, service string) string { return repository + ":" + service + ".buildcache" }

// entries returns the cache imports and exports for one build spec.
// previous are the images of the app's last complete build, for inline.
func (c Cache) entries(repository string, services []string, insecure, noCache bool, previous map[string]string) (imports, exports []buildkit.CacheEntry) {
	secure := func(a map[string]string) map[string]string {
		if insecure {
			a["registry.insecure"] = "true"
		}
		return a
	}
	switch c.Type {
	case "", CacheRegistry:
		if c.Repository != "" {
			repository = c.Repository
		}
		for _, s := range services {
			imports = append(imports, buildkit.CacheEntry{Type: "registry", Attrs: secure(map[string]string{"ref": cacheRef(repository, s)})})
		}
		exports = append(exports, buildkit.CacheEntry{Type: "registry", Attrs: secure(map[string]string{
			"ref": cacheRef(repository, services[0]), "mode": "max", "image-manifest": "true", "oci-mediatypes": "true", "ignore-error": "true",
		})})
	case CacheLocal:
		for _, s := range services {
			dir := filepath.Join(c.Dir, s)
			if _, err := os.Stat(filepath.Join(dir, "index.json")); err == nil {
				imports = append(imports, buildkit.CacheEntry{Type: "local", Attrs: map[string]string{"src": dir}})
			}
		}
		exports = append(exports, buildkit.CacheEntry{Type: "local", Attrs: map[string]string{"dest": filepath.Join(c.Dir, services[0]), "mode": "max", "ignore-error": "true"}})
	case CacheInline:
		for _, s := range services {
			if ref := previous[s]; ref != "" {
				imports = append(imports, buildkit.CacheEntry{Type: "registry", Attrs: secure(map[string]string{"ref": ref})})
			}
		}
		exports = append(exports, buildkit.CacheEntry{Type: "inline"})
	case CacheGHA:
		for _, s := range services {
			imports = append(imports, buildkit.CacheEntry{Type: "gha", Attrs: c.ghaAttrs(repository, s, false)})
		}
		exports = append(exports, buildkit.CacheEntry{Type: "gha", Attrs: c.ghaAttrs(repository, services[0], true)})
	case CacheNone:
	}
	if noCache {
		imports = nil
	}
	return imports, exports
}

func (c Cache) ghaAttrs(repository, service string, export bool) map[string]string {
	a := map[string]string{"scope": repository + ":" + service, "token": c.GHAToken}
	if u := c.GHAURL; u != "" {
		a["url"] = u
	}
	if u := c.GHAURLV2; u != "" {
		a["url_v2"] = u
	}
	if export {
		a["mode"] = "max"
		a["ignore-error"] = "true"
	}
	return a
}

// previousImages maps each service to its image in the app's last
// complete build, for the inline cache.
func previousImages(ctx context.Context, st store.Store, app string) map[string]string {
	builds, err := st.ListBuilds(ctx, app, 20)
	if err != nil {
		return nil
	}
	for _, b := range builds {
		if b.Status != store.StatusComplete {
			continue
		}
		out := map[string]string{}
		for _, s := range b.Services {
			out[s.Service] = s.Image
		}
		return out
	}
	return nil
}
