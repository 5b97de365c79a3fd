package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/convox-build-action/convox-build-action/internal/manifest"
)

func init() {
	register(&Command{
		Path:  []string{"manifest", "validate"},
		Args:  "[-f convox.yml] [flags]",
		Short: "Check a convox.yml and show what each service builds",
		Long: `Check a convox.yml and show what each service builds.

Problems are printed on stderr as FILE:LINE:COL: message; any error exits 1.
Without --env or --env-file the app environment is unknown: ${VAR} becomes
empty, as in Convox, and required environment entries are not checked.`,
		Setup: func(fs *pflag.FlagSet, env *Env) func(context.Context, []string) error {
			opts := &validateOptions{IO: env.IO, Getenv: env.Getenv}
			fs.StringVarP(&opts.File, "file", "f", "convox.yml", "Path of the convox.yml")
			fs.StringArrayVarP(&opts.Env, "env", "e", nil, "Set an app environment variable `KEY=VALUE` (KEY alone takes it from this process; repeatable)")
			fs.StringVar(&opts.EnvFile, "env-file", "", "Read app environment variables from a `file` of KEY=VALUE lines")
			fs.BoolVar(&opts.Strict, "strict", false, "Report each ${VAR} that is not set instead of making it empty")
			fs.BoolVar(&opts.JSON, "json", false, "Print the resolved manifest as JSON")
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return usageErrorf("manifest validate: unexpected argument %q", args[0])
				}
				return validateRun(ctx, opts)
			}
		},
	})
}

// validateOptions are the inputs of manifest validate.
type validateOptions struct {
	IO      *IOStreams
	Getenv  func(string) string
	File    string
	Env     []string
	EnvFile string
	Strict  bool
	JSON    bool
}

func validateRun(ctx context.Context, opts *validateOptions) error {
	env, err := appEnv(opts.EnvFile, opts.Env, opts.Getenv)
	if err != nil {
		return err
	}
	m, err := manifest.Load(ctx, opts.File, manifest.Options{Env: env, Strict: opts.Strict})
	var problems manifest.Problems
	if m != nil {
		problems = append(problems, m.Warnings...)
	}
	if err != nil && !errors.As(err, new(manifest.Problems)) {
		return err
	}
	var errs manifest.Problems
	errors.As(err, &errs)
	problems = append(problems, errs...)
	for _, p := range problems.Sorted() {
		fmt.Fprintln(opts.IO.ErrOut, p.String())
	}
	if err != nil {
		return errSilent
	}
	if opts.JSON {
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	}
	printServices(opts.IO, m)
	return nil
}

// printServices prints each service's build context, Dockerfile and image:
// an aligned table with a header on a terminal, tab-separated otherwise.
func printServices(ios *IOStreams, m *manifest.Manifest) {
	w := tabwriter.NewWriter(ios.Out, 0, 0, 2, ' ', 0)
	sep := "\t"
	if ios.IsTerminal {
		fmt.Fprintln(w, "SERVICE\tCONTEXT\tDOCKERFILE\tIMAGE")
	}
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, s := range m.Services {
		row := strings.Join([]string{s.Name, dash(s.Build.Path), dash(s.Dockerfile()), dash(s.Image)}, sep)
		if ios.IsTerminal {
			fmt.Fprintln(w, row)
		} else {
			fmt.Fprintln(ios.Out, row)
		}
	}
	w.Flush()
}

// appEnv builds the app environment from an env file and KEY=VALUE flags
// (flags win). It is nil when neither is given: the environment is unknown.
func appEnv(file string, pairs []string, getenv func(string) string) (map[string]string, error) {
	if file == "" && len(pairs) == 0 {
		return nil, nil
	}
	env := map[string]string{}
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("reading env file: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			line = strings.TrimPrefix(line, "export ")
			k, v, ok := strings.Cut(line, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return nil, fmt.Errorf("%s:%d: expected KEY=VALUE", file, n)
			}
			env[strings.TrimSpace(k)] = unquote(strings.TrimSpace(v))
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("reading env file %s: %w", file, err)
		}
	}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if k == "" {
			return nil, usageErrorf("--env %q: expected KEY=VALUE", p)
		}
		if !ok && getenv != nil {
			v = getenv(k)
		}
		env[k] = v
	}
	return env, nil
}

// unquote removes one pair of matching surrounding quotes.
func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}
