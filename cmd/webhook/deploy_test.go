package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/convox-build-action/convox-build-action/internal/envconfig"
)

// knownVariables are the variables the server reads: its config's and
// envconfig's.
func knownVariables() map[string]bool {
	known := map[string]bool{}
	ct := reflect.TypeOf(config{})
	for i := 0; i < ct.NumField(); i++ {
		name, _, _ := strings.Cut(ct.Field(i).Tag.Get("env"), ",")
		known[name] = true
	}
	for _, v := range []string{envconfig.BuildkitHost, envconfig.DatabaseURL, envconfig.Registry, envconfig.RegistryInsecure,
		envconfig.RegistryMirrors, envconfig.DockerConfig, envconfig.DockerHubUsername, envconfig.DockerHubPassword, envconfig.Home} {
		known[v] = true
	}
	return known
}

func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		docs = append(docs, d)
	}
}

// TestDeployExamplesUseWhatTheServerReads keeps deploy/ in step with the
// code: every variable they set is one the server reads, the images and
// targets they name exist, BuildKit's version is go.mod's, and the probes
// are the server's routes.
func TestDeployExamplesUseWhatTheServerReads(t *testing.T) {
	root := filepath.Join("..", "..")
	known := knownVariables()
	gomod, _ := os.ReadFile(filepath.Join(root, "go.mod"))
	bk := regexp.MustCompile(`github\.com/moby/buildkit (v\S+)`).FindSubmatch(gomod)
	if bk == nil {
		t.Fatal("go.mod has no moby/buildkit")
	}
	wantBuildkit := "moby/buildkit:" + string(bk[1])
	dockerfile, _ := os.ReadFile(filepath.Join(root, "Dockerfile"))
	checkVar := func(where, name string) {
		if !known[name] {
			t.Errorf("%s sets %s, which the server does not read", where, name)
		}
	}
	checkImage := func(where, image string) {
		if strings.HasPrefix(image, "moby/buildkit:") && image != wantBuildkit {
			t.Errorf("%s runs %s, want %s (go.mod's version)", where, image, wantBuildkit)
		}
	}

	// Compose.
	compose := yamlDocs(t, filepath.Join(root, "deploy", "compose.yaml"))[0]
	services := compose["services"].(map[string]any)
	hook := services["webhook"].(map[string]any)
	for name := range hook["environment"].(map[string]any) {
		checkVar("compose.yaml", name)
	}
	target := hook["build"].(map[string]any)["target"].(string)
	if !strings.Contains(string(dockerfile), "\nFROM scratch AS "+target+"\n") {
		t.Errorf("compose.yaml builds target %q, which the Dockerfile lacks", target)
	}
	for name, s := range services {
		if img, ok := s.(map[string]any)["image"].(string); ok {
			checkImage("compose.yaml "+name, img)
		}
	}

	// Kubernetes.
	sawProbe := map[string]bool{}
	for _, f := range []string{"webhook.yaml", "buildkitd.yaml", "postgres.yaml"} {
		for _, d := range yamlDocs(t, filepath.Join(root, "deploy", "kubernetes", f)) {
			switch d["kind"] {
			case "Secret":
				for name := range d["stringData"].(map[string]any) {
					if !strings.HasSuffix(name, ".pem") {
						checkVar(f+" Secret", name)
					}
				}
			case "Deployment", "StatefulSet":
				spec := d["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
				for _, c := range spec["containers"].([]any) {
					c := c.(map[string]any)
					checkImage(f, c["image"].(string))
					if d["kind"] != "Deployment" {
						continue
					}
					for _, e := range c["env"].([]any) {
						checkVar(f, e.(map[string]any)["name"].(string))
					}
					for _, p := range []string{"readinessProbe", "livenessProbe"} {
						path := c[p].(map[string]any)["httpGet"].(map[string]any)["path"].(string)
						sawProbe[path] = true
					}
				}
			}
		}
	}
	if !sawProbe["/readyz"] || !sawProbe["/healthz"] {
		t.Errorf("probes %v, want /readyz and /healthz", sawProbe)
	}
}
