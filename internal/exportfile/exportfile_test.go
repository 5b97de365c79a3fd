package exportfile

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/convox-build-action/convox-build-action/internal/devenv"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

const (
	buildID = "BAAAAAAAAAA"
	newID   = "BNEWNEWNEWN"
)

var testReg = Registry{Insecure: true}

func startRegistry(t testing.TB) string {
	return startRegistryServer(t).Addr
}

func startRegistryServer(t testing.TB) *devenv.Registry {
	t.Helper()
	r, err := devenv.StartRegistry(context.Background(), devenv.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// fixture is a registry holding the images of a build of app "app": web
// (an image), api (the same image as web), worker (an index of two images)
// and redis (an image-only service).
type fixture struct {
	reg   *devenv.Registry
	addr  string
	build *store.Build
	logs  []string
	web   v1.Image
	index v1.ImageIndex
	redis v1.Image
}

func push(t testing.TB, ref string, t2 remote.Taggable) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Push(r, t2); err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(r)
	if err != nil {
		t.Fatal(err)
	}
	return d.Digest.String()
}

// fixtureManifest is the fixture build's convox.yml.
const fixtureManifest = "services:\n  web:\n    build: .\n  api:\n    build: .\n  worker:\n    build: ./worker\n  redis:\n    image: redis:7\n"

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{reg: startRegistryServer(t)}
	f.addr = f.reg.Addr
	src := rand.NewSource(1)
	var err error
	if f.web, err = random.Image(1024, 2, random.WithSource(src)); err != nil {
		t.Fatal(err)
	}
	if f.index, err = random.Index(512, 1, 2, random.WithSource(src)); err != nil {
		t.Fatal(err)
	}
	if f.redis, err = random.Image(256, 1, random.WithSource(src)); err != nil {
		t.Fatal(err)
	}
	repo := f.addr + "/app"
	img := func(svc string) string { return repo + ":" + svc + "." + buildID }
	webDigest := push(t, img("web"), f.web)
	push(t, img("api"), f.web)
	workerDigest := push(t, img("worker"), f.index)
	redisDigest := push(t, img("redis"), f.redis)
	f.build = &store.Build{
		ID:          buildID,
		App:         "app",
		Description: "build 0123456789 <fix> & \"quote\"",
		Entrypoint:  "",
		GitSHA:      "0123456789abcdef0123456789abcdef01234567",
		Manifest:    fixtureManifest,
		Process:     "",
		Release:     "RAAAAAAAAAA",
		Reason:      "",
		Repository:  repo,
		Status:      store.StatusComplete,
		Started:     time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC),
		Ended:       time.Date(2024, 5, 6, 7, 9, 10, 0, time.UTC),
		Services: []store.ServiceImage{
			{Service: "web", Image: img("web"), Digest: webDigest, Entrypoint: "/bin/web", DurationMS: 1200, TotalSteps: 3},
			{Service: "api", Image: img("api"), Digest: webDigest},
			{Service: "worker", Image: img("worker"), Digest: workerDigest},
			{Service: "redis", Image: img("redis"), Digest: redisDigest, ImageOnly: true},
		},
	}
	f.logs = []string{"web: #1 [internal] load build definition", "", "web: DONE 0.1s"}
	return f
}

func (f *fixture) export(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(context.Background(), &buf, f.build, f.logs, testReg); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// exported is what Read gives back for a build: the exported fields only.
func exported(b *store.Build) store.Build {
	out := *b
	out.Services = nil
	for _, s := range b.Services {
		out.Services = append(out.Services, store.ServiceImage{Service: s.Service, Image: s.Image, Digest: s.Digest, Entrypoint: s.Entrypoint, ImageOnly: s.ImageOnly})
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	data := f.export(t)

	a, err := Read(ctx, bytes.NewReader(data), filepath.Join(t.TempDir(), "x"))
	if err != nil {
		t.Fatal(err)
	}
	if want := exported(f.build); !equalJSON(t, a.Build, want) {
		t.Errorf("Build = %+v, want %+v", a.Build, want)
	}
	if got := readLogs(t, a); !equalJSON(t, got, f.logs) {
		t.Errorf("logs = %q, want %q", got, f.logs)
	}

	dest := startRegistry(t)
	repo := dest + "/app2"
	got, err := a.Push(ctx, repo, newID, testReg)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(f.build.Services) {
		t.Fatalf("Push returned %d services, want %d", len(got), len(f.build.Services))
	}
	for i, s := range got {
		old := f.build.Services[i]
		want := store.ServiceImage{Service: old.Service, Image: repo + ":" + old.Service + "." + newID, Digest: old.Digest, Entrypoint: old.Entrypoint, ImageOnly: old.ImageOnly}
		if s != want {
			t.Errorf("service %d = %+v, want %+v", i, s, want)
		}
		ref, err := name.ParseReference(s.Image, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		d, err := remote.Get(ref)
		if err != nil {
			t.Fatalf("%s: %v", s.Image, err)
		}
		if d.Digest.String() != old.Digest {
			t.Errorf("%s: digest %s, want %s", s.Image, d.Digest, old.Digest)
		}
		if d.MediaType.IsIndex() {
			idx, err := d.ImageIndex()
			if err != nil {
				t.Fatal(err)
			}
			if err := readIndex(idx); err != nil {
				t.Errorf("%s: %v", s.Image, err)
			}
		} else {
			img, err := d.Image()
			if err != nil {
				t.Fatal(err)
			}
			if err := readImage(img); err != nil {
				t.Errorf("%s: %v", s.Image, err)
			}
		}
	}
}

// readImage reads img whole: config and every layer, compressed (which
// checks its digest) and uncompressed.
func readImage(img v1.Image) error {
	if _, err := img.ConfigFile(); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		for _, open := range []func() (io.ReadCloser, error){l.Compressed, l.Uncompressed} {
			rc, err := open()
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func readIndex(idx v1.ImageIndex) error {
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	if len(im.Manifests) == 0 {
		return errors.New("empty index")
	}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			return err
		}
		if err := readImage(img); err != nil {
			return err
		}
	}
	return nil
}

// readLogs returns every line ReadLogs gives, checking its batches.
func readLogs(t testing.TB, a *Archive) []string {
	t.Helper()
	var out []string
	err := a.ReadLogs(func(lines []string) error {
		if len(lines) == 0 || len(lines) > 1000 {
			t.Errorf("a batch of %d lines", len(lines))
		}
		out = append(out, lines...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

// TestPipe streams an export through a pipe into Read, and checks that
// Write gives the same bytes every time.
func TestPipe(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	first := f.export(t)

	pr, pw := io.Pipe()
	var copy bytes.Buffer
	go func() {
		pw.CloseWithError(Write(ctx, pw, f.build, f.logs, testReg))
	}()
	a, err := Read(ctx, io.TeeReader(pr, &copy), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Build.Services) != 4 {
		t.Errorf("%d services, want 4", len(a.Build.Services))
	}
	if !bytes.Equal(copy.Bytes(), first) {
		t.Errorf("two exports of one build differ (%d and %d bytes)", copy.Len(), len(first))
	}
}

// TestContents checks build.json byte for byte, the entries and their
// order, and each service archive's layout.
func TestContents(t *testing.T) {
	f := newFixture(t)
	entries := untar(t, gunzip(t, f.export(t)))
	var names []string
	for _, e := range entries {
		names = append(names, e.hdr.Name)
	}
	wantNames := []string{"build.json", "build.log", "web.BAAAAAAAAAA.tar", "api.BAAAAAAAAAA.tar", "worker.BAAAAAAAAAA.tar", "redis.BAAAAAAAAAA.tar"}
	if strings.Join(names, " ") != strings.Join(wantNames, " ") {
		t.Fatalf("entries %q, want %q", names, wantNames)
	}

	s := f.build.Services
	want := fmt.Sprintf(`{
  "id": "BAAAAAAAAAA",
  "app": "app",
  "description": "build 0123456789 <fix> & \"quote\"",
  "entrypoint": "",
  "git-sha": "0123456789abcdef0123456789abcdef01234567",
  "logs": "object://app/build/BAAAAAAAAAA/logs",
  "manifest": "services:\n  web:\n    build: .\n  api:\n    build: .\n  worker:\n    build: ./worker\n  redis:\n    image: redis:7\n",
  "process": "",
  "release": "RAAAAAAAAAA",
  "reason": "",
  "repository": "%[1]s/app",
  "status": "complete",
  "started": "2024-05-06T07:08:09.123456Z",
  "ended": "2024-05-06T07:09:10Z",
  "services": [
    {
      "service": "web",
      "image": "%[1]s/app:web.BAAAAAAAAAA",
      "digest": "%[2]s",
      "entrypoint": "/bin/web",
      "image-only": false
    },
    {
      "service": "api",
      "image": "%[1]s/app:api.BAAAAAAAAAA",
      "digest": "%[2]s",
      "entrypoint": "",
      "image-only": false
    },
    {
      "service": "worker",
      "image": "%[1]s/app:worker.BAAAAAAAAAA",
      "digest": "%[3]s",
      "entrypoint": "",
      "image-only": false
    },
    {
      "service": "redis",
      "image": "%[1]s/app:redis.BAAAAAAAAAA",
      "digest": "%[4]s",
      "entrypoint": "",
      "image-only": true
    }
  ]
}
`, f.addr, s[0].Digest, s[2].Digest, s[3].Digest)
	if got := string(entries[0].data); got != want {
		t.Errorf("build.json:\n%s\nwant:\n%s", got, want)
	}
	if got, want := string(entries[1].data), "web: #1 [internal] load build definition\n\nweb: DONE 0.1s\n"; got != want {
		t.Errorf("build.log = %q, want %q", got, want)
	}
	for _, e := range entries {
		if !e.hdr.ModTime.Equal(f.build.Ended) || e.hdr.Typeflag != tar.TypeReg {
			t.Errorf("%s: mtime %v type %q, want %v and a regular file", e.hdr.Name, e.hdr.ModTime, e.hdr.Typeflag, f.build.Ended)
		}
	}

	// web: one image.
	web := untar(t, entries[2].data)
	files := map[string][]byte{}
	for _, e := range web {
		files[e.hdr.Name] = e.data
	}
	if got := string(files["oci-layout"]); got != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %s", got)
	}
	var index v1.IndexManifest
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	raw, _ := f.web.RawManifest()
	mt, _ := f.web.MediaType()
	if len(index.Manifests) != 1 {
		t.Fatalf("index.json lists %d manifests, want 1", len(index.Manifests))
	}
	d := index.Manifests[0]
	if d.Digest.String() != s[0].Digest || d.Size != int64(len(raw)) || d.MediaType != mt ||
		d.Annotations["org.opencontainers.image.ref.name"] != "web.BAAAAAAAAAA" || d.Annotations["io.containerd.image.name"] != s[0].Image {
		t.Errorf("index.json descriptor = %+v", d)
	}
	h, _ := v1.NewHash(s[0].Digest)
	if !bytes.Equal(files["blobs/sha256/"+h.Hex], raw) {
		t.Errorf("manifest blob differs from the registry's manifest")
	}
	cfg, _ := f.web.ConfigName()
	layers, _ := f.web.Layers()
	wantDocker := dockerManifest{Config: "blobs/sha256/" + cfg.Hex, RepoTags: []string{s[0].Image}}
	for _, l := range layers {
		ld, _ := l.Digest()
		wantDocker.Layers = append(wantDocker.Layers, "blobs/sha256/"+ld.Hex)
	}
	wantJSON, _ := json.Marshal([]dockerManifest{wantDocker})
	if got := string(files["manifest.json"]); got != string(wantJSON) {
		t.Errorf("manifest.json = %s, want %s", got, wantJSON)
	}
	if n := len(web); n != 3+1+1+2 {
		t.Errorf("web archive has %d entries, want 7 (3 files, manifest, config, 2 layers)", n)
	}

	// worker: an index of two images; docker load tags the first.
	var docker []dockerManifest
	for _, e := range untar(t, entries[4].data) {
		if e.hdr.Name == "manifest.json" {
			if err := json.Unmarshal(e.data, &docker); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(docker) != 2 || len(docker[0].RepoTags) != 1 || len(docker[1].RepoTags) != 0 {
		t.Errorf("worker manifest.json = %+v, want 2 images, the first tagged", docker)
	}
}

type tarEntry struct {
	hdr  *tar.Header
	data []byte
}

func gunzip(t testing.TB, data []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func gz(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// stored is data gzipped without compression.
func stored(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.NoCompression)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func untar(t testing.TB, data []byte) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{hdr, b})
	}
}

func mktar(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := *e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rewrite returns the export with its entries passed through fn.
func rewrite(t testing.TB, export []byte, fn func([]tarEntry) []tarEntry) []byte {
	t.Helper()
	return gz(t, rewriteTar(t, export, fn))
}

// rewriteTar is rewrite without the gzip.
func rewriteTar(t testing.TB, export []byte, fn func([]tarEntry) []tarEntry) []byte {
	t.Helper()
	return mktar(t, fn(untar(t, gunzip(t, export))))
}

// rewriteArchive returns the export with the entries of the service archive
// called archive passed through fn.
func rewriteArchive(t testing.TB, export []byte, archive string, fn func([]tarEntry) []tarEntry) []byte {
	t.Helper()
	return rewrite(t, export, func(es []tarEntry) []tarEntry {
		for i, e := range es {
			if e.hdr.Name == archive {
				es[i].data = mktar(t, fn(untar(t, e.data)))
			}
		}
		return es
	})
}

func file(name string, data []byte) tarEntry {
	return tarEntry{&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data))}, data}
}

func TestReadRefuses(t *testing.T) {
	f := newFixture(t)
	export := f.export(t)
	layers, _ := f.web.Layers()
	layer, _ := layers[0].Digest()
	webTar := "web.BAAAAAAAAAA.tar"

	type tc struct {
		name  string
		data  []byte
		want  string
		trunc bool
	}
	cases := []tc{
		{name: "empty", data: nil, want: "the file is empty"},
		{name: "not gzip", data: []byte("services:\n  web:\n"), want: "not a gzip file"},
		{name: "plain tar", data: gunzip(t, export), want: "not a gzip file"},
		{
			name: "flipped byte in a layer",
			data: rewriteArchive(t, export, webTar, func(es []tarEntry) []tarEntry {
				for _, e := range es {
					if e.hdr.Name == "blobs/sha256/"+layer.Hex {
						e.data[len(e.data)/2] ^= 1
					}
				}
				return es
			}),
			want: webTar + ": blob " + layer.String() + " does not match its digest",
		},
		{
			name: "missing service archive",
			data: rewrite(t, export, func(es []tarEntry) []tarEntry {
				var out []tarEntry
				for _, e := range es {
					if e.hdr.Name != "worker.BAAAAAAAAAA.tar" {
						out = append(out, e)
					}
				}
				return out
			}),
			want: "worker.BAAAAAAAAAA.tar missing: build.json lists service worker",
		},
		{
			name: "missing layer",
			data: rewriteArchive(t, export, webTar, func(es []tarEntry) []tarEntry {
				var out []tarEntry
				for _, e := range es {
					if e.hdr.Name != "blobs/sha256/"+layer.Hex {
						out = append(out, e)
					}
				}
				return out
			}),
			want: webTar + ": blob " + layer.String() + " missing",
		},
		{
			name: "no build.json",
			data: rewrite(t, export, func(es []tarEntry) []tarEntry { return es[1:] }),
			want: "no build.json",
		},
		{
			name: "bad build.json",
			data: rewrite(t, export, func(es []tarEntry) []tarEntry { es[0].data = []byte("{"); return es }),
			want: "build.json: unexpected end of JSON input",
		},
		{
			name: "digest not in index.json",
			data: rewrite(t, export, func(es []tarEntry) []tarEntry {
				es[0].data = bytes.ReplaceAll(es[0].data, []byte(f.build.Services[3].Digest), []byte("sha256:"+strings.Repeat("0", 64)))
				return es
			}),
			want: "redis.BAAAAAAAAAA.tar: index.json does not list the image sha256:" + strings.Repeat("0", 64),
		},
		{name: "path traversal", data: rewrite(t, export, addEntry(file("../x", []byte("x")))), want: `entry name "../x" points outside the export`},
		{name: "nested path traversal", data: rewriteArchive(t, export, webTar, addEntry(file("blobs/../../../x", []byte("x")))), want: webTar + `: entry name "blobs/../../../x" points outside the export`},
		{name: "absolute path", data: rewrite(t, export, addEntry(file("/etc/passwd", []byte("x")))), want: `invalid entry name "/etc/passwd"`},
		{name: "long name", data: rewrite(t, export, addEntry(file(strings.Repeat("a", 256), nil))), want: "entry name longer than 255 bytes"},
		{name: "symlink", data: rewrite(t, export, addEntry(tarEntry{&tar.Header{Typeflag: tar.TypeSymlink, Name: "evil", Linkname: "/etc/passwd"}, nil})), want: `evil: not a regular file`},
		{name: "unexpected entry", data: rewrite(t, export, addEntry(file("run.sh", []byte("x")))), want: `unexpected entry "run.sh"`},
		{name: "duplicate entry", data: rewrite(t, export, func(es []tarEntry) []tarEntry { return append(es, es[1]) }), want: "build.log: the export holds it twice"},
		{
			name: "archive of no service",
			data: rewrite(t, export, func(es []tarEntry) []tarEntry {
				e := es[2]
				return append(es, tarEntry{&tar.Header{Typeflag: tar.TypeReg, Name: "other.BAAAAAAAAAA.tar", Mode: 0o644}, e.data})
			}),
			want: "other.BAAAAAAAAAA.tar: not a service of build BAAAAAAAAAA",
		},
		{name: "huge entry", data: hugeEntry(t), want: "would take the export past 10 GiB"},
		{name: "too many entries", data: manyEntries(t, MaxEntries+1), want: "more than 10000 entries"},
		// Stored, not compressed: 100001 identical headers would otherwise
		// trip the decompression-bomb guard first.
		{name: "too many archive entries", data: stored(t, rewriteTar(t, export, func(es []tarEntry) []tarEntry {
			for i, e := range es {
				if e.hdr.Name == webTar {
					dirs := make([]tarEntry, MaxImageEntries+1)
					for i := range dirs {
						dirs[i] = tarEntry{&tar.Header{Typeflag: tar.TypeDir, Name: "blobs/", Mode: 0o755}, nil}
					}
					es[i].data = mktar(t, append(dirs, untar(t, e.data)...))
				}
			}
			return es
		})), want: webTar + ": more than 100000 entries"},
		{name: "bad gzip checksum", data: func() []byte {
			d := bytes.Clone(export)
			d[len(d)-6] ^= 0xff // the CRC-32 in the trailer
			return d
		}(), want: "gzip checksum mismatch"},
	}
	for _, n := range []int{1, 10, 100, len(export) / 3, len(export) / 2, len(export) - 100, len(export) - 9, len(export) - 1} {
		cases = append(cases, tc{name: fmt.Sprintf("truncated at %d", n), data: export[:n], want: "unexpected EOF: the file is truncated", trunc: true})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, create := range []bool{false, true} {
				dir := filepath.Join(t.TempDir(), "import")
				if create {
					if err := os.Mkdir(dir, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				a, err := Read(context.Background(), bytes.NewReader(c.data), dir)
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("err = %v, want one containing %q", err, c.want)
				}
				if a != nil {
					t.Errorf("Read returned an Archive with its error")
				}
				if c.trunc && !errors.Is(err, ErrTruncated) {
					t.Errorf("err = %v, want one wrapping ErrTruncated", err)
				}
				left, statErr := os.ReadDir(dir)
				switch {
				case create && (statErr != nil || len(left) > 0):
					t.Errorf("Read left %v in %s (%v)", left, dir, statErr)
				case !create && !errors.Is(statErr, os.ErrNotExist):
					t.Errorf("Read left the directory it created: %v", statErr)
				}
			}
		})
	}
}

func addEntry(e tarEntry) func([]tarEntry) []tarEntry {
	return func(es []tarEntry) []tarEntry { return append(es, e) }
}

// hugeEntry is an export whose first entry claims 11 GiB.
func hugeEntry(t testing.TB) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "build.log", Size: 11 << 30, Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	tw.Write(make([]byte, 4096))
	zw.Close()
	return buf.Bytes()
}

// manyEntries is an export of n directory entries "./".
func manyEntries(t testing.TB, n int) []byte {
	es := make([]tarEntry, n)
	for i := range es {
		es[i] = tarEntry{&tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755}, nil}
	}
	return gz(t, mktar(t, es))
}

func TestReadDirNotEmpty(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Read(context.Background(), bytes.NewReader(nil), dir)
	if err == nil || !strings.Contains(err.Error(), "the directory is not empty") {
		t.Fatalf("err = %v, want a complaint about the directory", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "keep")); err != nil {
		t.Errorf("Read removed a file it did not write: %v", err)
	}
}

func TestWriteRefuses(t *testing.T) {
	f := newFixture(t)
	missing := *f.build
	missing.Services = append([]store.ServiceImage(nil), f.build.Services...)
	missing.Services[2].Digest = "sha256:" + strings.Repeat("1", 64)
	noDigest := *f.build
	noDigest.Services = []store.ServiceImage{{Service: "web", Image: f.build.Services[0].Image}}
	badID := *f.build
	badID.ID = "B123"
	partial := *f.build
	partial.Services = f.build.Services[:2]
	cases := []struct {
		name string
		b    *store.Build
		want string
	}{
		{"image missing", &missing, "exporting build BAAAAAAAAAA: service worker: pulling " + f.addr + "/app@sha256:1111"},
		{"no digest", &noDigest, "service web has no image digest"},
		{"bad ID", &badID, `invalid build ID "B123"`},
		{"partial", &partial, "exporting build BAAAAAAAAAA: build.json: services worker, redis of the manifest have no image in the export"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(context.Background(), &buf, c.b, nil, testReg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
			if buf.Len() != 0 {
				t.Errorf("Write wrote %d bytes before failing", buf.Len())
			}
		})
	}
}

func TestPushRefuses(t *testing.T) {
	f := newFixture(t)
	a, err := Read(context.Background(), bytes.NewReader(f.export(t)), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Push(context.Background(), f.addr+"/app2", "bnew", testReg); err == nil || !strings.Contains(err.Error(), `invalid new build ID "bnew"`) {
		t.Errorf("err = %v, want an invalid ID error", err)
	}
	// Nothing listens on port 1.
	_, err = a.Push(context.Background(), "127.0.0.1:1/app2", newID, testReg)
	if err == nil || !strings.Contains(err.Error(), "importing build BAAAAAAAAAA: service web: pushing 127.0.0.1:1/app2:web."+newID) {
		t.Errorf("err = %v, want one naming the service and the tag", err)
	}
}

func TestReadCancelled(t *testing.T) {
	f := newFixture(t)
	export := f.export(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := filepath.Join(t.TempDir(), "import")
	a, err := Read(ctx, bytes.NewReader(export), dir)
	if a != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("Read = %v, %v; want context.Canceled", a, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Read left %s: %v", dir, err)
	}
}
