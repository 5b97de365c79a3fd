package action

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/buildkit"
	"github.com/convox-build-action/convox-build-action/internal/dockerbuildkit"
)

// solverConn is a connected buildkitd.
type solverConn interface {
	build.Solver
	Close() error
}

// lazySolver connects to buildkitd on the first build, so that a bad
// convox.yml fails before any builder is reached or started.
type lazySolver struct {
	connect func(ctx context.Context, log func(string)) (solverConn, error)
	log     func(string)

	once sync.Once
	c    solverConn
	err  error
}

func (l *lazySolver) Build(ctx context.Context, req buildkit.BuildRequest) (*buildkit.Result, error) {
	l.once.Do(func() { l.c, l.err = l.connect(ctx, l.log) })
	if l.err != nil {
		return nil, l.err
	}
	return l.c.Build(ctx, req)
}

func (l *lazySolver) close() {
	if l.c != nil {
		l.c.Close()
	}
}

// connect reaches the buildkitd of buildkit-host, or starts (or reuses) one
// in a container through the Docker socket.
func (r *runner) connect(ctx context.Context, log func(string)) (solverConn, error) {
	in := r.in
	timeout := r.cfg.ConnectTimeout
	if in.BuildkitHost != "" {
		if timeout <= 0 {
			timeout = 15 * time.Second
		}
		opts := build.DialOptions{CACert: r.workspacePath(in.BuildkitTLSCA), Cert: r.workspacePath(in.BuildkitTLSCert), Key: r.workspacePath(in.BuildkitTLSKey), Timeout: timeout}
		if name, ok := dockerbuildkit.ParseAddr(in.BuildkitHost); ok {
			// No docker CLI here: reach the container through the API,
			// and say so plainly when it is not there.
			docker := dockerbuildkit.NewDocker(r.cfg.DockerSocket)
			c, err := docker.InspectContainer(ctx, name)
			switch {
			case err != nil:
				return nil, fmt.Errorf("buildkit-host %s: %w", in.BuildkitHost, err)
			case !c.State.Running:
				return nil, fmt.Errorf("buildkit-host %s: the container is %s, not running", in.BuildkitHost, c.State.Status)
			}
			opts.Dialer = dockerbuildkit.Dialer(docker, name)
		}
		c, err := build.Dial(ctx, in.BuildkitHost, opts)
		if err != nil {
			return nil, fmt.Errorf("buildkit-host: %w", err)
		}
		log(fmt.Sprintf("Using buildkitd at %s", in.BuildkitHost))
		return c, nil
	}
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	docker := dockerbuildkit.NewDocker(r.cfg.DockerSocket)
	d, err := dockerbuildkit.Start(ctx, docker, dockerbuildkit.Options{Image: r.cfg.BuildkitImage, Log: log})
	if err != nil {
		return nil, fmt.Errorf("starting buildkitd: %w; give buildkit-host to use a buildkitd of your own", err)
	}
	c, err := build.Dial(ctx, d.Addr(), build.DialOptions{Dialer: d.Dialer(), Timeout: timeout})
	if err != nil {
		if xerr := d.Exited(context.WithoutCancel(ctx)); xerr != nil {
			err = errors.Join(err, xerr)
		}
		return nil, fmt.Errorf("starting buildkitd: %w", err)
	}
	return c, nil
}

// workspacePath resolves a path input relative to the workspace.
func (r *runner) workspacePath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(r.rc.Workspace, filepath.FromSlash(strings.TrimPrefix(p, "./")))
}
