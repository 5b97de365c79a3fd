package registry

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestDockerHubCredentials(t *testing.T) {
	isolate(t)
	ctx := context.Background()
	a, err := NewAuth(AuthOptions{
		DockerHubUsername: "hubuser",
		DockerHubPassword: "dckr_pat_hub",
		Pairs:             []string{"ghcr.io=octo:ghp_token"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string][2]string{
		"registry-1.docker.io": {"hubuser", "dckr_pat_hub"}, // as BuildKit asks
		"index.docker.io":      {"hubuser", "dckr_pat_hub"}, // as go-containerregistry asks
		"docker.io":            {"hubuser", "dckr_pat_hub"},
		"ghcr.io":              {"octo", "ghp_token"},
		"quay.io":              {"", ""},
		"127.0.0.1:5000":       {"", ""},
		"docker.io.example":    {"", ""},
	} {
		u, s, err := a.Credentials(ctx, host)
		if err != nil || u != want[0] || s != want[1] {
			t.Errorf("Credentials(%s) = %q, %q, %v; want %q, %q", host, u, s, err, want[0], want[1])
		}
	}

	// go-containerregistry's keychain offers the same.
	for _, reg := range []string{"index.docker.io", "docker.io", "quay.io"} {
		r, err := name.NewRegistry(reg)
		if err != nil {
			t.Fatal(err)
		}
		auth, err := a.Keychain().Resolve(r)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := authn.Authorization(ctx, auth)
		if err != nil {
			t.Fatal(err)
		}
		wantUser := "hubuser"
		if reg == "quay.io" {
			wantUser = ""
		}
		if cfg.Username != wantUser {
			t.Errorf("keychain for %s: user %q, want %q", reg, cfg.Username, wantUser)
		}
	}

	// An explicit pair wins over the Docker Hub username and token.
	a, err = NewAuth(AuthOptions{DockerHubUsername: "hubuser", DockerHubPassword: "p", Pairs: []string{"index.docker.io=pairuser:q"}})
	if err != nil {
		t.Fatal(err)
	}
	if u, _, _ := a.Credentials(ctx, "registry-1.docker.io"); u != "pairuser" {
		t.Errorf("user %q, want the pair's", u)
	}

	for _, tc := range []struct {
		opts AuthOptions
		want string
	}{
		{AuthOptions{DockerHubUsername: "u"}, "docker hub credentials: a username without a password; give both or neither"},
		{AuthOptions{DockerHubPassword: "p"}, "docker hub credentials: a password without a username; give both or neither"},
		{AuthOptions{Pairs: []string{"ghcr.io=a:b", "https://GHCR.io/=c:d"}}, "registry credentials: two pairs for ghcr.io; give one"},
	} {
		if _, err := NewAuth(tc.opts); err == nil || err.Error() != tc.want {
			t.Errorf("NewAuth(%+v): error %v, want %q", tc.opts, err, tc.want)
		}
	}
}

func TestAuthFromConfigFileErrors(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	writeFile(t, dir+"/config.json", `{"auths": `)
	if _, err := NewAuth(AuthOptions{DockerConfigDir: dir}); err == nil || !strings.Contains(err.Error(), "reading the Docker config file in "+dir) {
		t.Errorf("error %v, want one naming the directory", err)
	}

	// A credential helper that is not installed fails the lookup clearly.
	writeFile(t, dir+"/config.json", `{"credsStore": "missing-helper"}`)
	a, err := NewAuth(AuthOptions{DockerConfigDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = a.Credentials(context.Background(), "ghcr.io")
	if err == nil || !strings.HasPrefix(err.Error(), "getting credentials for ghcr.io from docker-credential-missing-helper (Docker config file): ") {
		t.Errorf("error %v", err)
	}
}

func TestParsePair(t *testing.T) {
	for _, tc := range []struct {
		in, host, user, password string
	}{
		{"ghcr.io=octo:ghp_abc", "ghcr.io", "octo", "ghp_abc"},
		{"127.0.0.1:5000=admin:pa:ss=word", "127.0.0.1:5000", "admin", "pa:ss=word"},
		{"https://Registry.Example.com/v2/=u:p", "registry.example.com", "u", "p"},
		{"registry-1.docker.io=u:p", "docker.io", "u", "p"},
		{"index.docker.io=u:p", "docker.io", "u", "p"},
	} {
		host, user, password, err := ParsePair(tc.in)
		if err != nil || host != tc.host || user != tc.user || password != tc.password {
			t.Errorf("ParsePair(%q) = %q, %q, %q, %v", tc.in, host, user, password, err)
		}
	}

	for _, tc := range []struct{ in, want string }{
		{"octo:hunter2", `registry credential: no "=" (want host=user:password; the value is not shown as it may hold a secret)`},
		{"=octo:hunter2", `registry credential: empty host (want host=user:password)`},
		{"ghcr.io=hunter2", `registry credential for ghcr.io: no ":" after the "=" (want host=user:password; the value is not shown as it may hold a secret)`},
		{"ghcr.io=:hunter2", `registry credential for ghcr.io: empty user (want host=user:password)`},
		{"ghcr.io=octo:", `registry credential for ghcr.io: empty password for user "octo" (want host=user:password)`},
		{"ghcr .io=octo:hunter2", `registry credential for "ghcr .io": the host contains white space (want host=user:password)`},
	} {
		_, _, _, err := ParsePair(tc.in)
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParsePair(%q): error %v, want %q", tc.in, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ParsePair(%q): error %q shows the password", tc.in, err)
		}
		if _, err := NewAuth(AuthOptions{Pairs: []string{tc.in}}); err == nil || err.Error() != tc.want {
			t.Errorf("NewAuth with pair %q: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestRedact(t *testing.T) {
	secrets := []string{"hunter2", "", "hunter2-long"}
	for _, tc := range []struct{ in, want string }{
		{"login failed for octo with hunter2", "login failed for octo with ***"},
		{"token hunter2-long and hunter2", "token *** and ***"},
		{"GET https://octo:pw@ghcr.io/v2/: 401", "GET https://ghcr.io/v2/: 401"},
		{"GET https://auth.docker.io/token?scope=repository:library/x:pull&service=registry.docker.io: 401 Unauthorized",
			"GET https://auth.docker.io/token: 401 Unauthorized"},
		{`blob at "https://s3.amazonaws.com/b/sha256?X-Amz-Signature=abc#frag" failed`, `blob at "https://s3.amazonaws.com/b/sha256" failed`},
		{"see (http://user@host:5000/path?x=1).", "see (http://host:5000/path)."},
		{"no urls, no secrets", "no urls, no secrets"},
		{"a user:pass@host without scheme stays", "a user:pass@host without scheme stays"},
	} {
		if got := Redact(tc.in, secrets); got != tc.want {
			t.Errorf("Redact(%q)\n = %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestEntrypoint(t *testing.T) {
	for _, tc := range []struct {
		entrypoint, cmd []string
		want            string
	}{
		{nil, nil, ""},
		{nil, []string{"bin/web"}, "bin/web"},
		{[]string{"docker-entrypoint.sh"}, []string{"postgres"}, "docker-entrypoint.sh postgres"},
		{[]string{"/bin/sh", "-c"}, []string{"bundle exec puma -C config/puma.rb"}, "/bin/sh -c 'bundle exec puma -C config/puma.rb'"},
		{nil, []string{"echo", "it's"}, `echo 'it'\''s'`},
		{nil, []string{"printf", ""}, "printf ''"},
		{nil, []string{"node", "--max-old-space-size=512", "server.js"}, "node --max-old-space-size=512 server.js"},
		{nil, []string{"sh", "-c", "echo $HOME; ls *"}, `sh -c 'echo $HOME; ls *'`},
		{nil, []string{"user@host:8080/a,b%2"}, "user@host:8080/a,b%2"},
	} {
		cf := &v1.ConfigFile{Config: v1.Config{Entrypoint: tc.entrypoint, Cmd: tc.cmd}}
		if got := Entrypoint(cf); got != tc.want {
			t.Errorf("Entrypoint(%q, %q) = %q, want %q", tc.entrypoint, tc.cmd, got, tc.want)
		}
	}
	if got := Entrypoint(nil); got != "" {
		t.Errorf("Entrypoint(nil) = %q", got)
	}
}
