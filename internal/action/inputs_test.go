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

func TestSecretsInputTakesMultilineValues(t *testing.T) {
	pem := "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----"
	input := "NPM_TOKEN=npm_abc123\nSSH_KEY<<EOF\n" + pem + "\nEOF\n# a comment\nOTHER = x=y\n"
	got, err := secretValues(input)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got["NPM_TOKEN"] != "npm_abc123" || got["SSH_KEY"] != pem || got["OTHER"] != " x=y" {
		t.Errorf("secrets = %q", got)
	}
	a := githubactions.New(githubactions.WithGetenv(func(k string) string {
		return map[string]string{"INPUT_SECRETS": input}[k]
	}), githubactions.WithWriter(&bytes.Buffer{}))
	m := strings.Join(masks(a), "|")
	for _, want := range []string{"npm_abc123", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ", "-----BEGIN OPENSSH PRIVATE KEY-----", "x=y"} {
		if !strings.Contains(m, want) {
			t.Errorf("masks %q lack %q", m, want)
		}
	}
	for in, want := range map[string]string{
		"KEY<<EOF\nvalue\n":     "line 1: no line \"EOF\" ends the value of KEY",
		"KEY<<\nvalue\n":        "line 1: KEY<< needs a delimiter",
		"A=1\nno-equals-here\n": "line 2: expected ID=VALUE or ID<<DELIMITER (the line is not shown",
		"A=1\nA=2":              "line 2: A is given twice",
	} {
		if _, err := secretValues(in); err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "no-equals-here") {
			t.Errorf("secretValues(%q) = %v, want %q", in, err, want)
		}
	}
}
