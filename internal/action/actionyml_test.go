package action_test

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestActionYmlMatchesTheCode checks that action.yml declares every input
// the code reads and every output it sets, documents each, and runs the
// project's Dockerfile.
func TestActionYmlMatchesTheCode(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Name, Description string
		Branding          map[string]string
		Inputs            map[string]struct{ Description, Default string }
		Outputs           map[string]struct{ Description string }
		Runs              struct{ Using, Image string }
	}
	if err := yaml.Unmarshal(data, &spec); err != nil {
		t.Fatalf("action.yml: %v", err)
	}
	if spec.Name == "" || spec.Description == "" || spec.Branding["icon"] == "" || spec.Branding["color"] == "" {
		t.Errorf("action.yml needs name, description and branding")
	}
	if spec.Runs.Using != "docker" || spec.Runs.Image != "Dockerfile" {
		t.Errorf("runs: %+v, want docker with the project's Dockerfile", spec.Runs)
	}
	var code strings.Builder
	for _, f := range []string{"inputs.go", "action.go", "buildkit.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		code.Write(b)
	}
	set := func(re string) []string {
		var out []string
		seen := map[string]bool{}
		for _, m := range regexp.MustCompile(re).FindAllStringSubmatch(code.String(), -1) {
			name := m[1]
			if name == "" && len(m) > 2 {
				name = m[2]
			}
			if !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
		sort.Strings(out)
		return out
	}
	read := set(`(?:GetInput\(|boolInput\(a, |keyValues\(a, )"([a-z][a-z-]+)"|\{"([a-z][a-z-]+)", (?:true|false)`)
	if len(read) < 20 {
		t.Fatalf("found only %d inputs read by the code: %v", len(read), read)
	}
	for _, in := range read {
		if _, ok := spec.Inputs[in]; !ok {
			t.Errorf("the code reads input %q, which action.yml does not declare", in)
		}
	}
	for name, in := range spec.Inputs {
		if !strings.Contains(code.String(), `"`+name+`"`) {
			t.Errorf("action.yml declares input %q, which the code never reads", name)
		}
		if len(in.Description) < 10 {
			t.Errorf("input %q has no description", name)
		}
	}
	for _, out := range set(`[sS]etOutput\("([a-z-]+)"`) {
		if o, ok := spec.Outputs[out]; !ok || o.Description == "" {
			t.Errorf("the code sets output %q, which action.yml does not declare", out)
		}
	}
	if len(spec.Outputs) != 6 {
		t.Errorf("outputs %v", spec.Outputs)
	}
	if spec.Inputs["github-token"].Default != "${{ github.token }}" {
		t.Errorf("github-token default %q", spec.Inputs["github-token"].Default)
	}
}
