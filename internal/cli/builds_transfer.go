package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/convox-build-action/convox-build-action/internal/store"
)

// Convox's refusals to put an archive on, or take one from, a terminal
// (pkg/cli/builds.go).
var (
	errExportToTerminal   = errors.New("pipe this command into a file or specify --file")
	errImportFromTerminal = errors.New("pipe a file into this command or specify --file")
)

func init() {
	register(&Command{
		Path:  []string{"builds", "export"},
		Args:  "BUILD [-f FILE] [-a APP]",
		Short: "Export a build with its images to a file, or to stdout when piped",
		Setup: func(fs *pflag.FlagSet, env *Env) func(context.Context, []string) error {
			var src sourceOptions
			src.flags(fs)
			app := fs.StringP("app", "a", "", "App `name` (checked when given)")
			file := fs.StringP("file", "f", "", "Write to `FILE` (default: stdout, which must not be a terminal)")
			return func(ctx context.Context, args []string) error {
				toStdout := *file == "" || *file == "-"
				if toStdout && env.IO.IsTerminal {
					return errExportToTerminal
				}
				b, s, err := loadBuild(ctx, env, &src, true, args, *app, "builds export")
				if err != nil {
					return err
				}
				defer s.Close()
				return exportRun(ctx, env, s, b, *file, toStdout)
			}
		},
	})
	register(&Command{
		Path:  []string{"builds", "import"},
		Args:  "[-a APP] [-f FILE] [--id] [--repository R]",
		Short: "Import an exported build as a new build and release, from a file or piped stdin",
		Setup: func(fs *pflag.FlagSet, env *Env) func(context.Context, []string) error {
			var src sourceOptions
			src.flags(fs)
			appFlag := fs.StringP("app", "a", "", "App `name` to import into (default: .convox/app, else the working directory's name)")
			file := fs.StringP("file", "f", "", "Read `FILE` (default: stdin, which must not be a terminal)")
			id := fs.Bool("id", false, "Put the output on stderr, release id on stdout")
			repo := fs.String("repository", "", "Image `repository` to push to (default: $CONVOX_BUILD_REGISTRY/APP; with --host, the server's)")
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return usageErrorf("builds import: unexpected argument %q", args[0])
				}
				fromStdin := *file == "" || *file == "-"
				if fromStdin && env.IO.InIsTerminal {
					return errImportFromTerminal
				}
				app, err := appName(*appFlag)
				if err != nil {
					return err
				}
				return importRun(ctx, env, &src, app, *repo, *file, fromStdin, *id)
			}
		},
	})
}

// exportRun writes the export and says so as convox builds export does:
// "Exporting build... OK" on stdout, or on stderr when stdout carries the
// archive.
func exportRun(ctx context.Context, env *Env, src buildSource, b *store.Build, file string, toStdout bool) error {
	out := env.convox()
	if toStdout {
		out.w = env.IO.ErrOut
	}
	out.startf("Exporting build")
	if err := exportTo(ctx, env, src, b, file, toStdout); err != nil {
		return err
	}
	out.ok()
	return nil
}

// exportTo writes the export to stdout or to file: beside it first, then
// renamed, so a failed export never leaves a truncated file under the name
// asked for.
func exportTo(ctx context.Context, env *Env, src buildSource, b *store.Build, file string, toStdout bool) error {
	if toStdout {
		return src.Export(ctx, b, env.IO.Out)
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".export-*.tgz")
	if err != nil {
		return fmt.Errorf("exporting %s: %w", b.ID, err)
	}
	defer os.Remove(tmp.Name())
	err = src.Export(ctx, b, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}

// importRun imports and prints what convox builds import prints:
// "Importing build... OK, RELEASE"; with idOnly that goes to stderr and the
// release ID alone to stdout. The new build's ID follows on stderr.
func importRun(ctx context.Context, env *Env, opts *sourceOptions, app, repoFlag, file string, fromStdin, idOnly bool) error {
	src, err := opts.open(ctx, env, true)
	if err != nil {
		return err
	}
	defer src.Close()
	repo, err := src.Repository(repoFlag, app)
	if err != nil {
		return err
	}
	var r io.Reader = env.IO.In
	name := "stdin"
	if !fromStdin {
		f, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("importing: %w", err)
		}
		defer f.Close()
		r, name = f, file
	}
	out := env.convox()
	if idOnly {
		out.w = env.IO.ErrOut
	}
	out.startf("Importing build")
	b, err := src.Import(ctx, app, r, repo)
	if err != nil {
		return fmt.Errorf("importing %s: %w", name, err)
	}
	out.ok(b.Release)
	fmt.Fprintf(env.IO.ErrOut, "Build:   %s\n", b.ID)
	if idOnly {
		fmt.Fprint(env.IO.Out, b.Release)
	}
	return nil
}
