package webhook_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/convox-build-action/convox-build-action/internal/webhook"
)

// FuzzRoute feeds Route every real payload and mutations of them: it
// never panics, and whatever it asks to build names a repository, a
// commit and an app.
func FuzzRoute(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "github-payloads", "*", "*.json"))
	if len(files) == 0 {
		f.Fatal("no payloads in testdata/github-payloads")
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(filepath.Base(filepath.Dir(file)), b, false, false)
	}
	f.Fuzz(func(t *testing.T, event string, payload []byte, forks, tags bool) {
		r, err := webhook.Route(event, payload, webhook.Policy{BuildForks: forks, BuildTags: tags})
		if err != nil {
			return
		}
		for _, b := range r.Plan.Builds {
			if b.Owner == "" || b.Repo == "" || b.SHA == "" || b.App == "" || b.InstallationID == 0 {
				t.Errorf("build without owner, repo, commit, app or installation: %+v", b)
			}
			if strings.ContainsAny(b.App, " _/.") {
				t.Errorf("app name %q", b.App)
			}
		}
		if len(r.Plan.Builds)+len(r.Plan.Notices) == 0 && r.Plan.Installation == nil && r.Plan.Note == "" {
			t.Errorf("a plan that does nothing says nothing: %+v", r)
		}
	})
}
