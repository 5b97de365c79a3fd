// Command devenv runs the local build environment behind `make env`: a
// registry on 127.0.0.1 seeded with busybox and a buildkitd that mirrors
// docker.io to it, as background daemons under a state directory. `up`
// prints the variables that point convox-build at them, the registry
// being also the docker.io mirror of convox-build's own pulls.
//
//	devenv up [--dir D]     start what is not running; print shell exports
//	devenv down [--dir D]   stop both
//	devenv registry ...     serve the registry (what `up` runs in the background)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/convox-build-action/convox-build-action/internal/devenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "devenv:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: devenv up|down|registry [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	dir := fs.String("dir", ".state/env", "state directory")
	addr := fs.String("addr", "127.0.0.1:0", "registry: listen address")
	addrFile := fs.String("addr-file", "", "registry: write the bound address here")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	d := devenv.Daemons{Dir: abs, Self: self, Log: os.Stderr}
	switch args[0] {
	case "up":
		r, err := d.Up(ctx)
		if err != nil {
			return err
		}
		fmt.Print(r.Exports())
		return nil
	case "down":
		return d.Down()
	case "registry":
		reg, err := devenv.StartRegistry(ctx, devenv.RegistryOptions{Addr: *addr, Dir: *dir})
		if err != nil {
			return err
		}
		if *addrFile != "" {
			if err := os.WriteFile(*addrFile, []byte(reg.Addr), 0o600); err != nil {
				return err
			}
		}
		go func() { <-ctx.Done(); reg.Close() }()
		return reg.Wait()
	default:
		return fmt.Errorf("unknown command %q: use up, down or registry", args[0])
	}
}
