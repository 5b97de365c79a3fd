package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

// DefaultBuildkitHost is where buildkitd listens when installed as a
// system service.
const DefaultBuildkitHost = "unix:///run/buildkit/buildkitd.sock"

// connOptions are the flags that say where builds, records and images go.
type connOptions struct {
	BuildkitHost string
	TLSCACert    string
	TLSCert      string
	TLSKey       string
	Database     string
	RegistryAuth []string
	Insecure     bool
}

func (o *connOptions) flags(fs *pflag.FlagSet) {
	fs.StringVar(&o.BuildkitHost, "buildkit-host", "", "buildkitd `address`, or several separated by commas to spread builds over them (default: $BUILDKIT_HOST or "+DefaultBuildkitHost+")")
	fs.StringVar(&o.TLSCACert, "tlscacert", "", "CA certificate `file` for a tcp:// buildkitd")
	fs.StringVar(&o.TLSCert, "tlscert", "", "Client certificate `file` for a tcp:// buildkitd")
	fs.StringVar(&o.TLSKey, "tlskey", "", "Client key `file` for a tcp:// buildkitd")
	fs.StringVar(&o.Database, "database", "", "Database `URL` (default: $DATABASE_URL, else a SQLite file in the user's data directory)")
	fs.StringArrayVar(&o.RegistryAuth, "registry-auth", nil, "Registry credentials `host=user:password` (repeatable; default: Docker's config)")
	fs.BoolVar(&o.Insecure, "insecure-registry", false, "Allow plain HTTP registries (default: $CONVOX_BUILD_REGISTRY_INSECURE)")
}

func (o *connOptions) openStore(ctx context.Context, getenv func(string) string) (store.Store, error) {
	url := o.Database
	if url == "" {
		url = getenv("DATABASE_URL")
	}
	return store.Open(ctx, url)
}

func (o *connOptions) dial(ctx context.Context, getenv func(string) string) (interface {
	build.Solver
	Close() error
}, error) {
	addr := o.BuildkitHost
	if addr == "" {
		addr = getenv("BUILDKIT_HOST")
	}
	if addr == "" {
		addr = DefaultBuildkitHost
	}
	opts := build.DialOptions{CACert: o.TLSCACert, Cert: o.TLSCert, Key: o.TLSKey}
	addrs := strings.Split(addr, ",")
	if len(addrs) == 1 {
		return build.Dial(ctx, addr, opts)
	}
	pool, closeAll, err := build.DialPool(ctx, addrs, opts)
	if err != nil {
		return nil, err
	}
	return closingSolver{pool, closeAll}, nil
}

// closingSolver is a pool of buildkitd hosts with its Close.
type closingSolver struct {
	build.Solver
	close func() error
}

func (c closingSolver) Close() error { return c.close() }

func (o *connOptions) registry(getenv func(string) string) (registry.Options, error) {
	auth, err := registry.NewAuth(registry.AuthOptions{
		Pairs:             o.RegistryAuth,
		DockerHubUsername: getenv("DOCKER_HUB_USERNAME"),
		DockerHubPassword: getenv("DOCKER_HUB_PASSWORD"),
		DockerConfigDir:   getenv("DOCKER_CONFIG"),
	})
	if err != nil {
		return registry.Options{}, &usageError{fmt.Errorf("--registry-auth: %w", err)}
	}
	insecure := o.Insecure
	if v := getenv("CONVOX_BUILD_REGISTRY_INSECURE"); v != "" && !insecure {
		if insecure, err = strconv.ParseBool(v); err != nil {
			return registry.Options{}, usageErrorf("CONVOX_BUILD_REGISTRY_INSECURE=%q: want true or false", v)
		}
	}
	return registry.Options{Auth: auth, Insecure: insecure}, nil
}

// now is the command's clock.
func (e *Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// engineFor is an engine on st, without a solver: enough to fail
// abandoned builds and follow logs. CONVOX_BUILD_HEARTBEAT_INTERVAL (a Go
// duration; default 10s) sets how often a running build marks itself
// alive, and so how soon one whose process died counts as abandoned (six
// intervals); every process sharing a database must agree on it.
func engineFor(st store.Store, env *Env) *build.Engine {
	e := &build.Engine{Store: st, Now: env.now}
	if d, err := time.ParseDuration(env.Getenv("CONVOX_BUILD_HEARTBEAT_INTERVAL")); err == nil && d > 0 {
		e.HeartbeatInterval = d
	}
	return e
}
