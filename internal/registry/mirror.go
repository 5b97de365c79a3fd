package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ParseMirrors reads registry mirrors written "host=mirror[,host=mirror...]",
// e.g. "docker.io=mirror.example.com,ghcr.io=127.0.0.1:5000". A host may be
// named several times: its mirrors are tried in the order given. Hosts are
// canonical (index.docker.io and registry-1.docker.io are docker.io); a
// mirror is a host with an optional port, without scheme or path, since a
// mirror serves the same repository paths as its registry
// (docker.io/library/busybox is MIRROR/library/busybox). Empty entries are
// ignored; "" gives no mirrors.
func ParseMirrors(s string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		rawHost, mirror, ok := strings.Cut(entry, "=")
		rawHost, mirror = strings.TrimSpace(rawHost), strings.TrimSpace(mirror)
		if !ok || rawHost == "" || mirror == "" {
			return nil, fmt.Errorf("%q: want host=mirror, e.g. docker.io=mirror.example.com", entry)
		}
		host := canonicalHost(rawHost)
		if err := checkHost(host); err != nil {
			return nil, fmt.Errorf("%q: registry %w", entry, err)
		}
		if strings.Contains(mirror, "://") || strings.Contains(mirror, "/") {
			return nil, fmt.Errorf("%q: mirror %q must be a host[:port] without scheme or path (it serves the registry's repository paths)", entry, mirror)
		}
		if err := checkHost(mirror); err != nil {
			return nil, fmt.Errorf("%q: mirror %w", entry, err)
		}
		out[host] = append(out[host], strings.ToLower(mirror))
	}
	return out, nil
}

// checkHost checks that h names a registry in an image reference: a name
// with a dot or a port, or localhost.
func checkHost(h string) error {
	bad := fmt.Errorf("%q is not a registry host[:port] (a name with a dot or a port, or localhost)", h)
	if h == "" || strings.ContainsAny(h, " \t\r\n/@?#") {
		return bad
	}
	r, err := name.ParseReference(h+"/library/busybox:latest", name.StrictValidation)
	if err != nil || canonicalHost(r.Context().RegistryStr()) != canonicalHost(h) {
		return bad
	}
	return nil
}

// source is where a pull reads from: a mirror of the image's registry or
// the registry itself.
type source struct {
	ref    name.Reference
	mirror string // the mirror host; "" for the origin
}

// sources returns where to pull ref from, in order: each mirror
// Options.Mirrors gives its registry, then ref itself.
func (c *call) sources(ref name.Reference) []source {
	var out []source
	for _, m := range c.opts.Mirrors[canonicalHost(ref.Context().RegistryStr())] {
		sep := ":"
		if _, ok := ref.(name.Digest); ok {
			sep = "@"
		}
		r, err := name.ParseReference(m+"/"+ref.Context().RepositoryStr()+sep+ref.Identifier(), c.name...)
		if err != nil {
			continue // ParseMirrors checked the host; nothing else can be wrong
		}
		out = append(out, source{ref: r, mirror: m})
	}
	return append(out, source{ref: ref})
}

// pull runs read on each source of ref until one succeeds, falling back
// from a mirror that fails or lacks the image to the next one and finally
// to the registry itself, as buildkitd does. Only the origin's failure is
// returned, as an *Error doing op on ref, naming what each mirror answered.
// fromSource tells whether an error of read came from reading the source
// (so another source may do better) rather than from elsewhere (a push).
func (c *call) pull(ctx context.Context, op string, ref name.Reference, read func(name.Reference) error, fromSource func(src name.Reference, err error) bool) error {
	var notes []string
	for _, s := range c.sources(ref) {
		err := read(s.ref)
		if err == nil {
			return nil
		}
		if s.mirror == "" || ctx.Err() != nil || !fromSource(s.ref, err) {
			var e *Error
			if !errors.As(err, &e) {
				e = c.newError(op, s.ref.Name(), s.ref.Context().RegistryStr(), err)
			}
			if len(notes) > 0 {
				e.msg += " (" + strings.Join(notes, "; ") + ")"
				e.msg = Redact(e.msg, c.secrets())
			}
			return e
		}
		var e *Error
		if !errors.As(err, &e) {
			e = c.newError(op, s.ref.Name(), s.ref.Context().RegistryStr(), err)
		}
		notes = append(notes, "mirror "+s.mirror+": "+e.msg)
	}
	return nil // unreachable: the origin is always the last source
}

// anyError: every failure of a read-only operation came from its source.
func anyError(name.Reference, error) bool { return true }

// fromHost reports whether err is a registry answer from src's registry,
// e.g. a blob a mirror lacked while an image copied from it was pushed.
func fromHost(src name.Reference, err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Host == src.Context().RegistryStr()
	}
	var terr *transport.Error
	return errors.As(err, &terr) && terr.Request != nil && terr.Request.URL != nil &&
		terr.Request.URL.Host == src.Context().RegistryStr()
}
