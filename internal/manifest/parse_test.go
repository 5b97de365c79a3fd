package manifest

import (
	"reflect"
	"strings"
	"testing"
)

// parse parses src (with tabs for indentation turned into two spaces) and
// returns the manifest and its problems as strings.
func parse(t *testing.T, src string, opts Options) (*Manifest, []string) {
	t.Helper()
	m, ps, _ := Parse("convox.yml", []byte(strings.ReplaceAll(src, "\t", "  ")), opts)
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return m, out
}

func web(m *Manifest) *Service { return m.Service("web") }

func TestForms(t *testing.T) {
	tests := []struct {
		name string
		src  string
		got  func(*Manifest) any
		want any
	}{
		{"build short", "services:\n\tweb:\n\t\tbuild: ./api\n", func(m *Manifest) any { return web(m).Build },
			Build{Path: "./api", Manifest: "Dockerfile"}},
		{"build long", "services:\n\tweb:\n\t\tbuild:\n\t\t\tpath: api\n\t\t\tmanifest: Dockerfile.prod\n\t\t\targs: [A=1, B]\n\t\t\ttarget: prod\n", func(m *Manifest) any { return web(m).Build },
			Build{Path: "api", Manifest: "Dockerfile.prod", Args: []string{"A=1", "B"}, Target: "prod"}},
		{"build args mapping", "services:\n\tweb:\n\t\tbuild:\n\t\t\targs:\n\t\t\t\tA: 1\n", func(m *Manifest) any { return web(m).Build },
			Build{Path: ".", Manifest: "Dockerfile", Args: []string{"A=1"}}},
		{"build long without path", "services:\n\tweb:\n\t\tbuild:\n\t\t\tmanifest: Dockerfile.dev\n", func(m *Manifest) any { return web(m).Build },
			Build{Path: ".", Manifest: "Dockerfile.dev"}},
		{"port int", "services:\n\tweb:\n\t\tport: 3000\n", func(m *Manifest) any { return web(m).Port }, Port{3000, "http"}},
		{"port scheme string", "services:\n\tweb:\n\t\tport: https:2000\n", func(m *Manifest) any { return web(m).Port }, Port{2000, "https"}},
		{"port string", "services:\n\tweb:\n\t\tport: \"2000\"\n", func(m *Manifest) any { return web(m).Port }, Port{2000, "http"}},
		{"port long", "services:\n\tweb:\n\t\tport:\n\t\t\tport: 5000\n\t\t\tscheme: grpc\n", func(m *Manifest) any { return web(m).Port }, Port{5000, "GRPC"}},
		{"ports", "services:\n\tweb:\n\t\tports: [8125/udp, 8126]\n", func(m *Manifest) any { return web(m).Ports },
			[]PortProtocol{{8125, "udp"}, {8126, "tcp"}}},
		{"scale int", "services:\n\tweb:\n\t\tscale: 3\n", func(m *Manifest) any { return web(m).Scale.Count }, ScaleCount{3, 3}},
		{"scale range", "services:\n\tweb:\n\t\tscale: 1-5\n", func(m *Manifest) any { return web(m).Scale.Count }, ScaleCount{1, 5}},
		{"scale long", "services:\n\tweb:\n\t\tscale:\n\t\t\tcount: 2-4\n\t\t\tcpu: 512\n\t\t\tmemory: 1024\n", func(m *Manifest) any { return web(m).Scale },
			Scale{Count: ScaleCount{2, 4}, Cpu: 512, Memory: 1024}},
		{"scale count mapping", "services:\n\tweb:\n\t\tscale:\n\t\t\tcount:\n\t\t\t\tmin: 1\n\t\t\t\tmax: \"3\"\n", func(m *Manifest) any { return web(m).Scale.Count }, ScaleCount{1, 3}},
		{"scale min max", "services:\n\tweb:\n\t\tscale:\n\t\t\tmin: 2\n\t\t\tmax: 6\n", func(m *Manifest) any { return web(m).Scale.Count }, ScaleCount{2, 6}},
		{"domain string", "services:\n\tweb:\n\t\tdomain: a.example, b.example\n", func(m *Manifest) any { return web(m).Domains }, []string{"a.example", "b.example"}},
		{"domain list", "services:\n\tweb:\n\t\tdomain: [a.example, \" b.example \"]\n", func(m *Manifest) any { return web(m).Domains }, []string{"a.example", "b.example"}},
		{"health string", "services:\n\tweb:\n\t\thealth: /check\n", func(m *Manifest) any { return web(m).Health }, Health{Path: "/check", Interval: 5, Grace: 5, Timeout: 4}},
		{"health long", "services:\n\tweb:\n\t\thealth:\n\t\t\tpath: /c\n\t\t\tinterval: 10\n\t\t\tgrace: 30\n\t\t\ttimeout: 3\n\t\t\tdisable: true\n", func(m *Manifest) any { return web(m).Health },
			Health{Disable: true, Path: "/c", Interval: 10, Grace: 30, Timeout: 3}},
		{"environment nested lists", "environment:\n\t- A=1\nservices:\n\tweb:\n\t\tenvironment:\n\t\t\t- B\n\t\t\t- [C=3, D]\n", func(m *Manifest) any { return web(m).Environment },
			[]string{"A=1", "B", "C=3", "D"}},
		{"yaml 1.1 booleans", "services:\n\tweb:\n\t\tinternal: yes\n\t\tsticky: on\n", func(m *Manifest) any { return []bool{web(m).Internal, web(m).Sticky} }, []bool{true, true}},
		{"labels combine", "labels:\n\tteam: a\n\tenv: prod\nservices:\n\tweb:\n\t\tlabels:\n\t\t\tteam: b\n", func(m *Manifest) any { return web(m).Labels },
			map[string]string{"team": "b", "env": "prod"}},
		{"anchors and merge keys", "services:\n\tapi: &base\n\t\tport: 3000\n\t\tcommand: run\n\tweb:\n\t\t<<: *base\n\t\tcommand: other\n", func(m *Manifest) any { return []any{web(m).Port.Port, web(m).Command, m.Service("api").Command} },
			[]any{3000, "other", "run"}},
		{"timer v2 schedule", "services:\n\tweb: {}\ntimers:\n\tt:\n\t\tschedule: \"0 3 ? * * *\"\n\t\tservice: web\n", func(m *Manifest) any { return m.Timers[0].Schedule }, "0 3 * * *"},
		{"balancer ports", "services:\n\tweb: {}\nbalancers:\n\tb:\n\t\tservice: web\n\t\tports:\n\t\t\t5000: 3000\n\t\t\t6000:\n\t\t\t\tprotocol: UDP\n\t\t\t\tport: 3001\n", func(m *Manifest) any { return m.Balancers[0].Ports },
			[]BalancerPort{{5000, "TCP", 3000}, {6000, "UDP", 3001}}},
		{"raw fields kept", "services:\n\tweb:\n\t\tliveness:\n\t\t\tpath: /l\n", func(m *Manifest) any { return web(m).Extra["liveness"].Node.Content[1].Value }, "/l"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ps := parse(t, tt.src, Options{})
			for _, p := range ps {
				t.Errorf("problem: %s", p)
			}
			if m == nil {
				t.Fatal("no manifest")
			}
			if got := tt.got(m); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v\nwant %#v", got, tt.want)
			}
			roundTrip(t, m)
		})
	}
}

func TestDefaults(t *testing.T) {
	m, ps := parse(t, "services:\n\tweb:\n\t\tport: 3000\n\tagent:\n\t\tagent: true\n\tone:\n\t\tsingleton: true\n\t\tscale:\n\t\t\tmemory: 1024\n\tpg:\n\t\timage: postgres\n\t\tbuild: .\n\tnoinit:\n\t\tinit: false\n\t\ttls:\n\t\t\tredirect: false\n\t\ttermination:\n\t\t\tgrace: 0\n\t\tdeployment:\n\t\t\tminimum: 0\n", Options{})
	if want := []string{`convox.yml:12:5: warning: service pg: build is ignored because image is set`}; !reflect.DeepEqual(ps, want) {
		t.Errorf("problems %q, want %q", ps, want)
	}
	want := map[string]struct {
		build      Build
		deployment Deployment
		scale      Scale
		rest       []any
	}{
		"web":    {Build{Path: ".", Manifest: "Dockerfile"}, Deployment{50, 200}, Scale{Count: ScaleCount{1, 1}, Cpu: 250, Memory: 512}, []any{true, true, 30, 60, 30, Health{Path: "/", Interval: 5, Grace: 5, Timeout: 4}, "http"}},
		"agent":  {Build{Path: ".", Manifest: "Dockerfile"}, Deployment{0, 100}, Scale{Count: ScaleCount{1, 1}, Cpu: 250, Memory: 512}, []any{true, true, 30, 60, 30, Health{Path: "/", Interval: 5, Grace: 5, Timeout: 4}, ""}},
		"one":    {Build{Path: ".", Manifest: "Dockerfile"}, Deployment{0, 100}, Scale{Count: ScaleCount{1, 1}, Cpu: 250, Memory: 1024}, []any{true, true, 30, 60, 30, Health{Path: "/", Interval: 5, Grace: 5, Timeout: 4}, ""}},
		"pg":     {Build{}, Deployment{50, 200}, Scale{Count: ScaleCount{1, 1}, Cpu: 250, Memory: 512}, []any{true, true, 30, 60, 30, Health{Path: "/", Interval: 5, Grace: 5, Timeout: 4}, ""}},
		"noinit": {Build{Path: ".", Manifest: "Dockerfile"}, Deployment{0, 200}, Scale{Count: ScaleCount{1, 1}, Cpu: 250, Memory: 512}, []any{false, false, 0, 60, 30, Health{Path: "/", Interval: 5, Grace: 5, Timeout: 4}, ""}},
	}
	for _, s := range m.Services {
		w := want[s.Name]
		got := []any{s.Init, s.TLS.Redirect, s.Termination.Grace, s.Timeout, s.Drain, s.Health, s.Port.Scheme}
		if !reflect.DeepEqual(s.Build, w.build) || s.Deployment != w.deployment || !reflect.DeepEqual(s.Scale, w.scale) || !reflect.DeepEqual(got, w.rest) {
			t.Errorf("service %s: %+v %+v %+v %v\nwant %+v %+v %+v %v", s.Name, s.Build, s.Deployment, s.Scale, got, w.build, w.deployment, w.scale, w.rest)
		}
	}
	if got := m.Service("pg").Dockerfile(); got != "" {
		t.Errorf("image service Dockerfile %q", got)
	}
	if got := m.Service("web").Dockerfile(); got != "Dockerfile" {
		t.Errorf("Dockerfile %q", got)
	}
}

func TestInterpolation(t *testing.T) {
	src := "services:\n\tweb:\n\t\tdomain: ${HOST}\n\t\tcommand: echo $HOME ${MISSING}x\n\t\tport: ${PORT}\n\t\tbuidl: .\n"
	m, ps := parse(t, src, Options{Env: map[string]string{"HOST": "a.example", "PORT": "3000"}})
	if got := []any{web(m).Domains, web(m).Command, web(m).Port.Port}; !reflect.DeepEqual(got, []any{[]string{"a.example"}, "echo $HOME x", 3000}) {
		t.Errorf("got %#v", got)
	}
	// Positions after a replacement are those of the original text.
	if want := []string{`convox.yml:6:5: warning: service web: unknown key "buidl" (did you mean "build"?)`}; !reflect.DeepEqual(ps, want) {
		t.Errorf("problems %q", ps)
	}

	src = "services:\n\tweb:\n\t\tcommand: ${A} ${MISSING}\n\t\tdomain: ${B}\n"
	_, ps = parse(t, src, Options{Env: map[string]string{"A": "a"}, Strict: true})
	want := []string{
		`convox.yml:3:19: ${MISSING}: MISSING is not set in the environment`,
		`convox.yml:4:13: ${B}: B is not set in the environment`,
	}
	if !reflect.DeepEqual(ps, want) {
		t.Errorf("strict: %q\nwant %q", ps, want)
	}

	// A value with a newline moves later lines; positions still map back.
	src = "params:\n\tP: \"${A}\"\nservices:\n\tweb:\n\t\tbuidl: .\n"
	_, ps = parse(t, src, Options{Env: map[string]string{"A": "x\ny"}})
	if want := []string{`convox.yml:5:5: warning: service web: unknown key "buidl" (did you mean "build"?)`}; !reflect.DeepEqual(ps, want) {
		t.Errorf("multiline: %q", ps)
	}
}

func TestEnvironment(t *testing.T) {
	src := "environment:\n\t- SHARED=top\n\t- REQ_TOP\nservices:\n\tweb:\n\t\tenvironment:\n\t\t\t- A=default\n\t\t\t- B=default\n\t\t\t- REQ\n\tall:\n\t\tenvironment:\n\t\t\t- \"*\"\n"
	m, ps := parse(t, src, Options{})
	if len(ps) != 0 {
		t.Fatalf("problems %q", ps)
	}
	tests := []struct {
		service string
		env     map[string]string
		want    map[string]string
		err     string
	}{
		{"web", map[string]string{"B": "app", "REQ": "r", "REQ_TOP": "t", "OTHER": "o"},
			map[string]string{"SHARED": "top", "REQ_TOP": "t", "A": "default", "B": "app", "REQ": "r"}, ""},
		{"web", map[string]string{}, nil, "convox.yml:3:5: required env: REQ, REQ_TOP"},
		{"all", map[string]string{"REQ_TOP": "t", "OTHER": "o", "SHARED": "app"},
			map[string]string{"SHARED": "app", "REQ_TOP": "t", "OTHER": "o"}, ""},
		{"nope", nil, nil, "no such service: nope (convox.yml has: all, web)"},
	}
	for _, tt := range tests {
		got, err := m.ServiceEnvironment(tt.service, tt.env)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("%s: error %v, want %s", tt.service, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %v %v, want %v", tt.service, got, err, tt.want)
		}
	}

	// With an app environment given, Parse reports required entries.
	_, ps = parse(t, src, Options{Env: map[string]string{"REQ": "1"}})
	if want := []string{"convox.yml:3:5: required env: REQ_TOP"}; !reflect.DeepEqual(ps, want) {
		t.Errorf("problems %q", ps)
	}
}
