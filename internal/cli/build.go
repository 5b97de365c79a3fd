package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/envconfig"
)

type buildOptions struct {
	conn       connOptions
	App        string
	Repository string
	Manifest   string
	Services   []string
	BuildArgs  []string
	// BuildArgAlias holds --build-arg, the alias of Convox's --build-args.
	BuildArgAlias []string
	Secrets       []string
	Env           []string
	EnvFile       string
	NoCache       bool
	Development   bool
	Description   string
	IDOnly        bool
	Cache         string
	Platforms     []string
	Parallel      int
}

func init() {
	register(&Command{
		Path:  []string{"build"},
		Args:  "[DIR] [flags]",
		Short: "Build every service of an app and create a release",
		Long: `Build every service of the app in DIR (default: the current directory) with
BuildKit, push <repository>:<service>.<BUILDID> for each, and create a Release.
Prints what convox build prints, ending with the Build: and Release: lines;
each image's digest goes to stderr.

Services that share a build spec are built once; all build at once.`,
		Setup: func(fs *pflag.FlagSet, env *Env) func(context.Context, []string) error {
			opts := &buildOptions{}
			opts.conn.flags(fs)
			fs.StringVarP(&opts.App, "app", "a", "", "App `name` (default: .convox/app, else the working directory's name)")
			fs.StringVar(&opts.Repository, "repository", "", "Image `repository` to push to (default: $CONVOX_BUILD_REGISTRY/APP)")
			fs.StringVarP(&opts.Manifest, "manifest", "m", "convox.yml", "Manifest `file`, relative to DIR")
			fs.StringArrayVarP(&opts.Services, "service", "s", nil, "Build only this `service` (repeatable)")
			fs.StringArrayVar(&opts.BuildArgs, "build-args", nil, "Set a build argument `KEY=VALUE`, or KEY to take its value from the environment (repeatable)")
			fs.StringArrayVar(&opts.BuildArgAlias, "build-arg", nil, "Alias of --build-args")
			fs.MarkHidden("build-arg")
			fs.StringArrayVar(&opts.Secrets, "secret", nil, "Expose a BuildKit secret: `id=ID,env=VAR` or id=ID,src=FILE (repeatable)")
			fs.StringArrayVarP(&opts.Env, "env", "e", nil, "Set an app environment variable `KEY=VALUE` (repeatable)")
			fs.StringVar(&opts.EnvFile, "env-file", "", "Read app environment variables from a `file`")
			fs.BoolVar(&opts.NoCache, "no-cache", false, "Build without any cache")
			fs.BoolVar(&opts.Development, "development", false, "Build each Dockerfile's development stage")
			fs.StringVarP(&opts.Description, "description", "d", "", "Build `description` (default: from the git HEAD)")
			fs.BoolVar(&opts.IDOnly, "id", false, "Put logs on stderr, release id on stdout")
			fs.StringVar(&opts.Cache, "cache", "registry", "Cache: registry, inline, none, local=`DIR` or gha")
			fs.StringArrayVar(&opts.Platforms, "platform", nil, "Target `platform`, e.g. linux/amd64 (repeatable)")
			fs.IntVar(&opts.Parallel, "parallel", 0, "Build at most `N` specs at once (default: all)")
			return func(ctx context.Context, args []string) error {
				if len(args) > 1 {
					return usageErrorf("build: expected at most one directory, got %q", args)
				}
				dir := "."
				if len(args) == 1 {
					dir = args[0]
				}
				return buildRun(ctx, env, dir, opts)
			}
		},
	})
}

func buildRun(ctx context.Context, env *Env, dir string, opts *buildOptions) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	app, err := appName(opts.App)
	if err != nil {
		return err
	}
	appEnvironment, err := appEnv(opts.EnvFile, opts.Env, env.Getenv)
	if err != nil {
		return err
	}
	args, err := buildArgs(append(append([]string{}, opts.BuildArgs...), opts.BuildArgAlias...), env.Getenv)
	if err != nil {
		return err
	}
	secrets, err := parseSecrets(opts.Secrets, env.Getenv)
	if err != nil {
		return err
	}
	cache, err := parseCache(opts.Cache, env.Getenv)
	if err != nil {
		return err
	}
	repo, err := repository(opts.Repository, app, env.Getenv)
	if err != nil {
		return err
	}
	reg, err := opts.conn.registry(env.Getenv)
	if err != nil {
		return err
	}

	// As convox build --id: everything on stderr, the release ID alone on
	// stdout.
	out := env.convox()
	if opts.IDOnly {
		out.w = env.IO.ErrOut
	}
	out.startf("Packaging source")
	st, err := opts.conn.openStore(ctx, env.Getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	solver, err := opts.conn.dial(ctx, env.Getenv)
	if err != nil {
		return err
	}
	defer solver.Close()

	eng := engineFor(st, env)
	eng.Solver = solver
	b, err := eng.Run(ctx, build.Request{
		App: app, Repository: repo, SourceDir: abs, Manifest: opts.Manifest, Env: appEnvironment,
		Services: opts.Services, BuildArgs: args, Secrets: secrets, NoCache: opts.NoCache,
		Development: opts.Development, Platforms: opts.Platforms, Cache: cache, Registry: reg,
		Description: opts.Description, MaxParallel: opts.Parallel,
		Sink: build.SinkFunc(func(e build.Event) {
			switch e.Type {
			case build.BuildStarted:
				out.ok()
				out.startf("Starting build")
				out.ok()
			case build.LogLine:
				fmt.Fprintln(out.w, e.Line)
			case build.LogsDropped:
				fmt.Fprintf(out.w, "(%d log lines not shown here: the terminal fell behind; 'convox-build builds logs %s' has them all)\n", e.Dropped, e.BuildID)
			}
		}),
	})
	if err != nil {
		if b != nil {
			return fmt.Errorf("build %s failed: %w", b.ID, err)
		}
		return explainInputError(err)
	}
	// Ours, not Convox's: each image with its digest, on stderr so that
	// stdout stays what convox build prints.
	for _, s := range b.Services {
		fmt.Fprintf(env.IO.ErrOut, "Image: %s@%s\n", s.Image, s.Digest)
	}
	out.writef("Build:   <build>%s</build>\n", b.ID)
	out.writef("Release: <release>%s</release>\n", b.Release)
	if opts.IDOnly {
		fmt.Fprint(env.IO.Out, b.Release)
	}
	return nil
}

// buildArgs parses --build-args as Convox does: KEY=VALUE, or KEY alone to
// take the value of the environment variable KEY (skipped when it is unset
// or empty).
func buildArgs(specs []string, getenv func(string) string) (map[string]string, error) {
	out := map[string]string{}
	for _, spec := range specs {
		k, v, ok := strings.Cut(spec, "=")
		if k == "" {
			return nil, usageErrorf("--build-args %q: expected KEY=VALUE or KEY", spec)
		}
		if !ok {
			if v = getenv(k); v == "" {
				continue
			}
		}
		out[k] = v
	}
	return out, nil
}

// parseSecrets reads --secret id=ID,env=VAR and id=ID,src=FILE (as
// docker buildx does); id alone reads the env var of the same name.
func parseSecrets(specs []string, getenv func(string) string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, spec := range specs {
		var id, envName, src string
		for _, part := range strings.Split(spec, ",") {
			k, v, _ := strings.Cut(part, "=")
			switch k {
			case "id":
				id = v
			case "env":
				envName = v
			case "src", "source":
				src = v
			default:
				return nil, usageErrorf("--secret %q: unknown field %q (use id=ID,env=VAR or id=ID,src=FILE)", spec, k)
			}
		}
		if id == "" {
			return nil, usageErrorf("--secret %q: no id", spec)
		}
		switch {
		case src != "":
			b, err := os.ReadFile(src)
			if err != nil {
				return nil, fmt.Errorf("--secret %s: %w", id, err)
			}
			out[id] = b
		default:
			if envName == "" {
				envName = id
			}
			v := getenv(envName)
			if v == "" {
				return nil, usageErrorf("--secret %s: environment variable %s is empty or unset", id, envName)
			}
			out[id] = []byte(v)
		}
	}
	return out, nil
}

// parseCache reads --cache; gha takes the Actions cache service's address
// and token from the environment a job gives its steps.
func parseCache(s string, getenv func(string) string) (build.Cache, error) {
	typ, arg, _ := strings.Cut(s, "=")
	switch typ {
	case "local":
		if arg == "" {
			return build.Cache{}, usageErrorf("--cache local needs a directory: --cache local=DIR")
		}
		return build.Cache{Type: build.CacheLocal, Dir: arg}, nil
	case "registry", "inline", "gha", "none":
		if arg != "" {
			return build.Cache{}, usageErrorf("--cache %s takes no value", typ)
		}
		c := build.Cache{Type: typ}
		if typ == build.CacheGHA {
			gha := envconfig.GitHubActionsCache(getenv)
			c.GHAURL, c.GHAURLV2, c.GHAToken = gha.URL, gha.URLV2, gha.Token
		}
		return c, nil
	}
	return build.Cache{}, usageErrorf("--cache %q: use registry, inline, none, local=DIR or gha", s)
}

// explainInputError adds to the engine's input errors what to change on
// the command line.
func explainInputError(err error) error {
	var fix string
	switch build.InputField(err) {
	case build.FieldApp:
		fix = "pass --app (-a)"
	case build.FieldRepository:
		fix = "pass --repository (or set CONVOX_BUILD_REGISTRY)"
	case build.FieldManifest:
		if errors.Is(err, build.ErrNoManifest) {
			fix = "pass --manifest for a convox.yml of another name"
		}
	case build.FieldCache:
		if errors.Is(err, build.ErrNoGHACache) {
			fix = "--cache gha works only inside a GitHub Actions job (it needs ACTIONS_RUNTIME_TOKEN and ACTIONS_RESULTS_URL or ACTIONS_CACHE_URL)"
		}
	}
	if fix == "" {
		return err
	}
	return fmt.Errorf("%w: %s", err, fix)
}
