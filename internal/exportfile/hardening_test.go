package exportfile

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/convox-build-action/convox-build-action/internal/exportfile/exportfiletest"
)

// entries returns the export's entries, and the index of the one named
// name (-1 when absent).
func entries(t testing.TB, export []byte, name string) ([]exportfiletest.Entry, int) {
	t.Helper()
	es, err := exportfiletest.Read(export)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range es {
		if e.Header.Name == name {
			return es, i
		}
	}
	return es, -1
}

func mustBytes(t testing.TB, es []exportfiletest.Entry) []byte {
	t.Helper()
	b, err := exportfiletest.Bytes(es)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withBuildJSON returns the export with build.json's text passed through
// fn.
func withBuildJSON(t testing.TB, export []byte, fn func(string) string) []byte {
	t.Helper()
	es, i := entries(t, export, BuildJSONName)
	es[i].Data = []byte(fn(string(es[i].Data)))
	return mustBytes(t, es)
}

// withLog returns the export with build.log replaced by e.
func withLog(t testing.TB, export []byte, e exportfiletest.Entry) []byte {
	t.Helper()
	es, i := entries(t, export, BuildLogName)
	es[i] = e
	return mustBytes(t, es)
}

// layerBomb returns the export with the first layer of the web archive
// replaced by size zero bytes under the same name, the archive's entries
// in their order, or with the blobs first (as skopeo writes them) when
// blobsFirst.
func layerBomb(t testing.TB, f *fixture, export []byte, size int64, blobsFirst bool) ([]byte, v1.Hash) {
	t.Helper()
	layers, _ := f.web.Layers()
	layer, _ := layers[0].Digest()
	es, i := entries(t, export, "web.BAAAAAAAAAA.tar")
	inner, err := es[i].Nested()
	if err != nil {
		t.Fatal(err)
	}
	var blobs, others []exportfiletest.Entry
	for _, e := range inner {
		if e.Header.Name == "blobs/sha256/"+layer.Hex {
			e = exportfiletest.Run(e.Header.Name, 0, size)
		}
		if strings.HasPrefix(e.Header.Name, "blobs/") {
			blobs = append(blobs, e)
		} else {
			others = append(others, e)
		}
	}
	if blobsFirst {
		// The bomb first of all, as in a skopeo archive whose layer's
		// digest sorts first.
		for j, e := range blobs {
			if e.RunSize > 0 {
				blobs[0], blobs[j] = blobs[j], blobs[0]
			}
		}
		inner = append(blobs, others...)
	} else {
		inner = append(others, blobs...)
	}
	es[i] = exportfiletest.Archive(es[i].Header.Name, inner)
	return mustBytes(t, es), layer
}

// written returns how many bytes this process has written so far (wchar
// of /proc/self/io: every write(2), to files, pipes and sockets alike).
func written(t testing.TB) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "wchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no wchar in /proc/self/io")
	return 0
}

// TestReadRefusesIncomplete: exports that would import as a build no
// release can run are refused, and short files that are not gzip are
// called so.
func TestReadRefusesIncomplete(t *testing.T) {
	f := newFixture(t)
	export := f.export(t)
	noServices := withBuildJSON(t, export, func(s string) string {
		return s[:strings.Index(s, `  "services": [`)] + `  "services": []` + "\n}\n"
	})
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"8 bytes, not gzip", []byte("PK\x03\x04abcd"), "not a gzip file"},
		{"1 byte, not gzip", []byte("x"), "not a gzip file"},
		{"gzip magic only", []byte{0x1f}, "unexpected EOF: the file is truncated"},
		{"gzip header cut", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0}, "unexpected EOF: the file is truncated"},
		{
			"services: [] and its archives",
			noServices,
			"api.BAAAAAAAAAA.tar, redis.BAAAAAAAAAA.tar, web.BAAAAAAAAAA.tar, worker.BAAAAAAAAAA.tar: not a service of build BAAAAAAAAAA in build.json",
		},
		{
			"services: [] and no archives",
			func() []byte {
				es, _ := entries(t, noServices, "")
				return mustBytes(t, es[:2])
			}(),
			"no service images: build.json lists no services and the export holds no <service>.BAAAAAAAAAA.tar archive; nothing to import",
		},
		{
			"manifest not YAML",
			withBuildJSON(t, export, func(s string) string {
				return strings.Replace(s, `"manifest": "services:`, `"manifest": "{{{ not: [yaml\nservices:`, 1)
			}),
			`build.json: its "manifest" is not a convox.yml: convox.yml:`,
		},
		{
			"manifest empty",
			withBuildJSON(t, export, func(s string) string {
				return strings.Replace(s, `"manifest": "services:`, `"manifest": "#services:`, 1)
			}),
			`build.json: its "manifest" (convox.yml) has no services: not a build export`,
		},
		{
			"manifest lacks a service",
			withBuildJSON(t, export, func(s string) string {
				return strings.Replace(s, `\n  redis:\n    image: redis:7\n`, `\n`, 1)
			}),
			"service redis: not a service of build.json's manifest (web, api, worker)",
		},
		{
			"export lacks services of the manifest",
			withBuildJSON(t, export, func(s string) string {
				return strings.Replace(s, `  redis:\n    image: redis:7\n`, `  redis:\n    image: redis:7\n  db:\n    image: postgres\n  mail:\n    build: mail\n`, 1)
			}),
			"build.json: services db, mail of the manifest have no image in the export, so a release of it could not run them: a build of some services only cannot be imported; export a build of every service",
		},
		{
			"archive of another build",
			func() []byte {
				es, i := entries(t, export, "web.BAAAAAAAAAA.tar")
				es = append(es, es[i])
				es[len(es)-1].Header.Name = "web.BOTHERBUILD.tar"
				return mustBytes(t, es)
			}(),
			"web.BOTHERBUILD.tar: an archive of build BOTHERBUILD, but build.json is of build BAAAAAAAAAA",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "x")
			a, err := Read(context.Background(), bytes.NewReader(c.data), dir)
			if a != nil || err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Read = %v, %v; want an error containing %q", a, err, c.want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Read left %s", dir)
			}
		})
	}
}

func TestReadLogs(t *testing.T) {
	f := newFixture(t)
	export := f.export(t)
	long := strings.Repeat("x", MaxLogLineLength-1) + "é" + "tail" // é straddles the limit
	exact := strings.Repeat("y", MaxLogLineLength)
	cases := []struct {
		name string
		log  []byte
		want []string
	}{
		{"empty", nil, nil},
		{"no final newline", []byte("a\nb"), []string{"a", "b"}},
		{"empty lines", []byte("\n\na\n\n"), []string{"", "", "a", ""}},
		{"CRLF kept", []byte("a\r\nb\r\n"), []string{"a\r", "b\r"}},
		{"exactly the limit", []byte(exact + "\n" + exact), []string{exact, exact}},
		{"long line split, not inside a character", []byte(long + "\nnext\n"), []string{long[:MaxLogLineLength-1], "é" + "tail", "next"}},
		{"twice the limit", []byte(exact + exact + "\n"), []string{exact, exact}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := Read(context.Background(), bytes.NewReader(withLog(t, export, exportfiletest.File(BuildLogName, c.log))), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if got := readLogs(t, a); !equalJSON(t, got, c.want) {
				t.Errorf("lines %.200q, want %.200q", got, c.want)
			}
		})
	}

	t.Run("cut at MaxLogLines", func(t *testing.T) {
		var log bytes.Buffer
		for i := range MaxLogLines + 4 {
			fmt.Fprintf(&log, "line %d\n", i)
		}
		log.WriteString("last, with no newline") // counted too
		a, err := Read(context.Background(), bytes.NewReader(withLog(t, export, exportfiletest.File(BuildLogName, log.Bytes()))), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		got := readLogs(t, a)
		if len(got) != MaxLogLines+1 || got[0] != "line 0" || got[MaxLogLines-1] != fmt.Sprintf("line %d", MaxLogLines-1) {
			t.Fatalf("%d lines, first %q", len(got), got[0])
		}
		want := fmt.Sprintf("convox-build: this log was cut on import: %d of its %d lines kept (an import keeps at most %d lines and 64 MiB)", MaxLogLines, MaxLogLines+5, MaxLogLines)
		if got[MaxLogLines] != want {
			t.Errorf("last line %q, want %q", got[MaxLogLines], want)
		}
	})
	t.Run("cut at MaxLogBytes", func(t *testing.T) {
		// One line of MaxLogBytes and more, split into lines of
		// MaxLogLineLength until MaxLogBytes is reached.
		a, err := Read(context.Background(), bytes.NewReader(withLog(t, export, exportfiletest.Run(BuildLogName, 'z', MaxLogBytes+3*MaxLogLineLength))), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		got := readLogs(t, a)
		kept := MaxLogBytes / (MaxLogLineLength + 1)
		if len(got) != kept+1 || len(got[0]) != MaxLogLineLength || !strings.HasPrefix(got[kept], fmt.Sprintf("convox-build: this log was cut on import: %d of its ", kept)) {
			t.Errorf("%d lines, last %.100q", len(got), got[len(got)-1])
		}
	})
	t.Run("truncated", func(t *testing.T) {
		es, i := entries(t, export, BuildLogName)
		es = es[:i+1]
		es[i] = exportfiletest.Run(BuildLogName, '\n', 10<<20)
		data := mustBytes(t, es)
		// Cut inside the log: the tar's end and the rest of the log are gone.
		_, err := Read(context.Background(), bytes.NewReader(data[:len(data)*2/3]), filepath.Join(t.TempDir(), "x"))
		if !errors.Is(err, ErrTruncated) || !strings.HasPrefix(err.Error(), "build.log: ") {
			t.Errorf("err = %v, want build.log: ... truncated", err)
		}
	})
}

// TestReadNewlineBomb reads an export whose build.log is 128 MiB of
// newlines: Read allocates a small fraction of that (it streams the log
// to disk, cut at MaxLogLines), and ReadLogs gives the kept lines and the
// note. (internal/build's import test measures a whole import's peak RSS
// in a process of its own.)
func TestReadNewlineBomb(t *testing.T) {
	f := newFixture(t)
	data := withLog(t, f.export(t), exportfiletest.Run(BuildLogName, '\n', 128<<20))
	t.Logf("export: %d bytes, build.log 128 MiB", len(data))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	a, err := Read(context.Background(), bytes.NewReader(data), t.TempDir())
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("Read allocated %d KiB in all", alloc>>10)
	if alloc > 16<<20 {
		t.Errorf("Read allocated %d MiB for a 128 MiB log; want it streamed (under 16 MiB)", alloc>>20)
	}
	if fi, err := os.Stat(filepath.Join(a.Dir, BuildLogName)); err != nil || fi.Size() != MaxLogLines {
		t.Errorf("log kept on disk: %v, %v; want %d bytes", fi, err, MaxLogLines)
	}
	lines := readLogs(t, a)
	if len(lines) != MaxLogLines+1 || lines[0] != "" || !strings.Contains(lines[MaxLogLines], fmt.Sprintf("%d of its %d lines kept", MaxLogLines, 128<<20)) {
		t.Errorf("%d lines, last %q", len(lines), lines[len(lines)-1])
	}
}

// TestReadBlobBomb: a 1 GiB layer of zeros (about 1 MB of file) is refused
// at its header when its descriptor came first (our archives); when it
// comes before its descriptor (skopeo's archives list blobs first), the
// expansion guard stops it after a few MiB. Either way the error says what
// happened and little is written.
func TestReadBlobBomb(t *testing.T) {
	f := newFixture(t)
	export := f.export(t)
	cases := []struct {
		name       string
		blobsFirst bool
		want       func(layer v1.Hash, size int64) string
		maxWritten int64
	}{
		{"descriptor first", false, func(layer v1.Hash, size int64) string {
			return fmt.Sprintf("web.BAAAAAAAAAA.tar: blob %s is 1073741824 bytes in the archive, but manifest %s says %d: refusing it before extracting it", layer, f.build.Services[0].Digest, size)
		}, 64 << 10},
		{"blob first", true, func(v1.Hash, int64) string {
			return "web.BAAAAAAAAAA.tar: blob sha256:"
		}, expansionSlack + 1<<20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data, layer := layerBomb(t, f, export, 1<<30, c.blobsFirst)
			layers, _ := f.web.Layers()
			size, _ := layers[0].Size()
			t.Logf("export: %d bytes, one blob 1 GiB", len(data))
			dir := filepath.Join(t.TempDir(), "x")
			w0 := written(t)
			a, err := Read(context.Background(), bytes.NewReader(data), dir)
			n := written(t) - w0
			t.Logf("Read wrote %d KiB before failing: %v", n>>10, err)
			if a != nil || err == nil || !strings.Contains(err.Error(), c.want(layer, size)) {
				t.Fatalf("Read = %v, %v; want an error containing %q", a, err, c.want(layer, size))
			}
			if c.blobsFirst && !strings.Contains(err.Error(), "the file expands more than 100-fold when decompressed") {
				t.Errorf("err = %v, want the expansion guard's", err)
			}
			if n > c.maxWritten {
				t.Errorf("Read wrote %d bytes, want at most %d", n, c.maxWritten)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Read left %s", dir)
			}
		})
	}
}
