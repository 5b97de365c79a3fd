// Package buildkit is the project's only door to BuildKit: it connects to a
// buildkitd, runs Dockerfile builds from a local context, exports the result
// as a pushed image or an OCI archive, and turns BuildKit's progress into
// plain log lines and step events while the build runs.
//
// No other package imports github.com/moby/buildkit; a test enforces it.
package buildkit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/moby/buildkit/client"
	_ "github.com/moby/buildkit/client/connhelper/dockercontainer" // docker-container:// addresses
	"github.com/moby/buildkit/util/grpcerrors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultConnectTimeout bounds how long Connect waits for buildkitd to answer.
const DefaultConnectTimeout = 10 * time.Second

// ConnectOptions configure Connect. The zero value connects without TLS and
// waits DefaultConnectTimeout.
type ConnectOptions struct {
	// CACert, Cert and Key are PEM file paths for mTLS on tcp:// addresses.
	// CACert alone verifies the server; Cert and Key go together.
	CACert, Cert, Key string
	// ServerName overrides the TLS server name (default: the address host).
	ServerName string
	// Timeout bounds the wait for the daemon to answer (default
	// DefaultConnectTimeout).
	Timeout time.Duration
	// Dialer, when set, opens every connection to the daemon instead of
	// the address's own dialer (for example a docker-container://
	// address reached through the Docker Engine API rather than the
	// docker CLI); addr still names the daemon in errors.
	Dialer func(ctx context.Context, addr string) (net.Conn, error)
}

// Client is a connection to one buildkitd.
type Client struct {
	addr string
	c    *client.Client
}

// Connect opens a client to the buildkitd at addr (unix://, tcp://,
// docker-container://) and waits until it answers, so a wrong address fails
// here, within the timeout, with the address in the error.
func Connect(ctx context.Context, addr string, opts ConnectOptions) (*Client, error) {
	c, err := newClient(ctx, addr, opts)
	if err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.Wait(wctx); err != nil {
		c.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connecting to buildkitd at %s: %w", addr, ctx.Err())
		}
		if errors.Is(err, context.DeadlineExceeded) || wctx.Err() != nil {
			return nil, &notAnswering{fmt.Sprintf("buildkitd at %s did not answer within %s%s: is it running, and is the address right?", addr, timeout, probe(addr))}
		}
		return nil, fmt.Errorf("connecting to buildkitd at %s: %w", addr, err)
	}
	// Wait only sees a working HTTP/2 connection; any HTTP/2 server gives
	// one. Ask buildkitd itself.
	if _, err := c.Info(wctx); err != nil {
		c.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connecting to buildkitd at %s: %w", addr, ctx.Err())
		}
		return nil, fmt.Errorf("the server at %s is not buildkitd (it does not speak the BuildKit API: %s): is the address right?", addr, grpcMessage(err))
	}
	return &Client{addr: addr, c: c}, nil
}

// Open returns a client to the buildkitd at addr without waiting for it
// to answer: the first call connects (Ready says whether it answers).
// For a daemon that may be down now and back later; Connect is for the
// usual case.
func Open(addr string, opts ConnectOptions) (*Client, error) {
	c, err := newClient(context.Background(), addr, opts)
	if err != nil {
		return nil, err
	}
	return &Client{addr: addr, c: c}, nil
}

// newClient checks addr and opts and makes BuildKit's client, which
// connects on its first call.
func newClient(ctx context.Context, addr string, opts ConnectOptions) (*client.Client, error) {
	if addr == "" {
		return nil, errors.New("no buildkitd address (such as unix:///run/buildkit/buildkitd.sock)")
	}
	if !strings.Contains(addr, "://") {
		return nil, fmt.Errorf("buildkitd address %q has no scheme: use unix://, tcp:// or docker-container://", addr)
	}
	if (opts.Cert == "") != (opts.Key == "") {
		return nil, fmt.Errorf("connecting to buildkitd at %s: a TLS client certificate needs both cert and key", addr)
	}
	var copts []client.ClientOpt
	if opts.CACert != "" || opts.ServerName != "" {
		copts = append(copts, client.WithServerConfig(opts.ServerName, opts.CACert))
	}
	if opts.Cert != "" {
		copts = append(copts, client.WithCredentials(opts.Cert, opts.Key))
	}
	if opts.Dialer != nil {
		copts = append(copts, client.WithContextDialer(opts.Dialer))
	}
	// Reconnect soon to a daemon that comes back (gRPC's default backoff
	// grows to two minutes), so that a pool takes a host in again soon.
	copts = append(copts, client.WithGRPCDialOption(grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
		MinConnectTimeout: 20 * time.Second,
	})))
	c, err := client.New(ctx, addr, copts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to buildkitd at %s: %w", addr, err)
	}
	return c, nil
}

// probe says why nothing answers at a unix:// or tcp:// address, as
// "(dial ...: connection refused)", or "" when it cannot tell.
func probe(addr string) string {
	network, target, ok := strings.Cut(addr, "://")
	if !ok || (network != "unix" && network != "tcp") {
		return ""
	}
	conn, err := net.DialTimeout(network, target, 2*time.Second)
	if err != nil {
		return " (" + err.Error() + ")"
	}
	conn.Close()
	return " (it accepts connections but does not speak the BuildKit API)"
}

// grpcMessage is the message of a gRPC error without its code prefix.
func grpcMessage(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}

// Addr is the address the client connected to.
func (c *Client) Addr() string { return c.addr }

// Close releases the connection.
func (c *Client) Close() error { return c.c.Close() }

// Worker describes one of the daemon's workers.
type Worker struct {
	ID        string
	Platforms []string
}

// Workers lists the daemon's workers, as `buildctl debug workers` does.
func (c *Client) Workers(ctx context.Context) ([]Worker, error) {
	ws, err := c.c.ListWorkers(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing workers of buildkitd at %s: %w", c.addr, err)
	}
	out := make([]Worker, 0, len(ws))
	for _, w := range ws {
		var ps []string
		for _, p := range w.Platforms {
			s := p.OS + "/" + p.Architecture
			if p.Variant != "" {
				s += "/" + p.Variant
			}
			ps = append(ps, s)
		}
		out = append(out, Worker{ID: w.ID, Platforms: ps})
	}
	return out, nil
}

// IsUnavailable reports whether err says the daemon could not be reached
// (or went away during the build), as opposed to a build that failed: the
// same build may then succeed on another daemon.
func IsUnavailable(err error) bool {
	var be *BuildError
	if errors.As(err, &be) {
		err = be.Err
	}
	var na *notAnswering
	return errors.As(err, &na) || grpcerrors.Code(err) == codes.Unavailable
}
