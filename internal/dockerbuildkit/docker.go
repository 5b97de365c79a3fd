// Package dockerbuildkit runs buildkitd in a Docker container and reaches
// it, all through the Docker Engine API on a unix socket (no docker CLI):
// it starts a privileged moby/buildkit container with a named volume for its
// state, or reuses the one an earlier step started, and dials it by running
// `buildctl dial-stdio` in the container, as docker-container:// addresses
// do with the CLI.
package dockerbuildkit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultSocket is where the Docker daemon listens, and where GitHub's
// runner mounts it into container actions.
const DefaultSocket = "/var/run/docker.sock"

// apiVersion is the Docker Engine API version spoken: Docker 20.10 and
// later answer it.
const apiVersion = "v1.41"

// Docker is a client of the Docker Engine API on a unix socket.
type Docker struct {
	socket string
	hc     *http.Client
}

// NewDocker returns a client for the daemon at socket (a file path;
// DefaultSocket when empty). It does not connect.
func NewDocker(socket string) *Docker {
	if socket == "" {
		socket = DefaultSocket
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:    4,
		IdleConnTimeout: 30 * time.Second,
	}
	return &Docker{socket: socket, hc: &http.Client{Transport: tr}}
}

// Socket is the socket path the client talks to.
func (d *Docker) Socket() string { return d.socket }

// Close releases idle connections.
func (d *Docker) Close() { d.hc.CloseIdleConnections() }

// APIError is an answer of the daemon other than success.
type APIError struct {
	Op         string
	StatusCode int
	Message    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("docker: %s: %s (HTTP %d)", e.Op, e.Message, e.StatusCode)
}

// IsNotFound reports whether err is the daemon's 404.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound
}

// IsConflict reports whether err is the daemon's 409 (a name in use).
func IsConflict(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == http.StatusConflict
}

func (d *Docker) url(path string, q url.Values) string {
	u := "http://docker/" + apiVersion + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// do sends a request and decodes a JSON answer into out (when not nil).
func (d *Docker) do(ctx context.Context, op, method, path string, q url.Values, in, out any) error {
	resp, err := d.send(ctx, op, method, path, q, in, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("docker: %s: reading the answer: %w", op, err)
	}
	return nil
}

func (d *Docker) send(ctx context.Context, op, method, path string, q url.Values, in any, header http.Header) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		if r, ok := in.(io.Reader); ok {
			body = r
		} else {
			b, err := json.Marshal(in)
			if err != nil {
				return nil, err
			}
			body = bytes.NewReader(b)
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, d.url(path, q), body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if in != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("docker: %s: %w", op, ctx.Err())
		}
		return nil, fmt.Errorf("docker: %s: cannot reach the Docker daemon at %s: %w (is the Docker socket mounted?)", op, d.socket, unwrapURLError(err))
	}
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var m struct{ Message string }
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &m) == nil && m.Message != "" {
			msg = m.Message
		}
		return nil, &APIError{Op: op, StatusCode: resp.StatusCode, Message: msg}
	}
	return resp, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Ping checks that the daemon answers.
func (d *Docker) Ping(ctx context.Context) error {
	resp, err := d.send(ctx, "ping", http.MethodGet, "/_ping", nil, nil, nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Container is what this package reads of a container's inspection.
type Container struct {
	ID     string `json:"Id"`
	Name   string
	Image  string // the image ID
	Config struct {
		Image  string
		Labels map[string]string
	}
	State struct {
		Running  bool
		Status   string
		ExitCode int
		Error    string
	}
}

// InspectContainer returns the container named (or with the ID) name.
func (d *Docker) InspectContainer(ctx context.Context, name string) (*Container, error) {
	var c Container
	if err := d.do(ctx, "inspecting container "+name, http.MethodGet, "/containers/"+url.PathEscape(name)+"/json", nil, nil, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// ContainerSpec is a container to create.
type ContainerSpec struct {
	Name       string
	Image      string
	Cmd        []string
	Env        []string
	Labels     map[string]string
	Privileged bool
	// NetworkMode is "host", "none", "bridge" or a network name.
	NetworkMode string
	// Binds are "volume-or-host-path:container-path[:opts]"; a named
	// volume that does not exist is created.
	Binds []string
}

// CreateContainer creates a container and returns its ID.
func (d *Docker) CreateContainer(ctx context.Context, spec ContainerSpec) (string, error) {
	body := map[string]any{
		"Image":  spec.Image,
		"Cmd":    spec.Cmd,
		"Env":    spec.Env,
		"Labels": spec.Labels,
		"HostConfig": map[string]any{
			"Privileged":  spec.Privileged,
			"NetworkMode": spec.NetworkMode,
			"Binds":       spec.Binds,
		},
	}
	var out struct {
		ID string `json:"Id"`
	}
	q := url.Values{}
	if spec.Name != "" {
		q.Set("name", spec.Name)
	}
	if err := d.do(ctx, "creating container "+spec.Name, http.MethodPost, "/containers/create", q, body, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// StartContainer starts a created or stopped container.
func (d *Docker) StartContainer(ctx context.Context, id string) error {
	err := d.do(ctx, "starting container "+id, http.MethodPost, "/containers/"+url.PathEscape(id)+"/start", nil, nil, nil)
	var ae *APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusNotModified {
		return nil // already running
	}
	return err
}

// RemoveContainer removes a container, stopping it first (force); its
// named volumes stay.
func (d *Docker) RemoveContainer(ctx context.Context, id string) error {
	err := d.do(ctx, "removing container "+id, http.MethodDelete, "/containers/"+url.PathEscape(id), url.Values{"force": {"true"}}, nil, nil)
	if IsNotFound(err) {
		return nil
	}
	return err
}

// ContainerLogs returns the last lines of a container's output.
func (d *Docker) ContainerLogs(ctx context.Context, id string, tail int) (string, error) {
	q := url.Values{"stdout": {"true"}, "stderr": {"true"}, "tail": {fmt.Sprint(tail)}}
	resp, err := d.send(ctx, "reading logs of container "+id, http.MethodGet, "/containers/"+url.PathEscape(id)+"/logs", q, nil, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	if err := demux(resp.Body, &out, &out); err != nil && !errors.Is(err, io.EOF) {
		return out.String(), err
	}
	return out.String(), nil
}

// ImageExists reports whether the daemon has the image ref.
func (d *Docker) ImageExists(ctx context.Context, ref string) (bool, error) {
	err := d.do(ctx, "inspecting image "+ref, http.MethodGet, "/images/"+ref+"/json", nil, nil, nil)
	if IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// PullImage pulls ref ("name:tag") and waits until the pull ends.
func (d *Docker) PullImage(ctx context.Context, ref string) error {
	name, tag := splitRef(ref)
	op := "pulling image " + ref
	resp, err := d.send(ctx, op, http.MethodPost, "/images/create", url.Values{"fromImage": {name}, "tag": {tag}}, nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// The answer is a stream of JSON progress messages; an error comes as
	// one of them, with status 200.
	dec := json.NewDecoder(resp.Body)
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("docker: %s: %w", op, err)
		}
		if m.Error != "" {
			return &APIError{Op: op, StatusCode: http.StatusOK, Message: m.Error}
		}
	}
}

// LoadImage loads an image archive (docker save format, or an OCI archive
// with a manifest.json, as BuildKit writes) into the daemon.
func (d *Docker) LoadImage(ctx context.Context, archive io.Reader) error {
	op := "loading image"
	resp, err := d.send(ctx, op, http.MethodPost, "/images/load", url.Values{"quiet": {"1"}}, archive, http.Header{"Content-Type": {"application/x-tar"}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var m struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("docker: %s: %w", op, err)
		}
		if m.Error != "" {
			return &APIError{Op: op, StatusCode: http.StatusOK, Message: m.Error}
		}
	}
}

// splitRef splits "name:tag" (a port in name is kept); tag defaults to
// latest.
func splitRef(ref string) (name, tag string) {
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return ref, "latest"
	}
	return ref[:i], ref[i+1:]
}

// Exec runs cmd in a running container with its stdin and stdout joined
// to the returned connection (stderr is kept for errors): the container
// end of a byte stream, such as `buildctl dial-stdio`.
func (d *Docker) Exec(ctx context.Context, container string, cmd []string) (net.Conn, error) {
	var created struct {
		ID string `json:"Id"`
	}
	op := fmt.Sprintf("running %q in container %s", strings.Join(cmd, " "), container)
	if err := d.do(ctx, op, http.MethodPost, "/containers/"+url.PathEscape(container)+"/exec", nil, map[string]any{
		"AttachStdin": true, "AttachStdout": true, "AttachStderr": true, "Tty": false, "Cmd": cmd,
	}, &created); err != nil {
		return nil, err
	}
	resp, err := d.send(ctx, op, http.MethodPost, "/exec/"+created.ID+"/start", nil,
		map[string]any{"Detach": false, "Tty": false},
		http.Header{"Connection": {"Upgrade"}, "Upgrade": {"tcp"}, "Content-Type": {"application/json"}})
	if err != nil {
		return nil, err
	}
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if resp.StatusCode != http.StatusSwitchingProtocols || !ok {
		resp.Body.Close()
		return nil, fmt.Errorf("docker: %s: the daemon did not open a stream (HTTP %d)", op, resp.StatusCode)
	}
	pr, pw := io.Pipe()
	c := &execConn{rw: rw, out: pr, name: container}
	go func() {
		err := demux(bufio.NewReader(rw), pw, &c.stderr)
		if errors.Is(err, io.EOF) {
			err = nil
		}
		if err == nil && c.stderr.Len() > 0 {
			err = fmt.Errorf("%s: %s", op, strings.TrimSpace(c.stderr.String()))
		}
		pw.CloseWithError(err)
	}()
	return c, nil
}

// demux copies a multiplexed stdout/stderr stream (Docker's framing for
// containers without a TTY) to stdout and stderr.
func demux(r io.Reader, stdout io.Writer, stderr *bytes.Buffer) error {
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return io.EOF
			}
			return err
		}
		if hdr[0] > 2 || hdr[1] != 0 || hdr[2] != 0 || hdr[3] != 0 {
			// Not a frame: the daemon writes a failed exec's error as
			// plain text.
			stderr.Write(hdr[:])
			io.Copy(stderr, io.LimitReader(r, 16<<10))
			return io.EOF
		}
		n := int64(uint32(hdr[4])<<24 | uint32(hdr[5])<<16 | uint32(hdr[6])<<8 | uint32(hdr[7]))
		var w io.Writer
		switch hdr[0] {
		case 1:
			w = stdout
		case 2:
			w = stderr
			if stderr.Len() > 16<<10 {
				w = io.Discard
			}
		default:
			w = io.Discard
		}
		if _, err := io.CopyN(w, r, n); err != nil {
			return err
		}
	}
}

// execConn is an exec's stdin and stdout as a net.Conn.
type execConn struct {
	rw     io.ReadWriteCloser
	out    *io.PipeReader
	stderr bytes.Buffer
	name   string
}

func (c *execConn) Read(p []byte) (int, error)  { return c.out.Read(p) }
func (c *execConn) Write(p []byte) (int, error) { return c.rw.Write(p) }
func (c *execConn) Close() error {
	c.out.Close()
	return c.rw.Close()
}
func (c *execConn) LocalAddr() net.Addr                { return execAddr("exec") }
func (c *execConn) RemoteAddr() net.Addr               { return execAddr(c.name) }
func (c *execConn) SetDeadline(t time.Time) error      { return nil }
func (c *execConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *execConn) SetWriteDeadline(t time.Time) error { return nil }

type execAddr string

func (a execAddr) Network() string { return "docker-exec" }
func (a execAddr) String() string  { return string(a) }

// ContainerIDs lists the IDs of all containers, running or not, whose
// labels include every one of labels ("key" or "key=value").
func (d *Docker) ContainerIDs(ctx context.Context, labels ...string) ([]string, error) {
	q := url.Values{"all": {"true"}}
	if len(labels) > 0 {
		f, _ := json.Marshal(map[string][]string{"label": labels})
		q.Set("filters", string(f))
	}
	var list []struct {
		ID string `json:"Id"`
	}
	if err := d.do(ctx, "listing containers", http.MethodGet, "/containers/json", q, nil, &list); err != nil {
		return nil, err
	}
	ids := make([]string, len(list))
	for i, c := range list {
		ids[i] = c.ID
	}
	return ids, nil
}
