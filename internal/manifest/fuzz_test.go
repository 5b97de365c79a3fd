package manifest

import (
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParse checks that no input makes Parse panic, that every problem has
// a position inside the file, and that a manifest without errors survives
// being written back and parsed again.
func FuzzParse(f *testing.F) {
	for _, file := range corpusFiles(f) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	// Every Convox check's failing fixture, and YAML errors placed by the
	// second library.
	for _, c := range convoxChecks {
		f.Add([]byte(strings.ReplaceAll(c.src, "\t", "  ")))
	}
	f.Add([]byte("services:\n  web:\n    build: .\n   port: 3000\n"))
	f.Add([]byte("services:\n  web:\n    port: *p\n"))
	f.Add([]byte("a: ${X}\nb: [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, ps, err := Parse("convox.yml", data, Options{Env: map[string]string{"HOST": "example.org"}})
		lines := len(lineStarts(data))
		for _, p := range ps {
			if p.Line < 0 || p.Line > lines || p.Col < 0 {
				t.Fatalf("problem outside the file (%d lines): %s", lines, p)
			}
		}
		if (err != nil) != (len(ps.Errors()) > 0) {
			t.Fatalf("err %v but problems %v", err, ps)
		}
		if m == nil || err != nil || strings.Contains(string(data), "${") {
			return
		}
		out, merr := yaml.Marshal(m)
		if merr != nil {
			t.Fatalf("marshal: %v", merr)
		}
		m2, ps2, err := Parse("out.yml", out, Options{})
		if err != nil || m2 == nil {
			t.Fatalf("parsing what was written: %v\n%v\n%s", err, ps2, out)
		}
	})
}

func BenchmarkParseCorpus(b *testing.B) {
	var files [][]byte
	for _, f := range corpusFiles(b) {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		files = append(files, data)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, data := range files {
			Parse("convox.yml", data, Options{})
		}
	}
}
