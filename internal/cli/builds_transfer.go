package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

func init() {
	register(&Command{
		Path:  []string{"builds", "export"},
		Args:  "BUILD -f FILE [-a APP]",
		Short: "Export a build with its images to a file (-f - for stdout)",
		Setup: func(fs *pflag.FlagSet, env *Env) func(context.Context, []string) error {
			var conn connOptions
			conn.flags(fs)
			app := fs.StringP("app", "a", "", "App `name` (checked when given)")
			file := fs.StringP("file", "f", "", "Write to `FILE`; - for stdout")
			return func(ctx context.Context, args []string) error {
				if *file == "" {
					return usageErrorf("builds export: pass --file (-f) FILE, or -f - for stdout")
				}
				b, st, err := loadBuild(ctx, env, &conn, args, *app, "builds export")
				if err != nil {
					return err
				}
				defer st.Close()
				return exportRun(ctx, env, &conn, st, b, *file)
			}
		},
	})
	register(&Command{
		Path:  []string{"builds", "import"},
		Args:  "-a APP -f FILE [--repository R]",
		Short: "Import an exported build as a new build and release (-f - for stdin)",
		Setup: func(fs *pflag.FlagSet, env *Env) func(context.Context, []string) error {
			var conn connOptions
			conn.flags(fs)
			app := fs.StringP("app", "a", "", "App `name` to import into")
			file := fs.StringP("file", "f", "", "Read `FILE`; - for stdin")
			repo := fs.String("repository", "", "Image `repository` to push to (default: $CONVOX_BUILD_REGISTRY/APP)")
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return usageErrorf("builds import: unexpected argument %q", args[0])
				}
				if *app == "" || *file == "" {
					return usageErrorf("builds import: pass --app (-a) and --file (-f)")
				}
				return importRun(ctx, env, &conn, *app, *repo, *file)
			}
		},
	})
}

func exportRun(ctx context.Context, env *Env, conn *connOptions, st store.Store, b *store.Build, file string) error {
	reg, err := conn.registry(env.Getenv)
	if err != nil {
		return err
	}
	status := env.IO.Out
	if file == "-" {
		status = env.IO.ErrOut // stdout carries the export
	}
	fmt.Fprint(status, "Exporting build... ")
	if err := exportTo(ctx, env, st, b, file, reg); err != nil {
		fmt.Fprintln(status, "ERROR")
		return err
	}
	fmt.Fprintln(status, "OK")
	return nil
}

// exportTo writes the export to stdout ("-") or to file: beside it first,
// then renamed, so a failed export never leaves a truncated file under the
// name asked for.
func exportTo(ctx context.Context, env *Env, st store.Store, b *store.Build, file string, reg registry.Options) error {
	if file == "-" {
		return build.Export(ctx, st, b, env.IO.Out, reg)
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".export-*.tgz")
	if err != nil {
		return fmt.Errorf("exporting %s: %w", b.ID, err)
	}
	defer os.Remove(tmp.Name())
	err = build.Export(ctx, st, b, tmp, reg)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}

func importRun(ctx context.Context, env *Env, conn *connOptions, app, repoFlag, file string) error {
	repo, err := repository(repoFlag, app, env.Getenv)
	if err != nil {
		return err
	}
	reg, err := conn.registry(env.Getenv)
	if err != nil {
		return err
	}
	var r io.Reader = env.IO.In
	name := "stdin"
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("importing: %w", err)
		}
		defer f.Close()
		r, name = f, file
	}
	st, err := conn.openStore(ctx, env.Getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprint(env.IO.Out, "Importing build... ")
	b, err := build.Import(ctx, st, r, app, repo, reg, env.now)
	if err != nil {
		fmt.Fprintln(env.IO.Out, "ERROR")
		return fmt.Errorf("importing %s: %w", name, err)
	}
	fmt.Fprintf(env.IO.Out, "OK\nBuild: %s\nRelease: %s\n", b.ID, b.Release)
	return nil
}
