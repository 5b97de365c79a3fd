// Command action is the GitHub container action's entrypoint: it wires the
// process environment and standard output into internal/action and exits
// 1 when the build fails.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/convox-build-action/convox-build-action/internal/action"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := action.Run(ctx, action.Config{Getenv: os.Getenv, Stdout: os.Stdout})
	if err != nil {
		var failed *action.Failed
		if !errors.As(err, &failed) {
			// Not a build failure (the log says those): say what broke, as
			// one workflow command.
			fmt.Fprintf(os.Stdout, "::error::%s\n", strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(err.Error()))
		}
		os.Exit(1)
	}
}
