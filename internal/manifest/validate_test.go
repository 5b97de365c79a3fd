package manifest

import (
	"reflect"
	"strings"
	"testing"
)

func TestValidation(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"service name", "services:\n\tWeb_1: {}\n",
			[]string{"convox.yml:2:3: service name Web_1 invalid, must contain only lowercase alphanumeric and dashes"}},
		{"resource name and blank type", "resources:\n\tmy_db:\n\t\ttype: \" \"\n",
			[]string{
				"convox.yml:2:3: resource name my_db invalid, must contain only lowercase alphanumeric and dashes",
				`convox.yml:2:3: resource "my_db" has blank type`,
			}},
		{"timer name, service, schedule", "services:\n\tweb: {}\ntimers:\n\tT1:\n\t\tschedule: \"0 1? * * *\"\n\t\tservice: wbe\n",
			[]string{
				"convox.yml:4:3: timer name T1 invalid, must contain only lowercase alphanumeric and dashes",
				"convox.yml:5:15: timer T1 invalid, schedule cannot contain ?",
				"convox.yml:6:14: timer T1 references a service that does not exist: wbe",
			}},
		{"deployment low", "services:\n\tweb:\n\t\tdeployment:\n\t\t\tminimum: -1\n\t\t\tmaximum: 99\n",
			[]string{
				"convox.yml:4:7: service web deployment minimum can not be less than 0",
				"convox.yml:5:7: service web deployment maximum can not be less than 100",
			}},
		{"deployment high", "services:\n\tweb:\n\t\tdeployment:\n\t\t\tminimum: 101\n\t\t\tmaximum: 201\n",
			[]string{
				"convox.yml:4:7: service web deployment minimum can not be greater than 100",
				"convox.yml:5:7: service web deployment maximum can not be greater than 200",
			}},
		{"internal and internalRouter", "services:\n\tweb:\n\t\tinternal: true\n\t\tinternalRouter: true\n",
			[]string{"convox.yml:4:5: service web can not have both internal and internalRouter set as true"}},
		{"missing resource", "resources:\n\tdb:\n\t\ttype: postgres\nservices:\n\tweb:\n\t\tresources:\n\t\t\t- db\n\t\t\t- cache:CACHE_URL\n",
			[]string{"convox.yml:8:9: service web references a resource that does not exist: cache"}},
		{"balancers", "services:\n\tweb: {}\nbalancers:\n\tempty: {}\n\tother:\n\t\tservice: api\n\t\tports:\n\t\t\t80: 3000\n\t\twhitelist: 10.0.0.0/33\n",
			[]string{
				"convox.yml:4:3: balancer empty has no ports",
				"convox.yml:4:3: balancer empty has blank service",
				"convox.yml:6:14: balancer other refers to unknown service api",
				"convox.yml:9:16: balancer other whitelist 10.0.0.0/33 is not a valid cidr range",
			}},
		{"reserved labels", "labels:\n\tapp: x\nservices:\n\tweb:\n\t\tlabels:\n\t\t\track: y\n\t\t\tok: z\n",
			[]string{
				"convox.yml:2:3: reserved label key 'app' is not allowed",
				"convox.yml:6:7: reserved label key 'rack' is not allowed",
			}},
		{"build type", "services:\n\tweb:\n\t\tbuild: [a, b]\n\tapi:\n\t\tbuild: 3\n",
			[]string{
				"convox.yml:3:12: unknown type for service build: []interface {}",
				"convox.yml:5:12: unknown type for service build: int",
			}},
		{"other types", "services:\n\tweb:\n\t\tdomain: 3\n\t\thealth: [a]\n\t\tscale: [1]\n\t\tenvironment: {A: b}\n\t\tagent:\n\t\t\tports: [80]\n\t\ttimeout: ten\n\t\tport: http:x\n",
			[]string{
				"convox.yml:3:13: unknown type for service domain: int",
				"convox.yml:4:13: unknown type for service health: []interface {}",
				"convox.yml:5:12: unknown type for service scale: []interface {}",
				"convox.yml:6:18: unknown type for service environment: map[interface {}]interface {}",
				"convox.yml:8:7: agent ports are now specified at the service level",
				`convox.yml:9:14: service web: timeout must be an integer, not the string "ten"`,
				`convox.yml:10:11: service web: port: invalid port "http:x" (expected PORT or SCHEME:PORT)`,
			}},
		{"unknown keys", "servicess:\n\tweb: {}\nservices:\n\tweb:\n\t\tbuidl: .\n\t\thealth:\n\t\t\tintervall: 5\n\t\tbuild:\n\t\t\tcontext: ..\n\t\tlinks: [db]\n",
			[]string{
				`convox.yml:1:1: warning: unknown key "servicess" (did you mean "services"?)`,
				`convox.yml:5:5: warning: service web: unknown key "buidl" (did you mean "build"?)`,
				`convox.yml:7:7: warning: service web: health: unknown key "intervall" (did you mean "interval"?)`,
				`convox.yml:9:7: warning: service web: build: unknown key "context"`,
				`convox.yml:10:5: warning: service web: unknown key "links"`,
			}},
		{"duplicate keys", "services:\n\tweb:\n\t\tport: 1\n\t\tport: 2\nservices: {}\n",
			[]string{
				"convox.yml:4:5: service web: duplicate key \"port\" (first defined at line 3)",
				"convox.yml:5:1: the top level: duplicate key \"services\" (first defined at line 1)",
			}},
		{"yaml syntax", "services:\n\tweb:\n\t\tbuild: .\n\t\tport: [3000\n",
			[]string{"convox.yml:4:11: invalid YAML: sequence end token ']' not found\n  4 |     port: [3000\n    |           ^"}},
		// The example of issue 9: PyYAML and goccy/go-yaml agree on 4:4.
		{"yaml syntax at the token", "services:\n  web:\n    build: .\n   port: 3000\n",
			[]string{"convox.yml:4:4: invalid YAML: value is not allowed in this context\n  4 |    port: 3000\n    |    ^"}},
		{"yaml unknown anchor", "services:\n  web:\n    port: *p\n",
			[]string{"convox.yml:3:11: invalid YAML: unknown anchor 'p' referenced\n  3 |     port: *p\n    |           ^"}},
		{"yaml syntax after interpolation", "services:\n  web:\n    command: ${EMPTY}echo ${EMPTY}a: b\n",
			[]string{"convox.yml:3:22: invalid YAML: mapping value is not allowed in this context\n  3 |     command: ${EMPTY}echo ${EMPTY}a: b\n    |                      ^"}},
		{"build paths", "services:\n\tabs:\n\t\tbuild: /etc\n\tup:\n\t\tbuild: ../other\n\tdf:\n\t\tbuild:\n\t\t\tpath: api\n\t\t\tmanifest: ../Dockerfile\n\tdfabs:\n\t\tbuild:\n\t\t\tmanifest: /Dockerfile\n\tok:\n\t\tbuild:\n\t\t\tpath: api/../web\n\t\t\tmanifest: docker/../Dockerfile\n",
			[]string{
				`convox.yml:3:12: service abs: build path "/etc" is absolute; it must be relative to the directory of convox.yml`,
				`convox.yml:5:12: service up: build path "../other" is outside the source directory`,
				`convox.yml:9:17: service df: Dockerfile "../Dockerfile" is outside the build path "api"`,
				`convox.yml:12:17: service dfabs: build manifest "/Dockerfile" is absolute; it must be relative to the build path "."`,
			}},
		{"configs", "configs:\n\t- name: x\n",
			[]string{"convox.yml:2:5: configs[*].id is required"}},
		{"not a mapping", "- a\n", []string{"convox.yml:1:1: the top level must be a mapping, not a list"}},
		{"scale limits", "services:\n\tweb:\n\t\tscale:\n\t\t\tcpu: 500\n\t\t\tlimit:\n\t\t\t\tcpu: 100\n",
			[]string{"convox.yml:5:7: cpu limit can not be less cpu request"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := parse(t, tt.src, Options{})
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	m, ps, err := Parse("convox.yml", make([]byte, MaxSize+1), Options{})
	if m != nil || err == nil || err.Error() != "convox.yml: file is larger than 1048576 bytes (1 MiB); refusing to read it" || len(ps) != 1 {
		t.Errorf("got %v %v %v", m, ps, err)
	}
}

func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("a: &a [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 'b'; i <= 'j'; i++ {
		p := string(i - 1)
		b.WriteString(string(i) + ": &" + string(i) + " [*" + p + ", *" + p + ", *" + p + ", *" + p + ", *" + p + ", *" + p + ", *" + p + ", *" + p + ", *" + p + ", *" + p + "]\n")
	}
	b.WriteString("services:\n  web:\n    liveness: *j\n")
	_, ps, err := Parse("convox.yml", []byte(b.String()), Options{})
	if err == nil || !strings.Contains(err.Error(), "document too complex") {
		t.Errorf("got %v", ps)
	}
}

func TestSuggest(t *testing.T) {
	for _, tt := range []struct{ key, want string }{
		{"buidl", "build"}, {"Build", "build"}, {"enviroment", "environment"}, {"links", ""}, {"prot", "port"}, {"xyz", ""},
	} {
		if got := suggest(tt.key, serviceKeys); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

func TestExcerpt(t *testing.T) {
	long := strings.Repeat("a", 150) + ": [x\n"
	tests := []struct {
		text string
		l, c int
		want string
	}{
		{"a: 1\n\tb: 2\n", 2, 2, "  2 | \tb: 2\n    | \t^"},
		{long, 1, 120, "  1 | ..." + strings.Repeat("a", 81) + ": [x\n    | ..." + strings.Repeat(" ", 50) + "^"},
		{"x\r\n", 1, 1, "  1 | x\n    | ^"},
		{"x", 3, 1, ""},
	}
	for _, tt := range tests {
		if got := excerpt([]byte(tt.text), lineStarts([]byte(tt.text)), tt.l, tt.c); got != tt.want {
			t.Errorf("excerpt(%q, %d, %d):\n%s\nwant:\n%s", tt.text, tt.l, tt.c, got, tt.want)
		}
	}
}
