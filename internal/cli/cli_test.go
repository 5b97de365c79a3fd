package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run runs convox-build in dir with args and returns stdout, stderr and the
// exit code.
func run(t *testing.T, dir string, terminal bool, args ...string) (string, string, int) {
	t.Helper()
	if dir != "" {
		t.Chdir(dir)
	}
	var out, errOut bytes.Buffer
	ios := &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut, IsTerminal: terminal}
	code := Main(context.Background(), args, ios, func(k string) string {
		return map[string]string{"FROM_PROCESS": "p"}[k]
	})
	return out.String(), errOut.String(), code
}

func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.ReplaceAll(content, "\t", "  ")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const validYML = `services:
	web:
		build: .
		port: 3000
	api:
		build:
			path: api
			manifest: Dockerfile.prod
	redis:
		image: redis:7
		buidl: .
`

func TestMain_(t *testing.T) {
	Version = "v1.2.3"
	defer func() { Version = "" }()
	dir := writeDir(t, map[string]string{
		"convox.yml": validYML,
		"bad.yml":    "services:\n\tWeb:\n\t\tbuild: /etc\n\t\tdeployment:\n\t\t\tmaximum: 300\nservicess: {}\n",
		"env.yml":    "environment:\n\t- NEEDED\n\t- FROM_PROCESS\nservices:\n\tweb:\n\t\tdomain: ${HOST}\n",
		"small.yml":  "services:\n\tweb:\n\t\timage: nginx\n",
		"app.env":    "# app\nNEEDED=1\nexport HOST=\"h.example\"\n",
		"broken.env": "NOEQUALS\n",
		"syntax.yml": "services:\n\tweb: [\n",
		// manifest validate reads each building service's Dockerfile.
		"Dockerfile":          "FROM busybox\n",
		"api/Dockerfile.prod": "FROM busybox\n",
	})
	tests := []struct {
		name     string
		args     []string
		terminal bool
		out      string
		errOut   string
		code     int
	}{
		{"table on a terminal", []string{"manifest", "validate"}, true,
			"SERVICE  CONTEXT  DOCKERFILE           IMAGE\nweb      .        Dockerfile           -\napi      api      api/Dockerfile.prod  -\nredis    -        -                    redis:7\n",
			"convox.yml:11:5: warning: service redis: unknown key \"buidl\" (did you mean \"build\"?)\n", 0},
		{"table piped", []string{"manifest", "validate", "-f", "convox.yml"}, false,
			"web\t.\tDockerfile\t-\napi\tapi\tapi/Dockerfile.prod\t-\nredis\t-\t-\tredis:7\n",
			"convox.yml:11:5: warning: service redis: unknown key \"buidl\" (did you mean \"build\"?)\n", 0},
		{"errors", []string{"manifest", "validate", "--file", "bad.yml"}, false, "",
			"bad.yml:2:3: service name Web invalid, must contain only lowercase alphanumeric and dashes\n" +
				"bad.yml:3:12: service Web: build path \"/etc\" is absolute; it must be relative to the directory of convox.yml\n" +
				"bad.yml:5:7: service Web deployment maximum can not be greater than 200\n" +
				"bad.yml:6:1: warning: unknown key \"servicess\" (did you mean \"services\"?)\n", 1},
		{"syntax error", []string{"manifest", "validate", "-f", "syntax.yml"}, false, "",
			"syntax.yml:2:8: invalid YAML: sequence end token ']' not found\n  2 |   web: [\n    |        ^\n", 1},
		{"required env with env file", []string{"manifest", "validate", "-f", "env.yml", "-e", "FROM_PROCESS", "--env", "OTHER=1"}, false, "",
			"env.yml:2:5: required env: NEEDED\n", 1},
		{"env file", []string{"manifest", "validate", "-f", "env.yml", "--env-file", "app.env", "-e", "FROM_PROCESS"}, false,
			"web\t.\tDockerfile\t-\n", "", 0},
		{"strict", []string{"manifest", "validate", "-f", "env.yml", "--strict"}, false, "",
			"env.yml:6:13: ${HOST}: HOST is not set in the environment\n", 1},
		{"bad env file", []string{"manifest", "validate", "-f", "env.yml", "--env-file", "broken.env"}, false, "",
			"ERROR: broken.env:1: expected KEY=VALUE\n", 1},
		{"missing file", []string{"manifest", "validate", "-f", "nope.yml"}, false, "",
			"ERROR: reading manifest: open nope.yml: no such file or directory\n", 1},
		{"error on a terminal, coloured as Convox does", []string{"manifest", "validate", "-f", "nope.yml"}, true, "",
			"\033[38;5;124mERROR: \033[38;5;203mreading manifest: open nope.yml: no such file or directory\033[0m\n", 1},
		{"json", []string{"manifest", "validate", "--json", "-f", "small.yml"}, false,
			`{
  "services": [
    {
      "name": "web",
      "agent": false,
      "build": {},
      "deployment": {
        "minimum": 50,
        "maximum": 200
      },
      "drain": 30,
      "health": {
        "grace": 5,
        "interval": 5,
        "path": "/",
        "timeout": 4
      },
      "image": "nginx",
      "init": true,
      "internal": false,
      "internalRouter": false,
      "port": {},
      "privileged": false,
      "scale": {
        "count": {
          "min": 1,
          "max": 1
        },
        "cpu": 250,
        "memory": 512
      },
      "singleton": false,
      "sticky": false,
      "termination": {
        "grace": 30
      },
      "timeout": 60,
      "tls": {
        "redirect": true
      }
    }
  ]
}
`, "", 0},
		{"flags after arguments are parsed", []string{"manifest", "validate", "extra", "-f", "small.yml"}, false, "",
			"ERROR: manifest validate: unexpected argument \"extra\"\nRun 'convox-build --help' for usage.\n", 2},
		{"unknown flag", []string{"manifest", "validate", "--nope"}, false, "",
			"ERROR: manifest validate: unknown flag: --nope\nRun 'convox-build --help' for usage.\n", 2},
		{"unknown command", []string{"deploy"}, false, "",
			"ERROR: unknown command \"deploy\"\nRun 'convox-build --help' for usage.\n", 2},
		{"group without subcommand", []string{"manifest"}, false, "",
			"Usage:\n  convox-build <command> [flags]\n\nCommands:\n  manifest validate  Check a convox.yml and show what each service builds\n\nRun 'convox-build <command> --help' for a command's flags.\n", 2},
		{"version", []string{"version"}, false, "convox-build v1.2.3\n", "", 0},
		{"help", []string{"--help"}, false,
			"Build Convox apps with BuildKit.\n\nUsage:\n  convox-build <command> [flags]\n\nCommands:\n  build              Build every service of an app and create a release\n  builds             List an app's builds, newest first\n  builds export      Export a build with its images to a file, or to stdout when piped\n  builds import      Import an exported build as a new build and release, from a file or piped stdin\n  builds info        Show a build\n  builds logs        Print a build's log, following it while the build runs\n  manifest validate  Check a convox.yml and show what each service builds\n  version            Print the version of convox-build\n\nRun 'convox-build <command> --help' for a command's flags.\n", "", 0},
		{"command help", []string{"help", "version"}, false,
			"Print the version of convox-build\n\nUsage:\n  convox-build version\n\nFlags:\n  -h, --help   Show help for this command\n", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := run(t, dir, tt.terminal, tt.args...)
			if out != tt.out {
				t.Errorf("stdout:\n%s\nwant:\n%s", out, tt.out)
			}
			if errOut != tt.errOut {
				t.Errorf("stderr:\n%s\nwant:\n%s", errOut, tt.errOut)
			}
			if code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
		})
	}
}

func TestValidateHelp(t *testing.T) {
	out, errOut, code := run(t, "", false, "manifest", "validate", "-h")
	if code != 0 || errOut != "" || !strings.HasPrefix(out, "Check a convox.yml and show what each service builds.\n") || !strings.Contains(out, "  -f, --file string     Path of the convox.yml (default \"convox.yml\")\n") {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
}

func TestExitCode(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want int
	}{
		{nil, 0}, {errSilent, 1}, {usageErrorf("x"), 2}, {context.Canceled, 130}, {os.ErrNotExist, 1},
	} {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}
