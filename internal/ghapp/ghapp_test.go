package ghapp_test

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/ghapp"
	"github.com/convox-build-action/convox-build-action/internal/ghclient"
	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

const sha = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"

func app(t *testing.T, gh *testenv.FakeGitHubApp) *ghapp.App {
	t.Helper()
	a, err := ghapp.New(ghapp.Options{AppID: gh.AppID, PrivateKey: gh.PrivateKey, APIURL: gh.APIURL,
		Client: ghclient.Options{MaxWait: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func source(t *testing.T) string {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "convox.yml"), []byte("services:\n  web:\n    build: .\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM busybox\n"), 0o644)
	os.Symlink("convox.yml", filepath.Join(dir, "manifest.yml"))
	return dir
}

func TestDownloadSource(t *testing.T) {
	gh := testenv.NewFakeGitHubApp(t)
	gh.AddCommit(t, "Codertocat", "Hello-World", sha, source(t))
	in, err := app(t, gh).Installation(1)
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "src")
	if err := in.DownloadSource(t.Context(), "Codertocat", "Hello-World", sha, dest, ghapp.Limits{}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"convox.yml": "services:\n  web:\n    build: .\n", "Dockerfile": "FROM busybox\n", "manifest.yml": "services:\n  web:\n    build: .\n"} {
		if b, err := os.ReadFile(filepath.Join(dest, name)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v", name, b, err)
		}
	}
	tok, err := in.Token(t.Context())
	if err != nil || !strings.HasPrefix(tok, "ghs_") {
		t.Fatalf("token %q, %v", tok, err)
	}
	// One token fetched with the App's JWT; the tarball asked for with
	// the installation's token; the archive fetched with the signed URL
	// alone.
	if reqs := gh.RequestsTo("POST", "/app/installations/1/access_tokens"); len(reqs) != 1 || reqs[0].Status != 201 {
		t.Errorf("token requests: %+v", reqs)
	}
	tar := gh.RequestsTo("GET", "/repos/Codertocat/Hello-World/tarball/"+sha)
	if len(tar) != 1 || tar[0].Header.Get("Authorization") != "token "+tok || tar[0].Status != 302 {
		t.Errorf("tarball requests: %+v", tar)
	}
	load := gh.RequestsTo("GET", "/_codeload/")
	if len(load) != 1 || load[0].Header.Get("Authorization") != "" || load[0].Query.Get("token") == "" || load[0].Status != 200 {
		t.Errorf("archive requests: %+v", load)
	}
	// The installation reuses its token.
	if again, _ := in.Token(t.Context()); again != tok {
		t.Error("a second Token call fetched a new token")
	}
}

func TestDownloadSourceRetries(t *testing.T) {
	gh := testenv.NewFakeGitHubApp(t)
	gh.AddCommit(t, "o", "r", sha, source(t))
	gh.FailNext("GET", "/repos/o/r/tarball/", 2, testenv.FakeResponse{Status: http.StatusBadGateway})
	gh.FailNext("GET", "/repos/o/r/tarball/", 1, testenv.SecondaryRateLimit(1))
	gh.FailNext("GET", "/_codeload/", 1, testenv.FakeResponse{Status: http.StatusServiceUnavailable})
	in, _ := app(t, gh).Installation(5)
	began := time.Now()
	if err := in.DownloadSource(t.Context(), "o", "r", sha, t.TempDir(), ghapp.Limits{}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < time.Second {
		t.Errorf("took %v: the secondary rate limit's Retry-After: 1 was not honoured", took)
	}
	if n := len(gh.RequestsTo("GET", "/repos/o/r/tarball/")); n != 4 {
		t.Errorf("%d tarball requests, want 4 (2 x 502, 1 x rate limit, success)", n)
	}
}

func TestDownloadSourceErrors(t *testing.T) {
	gh := testenv.NewFakeGitHubApp(t)
	gh.AddCommit(t, "o", "r", sha, source(t))
	in, _ := app(t, gh).Installation(5)

	err := in.DownloadSource(t.Context(), "o", "r", "0123456789012345678901234567890123456789", t.TempDir(), ghapp.Limits{})
	var nf *ghapp.NotFoundError
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), "GitHub has no o/r@0123456789012345678901234567890123456789") {
		t.Errorf("unknown commit: %v", err)
	}

	gh.FailNext("GET", "/_codeload/", 1, testenv.FakeResponse{Status: http.StatusForbidden})
	err = in.DownloadSource(t.Context(), "o", "r", sha, t.TempDir(), ghapp.Limits{})
	if err == nil || !strings.Contains(err.Error(), "the archive server answered 403 Forbidden") {
		t.Errorf("archive refused: %v", err)
	}
	for _, s := range gh.Secrets() {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q shows a secret", err)
		}
	}

	gh.FailNext("GET", "/_codeload/", 1, testenv.FakeResponse{Status: http.StatusOK, Body: "not a tarball"})
	err = in.DownloadSource(t.Context(), "o", "r", sha, t.TempDir(), ghapp.Limits{})
	if err == nil || !strings.Contains(err.Error(), "not a gzipped tarball") {
		t.Errorf("garbage archive: %v", err)
	}

	// A key GitHub does not know: the token request fails, clearly.
	other := testenv.NewFakeGitHubApp(t)
	wrong, _ := ghapp.New(ghapp.Options{AppID: gh.AppID, PrivateKey: other.PrivateKey, APIURL: gh.APIURL})
	win, _ := wrong.Installation(5)
	if _, err := win.Token(t.Context()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong key: %v", err)
	}
}

func TestNewRefusesBadKeys(t *testing.T) {
	for _, tc := range []struct {
		opts ghapp.Options
		want string
	}{
		{ghapp.Options{PrivateKey: []byte("x")}, "no App ID"},
		{ghapp.Options{AppID: 1}, "no private key"},
		{ghapp.Options{AppID: 1, PrivateKey: []byte("-----BEGIN RSA PRIVATE KEY-----\nnope\n-----END RSA PRIVATE KEY-----\n")}, "reading the private key"},
	} {
		_, err := ghapp.New(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "nope") {
			t.Errorf("New(%+v): %v; want %q", tc.opts.AppID, err, tc.want)
		}
	}
}
