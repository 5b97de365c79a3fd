package action

import (
	"bytes"
	"context"
	"strings"
	"testing"

	githubactions "github.com/sethvargo/go-githubactions"
)

func TestDefaultsAndGHCRCredentials(t *testing.T) {
	env := map[string]string{
		"GITHUB_WORKSPACE": "/github/workspace", "GITHUB_REPOSITORY": "Codertocat/Hello-World", "GITHUB_ACTOR": "Codertocat",
		"HOME": t.TempDir(), "INPUT_GITHUB-TOKEN": "ghs_token", "INPUT_SERVICES": "web, worker\napi",
	}
	getenv := func(k string) string { return env[k] }
	a := githubactions.New(githubactions.WithGetenv(getenv), githubactions.WithWriter(&bytes.Buffer{}))
	rc, err := readContext(getenv)
	if err != nil {
		t.Fatal(err)
	}
	in, err := readInputs(a, rc)
	if err != nil {
		t.Fatal(err)
	}
	if in.App != "hello-world" || in.Repository != "ghcr.io/codertocat/hello-world" || in.Manifest != "convox.yml" || !in.Push || !in.Checks || !in.Summary || in.NoCache {
		t.Errorf("defaults: %+v", in)
	}
	if got := in.Services; len(got) != 3 || got[0] != "web" || got[1] != "worker" || got[2] != "api" {
		t.Errorf("services %q", got)
	}
	r := &runner{cfg: Config{Getenv: getenv}, a: a, rc: rc, in: in}
	opts, err := r.registryOptions()
	if err != nil {
		t.Fatal(err)
	}
	user, secret, err := opts.Auth.Credentials(context.Background(), "ghcr.io")
	if err != nil || user != "Codertocat" || secret != "ghs_token" {
		t.Errorf("ghcr.io credentials %q %q %v, want the actor and the token", user, secret, err)
	}
	if user, _, _ := opts.Auth.Credentials(context.Background(), "registry.example.com"); user != "" {
		t.Errorf("the token is offered to another registry")
	}

	// Given credentials win, for the repository's registry.
	env["INPUT_REPOSITORY"] = "registry.example.com/acme/shop"
	env["INPUT_REGISTRY-USERNAME"], env["INPUT_REGISTRY-PASSWORD"] = "bot", "pw"
	in, _ = readInputs(a, rc)
	r.in = in
	opts, err = r.registryOptions()
	if err != nil {
		t.Fatal(err)
	}
	if user, secret, _ := opts.Auth.Credentials(context.Background(), "registry.example.com"); user != "bot" || secret != "pw" {
		t.Errorf("registry.example.com credentials %q %q", user, secret)
	}
	if user, _, _ := opts.Auth.Credentials(context.Background(), "ghcr.io"); user != "" {
		t.Errorf("ghcr.io got credentials though the repository is elsewhere")
	}
}

// A KEY=VALUE input never panics, and its errors never show a value.
func FuzzKeyValues(f *testing.F) {
	for _, s := range []string{"A=1\nB=2", "NOEQUALS\n", "=x", " K = v \n# c\n\nK2=", "A=1\nA=2", "K V=secretvalue"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		a := githubactions.New(githubactions.WithGetenv(func(string) string { return v }), githubactions.WithWriter(&bytes.Buffer{}))
		kv, err := keyValues(a, "secrets")
		if err != nil {
			if strings.Contains(err.Error(), "secretvalue") {
				t.Errorf("error shows a value: %v", err)
			}
			return
		}
		for k := range kv {
			if k == "" || strings.ContainsAny(k, "= \t\n") {
				t.Errorf("key %q from %q", k, v)
			}
		}
	})
}
