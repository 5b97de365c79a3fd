package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

func init() {
	register(&Command{
		Path:  []string{"builds"},
		Args:  "[-a APP] [-l N]",
		Short: "List an app's builds, newest first",
		Setup: func(fs *pflag.FlagSet, env *Env) func(context.Context, []string) error {
			var src sourceOptions
			src.flags(fs)
			appFlag := fs.StringP("app", "a", "", "App `name` (default: .convox/app, else the working directory's name)")
			limit := fs.IntP("limit", "l", 10, "Show at most `N` builds (0: all)")
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return usageErrorf("builds: unexpected argument %q (did you mean 'builds info %s'?)", args[0], args[0])
				}
				if *limit < 0 {
					return usageErrorf("builds: --limit %d: want 0 or more", *limit)
				}
				app, err := appName(*appFlag)
				if err != nil {
					return err
				}
				s, err := src.open(ctx, env, false)
				if err != nil {
					return err
				}
				defer s.Close()
				list, err := s.List(ctx, app, *limit)
				if err != nil {
					return err
				}
				printBuilds(env, list)
				return nil
			}
		},
	})
	register(&Command{
		Path:  []string{"builds", "info"},
		Args:  "BUILD [-a APP]",
		Short: "Show a build",
		Setup: func(fs *pflag.FlagSet, env *Env) func(context.Context, []string) error {
			var src sourceOptions
			src.flags(fs)
			app := fs.StringP("app", "a", "", "App `name` (checked when given)")
			return func(ctx context.Context, args []string) error {
				b, s, err := loadBuild(ctx, env, &src, false, args, *app, "builds info")
				if err != nil {
					return err
				}
				s.Close()
				printBuildInfo(env, b)
				return nil
			}
		},
	})
	register(&Command{
		Path:  []string{"builds", "logs"},
		Args:  "BUILD [-a APP]",
		Short: "Print a build's log, following it while the build runs",
		Setup: func(fs *pflag.FlagSet, env *Env) func(context.Context, []string) error {
			var src sourceOptions
			src.flags(fs)
			app := fs.StringP("app", "a", "", "App `name` (checked when given)")
			follow := fs.Bool("follow", true, "Keep printing while the build runs")
			return func(ctx context.Context, args []string) error {
				b, s, err := loadBuild(ctx, env, &src, false, args, *app, "builds logs")
				if err != nil {
					return err
				}
				defer s.Close()
				return s.Logs(ctx, b, *follow, env.IO.Out)
			}
		},
	})
}

// logPollInterval is how often `builds logs` looks for new lines.
const logPollInterval = 200 * time.Millisecond

// loadBuild opens the source of builds and reads the build named by
// args[0].
func loadBuild(ctx context.Context, env *Env, src *sourceOptions, images bool, args []string, app, cmd string) (*store.Build, buildSource, error) {
	if len(args) != 1 {
		return nil, nil, usageErrorf("%s: expected one build ID", cmd)
	}
	if err := build.CheckBuildID(args[0]); err != nil {
		return nil, nil, err
	}
	s, err := src.open(ctx, env, images)
	if err != nil {
		return nil, nil, err
	}
	b, err := s.Get(ctx, args[0])
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	if app != "" && b.App != app {
		s.Close()
		return nil, nil, fmt.Errorf("build %s belongs to app %s, not %s", b.ID, b.App, app)
	}
	return b, s, nil
}

// printBuilds prints the builds table of convox builds.
func printBuilds(env *Env, list []store.Build) {
	now := env.now()
	var rows [][]string
	for _, b := range list {
		rows = append(rows, []string{b.ID, string(b.Status), b.Release, ago(b.Started, now), duration(b.Started, b.Ended), b.Description})
	}
	env.convox().table([]string{"ID", "STATUS", "RELEASE", "STARTED", "ELAPSED", "DESCRIPTION"}, rows)
}

// printBuildInfo prints what convox builds info prints, then, after it,
// what we know besides: the git commit, why a build failed, and each
// service's image with its digest.
func printBuildInfo(env *Env, b *store.Build) {
	now := env.now()
	rows := []infoRow{
		{"Id", b.ID},
		{"Status", string(b.Status)},
		{"Release", b.Release},
		{"Description", b.Description},
		{"Started", ago(b.Started, now)},
		{"Elapsed", duration(b.Started, b.Ended)},
	}
	if b.GitSHA != "" {
		rows = append(rows, infoRow{"Git SHA", b.GitSHA})
	}
	if b.Reason != "" {
		rows = append(rows, infoRow{"Reason", b.Reason})
	}
	var images []string
	for _, s := range b.Services {
		images = append(images, s.Service+"  "+s.Image+"@"+s.Digest)
	}
	if len(images) > 0 {
		rows = append(rows, infoRow{"Images", strings.Join(images, "\n")})
	}
	env.convox().info(rows)
}
