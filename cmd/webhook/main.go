// Command convox-build-webhook is the GitHub App webhook server: it builds
// every push and pull request of the repositories the App is installed on
// through a durable queue, and reports each build as a check run. It only
// wires: configuration from the environment (see config.go and the
// README's "Webhook server" section), logging, signals; the server is
// internal/server.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/caarlos0/env/v10"

	"github.com/convox-build-action/convox-build-action/internal/server"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

func main() {
	os.Exit(run(context.Background(), env.ToMap(os.Environ()), os.Stderr))
}

// readFile is os.ReadFile (a variable for tests).
var readFile = os.ReadFile

func run(ctx context.Context, environ map[string]string, stderr io.Writer) int {
	cfg, err := loadConfig(environ)
	if err != nil {
		fmt.Fprintf(stderr, "convox-build-webhook: configuration:\n%v\n", err)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	cfg.server.Logger = log
	log.Info("starting", cfg.summary...)

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv, err := server.New(ctx, cfg.server)
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	defer srv.Close()
	if err := srv.Run(ctx, nil); err != nil {
		log.Error("stopped with an error", "error", err)
		return 1
	}
	return 0
}

// redactURL hides a database URL's password.
func redactURL(u string) string {
	if _, err := url.Parse(u); err != nil {
		return "(unparsable URL)"
	}
	return store.Redact(u)
}
