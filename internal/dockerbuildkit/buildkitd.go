package dockerbuildkit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"strings"
	"time"
)

// Defaults for Options.
const (
	// DefaultContainer is the buildkitd container's name: a later step of
	// the job finds it by this name and reuses it.
	DefaultContainer = "convox-build-buildkitd"
	// DefaultVolume is the named volume holding buildkitd's state (its
	// cache), so that a container started again keeps the cache.
	DefaultVolume = "convox-build-buildkitd-state"
	// Label marks containers this package started; its value is the image.
	Label = "com.github.convox-build-action.buildkitd"
)

// buildkitModule is the BuildKit module whose version the client speaks;
// the daemon image is moby/buildkit at the same version.
const buildkitModule = "github.com/moby/buildkit"

// DefaultImage is moby/buildkit at the version of the BuildKit client
// this binary was built with (go.mod's), e.g. "moby/buildkit:v0.34.2".
func DefaultImage() (string, error) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "", errors.New("cannot tell the BuildKit version: the binary has no build information")
	}
	for _, m := range bi.Deps {
		if m.Path == buildkitModule {
			if m.Replace != nil && m.Replace.Version != "" {
				return "moby/buildkit:" + m.Replace.Version, nil
			}
			return "moby/buildkit:" + m.Version, nil
		}
	}
	return "", fmt.Errorf("cannot tell the BuildKit version: %s is not among the binary's modules", buildkitModule)
}

// Options configure Start. Zero values take the defaults.
type Options struct {
	// Image is the buildkitd image (default DefaultImage()).
	Image string
	// Container is the container's name (default DefaultContainer).
	Container string
	// Volume is the named volume for /var/lib/buildkit (default
	// DefaultVolume).
	Volume string
	// NetworkMode of a container Start creates (default "host").
	NetworkMode string
	// Timeout bounds the wait for a started buildkitd to answer (default
	// 60s); Start's caller dials it (see Dialer) within that time.
	Timeout time.Duration
	// Log, when set, hears what Start does ("starting buildkitd
	// container ...").
	Log func(string)
}

// Daemon is a buildkitd running in a container.
type Daemon struct {
	// Container is the container's name.
	Container string
	// Image is its image.
	Image string
	// Reused says that the container was running already.
	Reused bool
	docker *Docker
}

// Addr is the daemon's address as BuildKit names it.
func (d *Daemon) Addr() string { return "docker-container://" + d.Container }

// Dialer opens a connection to the daemon by running `buildctl
// dial-stdio` in its container through the Docker API.
func (d *Daemon) Dialer() func(ctx context.Context, addr string) (net.Conn, error) {
	return Dialer(d.docker, d.Container)
}

// Dialer opens connections to the buildkitd in container, through the
// Docker API, for BuildKit's client (buildctl must be in the container's
// PATH, as it is in moby/buildkit).
func Dialer(docker *Docker, container string) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, _ string) (net.Conn, error) {
		return docker.Exec(ctx, container, []string{"buildctl", "dial-stdio"})
	}
}

// ParseAddr returns the container of a docker-container://NAME address.
func ParseAddr(addr string) (container string, ok bool) {
	rest, ok := strings.CutPrefix(addr, "docker-container://")
	if !ok {
		return "", false
	}
	rest, _, _ = strings.Cut(rest, "?")
	rest = strings.TrimSuffix(rest, "/")
	return rest, rest != ""
}

// Start returns the buildkitd container named opts.Container: the running
// one an earlier step started, or a new one (privileged, with the state
// volume), pulling the image when the daemon lacks it. A stopped
// container of that name is started again; one of another image is
// replaced. The caller dials Daemon.Addr with Daemon.Dialer and waits for
// it to answer.
func Start(ctx context.Context, docker *Docker, opts Options) (*Daemon, error) {
	if opts.Image == "" {
		img, err := DefaultImage()
		if err != nil {
			return nil, err
		}
		opts.Image = img
	}
	if opts.Container == "" {
		opts.Container = DefaultContainer
	}
	if opts.Volume == "" {
		opts.Volume = DefaultVolume
	}
	if opts.NetworkMode == "" {
		opts.NetworkMode = "host"
	}
	logf := func(format string, args ...any) {
		if opts.Log != nil {
			opts.Log(fmt.Sprintf(format, args...))
		}
	}
	if err := docker.Ping(ctx); err != nil {
		return nil, err
	}
	d := &Daemon{Container: opts.Container, Image: opts.Image, docker: docker}
	for attempt := 0; attempt < 3; attempt++ {
		c, err := docker.InspectContainer(ctx, opts.Container)
		switch {
		case IsNotFound(err):
		case err != nil:
			return nil, err
		case c.Config.Image != opts.Image:
			logf("replacing container %s: it runs %s, not %s", opts.Container, c.Config.Image, opts.Image)
			if err := docker.RemoveContainer(ctx, c.ID); err != nil {
				return nil, err
			}
			continue
		case c.State.Running:
			logf("reusing buildkitd container %s (%s)", opts.Container, opts.Image)
			d.Reused = true
			return d, nil
		default:
			logf("starting buildkitd container %s again (%s)", opts.Container, opts.Image)
			if err := docker.StartContainer(ctx, c.ID); err != nil {
				return nil, err
			}
			return d, nil
		}
		ok, err := docker.ImageExists(ctx, opts.Image)
		if err != nil {
			return nil, err
		}
		if !ok {
			logf("pulling %s", opts.Image)
			if err := docker.PullImage(ctx, opts.Image); err != nil {
				return nil, err
			}
		}
		logf("starting buildkitd container %s (%s, state in volume %s)", opts.Container, opts.Image, opts.Volume)
		id, err := docker.CreateContainer(ctx, ContainerSpec{
			Name:        opts.Container,
			Image:       opts.Image,
			Labels:      map[string]string{Label: opts.Image},
			Privileged:  true,
			NetworkMode: opts.NetworkMode,
			Binds:       []string{opts.Volume + ":/var/lib/buildkit"},
		})
		if IsConflict(err) {
			continue // another step created it at the same moment: use it
		}
		if err != nil {
			return nil, err
		}
		if err := docker.StartContainer(ctx, id); err != nil {
			return nil, err
		}
		return d, nil
	}
	return nil, fmt.Errorf("starting buildkitd container %s: it kept changing while being started", opts.Container)
}

// Exited returns an error with the container's last output when the
// daemon's container has stopped (buildkitd failed to start), else nil.
func (d *Daemon) Exited(ctx context.Context) error {
	c, err := d.docker.InspectContainer(ctx, d.Container)
	if err != nil {
		return err
	}
	if c.State.Running {
		return nil
	}
	logs, _ := d.docker.ContainerLogs(ctx, c.ID, 20)
	return fmt.Errorf("buildkitd container %s stopped (exit code %d): %s", d.Container, c.State.ExitCode, strings.TrimSpace(logs))
}
