// Command convox-build builds Convox apps with BuildKit and validates their
// convox.yml. All behaviour is in internal/cli; this only wires the process
// to it.
package main

import (
	"context"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/mattn/go-isatty"

	"github.com/convox-build-action/convox-build-action/internal/cli"
)

func main() {
	// BuildKit's client session serves HTTP/2 in this process, and x/net's
	// HTTP/2 server reports a stream cut short (a cancelled build) through
	// the standard logger: such lines are not the user's business.
	log.SetOutput(io.Discard)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ios := &cli.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr,
		IsTerminal: isatty.IsTerminal(os.Stdout.Fd()), InIsTerminal: isatty.IsTerminal(os.Stdin.Fd())}
	code := cli.Main(ctx, os.Args[1:], ios, os.Getenv)
	stop()
	os.Exit(code)
}
