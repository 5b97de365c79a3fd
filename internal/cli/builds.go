package cli

import (
	"context"
	"errors"
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
			var conn connOptions
			conn.flags(fs)
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
				st, err := conn.openStore(ctx, env.Getenv)
				if err != nil {
					return err
				}
				defer st.Close()
				if _, err := engineFor(st, env).ReapStale(ctx); err != nil {
					return err
				}
				list, err := st.ListBuilds(ctx, app, *limit)
				if err != nil {
					return fmt.Errorf("listing builds of %s: %w", app, err)
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
			var conn connOptions
			conn.flags(fs)
			app := fs.StringP("app", "a", "", "App `name` (checked when given)")
			return func(ctx context.Context, args []string) error {
				b, st, err := loadBuild(ctx, env, &conn, args, *app, "builds info")
				if err != nil {
					return err
				}
				st.Close()
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
			var conn connOptions
			conn.flags(fs)
			app := fs.StringP("app", "a", "", "App `name` (checked when given)")
			follow := fs.Bool("follow", true, "Keep printing while the build runs")
			return func(ctx context.Context, args []string) error {
				b, st, err := loadBuild(ctx, env, &conn, args, *app, "builds logs")
				if err != nil {
					return err
				}
				defer st.Close()
				poll := logPollInterval
				if !*follow {
					poll = 0
				}
				_, err = engineFor(st, env).FollowLogs(ctx, b.ID, 0, poll, func(lines []store.LogLine) {
					for _, l := range lines {
						fmt.Fprintln(env.IO.Out, l.Text)
					}
				})
				return err
			}
		},
	})
}

// logPollInterval is how often `builds logs` looks for new lines.
const logPollInterval = 200 * time.Millisecond

// loadBuild opens the store and reads the build named by args[0].
func loadBuild(ctx context.Context, env *Env, conn *connOptions, args []string, app, cmd string) (*store.Build, store.Store, error) {
	if len(args) != 1 {
		return nil, nil, usageErrorf("%s: expected one build ID", cmd)
	}
	if err := build.CheckBuildID(args[0]); err != nil {
		return nil, nil, err
	}
	st, err := conn.openStore(ctx, env.Getenv)
	if err != nil {
		return nil, nil, err
	}
	// A build whose process died shows as failed, not running forever.
	if _, err := engineFor(st, env).ReapStale(ctx); err != nil {
		st.Close()
		return nil, nil, err
	}
	b, err := st.GetBuild(ctx, args[0])
	if err != nil {
		st.Close()
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, fmt.Errorf("no such build: %s", args[0])
		}
		return nil, nil, err
	}
	if app != "" && b.App != app {
		st.Close()
		return nil, nil, fmt.Errorf("build %s belongs to app %s, not %s", b.ID, b.App, app)
	}
	return b, st, nil
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
