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
			{Context: ".", Dockerfile: "Dockerfile", Args: map[string]string{"NODE_ENV": "staging", "PORT": "3000", "SECRET": "caller"}, Services: []string{"web", "worker"}, Line: 5},
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
		Builds: []BuildSpec{{Context: ".", Dockerfile: "Dockerfile", Target: "development", Args: map[string]string{"NODE_ENV": "staging", "PORT": "3000", "SECRET": "s"}, Services: []string{"worker"}, Line: 9}},
		Images: []ImageService{{Service: "redis", Image: "redis:7", Line: 20}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("development plan:\n%+v\nwant:\n%+v", got, want)
	}
}

func TestPlanErrors(t *testing.T) {
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM busybox\n"})
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
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.Plan(dir, tt.opts)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestParseDockerfile(t *testing.T) {
	df := parseDockerfile([]byte("# syntax=docker/dockerfile:1\nARG BASE=busybox\nFROM ${BASE} AS build\n  Arg A=\"x y\" B='z' \\\n    C\nFROM build\nARG A\n"))
	if want := []string{"BASE", "A", "B", "C"}; !reflect.DeepEqual(df.args, want) {
		t.Errorf("args %q, want %q", df.args, want)
	}
	if want := []string{"build"}; !reflect.DeepEqual(df.stages, want) {
		t.Errorf("stages %q, want %q", df.stages, want)
	}
}
