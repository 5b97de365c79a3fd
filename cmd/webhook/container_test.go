package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestServerImage runs the server's image in a real dockerd, as the
// deploy examples do (an unprivileged user, its data in /data): it
// becomes ready and builds a push end to end.
func TestServerImage(t *testing.T) {
	w := newWorld(t, "sqlite")
	dd := testenv.Docker(t)
	const image = "convox-build-webhook:test"
	dd.BuildStage(t, testenv.StageImage{Stage: "webhook",
		Binaries: map[string]string{"convox-build-webhook": "./cmd/webhook"}, Dirs: []string{"out/tmp", "out/data"}}, image)
	out, err := dd.Run(context.Background(), "image", "inspect", "--format", "{{.Config.User}} {{json .Config.Entrypoint}} {{.Size}}", image)
	if err != nil {
		t.Fatal(err)
	}
	var user, entrypoint string
	var size int64
	fmt.Sscan(out, &user, &entrypoint, &size)
	if user != "65532:65532" || entrypoint != `["/convox-build-webhook"]` {
		t.Errorf("image user %q entrypoint %s", user, entrypoint)
	}
	t.Logf("server image: %.1f MiB", float64(size)/(1<<20))

	port := freePort(t)
	// The container's unprivileged user cannot open the test buildkitd's
	// socket (under root's private directory): reach it over TCP, as a
	// deployment reaches a buildkitd beside it.
	bk := forwardTCP(t, strings.TrimPrefix(w.env.BuildkitAddr, "unix://"))
	env := map[string]string{
		"GITHUB_APP_ID": strconv.FormatInt(w.gh.AppID, 10), "GITHUB_PRIVATE_KEY": string(w.gh.PrivateKey),
		"GITHUB_WEBHOOK_SECRET": string(w.secret), "GITHUB_API_URL": w.gh.APIURL,
		"BUILDKIT_HOST": "tcp://" + bk, "IMAGE_REPOSITORY": w.env.Registry + "/{owner}/{repo}",
		"LISTEN_ADDR": "127.0.0.1:" + strconv.Itoa(port), "PUBLIC_PAGES": "true", "CHECK_UPDATE_INTERVAL": "1s",
	}
	args := []string{"run", "-d", "--name", "webhook-test", "--network", "host"}
	for k, v := range env {
		args = append(args, "-e", k+"="+v)
	}
	args = append(args, image)
	if out, err := dd.Run(context.Background(), args...); err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := dd.Run(context.Background(), "logs", "webhook-test")
			t.Logf("container log:\n%s", logs)
		}
		dd.Run(context.Background(), "rm", "-f", "webhook-test")
	})
	p := &proc{w: w, addr: "127.0.0.1:" + strconv.Itoa(port), log: &logBuffer{}, exited: make(chan struct{})}
	waitFor(t, 60*time.Second, "the container to be ready", func() bool {
		resp, err := http.Get("http://" + p.addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	sha := w.commit("acme", "shop", app("container", 1))
	id := p.push("acme", "shop", "main", sha, "From a container")
	if c := w.completed(id, 3*time.Minute); c.Conclusion != "success" {
		t.Errorf("check run %+v", c)
	}
	if code, body, _ := p.get("/apps/shop/builds/"+id, map[string]string{"Accept": "text/html"}); code != 200 || !strings.Contains(body, id) {
		t.Errorf("build page from the container: %d", code)
	}
}

// forwardTCP serves a TCP port on loopback that forwards each connection
// to the unix socket, and returns its address.
func forwardTCP(t *testing.T, socket string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("unix", socket)
				if err != nil {
					return
				}
				defer u.Close()
				done := make(chan struct{}, 2)
				go func() { io.Copy(u, c); done <- struct{}{} }()
				go func() { io.Copy(c, u); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return l.Addr().String()
}
