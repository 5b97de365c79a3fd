package envconfig

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func lookup(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func writeDockerConfig(t *testing.T, host, user, password string) string {
	t.Helper()
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"auths":{"`+host+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestRegistryOptions(t *testing.T) {
	t.Setenv("DOCKER_AUTH_CONFIG", "")
	ctx := context.Background()
	cfg := writeDockerConfig(t, "ghcr.io", "cfg-user", "cfg-pass")
	home := t.TempDir()
	if err := os.CopyFS(filepath.Join(home, ".docker"), os.DirFS(writeDockerConfig(t, "quay.io", "home-user", "home-pass"))); err != nil {
		t.Fatal(err)
	}
	// The process's own variables must not matter: only the lookup does.
	t.Setenv("DOCKER_CONFIG", writeDockerConfig(t, "quay.io", "process-user", "process-pass"))
	t.Setenv("REGISTRY_MIRRORS", "docker.io=process.example")
	t.Setenv("CONVOX_BUILD_REGISTRY_INSECURE", "true")

	opts, err := RegistryOptions(lookup(map[string]string{
		"DOCKER_CONFIG":                  cfg,
		"HOME":                           home,
		"DOCKER_HUB_USERNAME":            "hub-user",
		"DOCKER_HUB_PASSWORD":            "hub-pass",
		"CONVOX_BUILD_REGISTRY_INSECURE": "1",
		"REGISTRY_MIRRORS":               "docker.io=127.0.0.1:5000,docker.io=mirror.example.com,ghcr.io=m.example",
	}), []string{"ghcr.io=pair-user:pair:pass", "registry.example.com=u:p"})
	if err != nil {
		t.Fatal(err)
	}
	if !opts.Insecure {
		t.Error("CONVOX_BUILD_REGISTRY_INSECURE=1 did not allow plain HTTP")
	}
	if want := map[string][]string{"docker.io": {"127.0.0.1:5000", "mirror.example.com"}, "ghcr.io": {"m.example"}}; !reflect.DeepEqual(opts.Mirrors, want) {
		t.Errorf("mirrors %v, want %v", opts.Mirrors, want)
	}
	for host, want := range map[string]string{
		"ghcr.io":              "pair-user pair:pass", // pairs win over the config file
		"registry.example.com": "u p",
		"registry-1.docker.io": "hub-user hub-pass", // Docker Hub by any of its names
		"index.docker.io":      "hub-user hub-pass",
		"quay.io":              " ", // DOCKER_CONFIG given: not $HOME/.docker, not the process's
	} {
		u, p, err := opts.Auth.Credentials(ctx, host)
		if err != nil || u+" "+p != want {
			t.Errorf("credentials for %s = %q %q, %v; want %q", host, u, p, err, want)
		}
	}

	// Without DOCKER_CONFIG: $HOME/.docker; nothing set at all: anonymous,
	// secure, no mirrors.
	opts, err = RegistryOptions(lookup(map[string]string{"HOME": home}), nil)
	if u, p, _ := opts.Auth.Credentials(ctx, "quay.io"); err != nil || u != "home-user" || p != "home-pass" {
		t.Errorf("$HOME/.docker: %q %q, %v", u, p, err)
	}
	opts, err = RegistryOptions(lookup(map[string]string{"DOCKER_CONFIG": t.TempDir()}), nil)
	if err != nil || opts.Insecure || opts.Mirrors != nil {
		t.Errorf("defaults: %+v, %v", opts, err)
	}
}

func TestRegistryOptionsErrorsNameTheVariable(t *testing.T) {
	t.Setenv("DOCKER_AUTH_CONFIG", "")
	badConfig := t.TempDir()
	os.WriteFile(filepath.Join(badConfig, "config.json"), []byte("{not json"), 0o600)
	for _, tc := range []struct {
		vars  map[string]string
		pairs []string
		v     string // the *Error's variable; "" for a pair error
		want  string
	}{
		{map[string]string{"DOCKER_HUB_USERNAME": "u"}, nil, "DOCKER_HUB_PASSWORD", "DOCKER_HUB_PASSWORD: empty, but DOCKER_HUB_USERNAME is set: set both or neither"},
		{map[string]string{"DOCKER_HUB_PASSWORD": "s3cret-hub"}, nil, "DOCKER_HUB_USERNAME", "DOCKER_HUB_USERNAME: empty, but DOCKER_HUB_PASSWORD is set: set both or neither"},
		{map[string]string{"CONVOX_BUILD_REGISTRY_INSECURE": "yes please"}, nil, "CONVOX_BUILD_REGISTRY_INSECURE", `CONVOX_BUILD_REGISTRY_INSECURE: "yes please": want true or false`},
		{map[string]string{"REGISTRY_MIRRORS": "docker.io"}, nil, "REGISTRY_MIRRORS", `REGISTRY_MIRRORS: "docker.io": want host=mirror, e.g. docker.io=mirror.example.com`},
		{map[string]string{"REGISTRY_MIRRORS": "docker.io=https://m.example"}, nil, "REGISTRY_MIRRORS", `REGISTRY_MIRRORS: "docker.io=https://m.example": mirror "https://m.example" must be a host[:port] without scheme or path (it serves the registry's repository paths)`},
		{map[string]string{"DOCKER_CONFIG": badConfig}, nil, "DOCKER_CONFIG", "DOCKER_CONFIG: reading the Docker config file in " + badConfig},
		{map[string]string{"DOCKER_CONFIG": t.TempDir()}, []string{"ghcr.io=user:s3cret-pair", "ghcr.io=user:other"}, "", "registry credentials: two pairs for ghcr.io; give one"},
		{map[string]string{"DOCKER_CONFIG": t.TempDir()}, []string{"ghcr.io=user-without-password"}, "", `registry credential for ghcr.io: no ":" after the "="`},
	} {
		_, err := RegistryOptions(lookup(tc.vars), tc.pairs)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%v %v: error %v, want %q", tc.vars, tc.pairs, err, tc.want)
			continue
		}
		var e *Error
		if got := errors.As(err, &e); got != (tc.v != "") || got && e.Var != tc.v {
			t.Errorf("%v: error %#v, want *Error for %q", tc.vars, err, tc.v)
		}
		for _, secret := range []string{"s3cret-hub", "s3cret-pair", "user-without-password"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q shows a secret", err)
			}
		}
	}
}

func TestOtherSettings(t *testing.T) {
	env := lookup(map[string]string{
		"BUILDKIT_HOST":         "unix:///a.sock, tcp://b:1234",
		"DATABASE_URL":          " postgres://db/builds ",
		"CONVOX_BUILD_REGISTRY": "registry.example.com/team/",
		"ACTIONS_CACHE_URL":     "https://cache/", "ACTIONS_RESULTS_URL": "https://results/", "ACTIONS_RUNTIME_TOKEN": "tok",
	})
	if h, err := BuildkitHosts(env); err != nil || !reflect.DeepEqual(h, []string{"unix:///a.sock", "tcp://b:1234"}) {
		t.Errorf("BuildkitHosts = %q, %v", h, err)
	}
	if h, err := BuildkitHosts(lookup(nil)); err != nil || !reflect.DeepEqual(h, []string{DefaultBuildkitHost}) {
		t.Errorf("default BuildkitHosts = %q, %v", h, err)
	}
	if _, err := BuildkitHosts(lookup(map[string]string{"BUILDKIT_HOST": "unix:///a.sock,,unix:///b.sock"})); err == nil ||
		err.Error() != `BUILDKIT_HOST: "unix:///a.sock,,unix:///b.sock" has an empty address: separate addresses with single commas` {
		t.Errorf("empty address: %v", err)
	}
	if d, err := Database(env); err != nil || d != "postgres://db/builds" {
		t.Errorf("Database = %q, %v", d, err)
	}
	if d, err := Database(lookup(map[string]string{"HOME": "/home/u"})); err != nil || d != "/home/u/.local/share/convox-build/builds.db" {
		t.Errorf("default Database = %q, %v", d, err)
	}
	if r, err := Repository(env, "myapp"); err != nil || r != "registry.example.com/team/myapp" {
		t.Errorf("Repository = %q, %v", r, err)
	}
	if _, err := Repository(lookup(nil), "myapp"); !errors.Is(err, ErrNoRepository) {
		t.Errorf("Repository without registry: %v", err)
	}
	if _, err := Repository(lookup(map[string]string{"CONVOX_BUILD_REGISTRY": "https://r.example"}), "a"); err == nil || !strings.HasPrefix(err.Error(), "CONVOX_BUILD_REGISTRY: ") {
		t.Errorf("Repository with a scheme: %v", err)
	}
	if g := GitHubActionsCache(env); g != (GHACache{URL: "https://cache/", URLV2: "https://results/", Token: "tok"}) {
		t.Errorf("GitHubActionsCache = %+v", g)
	}
}
