package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/envconfig"
	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

// DefaultBuildkitHost is where buildkitd listens when installed as a
// system service.
const DefaultBuildkitHost = envconfig.DefaultBuildkitHost

// connOptions are the flags that say where builds, records and images go;
// each falls back to the environment (internal/envconfig).
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
		var err error
		if url, err = envconfig.Database(getenv); err != nil {
			return nil, err
		}
	}
	return store.Open(ctx, url)
}

func (o *connOptions) dial(ctx context.Context, getenv func(string) string) (interface {
	build.Solver
	Close() error
}, error) {
	var addrs []string
	var err error
	if o.BuildkitHost != "" {
		if addrs, err = envconfig.SplitHosts(o.BuildkitHost); err != nil {
			return nil, usageErrorf("--buildkit-host: %w", err)
		}
	} else if addrs, err = envconfig.BuildkitHosts(getenv); err != nil {
		return nil, err
	}
	opts := build.DialOptions{CACert: o.TLSCACert, Cert: o.TLSCert, Key: o.TLSKey}
	if len(addrs) == 1 {
		return build.Dial(ctx, addrs[0], opts)
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

// registry returns the registry options from the environment and the
// --registry-auth and --insecure-registry flags.
func (o *connOptions) registry(getenv func(string) string) (registry.Options, error) {
	opts, err := envconfig.RegistryOptions(getenv, o.RegistryAuth)
	if err != nil {
		var ve *envconfig.Error
		if errors.As(err, &ve) {
			return registry.Options{}, err
		}
		return registry.Options{}, &usageError{fmt.Errorf("--registry-auth: %w", err)}
	}
	opts.Insecure = opts.Insecure || o.Insecure
	return opts, nil
}

// repository is the image repository: the flag, or $CONVOX_BUILD_REGISTRY/app.
func repository(flag, app string, getenv func(string) string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	repo, err := envconfig.Repository(getenv, app)
	if errors.Is(err, envconfig.ErrNoRepository) {
		return "", usageErrorf("no image repository: pass --repository registry.example.com/%s or set CONVOX_BUILD_REGISTRY", app)
	}
	return repo, err
}

// appName is the app a command acts on, found as Convox's CLI finds it: the
// --app flag, else the .convox/app file of the working directory, else the
// working directory's name.
func appName(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the app from the working directory: %w (pass --app)", err)
	}
	if b, err := os.ReadFile(filepath.Join(wd, ".convox", "app")); err == nil {
		if name := strings.TrimSpace(string(b)); name != "" {
			return name, nil
		}
	}
	return filepath.Base(wd), nil
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
