package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateRefusesLinksOutOfTheTree: a convox.yml that is, or is under,
// a link out of the source tree is refused, and nothing of its target is
// printed (issue 7: one pointed at /etc/shadow echoed its lines).
func TestValidateRefusesLinksOutOfTheTree(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "shadow"), []byte("root:SECRET-HASH:19000:0:99999:7:::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "convox.yml"), []byte("services:\n  SECRET: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := writeDir(t, map[string]string{"real.yml": "services:\n\tweb:\n\t\timage: busybox\n"})
	for name, target := range map[string]string{"convox.yml": filepath.Join(outside, "shadow"), "conf": outside, "inside.yml": "real.yml"} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		args   []string
		out    string
		errOut string
		code   int
	}{
		{"link to a file outside", []string{"manifest", "validate"}, "",
			"ERROR: reading manifest: convox.yml is, or is under, a link to outside the source directory .; refusing to follow it (links must stay inside the source directory)\n", 1},
		{"under a link to a directory outside", []string{"manifest", "validate", "-f", "conf/convox.yml"}, "",
			"ERROR: reading manifest: conf/convox.yml is, or is under, a link to outside the source directory .; refusing to follow it (links must stay inside the source directory)\n", 1},
		{"link inside the tree", []string{"manifest", "validate", "-f", "inside.yml"}, "web\t-\t-\tbusybox\n", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := run(t, dir, false, tt.args...)
			if out != tt.out || errOut != tt.errOut || code != tt.code {
				t.Errorf("got stdout %q stderr %q exit %d\nwant stdout %q stderr %q exit %d", out, errOut, code, tt.out, tt.errOut, tt.code)
			}
			if strings.Contains(out+errOut, "SECRET") {
				t.Errorf("the link's target was printed: %s%s", out, errOut)
			}
		})
	}
}

// TestValidateDockerfiles: manifest validate reports a missing, empty or
// unparsable Dockerfile at the service's build, with the Dockerfile's path
// and line.
func TestValidateDockerfiles(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"convox.yml":          "services:\n\tweb:\n\t\tbuild: .\n\tapi:\n\t\tbuild:\n\t\t\tpath: api\n\t\t\tmanifest: Dockerfile.prod\n\tworker:\n\t\tbuild: worker\n\tempty:\n\t\tbuild:\n\t\t\tmanifest: Dockerfile.empty\n",
		"Dockerfile":          "FROM busybox\n",
		"Dockerfile.empty":    "\n",
		"api/Dockerfile.prod": "FROM busybox\nRUN make\nCOPPY . /app\n",
	})
	out, errOut, code := run(t, dir, false, "manifest", "validate")
	want := "convox.yml:7:17: service api: api/Dockerfile.prod:3: unknown instruction: COPPY (did you mean COPY?)\n" +
		"convox.yml:9:12: service worker: no such file: worker/Dockerfile\n" +
		"convox.yml:12:17: service empty: Dockerfile.empty is empty: it has no instructions\n"
	if out != "" || errOut != want || code != 1 {
		t.Errorf("got stdout %q stderr:\n%s\nexit %d\nwant stderr:\n%s", out, errOut, code, want)
	}
}
