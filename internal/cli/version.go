package cli

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/spf13/pflag"
)

// Version is the release version, set at link time with
// -ldflags "-X github.com/convox-build-action/convox-build-action/internal/cli.Version=v1.2.3";
// when empty, the module version from the build information is used.
var Version = ""

func init() {
	register(&Command{
		Path:  []string{"version"},
		Short: "Print the version of convox-build",
		Setup: func(fs *pflag.FlagSet, env *Env) func(context.Context, []string) error {
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return usageErrorf("version: unexpected argument %q", args[0])
				}
				fmt.Fprintf(env.IO.Out, "convox-build %s\n", version())
				return nil
			}
		},
	})
}

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
