package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/convox-build-action/convox-build-action/internal/api"
	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

const apiToken = "api-token-Zq8xK2vW-never-shown"

// serve starts the builds API on w's database, as the webhook server
// would, with w's clock, and returns its URL.
func serve(t *testing.T, w *world) string {
	t.Helper()
	st, err := store.Open(context.Background(), w.vars["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := &api.Server{Engine: &build.Engine{Store: st, Now: w.clock}, Token: apiToken, Registry: registry.Options{Insecure: true}, LogPoll: 50 * time.Millisecond,
		Repository: func(app string) (string, error) {
			if w.env == nil {
				return "", errors.New("no registry in this test")
			}
			return w.env.Registry + "/" + app, nil
		}}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

type result struct {
	out, err string
	code     int
}

// remotely runs args against host in each of the ways to name a server:
// --host after the command words, --host URL and --host=URL before them,
// and CONVOX_BUILD_HOST. each, when not nil, is called after each run.
func (w *world) remotely(t *testing.T, host string, terminal bool, each func(i int, r result), args ...string) []result {
	t.Helper()
	var words, flags []string
	for i, a := range args {
		if strings.HasPrefix(a, "-") {
			words, flags = args[:i], args[i:]
			break
		}
	}
	if flags == nil {
		words = args
	}
	var out []result
	for _, argv := range [][]string{
		append(append([]string{}, args...), "--host", host),
		append(append([]string{"--host", host}, words...), flags...),
		append([]string{"--host=" + host}, args...),
		args,
	} {
		if len(out) == 3 {
			w.vars[envHost] = host
		}
		o, e, code := w.run(nil, terminal, argv...)
		out = append(out, result{o, e, code})
		if each != nil {
			each(len(out)-1, out[len(out)-1])
		}
	}
	delete(w.vars, envHost)
	return out
}

func TestRemoteBuildsCommandsPrintWhatLocalOnesPrint(t *testing.T) {
	w := newWorld(t)
	host := serve(t, w)
	w.vars[envToken] = apiToken
	w.vars["REGISTRY"] = w.env.Registry
	out, errOut, code := w.run(nil, false, "build", app(t, "multi"), "-a", "multi", "-e", "APP_VERSION=7", "-e", "REGISTRY", "-d", "first")
	if code != 0 {
		t.Fatalf("build: exit %d\n%s\n%s", code, out, errOut)
	}
	id := idLine.FindStringSubmatch(out)[1]
	w.setNow(t0.Add(40 * time.Second))
	failing := writeDir(t, map[string]string{
		"convox.yml": "services:\n\tweb:\n\t\tbuild: .\n",
		"Dockerfile": "FROM busybox\nRUN echo about-to-fail && exit 3\n",
	})
	_, errOut, code = w.run(nil, false, "build", failing, "-a", "multi", "-d", "second")
	m := regexp.MustCompile(`build (B[A-Z]{10}) failed`).FindStringSubmatch(errOut)
	if code != 1 || m == nil {
		t.Fatalf("failing build: exit %d, %q", code, errOut)
	}
	failedID := m[1]
	w.setNow(t0.Add(3 * time.Minute))

	var all []string // every output, to check that the token is in none
	cases := []struct {
		args     []string
		terminal bool
		want     string // what local stdout must contain, so that nothing passes by being empty on both sides
	}{
		{[]string{"builds", "-a", "multi"}, false, id + "  complete  R"},
		{[]string{"builds", "-a", "multi"}, true, "\033[38;5;251m" + failedID + "  failed"},
		{[]string{"builds", "-a", "multi", "-l", "1"}, false, failedID},
		{[]string{"builds", "-a", "multi", "--limit", "0"}, false, id},
		{[]string{"builds", "-a", "nothing-here"}, false, "ID  STATUS  RELEASE  STARTED  ELAPSED  DESCRIPTION\n"},
		{[]string{"builds", "info", id}, false, "Images       api"},
		{[]string{"builds", "info", id, "-a", "multi"}, true, "\033[38;5;244mId         \033[0m  \033[38;5;251m" + id},
		{[]string{"builds", "info", failedID}, false, "Reason       "},
		{[]string{"builds", "logs", id}, false, "api: greeting=hello"},
		{[]string{"builds", "logs", failedID, "--follow=false"}, false, "about-to-fail"},
		{[]string{"builds", "info", id, "-a", "other"}, false, ""},
		{[]string{"builds", "logs", "B123"}, false, ""},
		{[]string{"builds", "stray"}, false, ""},
	}
	for _, c := range cases {
		o, e, code := w.run(nil, c.terminal, c.args...)
		if !strings.Contains(o, c.want) || (c.want == "" && e == "") {
			t.Errorf("%v locally: exit %d, stdout %q, stderr %q; want stdout with %q", c.args, code, o, e, c.want)
		}
		for i, r := range w.remotely(t, host, c.terminal, nil, c.args...) {
			if r.out != o || r.err != e || r.code != code {
				t.Errorf("%v remotely (way %d): exit %d\n%q\n%q\nlocally: exit %d\n%q\n%q", c.args, i, r.code, r.out, r.err, code, o, e)
			}
			all = append(all, r.out, r.err)
		}
	}

	// Exports: the same bytes, through a file and through stdout.
	dir := t.TempDir()
	local := filepath.Join(dir, "local.tgz")
	if o, e, code := w.run(nil, false, "builds", "export", id, "-f", local); code != 0 || o != "Exporting build... OK\n" || e != "" {
		t.Fatalf("local export: exit %d, %q, %q", code, o, e)
	}
	localBytes, _ := os.ReadFile(local)
	checkExport(t, localBytes, id, w)
	w.remotely(t, host, false, func(i int, r result) {
		got, err := os.ReadFile(filepath.Join(dir, "remote.tgz"))
		if r.code != 0 || r.out != "Exporting build... OK\n" || r.err != "" || err != nil || !bytes.Equal(got, localBytes) {
			t.Errorf("remote export (way %d): exit %d, %q, %q; %d bytes (%v), local %d", i, r.code, r.out, r.err, len(got), err, len(localBytes))
		}
		os.Remove(filepath.Join(dir, "remote.tgz"))
	}, "builds", "export", id, "-f", filepath.Join(dir, "remote.tgz"))
	var remoteOut, remoteErr bytes.Buffer
	if code := w.runTo(nil, &remoteOut, &remoteErr, false, "builds", "export", id, "--host", host); code != 0 ||
		remoteErr.String() != "Exporting build... OK\n" || !bytes.Equal(remoteOut.Bytes(), localBytes) {
		t.Errorf("remote export to stdout: exit %d, %q, %d bytes, local %d", code, remoteErr.String(), remoteOut.Len(), len(localBytes))
	}
	// A failed build is refused the same way, the server named.
	o, e, code := w.run(nil, false, "builds", "export", failedID, "-f", filepath.Join(dir, "f.tgz"))
	wantErr := "build " + failedID + " is failed: only complete builds can be exported\n"
	if code != 1 || o != "Exporting build... " || e != "ERROR: "+wantErr {
		t.Errorf("local export of a failed build: exit %d, %q, %q", code, o, e)
	}
	for i, r := range w.remotely(t, host, false, nil, "builds", "export", failedID, "-f", filepath.Join(dir, "f.tgz")) {
		if r.code != 1 || r.out != o || r.err != "ERROR: server "+host+": "+wantErr {
			t.Errorf("remote export of a failed build (way %d): exit %d, %q, %q", i, r.code, r.out, r.err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "f.tgz")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed export left a file: %v", err)
	}

	// An export from the API imported with the CLI: the built binary,
	// through a shell's redirection, then a local import.
	fromAPI := filepath.Join(dir, "from-api.tgz")
	cmd := exec.Command("sh", "-c", `"$BIN" builds export "$ID" --host "$HOST" > "$FILE"`)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "BIN=" + binary(t), "ID=" + id, "HOST=" + host, "FILE=" + fromAPI, envToken + "=" + apiToken}
	var shErr bytes.Buffer
	cmd.Stderr = &shErr
	if err := cmd.Run(); err != nil || shErr.String() != "Exporting build... OK\n" {
		t.Fatalf("builds export B --host URL > f: %v, %q", err, shErr.String())
	}
	if got, _ := os.ReadFile(fromAPI); !bytes.Equal(got, localBytes) {
		t.Errorf("the shell's export (%d bytes) differs from the local one (%d)", len(got), len(localBytes))
	}
	o, e, code = w.run(nil, false, "builds", "import", "-a", "from-api", "-f", fromAPI)
	importLine := regexp.MustCompile(`^Importing build\.\.\. OK, R[A-Z]{10}\n$`)
	buildLine := regexp.MustCompile(`^Build:   (B[A-Z]{10})\n$`)
	if code != 0 || !importLine.MatchString(o) || !buildLine.MatchString(e) {
		t.Fatalf("local import of the API's export: exit %d, %q, %q", code, o, e)
	}
	checkPullable(t, w, id, buildLine.FindStringSubmatch(e)[1], "from-api", w.env.Registry+"/from-api")

	// Imports print the same lines (but for the new IDs), and the
	// server's import is a build like the local one.
	ids := regexp.MustCompile(`[BR][A-Z]{10}`)
	normal := func(s string) string {
		return ids.ReplaceAllStringFunc(s, func(id string) string { return id[:1] + "…" })
	}
	for _, c := range []struct {
		args  []string
		stdin bool
		repo  string
	}{
		{args: []string{"builds", "import", "-a", "imported", "-f", local}, repo: "imported"},
		{args: []string{"builds", "import", "-a", "imported", "-f", local, "--id"}, repo: "imported"},
		{args: []string{"builds", "import", "-a", "imported"}, stdin: true, repo: "imported"},
		{args: []string{"builds", "import", "-a", "imported", "--repository", w.env.Registry + "/elsewhere", "-f", local}, repo: "elsewhere"},
	} {
		stdin := func() io.Reader {
			if c.stdin {
				return bytes.NewReader(localBytes)
			}
			return nil
		}
		lo, le, lcode := w.run(stdin(), false, c.args...)
		if lcode != 0 || !strings.Contains(lo+le, "Importing build... OK, R") {
			t.Fatalf("%v locally: exit %d, %q, %q", c.args, lcode, lo, le)
		}
		ro, re, rcode := w.run(stdin(), false, append(c.args, "--host", host)...)
		if rcode != lcode || normal(ro) != normal(lo) || normal(re) != normal(le) {
			t.Errorf("%v remotely: exit %d, %q, %q; locally: exit %d, %q, %q", c.args, rcode, ro, re, lcode, lo, le)
			continue
		}
		newID := regexp.MustCompile(`Build:   (B[A-Z]{10})\n`).FindStringSubmatch(re)[1]
		checkPullable(t, w, id, newID, "imported", w.env.Registry+"/"+c.repo)
	}
	for _, s := range all {
		if strings.Contains(s, apiToken) {
			t.Errorf("an output shows the token: %q", s)
		}
	}
}

// checkExport checks that an export holds build id with each of its
// services' images.
func checkExport(t *testing.T, data []byte, id string, w *world) {
	t.Helper()
	st, _ := store.Open(context.Background(), w.vars["DATABASE_URL"])
	defer st.Close()
	b, err := st.GetBuild(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	names := map[string]bool{}
	var buildJSON struct {
		ID       string               `json:"id"`
		Services []store.ServiceImage `json:"services"`
	}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
		if h.Name == "build.json" {
			json.NewDecoder(tr).Decode(&buildJSON)
		}
	}
	if buildJSON.ID != id || len(buildJSON.Services) != len(b.Services) || len(b.Services) != 4 {
		t.Fatalf("build.json = %+v; stored %+v", buildJSON, b.Services)
	}
	for i, s := range b.Services {
		if !names[s.Service+"."+id+".tar"] || buildJSON.Services[i].Digest != s.Digest {
			t.Errorf("export lacks %s's image %s@%s: %v, %+v", s.Service, s.Image, s.Digest, names, buildJSON.Services[i])
		}
	}
}

// checkPullable checks that build newID of app is an import of build id:
// every image pushed to repo and pulled back in full by digest.
func checkPullable(t *testing.T, w *world, id, newID, app, repo string) {
	t.Helper()
	ctx := context.Background()
	st, _ := store.Open(ctx, w.vars["DATABASE_URL"])
	defer st.Close()
	orig, err := st.GetBuild(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.GetBuild(ctx, newID)
	if err != nil || b.App != app || b.Status != store.StatusComplete || len(b.Services) != len(orig.Services) {
		t.Fatalf("imported build %s = %+v, %v", newID, b, err)
	}
	nameOpts, remoteOpts, err := registry.Remote(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range b.Services {
		if s.Digest != orig.Services[i].Digest || s.Image != repo+":"+s.Service+"."+newID {
			t.Errorf("imported %+v, original %+v", s, orig.Services[i])
			continue
		}
		ref, err := name.ParseReference(repo+"@"+s.Digest, nameOpts...)
		if err != nil {
			t.Fatal(err)
		}
		// The image, or each image of an index (platforms and
		// attestations), pulled in full: layers are checked against
		// their digests as they are read.
		desc, err := remote.Get(ref, append(remoteOpts, remote.WithContext(ctx))...)
		if err != nil {
			t.Errorf("pulling %s: %v", ref, err)
			continue
		}
		var images []v1.Image
		if desc.MediaType.IsIndex() {
			idx, err := desc.ImageIndex()
			if err != nil {
				t.Fatal(err)
			}
			im, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range im.Manifests {
				img, err := idx.Image(d.Digest)
				if err != nil {
					t.Fatalf("pulling %s of %s: %v", d.Digest, ref, err)
				}
				images = append(images, img)
			}
		} else {
			img, err := desc.Image()
			if err != nil {
				t.Fatal(err)
			}
			images = append(images, img)
		}
		pulled := 0
		for _, img := range images {
			layers, err := img.Layers()
			if err != nil {
				t.Fatalf("pulling %s: %v", ref, err)
			}
			for _, l := range layers {
				rc, err := l.Compressed()
				if err == nil {
					_, err = io.Copy(io.Discard, rc)
					if cerr := rc.Close(); err == nil {
						err = cerr
					}
				}
				if err != nil {
					t.Errorf("pulling a layer of %s: %v", ref, err)
				}
				pulled++
			}
		}
		if pulled == 0 {
			t.Errorf("%s: no layer pulled", ref)
		}
	}
}

func TestRemoteErrorsSayWhatToDo(t *testing.T) {
	w := newStoreWorld(t)
	host := serve(t, w)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String()
	l.Close()
	// A server that puts the Authorization header into its error.
	echo := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusInternalServerError)
		json.NewEncoder(rw).Encode(api.Error{Error: "cannot serve " + r.Header.Get("Authorization")})
	}))
	defer echo.Close()
	usage := "\nRun 'convox-build --help' for usage.\n"
	only := "--host works with builds, builds info, builds logs, builds export and builds import"

	type tc struct {
		token  string
		vars   map[string]string
		args   []string
		stdin  string
		code   int
		stdout string
		stderr string
	}
	cases := []tc{
		{token: apiToken, args: []string{"builds", "info", "BAAAAAAAAAA", "--host", host}, code: 1,
			stderr: "ERROR: server " + host + ": no such build: BAAAAAAAAAA\n"},
		{token: apiToken, args: []string{"builds", "logs", "BAAAAAAAAAA", "--host", host}, code: 1,
			stderr: "ERROR: server " + host + ": no such build: BAAAAAAAAAA\n"},
		{token: apiToken, args: []string{"builds", "export", "BAAAAAAAAAA", "-f", filepath.Join(t.TempDir(), "x.tgz"), "--host", host}, code: 1,
			stderr: "ERROR: server " + host + ": no such build: BAAAAAAAAAA\n"},
		{token: apiToken, args: []string{"builds", "-a", "shop", "--host", host}, code: 0,
			stdout: "ID  STATUS  RELEASE  STARTED  ELAPSED  DESCRIPTION\n"},
		{token: apiToken, args: []string{"builds", "import", "-a", "shop", "--host", host, "--repository", "127.0.0.1:1/shop"}, stdin: "not an export", code: 1,
			stdout: "Importing build... ", stderr: "ERROR: importing stdin: server " + host + ": importing: not a gzip file (an export is a gzipped tar, as builds export writes)\n"},
		{token: "wrong-token", args: []string{"builds", "-a", "shop", "--host", host}, code: 1,
			stderr: "ERROR: server " + host + " refused the API token in CONVOX_BUILD_TOKEN (missing or wrong API token): set CONVOX_BUILD_TOKEN to the server's API token\n"},
		{token: "wrong-token", args: []string{"--host", host, "builds", "info", "BAAAAAAAAAA"}, code: 1,
			stderr: "ERROR: server " + host + " refused the API token in CONVOX_BUILD_TOKEN (missing or wrong API token): set CONVOX_BUILD_TOKEN to the server's API token\n"},
		{token: "wrong-token", args: []string{"builds", "import", "-a", "shop", "--host", host}, stdin: "anything", code: 1,
			stdout: "Importing build... ", stderr: "ERROR: importing stdin: server " + host + " refused the API token in CONVOX_BUILD_TOKEN (missing or wrong API token): set CONVOX_BUILD_TOKEN to the server's API token\n"},
		{token: "", args: []string{"builds", "-a", "shop", "--host", host}, code: 1,
			stderr: "ERROR: server " + host + ": CONVOX_BUILD_TOKEN is not set: set it to the server's API token\n"},
		{token: apiToken, args: []string{"builds", "-a", "shop", "--host", down}, code: 1,
			stderr: "ERROR: server " + down + ": dial tcp " + strings.TrimPrefix(down, "http://") + ": connect: connection refused (is the server running, and is --host right?)\n"},
		{token: apiToken, vars: map[string]string{envHost: down}, args: []string{"builds", "info", "BAAAAAAAAAA"}, code: 1,
			stderr: "ERROR: server " + down + ": dial tcp " + strings.TrimPrefix(down, "http://") + ": connect: connection refused (is the server running, and is CONVOX_BUILD_HOST right?)\n"},
		{token: apiToken, args: []string{"builds", "-a", "shop", "--host", echo.URL}, code: 1,
			stderr: "ERROR: server " + echo.URL + ": cannot serve Bearer ***\n"},
		{token: apiToken, args: []string{"builds", "--host", "builds.example.com"}, code: 2,
			stderr: "ERROR: --host \"builds.example.com\": want the server's URL, like https://builds.example.com" + usage},
		{token: apiToken, vars: map[string]string{envHost: "ftp://builds.example.com"}, args: []string{"builds"}, code: 2,
			stderr: "ERROR: CONVOX_BUILD_HOST \"ftp://builds.example.com\": want the server's URL, like https://builds.example.com" + usage},
		{token: apiToken, args: []string{"builds", "--host", "https://me:hunter2@builds.example.com"}, code: 2,
			stderr: "ERROR: --host https://builds.example.com: put no credentials in the URL; set CONVOX_BUILD_TOKEN to the server's API token" + usage},
		{token: apiToken, args: []string{"builds", "--host", "https://builds.example.com/?token=hunter2"}, code: 2,
			stderr: "ERROR: --host https://builds.example.com/?…: want the server's URL without a query or fragment, like https://builds.example.com" + usage},
		{token: apiToken, args: []string{"builds", "--host", host, "--database", "sqlite:///tmp/x.db"}, code: 2,
			stderr: "ERROR: --database is for the local database and registry; with --host the server uses its own" + usage},
		{token: apiToken, vars: map[string]string{envHost: host}, args: []string{"builds", "import", "--registry-auth", "r.example.com=u:p"}, stdin: "x", code: 2,
			stderr: "ERROR: --registry-auth is for the local database and registry; with CONVOX_BUILD_HOST the server uses its own" + usage},
		{token: apiToken, args: []string{"build", ".", "--host", host}, code: 2, stderr: "ERROR: build runs here, not on a server: " + only + usage},
		{token: apiToken, args: []string{"--host", host, "build"}, code: 2, stderr: "ERROR: build runs here, not on a server: " + only + usage},
		{token: apiToken, args: []string{"manifest", "validate", "--host=" + host}, code: 2, stderr: "ERROR: manifest validate runs here, not on a server: " + only + usage},
		{token: apiToken, args: []string{"--host", host}, code: 2, stderr: "ERROR: --host: no command (" + only + ")" + usage},
		{token: apiToken, args: []string{"--host"}, code: 2, stderr: "ERROR: --host: want the server's URL, like --host https://builds.example.com" + usage},
		// An explicit --host "" is the local database, whatever
		// CONVOX_BUILD_HOST says.
		{token: apiToken, vars: map[string]string{envHost: down}, args: []string{"builds", "-a", "shop", "--host", ""}, code: 0,
			stdout: "ID  STATUS  RELEASE  STARTED  ELAPSED  DESCRIPTION\n"},
	}
	for _, c := range cases {
		w.vars[envToken] = c.token
		for k, v := range c.vars {
			w.vars[k] = v
		}
		o, e, code := w.run(strings.NewReader(c.stdin), false, c.args...)
		for k := range c.vars {
			delete(w.vars, k)
		}
		if code != c.code || o != c.stdout || e != c.stderr {
			t.Errorf("%v: exit %d\n%q\n%q\nwant exit %d\n%q\n%q", c.args, code, o, e, c.code, c.stdout, c.stderr)
		}
		if strings.Contains(o+e, apiToken) || strings.Contains(o+e, "wrong-token") || strings.Contains(o+e, "hunter2") {
			t.Errorf("%v: a secret in the output: %q %q", c.args, o, e)
		}
	}
}

// TestRemoteListsWhatLocalLists checks -l against a server on more builds
// than the default 10, and builds that are still running.
func TestRemoteListsWhatLocalLists(t *testing.T) {
	w := newStoreWorld(t)
	host := serve(t, w)
	w.vars[envToken] = apiToken
	ctx := context.Background()
	st, err := store.Open(ctx, w.vars["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC().Truncate(time.Second)
	w.setNow(now)
	for i := range 12 {
		b := &store.Build{ID: "BMANYBUILD" + string(rune('A'+i)), App: "many", Status: store.StatusComplete, Description: "build " + string(rune('a'+i)),
			Started: now.Add(time.Duration(i-20) * time.Minute), Ended: now.Add(time.Duration(i-20)*time.Minute + 75*time.Second)}
		if i == 11 {
			b.Status, b.Ended, b.Heartbeat = store.StatusRunning, time.Time{}, now
		}
		if err := st.CreateBuild(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		args []string
		rows int
	}{
		{[]string{"builds", "-a", "many"}, 10},
		{[]string{"builds", "-a", "many", "-l", "0"}, 12},
		{[]string{"builds", "-a", "many", "-l", "3"}, 3},
		{[]string{"builds", "info", "BMANYBUILDL"}, 6},
		{[]string{"builds", "info", "BMANYBUILDA", "-a", "many"}, 6},
	} {
		o, e, code := w.run(nil, false, c.args...)
		if lines := strings.Count(o, "\n"); code != 0 || e != "" || (c.args[1] == "info" && lines != c.rows) || (c.args[1] != "info" && lines != c.rows+1) {
			t.Errorf("%v locally: exit %d, %d lines, want %d:\n%s%s", c.args, code, lines, c.rows, o, e)
		}
		for i, r := range w.remotely(t, host, false, nil, c.args...) {
			if r.out != o || r.err != e || r.code != code {
				t.Errorf("%v remotely (way %d): exit %d\n%q\n%q\nlocally:\n%q", c.args, i, r.code, r.out, r.err, o)
			}
		}
	}
}
