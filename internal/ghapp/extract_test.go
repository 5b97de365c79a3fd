package ghapp_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/convox-build-action/convox-build-action/internal/ghapp"
)

type entry struct {
	name, link, body string
	typ              byte
	mode             int64
}

func tarball(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "abc"}})
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Size: int64(len(e.body))}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func file(name, body string) entry { return entry{name: name, body: body, typ: tar.TypeReg} }
func dir(name string) entry        { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, to string) entry {
	return entry{name: name, link: to, typ: tar.TypeSymlink, mode: 0o777}
}

// extract unpacks into a directory inside a sandbox and checks that
// nothing appeared beside it.
func extract(t *testing.T, tgz []byte, limits ghapp.Limits) (string, error) {
	t.Helper()
	sandbox := t.TempDir()
	dest := filepath.Join(sandbox, "src")
	os.Mkdir(dest, 0o755)
	err := ghapp.Extract(bytes.NewReader(tgz), dest, limits)
	if es, _ := os.ReadDir(sandbox); len(es) != 1 {
		t.Errorf("the sandbox holds %d entries after extraction: something was written outside", len(es))
	}
	return dest, err
}

func TestExtract(t *testing.T) {
	dest, err := extract(t, tarball(t,
		dir("o-r-abc1234/"),
		file("o-r-abc1234/convox.yml", "services:\n  web:\n    build: .\n"),
		entry{name: "o-r-abc1234/bin/run", body: "#!/bin/sh\n", typ: tar.TypeReg, mode: 0o755},
		file("o-r-abc1234/deep/er/file.txt", "x"),
		symlink("o-r-abc1234/docs", "deep/er"),
		symlink("o-r-abc1234/deep/up", "../convox.yml"),
		symlink("o-r-abc1234/dangling", "nothing-here"),
		entry{name: "o-r-abc1234/hard", link: "o-r-abc1234/convox.yml", typ: tar.TypeLink},
	), ghapp.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"convox.yml": "services:\n  web:\n    build: .\n", "docs/file.txt": "x", "deep/up": "services:\n  web:\n    build: .\n",
		"hard": "services:\n  web:\n    build: .\n", "bin/run": "#!/bin/sh\n",
	} {
		b, err := os.ReadFile(filepath.Join(dest, name))
		if err != nil || string(b) != want {
			t.Errorf("%s: %q, %v", name, b, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dest, "bin/run")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/run: %v, %v; want executable", fi.Mode(), err)
	}
	if fi, err := os.Lstat(filepath.Join(dest, "docs")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("docs is not kept as a link: %v %v", fi, err)
	}
}

func TestExtractRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []entry
		want    string
	}{
		{"dot-dot", []entry{file("o-r-abc/../../evil", "x")}, `source tarball entry "o-r-abc/../../evil": a path with .., outside the tree`},
		{"absolute", []entry{file("/etc/evil", "x")}, `"/etc/evil": an absolute path`},
		{"absolute link", []entry{symlink("o-r-abc/passwd", "/etc/passwd")}, `a symbolic link to /etc/passwd, outside the tree`},
		{"link up", []entry{symlink("o-r-abc/up", "../../..")}, `a symbolic link to ../../.., outside the tree`},
		{"write through a link", []entry{symlink("o-r-abc/d/up", ".."), file("o-r-abc/d/up/../../x", "x")}, `a path with ..`},
		{"chain of links", []entry{dir("o-r-abc/x/"), symlink("o-r-abc/a/b/s", "../.."), symlink("o-r-abc/l", "a/b/s/x/../../..")},
			`"l": a symbolic link to a/b/s/x/../../.., which leads outside the tree`},
		{"hard link out", []entry{{name: "o-r-abc/h", link: "../etc/passwd", typ: tar.TypeLink}}, `a hard link to ../etc/passwd, outside the tree`},
		{"hard link to a link out", []entry{symlink("o-r-abc/a/s", ".."), {name: "o-r-abc/s2", link: "o-r-abc/a/s", typ: tar.TypeLink}},
			`"s2": a symbolic link to .., which leads outside the tree`},
		{"device", []entry{{name: "o-r-abc/null", typ: tar.TypeChar}}, `a special file (tar type '3')`},
		{"fifo", []entry{{name: "o-r-abc/p", typ: tar.TypeFifo}}, `a special file`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := extract(t, tarball(t, tc.entries...), ghapp.Limits{})
			var unsafe *ghapp.UnsafeEntryError
			if !errors.As(err, &unsafe) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v; want an UnsafeEntryError containing %q", err, tc.want)
			}
		})
	}
}

func TestExtractLimits(t *testing.T) {
	var many []entry
	for i := range 11 {
		many = append(many, file("o-r-abc/f"+strings.Repeat("x", i), "x"))
	}
	_, err := extract(t, tarball(t, many...), ghapp.Limits{MaxFiles: 10})
	var le *ghapp.LimitError
	if !errors.As(err, &le) || err.Error() != "source tarball: more than 10 files" {
		t.Errorf("11 files, limit 10: %v", err)
	}
	_, err = extract(t, tarball(t, file("o-r-abc/a", strings.Repeat("a", 600)), file("o-r-abc/b", strings.Repeat("b", 600))), ghapp.Limits{MaxBytes: 1000})
	if !errors.As(err, &le) || err.Error() != "source tarball: more than 1000 bytes of files" {
		t.Errorf("1200 bytes, limit 1000: %v", err)
	}
	if _, err := extract(t, []byte("not gzip"), ghapp.Limits{}); err == nil || !strings.Contains(err.Error(), "not a gzipped tarball") {
		t.Errorf("garbage: %v", err)
	}
}

// FuzzExtract: whatever the tarball, nothing is written outside the
// destination and nothing panics.
func FuzzExtract(f *testing.F) {
	f.Add(tarball(f, dir("o-r-abc/"), file("o-r-abc/convox.yml", "x"), symlink("o-r-abc/l", "convox.yml")))
	f.Add(tarball(f, symlink("o-r-abc/a/s", ".."), file("o-r-abc/a/s/x", "y")))
	f.Add(tarball(f, file("o-r-abc/../x", "x")))
	f.Fuzz(func(t *testing.T, tgz []byte) {
		sandbox := t.TempDir()
		dest := filepath.Join(sandbox, "src")
		os.Mkdir(dest, 0o755)
		ghapp.Extract(bytes.NewReader(tgz), dest, ghapp.Limits{MaxBytes: 1 << 20, MaxFiles: 1000})
		if es, _ := os.ReadDir(sandbox); len(es) != 1 {
			t.Errorf("something was written outside the destination")
		}
	})
}
