// Package cli is the convox-build command line: a table of commands, each
// in its own file, dispatched by Main. Commands parse flags into an options
// struct and call a run function that does the work through internal
// packages and writes to IOStreams, so tests can capture exact output.
//
// To add a command, write a file with an init function that calls
// register(&Command{Path: []string{"builds", "info"}, ...}).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// IOStreams are the command's standard streams.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// IsTerminal says whether Out is a terminal: Convox's commands colour
	// their output there (and print the same text without colour
	// otherwise), `builds export` will not write an archive there, and
	// `manifest validate` aligns its table for people.
	IsTerminal bool
	// InIsTerminal says whether In is a terminal: `builds import` reads an
	// archive from In only when it is not.
	InIsTerminal bool
}

// Env is what a command gets besides its flags: the streams and the
// process environment.
type Env struct {
	IO     *IOStreams
	Getenv func(string) string
	// Now is the clock (default time.Now); tests fix it.
	Now func() time.Time
}

// Command is one convox-build command.
type Command struct {
	// Path are the words that select the command: {"manifest", "validate"}.
	Path []string
	// Args is the synopsis after the path, e.g. "[-f convox.yml] [flags]".
	Args string
	// Short is a one-line description for the command list.
	Short string
	// Long is the help text; Short when empty.
	Long string
	// Setup registers the command's flags on fs and returns the function
	// that runs the command once fs is parsed, given the positional
	// arguments.
	Setup func(fs *pflag.FlagSet, env *Env) func(ctx context.Context, args []string) error
}

var commands []*Command

// register adds a command; each command's file calls it from init.
func register(c *Command) {
	commands = append(commands, c)
	sort.Slice(commands, func(i, j int) bool {
		return strings.Join(commands[i].Path, " ") < strings.Join(commands[j].Path, " ")
	})
}

// errSilent is returned by a command that has already told the user what
// went wrong; it exits 1 without printing more.
var errSilent = errors.New("silent error")

// usageError is a mistake in the command line; it exits 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// exitCode is the one place errors become exit codes: 0 for success, 2 for
// command-line mistakes, 130 when interrupted, 1 for anything else.
func exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		return 2
	case errors.Is(err, context.Canceled):
		return 130
	default:
		return 1
	}
}

// Main runs convox-build with args (without the program name) and returns
// the exit code.
func Main(ctx context.Context, args []string, ios *IOStreams, getenv func(string) string) int {
	return runCommand(ctx, args, &Env{IO: ios, Getenv: getenv})
}

// runCommand runs a command and reports its error as Convox does ("ERROR: ..." on
// stderr), adding a pointer to the help for a command-line mistake.
func runCommand(ctx context.Context, args []string, env *Env) int {
	err := dispatch(ctx, args, env)
	if err != nil && !errors.Is(err, errSilent) {
		printError(env.IO, err)
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(env.IO.ErrOut, "Run 'convox-build --help' for usage.")
		}
	}
	return exitCode(err)
}

func dispatch(ctx context.Context, args []string, env *Env) error {
	// --host may come before the command words, as a global flag:
	// convox-build --host URL builds info B. It moves to the command's
	// flags.
	global, args := leadingHost(args)
	switch {
	case len(global) > 0 && len(args) == 0:
		return usageErrorf("--host: no command (--host works with %s)", remoteCommands)
	case len(args) == 1 && args[0] == "--host":
		return usageErrorf("--host: want the server's URL, like --host https://builds.example.com")
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 && args[0] == "help" {
			return dispatch(ctx, append(args[1:], "--help"), env)
		}
		rootUsage(env.IO.Out, nil)
		return nil
	}
	c, rest := find(args)
	if c == nil {
		var words []string
		for _, a := range args {
			if strings.HasPrefix(a, "-") {
				break
			}
			words = append(words, a)
		}
		if group := matching(words); len(group) > 0 && len(words) > 0 {
			if len(rest) > 0 && (rest[len(rest)-1] == "--help" || rest[len(rest)-1] == "-h") {
				rootUsage(env.IO.Out, group)
				return nil
			}
			rootUsage(env.IO.ErrOut, group)
			return &usageError{errSilent}
		}
		return usageErrorf("unknown command %q", strings.Join(words, " "))
	}
	rest = append(global, rest...)
	fs := pflag.NewFlagSet(strings.Join(c.Path, " "), pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SetInterspersed(true)
	fs.SortFlags = false
	run := c.Setup(fs, env)
	help := fs.BoolP("help", "h", false, "Show help for this command")
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			commandUsage(env.IO.Out, c, fs)
			return nil
		}
		if fs.Lookup("host") == nil && err.Error() == "unknown flag: --host" {
			return usageErrorf("%s runs here, not on a server: --host works with %s", strings.Join(c.Path, " "), remoteCommands)
		}
		return &usageError{fmt.Errorf("%s: %w", strings.Join(c.Path, " "), err)}
	}
	if *help {
		commandUsage(env.IO.Out, c, fs)
		return nil
	}
	return run(ctx, fs.Args())
}

// remoteCommands are the commands that take --host.
const remoteCommands = "builds, builds info, builds logs, builds export and builds import"

// leadingHost splits the --host URL (or --host=URL) flags before the
// command words from the rest of args.
func leadingHost(args []string) (host, rest []string) {
	for len(args) > 0 {
		switch {
		case args[0] == "--host" && len(args) > 1:
			host, args = append(host, args[0], args[1]), args[2:]
		case strings.HasPrefix(args[0], "--host="):
			host, args = append(host, args[0]), args[1:]
		default:
			return host, args
		}
	}
	return host, args
}

// find returns the command whose path is the longest prefix of args, and
// the arguments after it.
func find(args []string) (*Command, []string) {
	var best *Command
	for _, c := range commands {
		if len(c.Path) <= len(args) && equal(c.Path, args[:len(c.Path)]) && (best == nil || len(c.Path) > len(best.Path)) {
			best = c
		}
	}
	if best == nil {
		return nil, args
	}
	return best, args[len(best.Path):]
}

// matching returns the commands whose path starts with words.
func matching(words []string) []*Command {
	var out []*Command
	for _, c := range commands {
		if len(words) <= len(c.Path) && equal(c.Path[:len(words)], words) {
			out = append(out, c)
		}
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// rootUsage lists cmds, or all commands when cmds is nil.
func rootUsage(w io.Writer, cmds []*Command) {
	if cmds == nil {
		cmds = commands
		fmt.Fprint(w, "Build Convox apps with BuildKit.\n\n")
	}
	fmt.Fprint(w, "Usage:\n  convox-build <command> [flags]\n\nCommands:\n")
	width := 0
	for _, c := range cmds {
		width = max(width, len(strings.Join(c.Path, " ")))
	}
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-*s  %s\n", width, strings.Join(c.Path, " "), c.Short)
	}
	fmt.Fprint(w, "\nRun 'convox-build <command> --help' for a command's flags.\n")
}

func commandUsage(w io.Writer, c *Command, fs *pflag.FlagSet) {
	long := c.Long
	if long == "" {
		long = c.Short
	}
	fmt.Fprintf(w, "%s\n\nUsage:\n  convox-build %s", strings.TrimSpace(long), strings.Join(c.Path, " "))
	if c.Args != "" {
		fmt.Fprintf(w, " %s", c.Args)
	}
	fmt.Fprintf(w, "\n\nFlags:\n%s", fs.FlagUsages())
}
