package manifest

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const planManifest = `environment:
	- NODE_ENV=production
	- SECRET
services:
	web:
		build: .
		environment:
			- PORT=3000
	worker:
		build: .
		environment:
			- PORT=3000
	api:
		build:
			path: api
			manifest: Dockerfile.prod
			args:
				- EXTRA=1
				- NODE_ENV
	redis:
		image: redis:7
	db:
		image: postgres
`

func TestPlan(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"Dockerfile":          "FROM busybox AS base\narg NODE_ENV PORT=80 \\\n  SECRET\n# ARG COMMENTED\nFROM base as Development\nRUN true\n",
		"api/Dockerfile.prod": "FROM busybox\nARG NODE_ENV=dev\nARG UNSET\nARG SECRET\n",
	})
	m, ps := parse(t, planManifest, Options{})
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	env := map[string]string{"SECRET": "s", "UNRELATED": "u", "NODE_ENV": "staging"}
	got, err := m.Plan(dir, PlanOptions{Env: env, Args: map[string]string{"SECRET": "caller"}})
	if err != nil {
		t.Fatal(err)
	}
	want := &Plan{
		Builds: []BuildSpec{
			{Context: "api", Dockerfile: "api/Dockerfile.prod", Args: map[string]string{"NODE_ENV": "staging", "SECRET": "caller", "EXTRA": "1"}, Services: []string{"api"}, Line: 13},
			// PORT=3000 is a service environment default: not a build
			// argument, the Dockerfile's ARG PORT=80 applies.
			{Context: ".", Dockerfile: "Dockerfile", Args: map[string]string{"NODE_ENV": "staging", "SECRET": "caller"}, Services: []string{"web", "worker"}, Line: 5},
		},
		Images: []ImageService{{Service: "db", Image: "postgres", Line: 22}, {Service: "redis", Image: "redis:7", Line: 20}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plan:\n%+v\nwant:\n%+v", got, want)
	}

	got, err = m.Plan(dir, PlanOptions{Env: env, Services: []string{"worker", "redis"}, Development: true})
	if err != nil {
		t.Fatal(err)
	}
	want = &Plan{
		Builds: []BuildSpec{{Context: ".", Dockerfile: "Dockerfile", Target: "development", Args: map[string]string{"NODE_ENV": "staging", "SECRET": "s"}, Services: []string{"worker"}, Line: 9}},
		Images: []ImageService{{Service: "redis", Image: "redis:7", Line: 20}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("development plan:\n%+v\nwant:\n%+v", got, want)
	}
}

func TestPlanErrors(t *testing.T) {
	first := writeFiles(t, map[string]string{"Dockerfile": "FROM busybox\n"})
	dir := first
	m, _ := parse(t, planManifest, Options{})
	tests := []struct {
		name string
		opts PlanOptions
		want string
	}{
		{"unknown service", PlanOptions{Services: []string{"wbe", "web"}}, "no such service: wbe (convox.yml has: api, db, redis, web, worker)"},
		{"missing Dockerfile", PlanOptions{Env: map[string]string{"SECRET": "x"}}, "no such file: api/Dockerfile.prod (service api, convox.yml:13)"},
		{"required env", PlanOptions{Services: []string{"web"}}, "required env: SECRET (service web, convox.yml:5)"},
	}
	dir = writeFiles(t, map[string]string{
		"Dockerfile":          "FROM busybox\n",
		"api/Dockerfile.prod": "FROM busybox\nRUN true\nFORM x\n",
	})
	tests = append(tests,
		struct {
			name string
			opts PlanOptions
			want string
		}{"unparsable Dockerfile", PlanOptions{Env: map[string]string{"SECRET": "x"}}, "api/Dockerfile.prod:3: unknown instruction: FORM (did you mean FROM?) (service api, convox.yml:13)"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := dir
			if tt.name != "unparsable Dockerfile" {
				d = first
			}
			_, err := m.Plan(d, tt.opts)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error %v\nwant %s", err, tt.want)
			}
		})
	}
}

// TestPlanRequiredEnvFromBuildArgs: as in Convox, the caller's build
// arguments count as app environment for required entries.
func TestPlanRequiredEnvFromBuildArgs(t *testing.T) {
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM busybox\n"})
	m, _ := parse(t, planManifest, Options{})
	if _, err := m.Plan(dir, PlanOptions{Services: []string{"web"}, Args: map[string]string{"SECRET": "x"}}); err != nil {
		t.Errorf("plan: %v", err)
	}
}

// TestBuildArgs is the table of where a build argument's value comes from,
// later rules winning: Convox's (for every ARG the Dockerfile declares,
// the whole app environment's value; never a service's environment:
// default), then build.args, then the caller's. internal/build's
// TestBuildArgsReachBuildKit checks what BuildKit receives.
func TestBuildArgs(t *testing.T) {
	declared := []string{"NPM_TOKEN", "RAILS_ENV", "APP_WINS", "MANIFEST_WINS", "VALUELESS", "VALUELESS_UNSET", "CALLER_WINS"}
	env := map[string]string{"NPM_TOKEN": "tok", "APP_WINS": "app", "MANIFEST_WINS": "app", "VALUELESS": "app", "CALLER_WINS": "app", "UNDECLARED": "app"}
	manifestArgs := []string{"MANIFEST_WINS=manifest", "VALUELESS", "VALUELESS_UNSET", "CALLER_WINS=manifest", "NOT_AN_ARG=manifest"}
	caller := map[string]string{"CALLER_WINS": "caller", "HTTP_PROXY": "http://proxy"}
	got := BuildArgs(declared, env, manifestArgs, caller)
	want := map[string]string{
		"NPM_TOKEN":     "tok",      // app environment, declared only in the Dockerfile
		"APP_WINS":      "app",      // app environment
		"MANIFEST_WINS": "manifest", // build.args over the app environment
		"VALUELESS":     "app",      // build.args KEY takes the app environment's value
		"CALLER_WINS":   "caller",   // the caller over everything
		"NOT_AN_ARG":    "manifest", // build.args are passed as given
		"HTTP_PROXY":    "http://proxy",
		// RAILS_ENV: not in the app environment, so the Dockerfile's
		// default applies (whatever a service's environment: says).
		// VALUELESS_UNSET: build.args KEY with no app value: not passed.
		// UNDECLARED: in the app environment but no ARG declares it.
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("BuildArgs:\n%v\nwant\n%v", got, want)
	}
}
