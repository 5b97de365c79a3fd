package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/pflag"

	"github.com/convox-build-action/convox-build-action/internal/api"
	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

// The variables that point the builds commands at a server.
const (
	envHost  = "CONVOX_BUILD_HOST"
	envToken = "CONVOX_BUILD_TOKEN"
)

// buildSource is where the builds commands find builds and put imports:
// the local database (localSource) or a server's API (remoteSource). The
// commands print what they get the same way whichever it is.
type buildSource interface {
	// List returns app's builds, newest first: at most limit, all when
	// limit is 0.
	List(ctx context.Context, app string, limit int) ([]store.Build, error)
	// Get returns build id, of whatever app.
	Get(ctx context.Context, id string) (*store.Build, error)
	// Logs writes b's log to w, a line at a time, following it until
	// the build ends when follow is set.
	Logs(ctx context.Context, b *store.Build, follow bool, w io.Writer) error
	// Export writes b's export file to w.
	Export(ctx context.Context, b *store.Build, w io.Writer) error
	// Repository is the image repository an import into app pushes to,
	// given the --repository flag ("" when not given); "" leaves the
	// choice to the source.
	Repository(flag, app string) (string, error)
	// Import reads an export from r and records it as a new build (and
	// release) of app, its images pushed to repository.
	Import(ctx context.Context, app string, r io.Reader, repository string) (*store.Build, error)
	Close() error
}

// sourceOptions are the flags of the builds commands: where the builds
// are (--host, else the local database the connOptions name).
type sourceOptions struct {
	conn connOptions
	host string
	fs   *pflag.FlagSet
}

// localOnlyFlags are the connOptions flags that mean nothing to a server.
var localOnlyFlags = []string{"database", "registry-auth", "insecure-registry", "buildkit-host", "tlscacert", "tlscert", "tlskey"}

func (o *sourceOptions) flags(fs *pflag.FlagSet) {
	o.fs = fs
	o.conn.flags(fs)
	fs.StringVar(&o.host, "host", "", "Server `URL` to ask instead of the local database (default: $"+envHost+"; its API token comes from $"+envToken+")")
}

// open returns the source the flags and the environment name: a server
// when --host or CONVOX_BUILD_HOST gives one (an explicit --host "" means
// the local database), else the local database. images says the command
// moves images (export, import): the local source then reads the registry
// settings first, so that a mistake in them is reported before any work.
func (o *sourceOptions) open(ctx context.Context, env *Env, images bool) (buildSource, error) {
	host, from := o.host, "--host"
	if !o.fs.Changed("host") {
		host, from = strings.TrimSpace(env.Getenv(envHost)), envHost
	}
	if host == "" {
		l := &localSource{env: env}
		if images {
			var err error
			if l.reg, err = o.conn.registry(env.Getenv); err != nil {
				return nil, err
			}
		}
		st, err := o.conn.openStore(ctx, env.Getenv)
		if err != nil {
			return nil, err
		}
		l.st = st
		return l, nil
	}
	for _, name := range localOnlyFlags {
		if o.fs.Changed(name) {
			return nil, usageErrorf("--%s is for the local database and registry; with %s the server uses its own", name, from)
		}
	}
	return newRemoteSource(host, from, env.Getenv(envToken))
}

// localSource is the local database, with the engine for reaping
// abandoned builds and following logs.
type localSource struct {
	st  store.Store
	reg registry.Options // when opened for images
	env *Env
}

func (l *localSource) engine() *build.Engine { return engineFor(l.st, l.env) }

func (l *localSource) List(ctx context.Context, app string, limit int) ([]store.Build, error) {
	// A build whose process died shows as failed, not running forever.
	if _, err := l.engine().ReapStale(ctx); err != nil {
		return nil, err
	}
	list, err := l.st.ListBuilds(ctx, app, limit)
	if err != nil {
		return nil, fmt.Errorf("listing builds of %s: %w", app, err)
	}
	return list, nil
}

func (l *localSource) Get(ctx context.Context, id string) (*store.Build, error) {
	if _, err := l.engine().ReapStale(ctx); err != nil {
		return nil, err
	}
	b, err := l.st.GetBuild(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("no such build: %s", id)
	}
	return b, err
}

func (l *localSource) Logs(ctx context.Context, b *store.Build, follow bool, w io.Writer) error {
	poll := logPollInterval
	if !follow {
		poll = 0
	}
	_, err := l.engine().FollowLogs(ctx, b.ID, 0, poll, func(lines []store.LogLine) {
		var buf strings.Builder
		for _, line := range lines {
			buf.WriteString(line.Text)
			buf.WriteByte('\n')
		}
		io.WriteString(w, buf.String())
	})
	return err
}

func (l *localSource) Export(ctx context.Context, b *store.Build, w io.Writer) error {
	return build.Export(ctx, l.st, b, w, l.reg)
}

func (l *localSource) Repository(flag, app string) (string, error) {
	return repository(flag, app, l.env.Getenv)
}

func (l *localSource) Import(ctx context.Context, app string, r io.Reader, repository string) (*store.Build, error) {
	return build.Import(ctx, l.st, r, app, repository, l.reg, l.env.now)
}

func (l *localSource) Close() error { return l.st.Close() }

// remoteSource is a server's API. Its errors name the server, never the
// token.
type remoteSource struct {
	client *api.Client
	host   string // the server's URL as the user gave it, for messages
	from   string // --host or CONVOX_BUILD_HOST, for messages
}

// newRemoteSource checks the server's URL and the token. The token is
// read from the environment only: on a command line it would be kept in
// shell history and shown by ps.
func newRemoteSource(host, from, token string) (*remoteSource, error) {
	u, err := url.Parse(host)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return nil, usageErrorf("%s %q: want the server's URL, like https://builds.example.com", from, redactURL(host))
	case u.User != nil:
		return nil, usageErrorf("%s %s: put no credentials in the URL; set %s to the server's API token", from, redactURL(host), envToken)
	case u.RawQuery != "" || u.Fragment != "":
		return nil, usageErrorf("%s %s://%s%s?…: want the server's URL without a query or fragment, like https://builds.example.com", from, u.Scheme, u.Host, u.Path)
	}
	if token = strings.TrimSpace(token); token == "" {
		return nil, fmt.Errorf("server %s: %s is not set: set it to the server's API token", host, envToken)
	}
	return &remoteSource{client: &api.Client{BaseURL: host, Token: token}, host: host, from: from}, nil
}

// redactURL is s without the credentials a URL may carry.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		if at := strings.LastIndex(s, "@"); at >= 0 {
			return "…" + s[at:]
		}
		return s
	}
	u.User = nil
	return u.String()
}

// explain makes err from the server say what to do, and never shows the
// token.
func (r *remoteSource) explain(err error) error {
	if err == nil {
		return nil
	}
	var se *api.StatusError
	var netErr *net.OpError
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &se) && se.Code == http.StatusUnauthorized:
		err = fmt.Errorf("server %s refused the API token in %s (%s): set %s to the server's API token", r.host, envToken, se.Message, envToken)
	case errors.As(err, &se):
		err = fmt.Errorf("server %s: %w", r.host, err)
	case errors.Is(err, context.Canceled):
	case errors.As(err, &netErr) || errors.As(err, &dnsErr):
		// The client's message names the server already.
		err = fmt.Errorf("%w (is the server running, and is %s right?)", err, r.from)
	}
	if t := r.client.Token; strings.Contains(err.Error(), t) {
		return errors.New(strings.ReplaceAll(err.Error(), t, "***"))
	}
	return err
}

func (r *remoteSource) List(ctx context.Context, app string, limit int) ([]store.Build, error) {
	list, err := r.client.ListBuilds(ctx, app, limit)
	return list, r.explain(err)
}

func (r *remoteSource) Get(ctx context.Context, id string) (*store.Build, error) {
	b, err := r.client.GetBuild(ctx, "", id)
	return b, r.explain(err)
}

func (r *remoteSource) Logs(ctx context.Context, b *store.Build, follow bool, w io.Writer) error {
	return r.explain(r.client.Logs(ctx, b.App, b.ID, follow, w))
}

func (r *remoteSource) Export(ctx context.Context, b *store.Build, w io.Writer) error {
	return r.explain(r.client.Export(ctx, b.App, b.ID, w))
}

// Repository is the flag: without it the server pushes to its own
// repository for the app.
func (r *remoteSource) Repository(flag, app string) (string, error) { return flag, nil }

func (r *remoteSource) Import(ctx context.Context, app string, rd io.Reader, repository string) (*store.Build, error) {
	// Ask first whether the server answers and takes the token: an
	// export can be gigabytes, and a refusal while it is being sent can
	// reach us as a broken connection instead of the server's answer.
	if _, err := r.client.ListBuilds(ctx, app, 1); err != nil {
		return nil, r.explain(err)
	}
	b, err := r.client.Import(ctx, app, rd, repository)
	return b, r.explain(err)
}

func (r *remoteSource) Close() error { return nil }
