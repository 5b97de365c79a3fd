package build_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/exportfile"
	"github.com/convox-build-action/convox-build-action/internal/exportfile/exportfiletest"
	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

var insecure = registry.Options{Insecure: true}

// busyboxExport is an export of a one-service build whose image is the
// test registry's busybox, and that image's one layer.
func busyboxExport(t *testing.T, env *testenv.Env) ([]byte, v1.Hash) {
	t.Helper()
	ctx := context.Background()
	b := &store.Build{
		ID: "BAAAAAAAAAA", App: "bomb", Manifest: "services:\n  web:\n    build: .\n",
		Repository: env.Registry + "/library/busybox", Status: store.StatusComplete,
		Started: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Ended: time.Date(2025, 1, 2, 3, 5, 5, 0, time.UTC),
		Services: []store.ServiceImage{{Service: "web", Image: env.Registry + "/library/busybox:latest", Digest: env.BusyboxDigest}},
	}
	var buf bytes.Buffer
	if err := exportfile.Write(ctx, &buf, b, []string{"#1 done"}, insecure); err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(env.Registry+"/library/busybox@"+env.BusyboxDigest, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("busybox has %d layers (%v), want 1", len(layers), err)
	}
	layer, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), layer
}

// edit returns export with its entries passed through fn.
func edit(t *testing.T, export []byte, fn func([]exportfiletest.Entry) []exportfiletest.Entry) []byte {
	t.Helper()
	es, err := exportfiletest.Read(export)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exportfiletest.Bytes(fn(es))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// blobBomb replaces layer in the web archive with size zero bytes; with
// blobsFirst the blobs come first, the bomb first of all, as in skopeo's
// archives.
func blobBomb(t *testing.T, export []byte, layer v1.Hash, size int64, blobsFirst bool) []byte {
	t.Helper()
	return edit(t, export, func(es []exportfiletest.Entry) []exportfiletest.Entry {
		for i, e := range es {
			if e.Header.Name != "web.BAAAAAAAAAA.tar" {
				continue
			}
			inner, err := e.Nested()
			if err != nil {
				t.Fatal(err)
			}
			var bomb, blobs, others []exportfiletest.Entry
			for _, ie := range inner {
				switch {
				case ie.Header.Name == "blobs/sha256/"+layer.Hex:
					bomb = append(bomb, exportfiletest.Run(ie.Header.Name, 0, size))
				case strings.HasPrefix(ie.Header.Name, "blobs/"):
					blobs = append(blobs, ie)
				default:
					others = append(others, ie)
				}
			}
			if len(bomb) != 1 {
				t.Fatalf("no layer %s in the web archive", layer)
			}
			if blobsFirst {
				inner = append(append(bomb, blobs...), others...)
			} else {
				inner = append(append(others, blobs...), bomb...)
			}
			es[i] = exportfiletest.Archive(e.Header.Name, inner)
		}
		return es
	})
}

// importcheckResult is what testdata/importcheck prints.
type importcheckResult struct {
	Build   string `json:"build"`
	Release string `json:"release"`
	Error   string `json:"error"`
	Written int64  `json:"written"`
	PeakRSS int64  `json:"peak_rss"`
}

// TestImportBombsInBoundedMemoryAndDisk imports hostile exports with the
// real build.Import in a process of its own (testdata/importcheck, built
// without -race, as the product is) and measures its peak RSS (its
// VmHWM) and the bytes it wrote during Import (wchar of /proc/self/io):
//
//   - a newline bomb: build.log is 128 MiB of newlines (a 0.2 MB file).
//     It imports: images pushed, build and release recorded, the log cut
//     at exportfile.MaxLogLines lines plus a line saying so;
//   - a blob bomb whose 1 GiB of zeros (a 1 MB file) comes after its
//     descriptor, as in our archives: refused at its header, nothing of
//     it written;
//   - the same bomb before its descriptor, as in skopeo's archives: the
//     expansion guard stops it within 16 MiB.
//
// Every run stays under 100 MiB of RSS, records nothing when it fails, and
// leaves no work dir behind.
func TestImportBombsInBoundedMemoryAndDisk(t *testing.T) {
	env := testenv.Build(t)
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "importcheck")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/importcheck").CombinedOutput(); err != nil {
		t.Fatalf("building importcheck: %v\n%s", err, out)
	}
	export, layer := busyboxExport(t, env)
	newlines := edit(t, export, func(es []exportfiletest.Entry) []exportfiletest.Entry {
		for i, e := range es {
			if e.Header.Name == exportfile.BuildLogName {
				es[i] = exportfiletest.Run(exportfile.BuildLogName, '\n', 128<<20)
			}
		}
		return es
	})
	const maxRSS = 100 << 20
	cases := []struct {
		name       string
		file       []byte
		wantErr    string
		maxWritten int64
	}{
		{"newline bomb", newlines, "", 0},
		{"blob bomb, descriptor first", blobBomb(t, export, layer, 1<<30, false),
			"web.BAAAAAAAAAA.tar: blob " + layer.String() + " is 1073741824 bytes in the archive, but manifest " + env.BusyboxDigest + " says", 4 << 20},
		{"blob bomb, blob first", blobBomb(t, export, layer, 1<<30, true),
			"web.BAAAAAAAAAA.tar: blob " + layer.String() + ": the file expands more than 100-fold when decompressed", 16<<20 + 4<<20},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(tmp, fmt.Sprint(i))
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, "export.tgz")
			if err := os.WriteFile(file, c.file, 0o644); err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(dir, "builds.db")
			repo := env.Registry + "/imported"
			cmd := exec.Command(bin, "-db", db, "-app", "bombed", "-repository", repo, "-file", file)
			cmd.Env = append(os.Environ(), "TMPDIR="+dir)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("importcheck: %v\n%s", err, stderr.String())
			}
			var res importcheckResult
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("importcheck printed %q: %v", out, err)
			}
			rss := res.PeakRSS
			t.Logf("file %d KiB: peak RSS %.1f MiB, wrote %.1f MiB during Import; error: %q",
				len(c.file)>>10, float64(rss)/(1<<20), float64(res.Written)/(1<<20), res.Error)
			if rss > maxRSS {
				t.Errorf("peak RSS %d MiB, want under %d MiB", rss>>20, maxRSS>>20)
			}
			left, _ := filepath.Glob(filepath.Join(dir, exportfile.WorkDirPrefix+"*"))
			if len(left) > 0 {
				t.Errorf("work dirs left behind: %v", left)
			}
			st, err := store.Open(context.Background(), db)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()

			if c.wantErr != "" {
				if !strings.Contains(res.Error, c.wantErr) {
					t.Errorf("error %q, want one containing %q", res.Error, c.wantErr)
				}
				if res.Written > c.maxWritten {
					t.Errorf("wrote %d bytes, want at most %d", res.Written, c.maxWritten)
				}
				if bs, err := st.ListBuilds(context.Background(), "", 0); err != nil || len(bs) != 0 {
					t.Errorf("a failed import recorded builds %+v (%v)", bs, err)
				}
				return
			}
			if res.Error != "" {
				t.Fatalf("import failed: %s", res.Error)
			}
			b, err := st.GetBuild(context.Background(), res.Build)
			if err != nil || b.Status != store.StatusComplete || b.Release != res.Release || len(b.Services) != 1 || b.Services[0].Digest != env.BusyboxDigest {
				t.Fatalf("imported build %+v (%v)", b, err)
			}
			n, last := 0, ""
			if _, err := build.ReadLogs(context.Background(), st, b.ID, 0, func(l store.LogLine) { n, last = n+1, l.Text }); err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("convox-build: this log was cut on import: %d of its %d lines kept", exportfile.MaxLogLines, 128<<20)
			if n != exportfile.MaxLogLines+1 || !strings.HasPrefix(last, want) {
				t.Errorf("%d log lines, last %q; want %d and %q...", n, last, exportfile.MaxLogLines+1, want)
			}
		})
	}
}

// TestImportConvoxExport imports the file Convox's BuildExport wrote
// (testdata/convox-export): a complete build and a release, the images
// pushed under the new build's tags and pullable by digest.
func TestImportConvoxExport(t *testing.T) {
	env := testenv.Build(t)
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "builds.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f, err := os.Open("../../testdata/convox-export/convox-export.tgz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var digests map[string]string
	if data, err := os.ReadFile("../../testdata/convox-export/convox-export.json"); err != nil || json.Unmarshal(data, &digests) != nil {
		t.Fatalf("digests: %v", err)
	}
	repo := env.Registry + "/shop"
	b, err := build.Import(ctx, st, f, "shop", repo, insecure, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.GetBuild(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.StatusComplete || got.ID == "BCONVOXEXPT" || got.App != "shop" || got.Release == "" ||
		got.Description != "Merge pull request #42 from shop/checkout" || !strings.Contains(got.Manifest, "image: redis:7") {
		t.Errorf("imported build %+v", got)
	}
	rel, err := st.GetRelease(ctx, got.Release)
	if err != nil || rel.Build != got.ID {
		t.Errorf("release %+v (%v)", rel, err)
	}
	if len(got.Services) != 2 || got.Services[0].Service != "web" || got.Services[1].Service != "redis" || !got.Services[1].ImageOnly {
		t.Fatalf("services %+v, want web then redis (image-only)", got.Services)
	}
	for _, s := range got.Services {
		if s.Image != repo+":"+s.Service+"."+got.ID || s.Digest != digests[s.Service] {
			t.Errorf("service %+v, want image %s:%s.%s digest %s", s, repo, s.Service, got.ID, digests[s.Service])
		}
		ref, err := name.ParseReference(repo+"@"+s.Digest, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(ref)
		if err != nil {
			t.Fatalf("pulling %s: %v", ref, err)
		}
		if d, err := img.Digest(); err != nil || d.String() != s.Digest {
			t.Errorf("%s: digest %v (%v)", ref, d, err)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("%s: %d layers (%v)", ref, len(layers), err)
		}
		rc, err := layers[0].Compressed() // checks the digest as it reads
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		buf := make([]byte, 32<<10)
		for err == nil {
			var k int
			k, err = rc.Read(buf)
			n += int64(k)
		}
		rc.Close()
		if err.Error() != "EOF" {
			t.Errorf("%s: reading its layer: %v", ref, err)
		}
	}
}

// TestImportRefusesIncompleteExports: an export whose build.json lists no
// services, or whose manifest is not YAML, records no build and no release,
// and leaves no work dir.
func TestImportRefusesIncompleteExports(t *testing.T) {
	env := testenv.Build(t)
	export, _ := busyboxExport(t, env)
	withJSON := func(fn func(string) string) []byte {
		return edit(t, export, func(es []exportfiletest.Entry) []exportfiletest.Entry {
			es[0].Data = []byte(fn(string(es[0].Data)))
			return es
		})
	}
	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"services: []", withJSON(func(s string) string {
			return s[:strings.Index(s, `  "services": [`)] + `  "services": []` + "\n}\n"
		}), "web.BAAAAAAAAAA.tar: not a service of build BAAAAAAAAAA in build.json"},
		{"manifest not YAML", withJSON(func(s string) string {
			return strings.Replace(s, `"manifest": "services:`, `"manifest": "\t\"not yaml: [\n`, 1)
		}), `build.json: its "manifest" is not a convox.yml: convox.yml:`},
		{"8 bytes, not gzip", []byte("12345678"), "not a gzip file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "builds.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			b, err := build.Import(context.Background(), st, bytes.NewReader(c.file), "app", env.Registry+"/refused", insecure, nil)
			if b != nil || err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Import = %v, %v; want an error containing %q", b, err, c.want)
			}
			bs, _ := st.ListBuilds(context.Background(), "", 0)
			rs, _ := st.ListReleases(context.Background(), "", 0)
			if len(bs)+len(rs) > 0 {
				t.Errorf("recorded builds %v and releases %v", bs, rs)
			}
			if left, _ := os.ReadDir(tmp); len(left) > 0 {
				t.Errorf("left %v in TMPDIR", left)
			}
		})
	}
}

// TestExportOfPartialBuildIsRefused: a build made for some services only
// (CLI --service) cannot be exported: Convox's import would release every
// service of convox.yml, the others without images. The error names the
// services built and those missing, and nothing is written.
func TestExportOfPartialBuildIsRefused(t *testing.T) {
	h := newHarness(t)
	req := h.request(t, "multi")
	req.Services = []string{"web", "cache"}
	b, err := h.engine.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err = build.Export(context.Background(), h.store, b, &buf, insecure)
	want := fmt.Sprintf("build %s cannot be exported: it was built for web, cache only, and its convox.yml also has worker, api, which a release of the export would need (Convox's import releases every service of convox.yml): build every service, then export that build", b.ID)
	var ie *build.InputError
	if err == nil || err.Error() != want || !errors.As(err, &ie) {
		t.Fatalf("err = %v\nwant %s (an InputError)", err, want)
	}
	if buf.Len() != 0 {
		t.Errorf("Export wrote %d bytes", buf.Len())
	}
}
