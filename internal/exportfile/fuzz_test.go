package exportfile

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/convox-build-action/convox-build-action/internal/exportfile/exportfiletest"
)

// FuzzRead feeds Read arbitrary bytes, seeded with a valid export, a file
// Convox wrote, and hostile variants: a newline bomb and blob bombs (both
// orders), services: [], a manifest that is not YAML, short non-gzip
// files. Read must never panic, must return an Archive or an error (never
// both), and must leave nothing behind when it fails. Fuzz with a small
// -fuzzminimizetime (e.g. 50x): the fuzzer minimizes every new interesting
// input, for 60 s each by default, and with 8 KB seeds that makes it look
// stuck.
func FuzzRead(f *testing.F) {
	fx := newFixture(f)
	export := fx.export(f)
	f.Add(export)
	f.Add(gunzip(f, export))
	f.Add(export[:len(export)/2])
	f.Add(gz(f, []byte("not a tar")))
	f.Add([]byte{})
	f.Add([]byte("PK\x03\x04abcd"))
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0})
	convox, err := os.ReadFile(convoxFixture)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(convox)
	f.Add(withLog(f, export, exportfiletest.Run(BuildLogName, '\n', 4<<20)))
	bomb, _ := layerBomb(f, fx, export, 32<<20, false)
	f.Add(bomb)
	bomb, _ = layerBomb(f, fx, export, 32<<20, true)
	f.Add(bomb)
	f.Add(withBuildJSON(f, export, func(s string) string {
		return s[:strings.Index(s, `  "services": [`)] + `  "services": []` + "\n}\n"
	}))
	f.Add(withBuildJSON(f, export, func(s string) string {
		return strings.Replace(s, `"manifest": "services:`, `"manifest": "{{{ not: [yaml\nservices:`, 1)
	}))
	fx.reg.Close() // Read needs no registry
	root := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		dir, err := os.MkdirTemp(root, "import")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		a, err := Read(context.Background(), bytes.NewReader(data), filepath.Join(dir, "x"))
		if (a == nil) == (err == nil) {
			t.Fatalf("Read returned archive %v and error %v", a, err)
		}
		if err != nil {
			if _, statErr := os.Stat(filepath.Join(dir, "x")); !os.IsNotExist(statErr) {
				t.Fatalf("Read failed (%v) and left its directory (%v)", err, statErr)
			}
		}
	})
}
