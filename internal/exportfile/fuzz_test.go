package exportfile

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRead feeds Read arbitrary bytes, seeded with a valid export and
// variants of it: Read must never panic, must return an Archive or an error
// (never both), and must leave nothing behind when it fails. Fuzz with a
// small -fuzzminimizetime (e.g. 50x): the fuzzer minimizes every new
// interesting input, for 60 s each by default, and with 8 KB seeds that
// makes it look stuck.
func FuzzRead(f *testing.F) {
	fx := newFixture(f)
	export := fx.export(f)
	fx.reg.Close() // Read needs no registry
	f.Add(export)
	f.Add(gunzip(f, export))
	f.Add(export[:len(export)/2])
	f.Add(gz(f, []byte("not a tar")))
	f.Add([]byte{})
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
