package build_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/registry"
)

// buildArgCase is one ARG of the table: where a value could come from and
// what the build must see.
type buildArgCase struct {
	arg        string
	argDefault string // the Dockerfile's ARG default; "" for none
	serviceEnv string // the service's environment: entry; "" for none
	manifest   string // the service's build.args entry; "" for none
	appEnv     string // the app environment's value; "" for unset
	caller     string // the caller's --build-args value; "" for none
	want       string // what RUN sees
	why        string
}

// TestBuildArgsReachBuildKit builds one Dockerfile whose RUN prints every
// ARG, and checks the values BuildKit gave it against Convox's rules
// (pkg/build/buildkit.go, buildArgs: for every ARG the Dockerfile declares,
// the whole app environment's value, plus --build-args; a service's
// environment: defaults are not build arguments) and this project's
// additions (build.args, then the caller's arguments, win).
func TestBuildArgsReachBuildKit(t *testing.T) {
	cases := []buildArgCase{
		{arg: "NPM_TOKEN", appEnv: "tok", want: "tok", why: "Convox: app environment, though no service lists it"},
		{arg: "RAILS_ENV", argDefault: "production", serviceEnv: "RAILS_ENV=development", want: "production", why: "Convox: a service's environment default is not a build argument"},
		{arg: "SVC_ONLY", serviceEnv: "SVC_ONLY=x", want: "", why: "Convox: a service's environment default is not a build argument"},
		{arg: "APP_WINS", argDefault: "d", serviceEnv: "APP_WINS=svc", appEnv: "app", want: "app", why: "Convox: the app environment beats both defaults"},
		{arg: "REQUIRED", serviceEnv: "REQUIRED", appEnv: "app", want: "app", why: "Convox: a required entry's app value"},
		{arg: "MANIFEST_WINS", argDefault: "d", manifest: "MANIFEST_WINS=manifest", appEnv: "app", want: "manifest", why: "ours: build.args beat the app environment"},
		{arg: "VALUELESS", argDefault: "d", manifest: "VALUELESS", appEnv: "app", want: "app", why: "ours: build.args KEY takes the app environment's value"},
		{arg: "VALUELESS_UNSET", argDefault: "d", manifest: "VALUELESS_UNSET", want: "d", why: "ours: build.args KEY with no app value leaves the Dockerfile default"},
		{arg: "CALLER_WINS", argDefault: "d", serviceEnv: "CALLER_WINS=svc", manifest: "CALLER_WINS=manifest", appEnv: "app", caller: "caller", want: "caller", why: "Convox and ours: --build-args win"},
		{arg: "CALLER_ONLY", argDefault: "d", caller: "caller", want: "caller", why: "Convox: --build-args"},
	}

	// The first two ARGs share a lowercase line with a continuation, as
	// BuildKit reads them; the others have a line each.
	var df strings.Builder
	df.WriteString("FROM busybox\n")
	var echo []string
	for i, c := range cases {
		decl := c.arg
		if c.argDefault != "" {
			decl += "=" + c.argDefault
		}
		switch i {
		case 0:
			df.WriteString("arg " + decl + " \\\n")
		case 1:
			df.WriteString("    " + decl + "\n")
		default:
			df.WriteString("ARG " + decl + "\n")
		}
		echo = append(echo, c.arg+" \"$"+c.arg+"\"")
	}
	// UNDECLARED is in the app environment but no ARG declares it.
	// printf prints "seen NAME=[value]" lines, text the RUN line itself
	// (which BuildKit shows with the ARGs it has substituted) does not hold.
	echo = append(echo, "UNDECLARED \"$UNDECLARED\"")
	df.WriteString("RUN printf 'seen %s=[%s]\\n' " + strings.Join(echo, " ") + "\n")

	var yml strings.Builder
	yml.WriteString("services:\n  web:\n    build:\n      path: .\n      args:\n")
	appEnv := map[string]string{"UNDECLARED": "app"}
	caller := map[string]string{}
	var serviceEnv []string
	for _, c := range cases {
		if c.manifest != "" {
			yml.WriteString("        - " + c.manifest + "\n")
		}
		if c.serviceEnv != "" {
			serviceEnv = append(serviceEnv, c.serviceEnv)
		}
		if c.appEnv != "" {
			appEnv[c.arg] = c.appEnv
		}
		if c.caller != "" {
			caller[c.arg] = c.caller
		}
	}
	yml.WriteString("    environment:\n")
	for _, e := range serviceEnv {
		yml.WriteString("      - " + e + "\n")
	}

	dir := t.TempDir()
	for name, content := range map[string]string{"Dockerfile": df.String(), "convox.yml": yml.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	h := newHarness(t)
	b, err := h.engine.Run(context.Background(), build.Request{
		App:        "buildargs",
		Repository: h.env.Registry + "/buildargs",
		SourceDir:  dir,
		Env:        appEnv,
		BuildArgs:  caller,
		NoCache:    true,
		Registry:   registry.Options{Insecure: true},
	})
	if err != nil {
		if b != nil {
			t.Logf("logs:\n%s", storedLogs(t, h.store, b.ID))
		}
		t.Fatalf("build: %v", err)
	}
	logs := storedLogs(t, h.store, b.ID)
	seen := func(arg string) (string, bool) {
		m := regexp.MustCompile(`seen ` + arg + `=\[([^\]]*)\]`).FindStringSubmatch(logs)
		if m == nil {
			return "", false
		}
		return m[1], true
	}
	for _, c := range cases {
		got, ok := seen(c.arg)
		if !ok || got != c.want {
			t.Errorf("%s: BuildKit gave %q (found %v), want %q: %s", c.arg, got, ok, c.want, c.why)
		}
	}
	if got, ok := seen("UNDECLARED"); !ok || got != "" {
		t.Errorf("UNDECLARED: BuildKit gave %q (found %v), want nothing: only declared ARGs take the app environment", got, ok)
	}
}
