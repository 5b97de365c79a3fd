package devenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/sirupsen/logrus"

	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"             // htpasswd auth
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // on-disk storage
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"   // in-memory storage
)

// RegistryOptions configure StartRegistry. The zero value serves an
// in-memory registry without auth on a free port of 127.0.0.1.
type RegistryOptions struct {
	// Addr to listen on (default "127.0.0.1:0": a free port).
	Addr string
	// Dir keeps the registry's data on disk; empty keeps it in memory.
	Dir string
	// Htpasswd, when set, is the path of a bcrypt htpasswd file and the
	// registry requires basic auth.
	Htpasswd string
}

// Registry is a running OCI distribution registry.
type Registry struct {
	// Addr is "127.0.0.1:PORT", the registry host for image references.
	Addr string
	srv  *http.Server
	done chan error
}

// StartRegistry serves a registry until Close.
func StartRegistry(ctx context.Context, opts RegistryOptions) (*Registry, error) {
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	cfg := &configuration.Configuration{Version: configuration.MajorMinorVersion(0, 1)}
	cfg.Log.Level = "error"
	cfg.Log.AccessLog.Disabled = true
	if opts.Dir != "" {
		cfg.Storage = configuration.Storage{"filesystem": configuration.Parameters{"rootdirectory": opts.Dir}}
	} else {
		cfg.Storage = configuration.Storage{"inmemory": configuration.Parameters{}}
	}
	cfg.Storage["delete"] = configuration.Parameters{"enabled": true}
	if opts.Htpasswd != "" {
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "convox-build-test", "path": opts.Htpasswd}}
	}
	logrus.SetOutput(io.Discard) // the registry logs through logrus's standard logger

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("starting registry on %s: %w", addr, err)
	}
	app := handlers.NewApp(ctx, cfg)
	r := &Registry{
		Addr: ln.Addr().String(),
		srv:  &http.Server{Handler: app, ReadHeaderTimeout: 10 * time.Second},
		done: make(chan error, 1),
	}
	go func() { r.done <- r.srv.Serve(ln) }()
	return r, nil
}

// Wait blocks until the registry stops serving.
func (r *Registry) Wait() error {
	err := <-r.done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the registry, closing open connections (clients keep idle
// ones that a graceful shutdown would wait on).
func (r *Registry) Close() error {
	return r.srv.Close()
}

// RegistryAnswers reports whether a registry answers /v2/ at addr.
func RegistryAnswers(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized
}
