// Package registry talks to OCI registries for the build engine: it resolves
// credentials (explicit pairs, Docker Hub username and token, the Docker
// config file and its credential helpers), copies images and indexes with
// their exact manifests, reads image configs and digests, pulls through
// registry mirrors with fallback to the origin (Options.Mirrors), and retries what
// a registry or the network fails transiently, with bounded exponential
// backoff.
//
// It logs nothing. Its errors name the operation, the image reference and the
// HTTP status, and are redacted (see Redact).
package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// DefaultUserAgent is the User-Agent of registry requests unless
// Options.UserAgent says otherwise.
const DefaultUserAgent = "convox-build-action"

// Options configure registry calls. The zero value is usable: anonymous,
// HTTPS with verified certificates (plain HTTP for loopback hosts), default
// retries.
type Options struct {
	// Auth gives credentials per registry; nil means anonymous.
	Auth *Auth
	// Insecure lets every registry be reached over plain HTTP or over TLS
	// with a certificate that does not verify. Default false. Loopback
	// registries (localhost, 127.0.0.0/8, ::1) are always reached over plain
	// HTTP, as BuildKit does, whatever this says.
	Insecure bool
	// Retry bounds the retries of each request; the zero value means the
	// defaults (5 tries, 200ms doubling to 3s).
	Retry Retry
	// UserAgent of the requests; default DefaultUserAgent.
	UserAgent string
	// Mirrors maps a registry host to mirror hosts tried, in order, before
	// it for every pull: Copy's source, ImageConfig and Digest (pushes and
	// Remote never use them). "docker.io" -> ["mirror.example.com"] pulls
	// busybox from mirror.example.com/library/busybox. A mirror that fails
	// or lacks the image is skipped for the next one and finally the
	// registry itself, as buildkitd does with its mirrors. Keys are
	// canonical hosts as ParseMirrors returns them (docker.io for Docker
	// Hub). Credentials and plain HTTP apply to a mirror as to any host.
	// Default none.
	Mirrors map[string][]string
}

// Retry bounds the retries of a request that got a 408, 429 or 5xx answer
// (except 501 and 505), or a transient network error (refused, reset or
// truncated connection, timeout). A blob upload is retried whole.
type Retry struct {
	// Tries is the number of attempts, the first included; 1 turns retries
	// off. Default (0) DefaultTries, 5.
	Tries int
	// MinDelay is the wait after the first failure, doubled after each
	// further one. Default (0) DefaultMinDelay, 200ms.
	MinDelay time.Duration
	// MaxDelay caps every wait, including one a registry asks for with
	// Retry-After. Default (0) DefaultMaxDelay, 3s.
	MaxDelay time.Duration
}

// withDefaults fills in the defaults and rejects what makes no sense.
func (r Retry) withDefaults() (Retry, error) {
	if r.Tries < 0 || r.MinDelay < 0 || r.MaxDelay < 0 {
		return r, fmt.Errorf("registry options: Retry.Tries (%d), Retry.MinDelay (%s) and Retry.MaxDelay (%s) must not be negative", r.Tries, r.MinDelay, r.MaxDelay)
	}
	if r.Tries == 0 {
		r.Tries = DefaultTries
	}
	if r.MinDelay == 0 {
		r.MinDelay = min(DefaultMinDelay, cmpNonZero(r.MaxDelay, DefaultMinDelay))
	}
	if r.MaxDelay == 0 {
		r.MaxDelay = max(DefaultMaxDelay, r.MinDelay)
	}
	if r.MinDelay > r.MaxDelay {
		return r, fmt.Errorf("registry options: Retry.MinDelay (%s) is more than Retry.MaxDelay (%s)", r.MinDelay, r.MaxDelay)
	}
	return r, nil
}

func cmpNonZero(d, fallback time.Duration) time.Duration {
	if d == 0 {
		return fallback
	}
	return d
}

// call is the state of one public call: its transport and options.
type call struct {
	opts   Options
	rt     *retryTransport
	remote []remote.Option
	name   []name.Option
}

func newCall(opts Options) (*call, error) {
	r, err := opts.Retry.withDefaults()
	if err != nil {
		return nil, err
	}
	base := secureBase()
	if opts.Insecure {
		base = insecureBase()
	}
	c := &call{opts: opts, rt: newRetryTransport(base, r)}
	ua := opts.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	c.remote = []remote.Option{
		remote.WithTransport(c.rt),
		remote.WithUserAgent(ua),
		// retryTransport retries each request; go-containerregistry only
		// retries whole blob uploads (retryUpload), with the same bounds.
		remote.WithRetryStatusCodes(),
		remote.WithRetryPredicate(retryUpload),
		remote.WithRetryBackoff(remote.Backoff{Duration: r.MinDelay, Factor: 2, Jitter: 0.1, Steps: r.Tries, Cap: r.MaxDelay}),
	}
	if opts.Auth != nil {
		c.remote = append(c.remote, remote.WithAuthFromKeychain(opts.Auth.Keychain()))
	}
	if opts.Insecure {
		c.name = append(c.name, name.Insecure)
	}
	return c, nil
}

func (c *call) secrets() []string { return c.opts.Auth.Secrets() }

func (c *call) parse(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref, c.name...)
	if err != nil {
		return nil, fmt.Errorf("parsing image reference %q: %w", ref, err)
	}
	return r, nil
}

func (c *call) fail(op string, ref name.Reference, err error) *Error {
	return c.newError(op, ref.Name(), ref.Context().RegistryStr(), err)
}

// Copy copies the image or index src to dst with its exact manifest bytes, so
// dst has the digest src has, which it returns ("sha256:…"). Convox copies
// image-only services this way: "postgres:15" to "<repository>:db.B…". src
// is pulled through Options.Mirrors.
func Copy(ctx context.Context, src, dst string, opts Options) (digest string, err error) {
	c, err := newCall(opts)
	if err != nil {
		return "", err
	}
	srcRef, err := c.parse(src)
	if err != nil {
		return "", err
	}
	dstRef, err := c.parse(dst)
	if err != nil {
		return "", err
	}
	puller, err := remote.NewPuller(c.remote...)
	if err != nil {
		return "", err
	}
	pusher, err := remote.NewPusher(c.remote...)
	if err != nil {
		return "", err
	}
	err = c.pull(ctx, "pulling", srcRef, func(from name.Reference) error {
		desc, err := puller.Get(ctx, from)
		if err != nil {
			return c.fail("pulling", from, err)
		}
		if err := pusher.Push(ctx, dstRef, desc); err != nil {
			return c.fail("pushing", dstRef, err)
		}
		digest = desc.Digest.String()
		return nil
	}, fromHost)
	if err != nil {
		return "", err
	}
	return digest, nil
}

// Digest returns the digest ("sha256:…") of the manifest ref names, with a
// HEAD request (a GET if the registry's HEAD answer lacks it), through
// Options.Mirrors.
func Digest(ctx context.Context, ref string, opts Options) (string, error) {
	c, err := newCall(opts)
	if err != nil {
		return "", err
	}
	r, err := c.parse(ref)
	if err != nil {
		return "", err
	}
	puller, err := remote.NewPuller(c.remote...)
	if err != nil {
		return "", err
	}
	var digest string
	err = c.pull(ctx, "resolving", r, func(from name.Reference) error {
		desc, err := puller.Head(ctx, from)
		if err == nil {
			digest = desc.Digest.String()
			return nil
		}
		var terr *transport.Error
		if errors.As(err, &terr) {
			return c.fail("resolving", from, err)
		}
		// Some registries answer HEAD without Docker-Content-Digest.
		d, err := puller.Get(ctx, from)
		if err != nil {
			return c.fail("resolving", from, err)
		}
		digest = d.Digest.String()
		return nil
	}, anyError)
	if err != nil {
		return "", err
	}
	return digest, nil
}

// ImageConfig returns the config of the image ref names; for an index, of its
// linux/amd64 image, else of its first linux image.
func ImageConfig(ctx context.Context, ref string, opts Options) (*v1.ConfigFile, error) {
	c, err := newCall(opts)
	if err != nil {
		return nil, err
	}
	r, err := c.parse(ref)
	if err != nil {
		return nil, err
	}
	const op = "reading the config of"
	puller, err := remote.NewPuller(c.remote...)
	if err != nil {
		return nil, err
	}
	var cf *v1.ConfigFile
	err = c.pull(ctx, op, r, func(from name.Reference) error {
		var err error
		cf, err = c.config(ctx, puller, from)
		return err
	}, anyError)
	if err != nil {
		return nil, err
	}
	return cf, nil
}

func (c *call) config(ctx context.Context, puller *remote.Puller, r name.Reference) (*v1.ConfigFile, error) {
	const op = "reading the config of"
	desc, err := puller.Get(ctx, r)
	if err != nil {
		return nil, c.fail(op, r, err)
	}
	var img v1.Image
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, c.fail(op, r, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, c.fail(op, r, err)
		}
		child, ok := linuxImage(im.Manifests)
		if !ok {
			return nil, &Error{Op: op, Ref: r.Name(), Host: r.Context().RegistryStr(), msg: "the index has no linux image"}
		}
		if img, err = idx.Image(child.Digest); err != nil {
			return nil, c.fail(op, r, err)
		}
	} else if img, err = desc.Image(); err != nil {
		return nil, c.fail(op, r, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, c.fail(op, r, err)
	}
	return cf, nil
}

// linuxImage picks the linux/amd64 image of an index, else its first linux
// image.
func linuxImage(ms []v1.Descriptor) (v1.Descriptor, bool) {
	var first *v1.Descriptor
	for i, m := range ms {
		if !m.MediaType.IsImage() || m.Platform == nil || m.Platform.OS != "linux" {
			continue
		}
		if m.Platform.Architecture == "amd64" {
			return m, true
		}
		if first == nil {
			first = &ms[i]
		}
	}
	if first == nil {
		return v1.Descriptor{}, false
	}
	return *first, true
}

// Entrypoint formats an image's Entrypoint followed by its Cmd as one
// command line, as Convox records a build's entrypoint: words joined with
// spaces, each single-quoted when the shell would otherwise split or expand
// it. A nil config gives "".
func Entrypoint(cf *v1.ConfigFile) string {
	if cf == nil {
		return ""
	}
	words := append(append([]string{}, cf.Config.Entrypoint...), cf.Config.Cmd...)
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = shellQuote(w)
	}
	return strings.Join(quoted, " ")
}

// shellQuote returns w as one POSIX shell word.
func shellQuote(w string) string {
	if w == "" {
		return "''"
	}
	safe := true
	for _, r := range w {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./_-", r)) {
			safe = false
			break
		}
	}
	if safe {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

// Remote returns the go-containerregistry options that reach registries as
// opts says (credentials, plain HTTP where allowed, bounded retries), for
// packages that stream images themselves (internal/exportfile).
func Remote(opts Options) ([]name.Option, []remote.Option, error) {
	c, err := newCall(opts)
	if err != nil {
		return nil, nil, err
	}
	return c.name, c.remote, nil
}
