package api_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/api"
	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type world struct {
	env    *testenv.Env
	engine *build.Engine
	srv    *httptest.Server
	client *api.Client
}

func newWorld(t *testing.T) *world {
	t.Helper()
	env := testenv.Build(t)
	eng := testenv.Engine(t)
	s := &api.Server{Engine: eng, Token: "s3cret-api-token", Registry: registry.Options{Insecure: true}, LogPoll: 50 * time.Millisecond,
		Repository: func(app string) (string, error) { return env.Registry + "/" + app, nil }}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &world{env: env, engine: eng, srv: srv, client: &api.Client{BaseURL: srv.URL, Token: "s3cret-api-token"}}
}

func (w *world) build(t *testing.T, app, dockerfile string) (*store.Build, error) {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "convox.yml"), []byte("services:\n  web:\n    build: .\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644)
	return w.engine.Run(context.Background(), build.Request{App: app, Repository: w.env.Registry + "/" + app, SourceDir: dir,
		Registry: registry.Options{Insecure: true}, Description: "api test"})
}

func get(t *testing.T, url, token string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func TestEveryRouteWithAuthAndNotFound(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	b, err := w.build(t, "shop", "FROM busybox\nRUN echo hello-from-the-build\n")
	if err != nil {
		t.Fatal(err)
	}
	// Auth: every route refuses a missing or wrong token.
	for _, path := range []string{"/apps/shop/builds", "/apps/shop/builds/" + b.ID, "/apps/shop/builds/" + b.ID + "/logs",
		"/apps/shop/builds/" + b.ID + ".tgz", "/apps/shop/releases", "/builds/" + b.ID} {
		for _, tok := range []string{"", "wrong"} {
			code, body, h := get(t, w.srv.URL+path, tok)
			if code != 401 || !strings.Contains(body, `"error": "missing or wrong API token"`) || h.Get("WWW-Authenticate") == "" {
				t.Errorf("GET %s with token %q: %d %s", path, tok, code, body)
			}
		}
	}
	resp, err := http.Post(w.srv.URL+"/apps/shop/builds/import", "application/gzip", strings.NewReader("x"))
	if err != nil || resp.StatusCode != 401 {
		t.Errorf("import without a token: %v %v", resp.Status, err)
	}
	// A server without a token refuses everything.
	off := httptest.NewServer((&api.Server{Engine: w.engine}).Handler())
	defer off.Close()
	if code, body, _ := get(t, off.URL+"/apps/shop/builds", ""); code != 401 || !strings.Contains(body, "the API is off") {
		t.Errorf("API without a token: %d %s", code, body)
	}

	list, err := w.client.ListBuilds(ctx, "shop", 0)
	if err != nil || len(list) != 1 || list[0].ID != b.ID || list[0].Status != store.StatusComplete || list[0].Description != "api test" ||
		len(list[0].Services) != 1 || list[0].Services[0].Digest != b.Services[0].Digest || !list[0].Started.Equal(b.Started.Truncate(time.Microsecond)) {
		t.Errorf("builds = %+v, %v", list, err)
	}
	got, err := w.client.GetBuild(ctx, "shop", b.ID)
	if err != nil || got.Release != b.Release || got.Services[0].Image != b.Services[0].Image {
		t.Errorf("build = %+v, %v", got, err)
	}
	if got, err := w.client.GetBuild(ctx, "", b.ID); err != nil || got.App != "shop" {
		t.Errorf("build without app = %+v, %v", got, err)
	}
	var logs bytes.Buffer
	if err := w.client.Logs(ctx, "shop", b.ID, true, &logs); err != nil || !strings.Contains(logs.String(), "hello-from-the-build") {
		t.Errorf("logs = %q, %v", logs.String(), err)
	}
	rels, err := w.client.ListReleases(ctx, "shop", 5)
	if err != nil || len(rels) != 1 || rels[0].ID != b.Release || rels[0].Build != b.ID {
		t.Errorf("releases = %+v, %v", rels, err)
	}
	// Unknown app, unknown build, a build of another app: 404 in JSON.
	for _, path := range []string{"/apps/nope/builds/" + b.ID, "/apps/shop/builds/BAAAAAAAAAA", "/apps/shop/builds/garbage",
		"/apps/nope/builds/" + b.ID + "/logs", "/apps/nope/builds/" + b.ID + ".tgz", "/builds/BAAAAAAAAAA"} {
		code, body, h := get(t, w.srv.URL+path, "s3cret-api-token")
		if code != 404 || h.Get("Content-Type") != "application/json" || !strings.Contains(body, `"error": "no such build`) {
			t.Errorf("GET %s: %d %s", path, code, body)
		}
	}
	if _, err := w.client.GetBuild(ctx, "nope", b.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("client 404 = %v, want ErrNotFound", err)
	}
	if code, body, _ := get(t, w.srv.URL+"/apps/shop/builds?limit=x", "s3cret-api-token"); code != 400 || !strings.Contains(body, `limit \"x\"`) {
		t.Errorf("bad limit: %d %s", code, body)
	}
	// An app with no builds has an empty list, not an error.
	if list, err := w.client.ListBuilds(ctx, "empty", 0); err != nil || len(list) != 0 {
		t.Errorf("empty app: %v %v", list, err)
	}
}

func TestLogsStreamWhileTheBuildRunsAndEndWithIt(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	done := make(chan *store.Build, 1)
	go func() {
		b, _ := w.build(t, "stream", "FROM busybox\nRUN for i in 1 2 3 4 5 6; do echo tick-$i; sleep 1; done\n")
		done <- b
	}()
	var id string
	for id == "" {
		list, _ := w.client.ListBuilds(ctx, "stream", 1)
		if len(list) == 1 {
			id = list[0].ID
		}
		time.Sleep(20 * time.Millisecond)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(w.client.Logs(ctx, "stream", id, true, pw)) }()
	sc := bufio.NewScanner(pr)
	var firstTick time.Time
	var ended *store.Build
	for sc.Scan() {
		if strings.HasSuffix(sc.Text(), "tick-1") && firstTick.IsZero() {
			firstTick = time.Now()
			select {
			case ended = <-done:
			default:
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if firstTick.IsZero() {
		t.Fatal("tick-1 never came")
	}
	if ended != nil {
		t.Error("the first line arrived only after the build had ended")
	}
	b := <-done
	if b.Status != store.StatusComplete {
		t.Errorf("build %s", b.Status)
	}
}

func TestExportThroughTheAPIImportsElsewhere(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	b, err := w.build(t, "src", "FROM busybox\nRUN echo exported > /f\n")
	if err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	if err := w.client.Export(ctx, "src", b.ID, &file); err != nil {
		t.Fatal(err)
	}
	nb, err := w.client.Import(ctx, "dst", bytes.NewReader(file.Bytes()), "")
	if err != nil {
		t.Fatal(err)
	}
	if nb.App != "dst" || nb.ID == b.ID || nb.Status != store.StatusComplete || nb.Release == "" ||
		nb.Services[0].Digest != b.Services[0].Digest || !strings.HasPrefix(nb.Services[0].Image, w.env.Registry+"/dst:web.") {
		t.Errorf("imported = %+v", nb)
	}
	// A failed build cannot be exported; a garbage import is a 400.
	fb, _ := w.build(t, "src", "FROM busybox\nRUN exit 4\n")
	if err := w.client.Export(ctx, "src", fb.ID, io.Discard); err == nil || !strings.Contains(err.Error(), "only complete builds can be exported") {
		t.Errorf("export of a failed build: %v", err)
	}
	var se *api.StatusError
	if _, err := w.client.Import(ctx, "dst", strings.NewReader("not an export"), ""); !errors.As(err, &se) || se.Code != 400 {
		t.Errorf("garbage import: %v", err)
	}
}
