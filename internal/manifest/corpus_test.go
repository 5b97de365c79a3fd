package manifest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// corpusFailures lists the corpus files that fail, with every error and why
// a Convox user would agree it is real. Every other file must parse without
// errors.
var corpusFailures = map[string]struct {
	why    string
	errors []string
}{
	"Emalitownke1__Test-beltah3.yml": {
		why: "a docker-compose style file: ports: 3000:3000 is not a Convox port and command is a list where Convox wants a string; Convox fails to parse both",
		errors: []string{
			`Emalitownke1__Test-beltah3.yml:42:9: service web: ports: invalid port "3000:3000" (expected PORT or PORT/PROTOCOL)`,
			`Emalitownke1__Test-beltah3.yml:48:14: service web: command must be a string, not a list`,
		},
	},
	"bitzesty__vigilion-scanner.yml": {
		why:    "Convox v2 labels list; v3 labels are a mapping and Convox fails to parse a list",
		errors: []string{`bitzesty__vigilion-scanner.yml:17:7: service web: labels must be a mapping, not a list`},
	},
	"convox-examples__datadog.yml": {
		why:    "Convox v2 agent ports; v3 says exactly this",
		errors: []string{`convox-examples__datadog.yml:4:7: agent ports are now specified at the service level`},
	},
	"convox-examples__hasura.yml": {
		why:    "an underscore in a resource name; Convox's validation rejects it with this message",
		errors: []string{`convox-examples__hasura.yml:2:3: resource name hasura_graphql_database invalid, must contain only lowercase alphanumeric and dashes`},
	},
	"easybib__dd-agent.yml": {
		why: "Convox v2 agent ports and labels list, both rejected by v3",
		errors: []string{
			`easybib__dd-agent.yml:19:7: agent ports are now specified at the service level`,
			`easybib__dd-agent.yml:23:7: service agent: labels must be a mapping, not a list`,
		},
	},
	"ianmalott__constable.yml": {
		why: "Convox v2 (praxis) balancer syntax: to v3 these balancers have no ports and no service, which Convox's validation reports",
		errors: []string{
			`ianmalott__constable.yml:2:3: balancer constable has no ports`,
			`ianmalott__constable.yml:2:3: balancer constable has blank service`,
			`ianmalott__constable.yml:4:3: balancer database has no ports`,
			`ianmalott__constable.yml:4:3: balancer database has blank service`,
		},
	},
	"kochalex__datadog.yml": {
		why:    "Convox v2 agent ports",
		errors: []string{`kochalex__datadog.yml:4:7: agent ports are now specified at the service level`},
	},
	"luccasbeltrame__Docker.yml": {
		why:    "a Dockerfile saved as convox.yml",
		errors: []string{`luccasbeltrame__Docker.yml:1:1: the top level must be a mapping, not the string "FROM ubuntu:14.04 MAINTAINER teste RUN apt-get update && apt-get install -y apache2 && apt-get clean"`},
	},
}

var corpusVar = regexp.MustCompile(`\$\{([^}]*?)\}`)

// corpusEnv is an app environment in which the file's ${VAR}s and required
// entries are set, as they are in the apps these files come from.
func corpusEnv(t testing.TB, name string, data []byte) map[string]string {
	env := map[string]string{}
	for _, m := range corpusVar.FindAllSubmatch(data, -1) {
		v := string(m[1])
		switch {
		case strings.Contains(v, "PORT"):
			env[v] = "3000"
		case strings.Contains(v, "DAYS"):
			env[v] = "7"
		case v == "INTERNAL":
			env[v] = "false"
		default:
			env[v] = "example.org"
		}
	}
	m, _, _ := Parse(name, data, Options{Env: env})
	if m != nil {
		for _, s := range m.Services {
			for _, e := range s.Environment {
				if !strings.Contains(e, "=") && e != "*" {
					env[e] = "x"
				}
			}
		}
	}
	return env
}

func corpusFiles(t testing.TB) []string {
	files, err := filepath.Glob("../../testdata/convox-yml/*.yml")
	if err != nil || len(files) < 70 {
		t.Fatalf("corpus: %d files, %v", len(files), err)
	}
	return files
}

func TestCorpus(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range corpusFiles(t) {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m, ps, _ := Parse(name, data, Options{Env: corpusEnv(t, name, data)})
			var got []string
			for _, p := range ps.Errors() {
				got = append(got, p.String())
			}
			want := corpusFailures[name]
			seen[name] = true
			if strings.Join(got, "\n") != strings.Join(want.errors, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want.errors, "\n"))
			}
			if m != nil && len(got) == 0 {
				roundTrip(t, m)
			}
		})
	}
	for name := range corpusFailures {
		if !seen[name] {
			t.Errorf("corpusFailures lists %s, which is not in the corpus", name)
		}
	}
}

// roundTrip checks that writing m back and parsing it gives the same
// resolved manifest and no problems.
func roundTrip(t testing.TB, m *Manifest) {
	t.Helper()
	out, err := yaml.Marshal(m)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	m2, ps, err := Parse("out.yml", out, Options{Env: m.env})
	if err != nil || len(ps) > 0 {
		t.Fatalf("parsing what was written: %v\n%v\n%s", err, ps, out)
	}
	a, _ := json.Marshal(m)
	b, _ := json.Marshal(m2)
	if !bytes.Equal(a, b) {
		t.Fatalf("round trip changed the manifest:\n%s\n%s\n%s", a, b, out)
	}
}
