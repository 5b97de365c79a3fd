package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

func init() {
	register(&Command{
		Path:  []string{"builds"},
		Args:  "-a APP [--limit N]",
		Short: "List an app's builds, newest first",
		Setup: func(fs *pflag.FlagSet, env *Env) func(context.Context, []string) error {
			var conn connOptions
			conn.flags(fs)
			app := fs.StringP("app", "a", "", "App `name`")
			limit := fs.Int("limit", 20, "Show at most `N` builds")
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return usageErrorf("builds: unexpected argument %q (did you mean 'builds info %s'?)", args[0], args[0])
				}
				if *app == "" {
					return usageErrorf("builds: pass --app (-a)")
				}
				st, err := conn.openStore(ctx, env.Getenv)
				if err != nil {
					return err
				}
				defer st.Close()
				if _, err := engineFor(st, env).ReapStale(ctx); err != nil {
					return err
				}
				list, err := st.ListBuilds(ctx, *app, *limit)
				if err != nil {
					return fmt.Errorf("listing builds of %s: %w", *app, err)
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

func printBuilds(env *Env, list []store.Build) {
	now := env.now()
	rows := [][]string{{"ID", "STATUS", "RELEASE", "STARTED", "ELAPSED", "DESCRIPTION"}}
	for _, b := range list {
		rows = append(rows, []string{b.ID, string(b.Status), b.Release, ago(b.Started, now), elapsed(b, now), b.Description})
	}
	printTable(env.IO, rows)
}

// printTable aligns rows for a terminal and separates them with tabs when
// piped.
func printTable(ios *IOStreams, rows [][]string) {
	if !ios.IsTerminal {
		for _, r := range rows {
			fmt.Fprintln(ios.Out, strings.Join(r, "\t"))
		}
		return
	}
	tw := tabwriter.NewWriter(ios.Out, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.TrimRight(strings.Join(r, "\t"), "\t"))
	}
	tw.Flush()
}

func printBuildInfo(env *Env, b *store.Build) {
	now := env.now()
	rows := [][2]string{
		{"ID", b.ID},
		{"Status", string(b.Status)},
		{"Release", b.Release},
		{"Description", b.Description},
		{"Started", ago(b.Started, now)},
		{"Elapsed", elapsed(*b, now)},
	}
	if b.GitSHA != "" {
		rows = append(rows, [2]string{"Git SHA", b.GitSHA})
	}
	if b.Reason != "" {
		rows = append(rows, [2]string{"Reason", b.Reason})
	}
	for i, s := range b.Services {
		key := ""
		if i == 0 {
			key = "Images"
		}
		rows = append(rows, [2]string{key, s.Service + "  " + s.Image + "@" + s.Digest})
	}
	for _, r := range rows {
		fmt.Fprintln(env.IO.Out, strings.TrimRight(fmt.Sprintf("%-12s %s", r[0], r[1]), " "))
	}
}

// ago says how long before now t was, as Convox prints it.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	unit := func(n int, name string) string {
		if n == 1 {
			return "1 " + name + " ago"
		}
		return fmt.Sprintf("%d %ss ago", n, name)
	}
	switch {
	case d < time.Second:
		return "now"
	case d < time.Minute:
		return unit(int(d/time.Second), "second")
	case d < time.Hour:
		return unit(int(d/time.Minute), "minute")
	case d < 24*time.Hour:
		return unit(int(d/time.Hour), "hour")
	default:
		return unit(int(d/(24*time.Hour)), "day")
	}
}

// elapsed is the build's duration so far, in whole seconds.
func elapsed(b store.Build, now time.Time) string {
	if b.Started.IsZero() {
		return ""
	}
	end := b.Ended
	if end.IsZero() {
		end = now
	}
	return end.Sub(b.Started).Truncate(time.Second).String()
}
