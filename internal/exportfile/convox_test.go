package exportfile

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/convox-build-action/convox-build-action/internal/store"
)

// convoxFixture is an export written as Convox's BuildExport writes one
// (skopeo oci-archives and all); testdata/convox-export/generate made it.
const convoxFixture = "../../testdata/convox-export/convox-export.tgz"

// convoxBuild has the fields and JSON names of Convox's structs.Build
// (pkg/structs/build.go).
type convoxBuild struct {
	Id          string `json:"id"`
	App         string `json:"app"`
	Description string `json:"description"`
	Entrypoint  string `json:"entrypoint"`
	GitSha      string `json:"git-sha"`
	Logs        string `json:"logs"`
	Manifest    string `json:"manifest"`
	Process     string `json:"process"`
	Release     string `json:"release"`
	Reason      string `json:"reason"`
	Repository  string `json:"repository"`
	Status      string `json:"status"`

	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended"`

	Tags map[string]string `json:"-"`
}

func convoxDigests(t testing.TB) map[string]string {
	t.Helper()
	data, err := os.ReadFile(strings.TrimSuffix(convoxFixture, ".tgz") + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]string
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestConvoxFixtureIsConvoxs checks that the fixture has the quirks of
// Convox's writer that Read must take: build.json with no "services",
// then a directory entry with an empty name, then the skopeo archives,
// each listing its blobs before index.json and naming no image.
func TestConvoxFixtureIsConvoxs(t *testing.T) {
	data, err := os.ReadFile(convoxFixture)
	if err != nil {
		t.Fatal(err)
	}
	es := untar(t, gunzip(t, data))
	var names []string
	for _, e := range es {
		names = append(names, string(e.hdr.Typeflag)+":"+e.hdr.Name)
	}
	if got, want := strings.Join(names, " "), "0:build.json 5: 0:redis.BCONVOXEXPT.tar 0:web.BCONVOXEXPT.tar"; got != want {
		t.Fatalf("entries %q, want %q", got, want)
	}
	if es[0].hdr.Mode != 0o600 || bytes.Contains(es[0].data, []byte(`"services"`)) || !bytes.Contains(es[0].data, []byte(`"logs": "object://shop/build/BCONVOXEXPT/logs"`)) {
		t.Errorf("build.json (mode %o):\n%s", es[0].hdr.Mode, es[0].data)
	}
	inner := untar(t, es[3].data)
	if inner[len(inner)-2].hdr.Name != "index.json" || !strings.HasPrefix(inner[2].hdr.Name, "blobs/sha256/") {
		t.Errorf("web archive: %v", inner)
	}
	for _, e := range inner {
		if e.hdr.Name == "index.json" && bytes.Contains(e.data, []byte("annotations")) {
			t.Errorf("index.json names its image: %s", e.data)
		}
	}
}

// TestReadConvoxExport imports the file Convox wrote: services from the
// archive names, in the manifest's order, each image the one its
// index.json lists, checked blob by blob; pushed, each is pullable by
// digest.
func TestReadConvoxExport(t *testing.T) {
	ctx := context.Background()
	data, err := os.ReadFile(convoxFixture)
	if err != nil {
		t.Fatal(err)
	}
	digests := convoxDigests(t)
	a, err := Read(ctx, bytes.NewReader(data), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := store.Build{
		ID:          "BCONVOXEXPT",
		App:         "shop",
		Description: "Merge pull request #42 from shop/checkout",
		GitSHA:      "5f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c",
		Manifest:    "services:\n  web:\n    build: .\n    port: 3000\n  redis:\n    image: redis:7\n",
		Release:     "RCONVOXEXPT",
		Status:      store.StatusComplete,
		Started:     time.Date(2025, 3, 4, 5, 6, 7, 891011121, time.UTC),
		Ended:       time.Date(2025, 3, 4, 5, 8, 9, 101112131, time.UTC),
		Services: []store.ServiceImage{
			{Service: "web", Digest: digests["web"]},
			{Service: "redis", Digest: digests["redis"], ImageOnly: true},
		},
	}
	if !equalJSON(t, a.Build, want) {
		t.Errorf("Build = %+v\nwant %+v", a.Build, want)
	}
	if logs := readLogs(t, a); logs != nil {
		t.Errorf("logs %q, want none (Convox keeps them in its object store)", logs)
	}

	repo := startRegistry(t) + "/shop2"
	images, err := a.Push(ctx, repo, newID, testReg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range images {
		if s.Image != repo+":"+s.Service+"."+newID || s.Digest != digests[s.Service] {
			t.Errorf("pushed %+v", s)
		}
		ref, err := name.ParseReference(repo+"@"+s.Digest, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(ref)
		if err != nil {
			t.Fatalf("pulling %s: %v", ref, err)
		}
		if d, _ := img.Digest(); d.String() != s.Digest {
			t.Errorf("%s: digest %s", ref, d)
		}
		if err := readImage(img); err != nil {
			t.Errorf("%s: %v", ref, err)
		}
	}
}

// TestReadConvoxExportRefuses: what a Convox file cannot lack.
func TestReadConvoxExportRefuses(t *testing.T) {
	data, err := os.ReadFile(convoxFixture)
	if err != nil {
		t.Fatal(err)
	}
	without := func(name string) []byte {
		return rewrite(t, data, func(es []tarEntry) []tarEntry {
			var out []tarEntry
			for _, e := range es {
				if e.hdr.Name != name {
					out = append(out, e)
				}
			}
			return out
		})
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"a service's archive missing", without("redis.BCONVOXEXPT.tar"), "build.json: service redis of the manifest has no image in the export"},
		{"a blob missing", rewriteArchive(t, data, "web.BCONVOXEXPT.tar", func(es []tarEntry) []tarEntry {
			return append(es[:2], es[3:]...) // the first blob
		}), "web.BCONVOXEXPT.tar: blob sha256:"},
		{"two images in index.json", rewriteArchive(t, data, "web.BCONVOXEXPT.tar", func(es []tarEntry) []tarEntry {
			for i, e := range es {
				if e.hdr.Name == "index.json" {
					var idx v1.IndexManifest
					json.Unmarshal(e.data, &idx)
					idx.Manifests = append(idx.Manifests, idx.Manifests[0])
					es[i].data, _ = json.Marshal(idx)
				}
			}
			return es
		}), "web.BCONVOXEXPT.tar: index.json lists 2 images; a service archive holds one"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read(context.Background(), bytes.NewReader(c.data), filepath.Join(t.TempDir(), "x"))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
		})
	}
}

// convoxImport does with an export what Convox's BuildImport
// (provider/k8s/build.go) does before it pushes: it reads the gzipped tar,
// skips every entry that is not a regular file, extracts each *.tar entry
// (refusing names that leave tmp, as common.SafeExtractPath does) and
// takes its service from the text before the name's first dot, unmarshals
// build.json into Convox's Build, and ignores everything else.
func convoxImport(file []byte, tmp string) (source convoxBuild, imgBySvc map[string]string, err error) {
	imgBySvc = map[string]string{}
	gz, err := gzip.NewReader(bytes.NewReader(file))
	if err != nil {
		return source, nil, err
	}
	tr := tar.NewReader(gz)
	for {
		header, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return source, nil, err
		}
		if header.Typeflag != tar.TypeReg {
			continue
		}
		if strings.HasSuffix(header.Name, ".tar") {
			path := filepath.Join(tmp, header.Name)
			if rel, err := filepath.Rel(tmp, path); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
				return source, nil, errors.New("illegal file path in archive: " + header.Name)
			}
			f, err := os.Create(path)
			if err != nil {
				return source, nil, err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return source, nil, err
			}
			imgBySvc[strings.Split(header.Name, ".")[0]] = f.Name()
		}
		if header.Name == "build.json" {
			data, err := io.ReadAll(tr)
			if err != nil {
				return source, nil, err
			}
			if err := json.Unmarshal(data, &source); err != nil {
				return source, nil, err
			}
		}
	}
	return source, imgBySvc, nil
}

// ociArchiveImage opens an oci-archive as `skopeo copy oci-archive:FILE`
// does when given no image name: it extracts the tar, needs an oci-layout
// file and an index.json listing exactly one manifest, and returns that
// manifest's image or index.
func ociArchiveImage(t *testing.T, file string) (remote.Taggable, v1.Hash) {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var l ociLayout
	if data, err := os.ReadFile(filepath.Join(dir, "oci-layout")); err != nil || json.Unmarshal(data, &l) != nil || l.ImageLayoutVersion != "1.0.0" {
		t.Fatalf("%s: oci-layout: %v", file, err)
	}
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	ii, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("%s: index.json lists %d manifests; skopeo needs one when no image is named", file, len(im.Manifests))
	}
	d := im.Manifests[0]
	if d.MediaType.IsIndex() {
		idx, err := ii.ImageIndex(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if err := readIndex(idx); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		return idx, d.Digest
	}
	img, err := ii.Image(d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := readImage(img); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return img, d.Digest
}

// TestConvoxImportsOurExport runs our export through Convox's import walk:
// it finds build.json with Convox's fields (logs in Convox's form) and one
// archive per service of the manifest, each an oci-archive skopeo can copy
// holding the image build.json records; build.log is an entry Convox
// skips. Pushing each archive's image as Convox's import would gives the
// same digest.
func TestConvoxImportsOurExport(t *testing.T) {
	f := newFixture(t)
	export := f.export(t)
	for _, e := range untar(t, gunzip(t, export)) {
		if e.hdr.Typeflag != tar.TypeReg {
			t.Errorf("%s: type %q; Convox's import would skip it", e.hdr.Name, e.hdr.Typeflag)
		}
		if !strings.HasSuffix(e.hdr.Name, ".tar") && e.hdr.Name != "build.json" && e.hdr.Name != BuildLogName {
			t.Errorf("unexpected entry %s", e.hdr.Name)
		}
	}

	source, imgBySvc, err := convoxImport(export, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := f.build
	want := convoxBuild{
		Id: b.ID, App: b.App, Description: b.Description, Entrypoint: b.Entrypoint, GitSha: b.GitSHA,
		Logs:     "object://app/build/BAAAAAAAAAA/logs",
		Manifest: b.Manifest, Process: b.Process, Release: b.Release, Reason: b.Reason, Repository: b.Repository,
		Status: string(b.Status), Started: b.Started, Ended: b.Ended,
	}
	if !equalJSON(t, source, want) {
		t.Errorf("Convox reads build.json as %+v\nwant %+v", source, want)
	}

	var services []string
	for svc := range imgBySvc {
		services = append(services, svc)
	}
	sort.Strings(services)
	if got := strings.Join(services, " "); got != "api redis web worker" {
		t.Errorf("Convox finds services %q, want the manifest's: api redis web worker", got)
	}
	dest := startRegistry(t) + "/app3"
	for _, s := range b.Services {
		file, ok := imgBySvc[s.Service]
		if !ok {
			continue
		}
		tg, digest := ociArchiveImage(t, file)
		if digest.String() != s.Digest {
			t.Errorf("%s: the archive's image is %s, build.json records %s", s.Service, digest, s.Digest)
		}
		ref, err := name.ParseReference(dest+":"+s.Service+".BCONVOXNEWB", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Push(ref, tg); err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if d, err := remote.Head(ref); err != nil || d.Digest.String() != s.Digest {
			t.Errorf("%s: %v, %v; want digest %s", ref, d, err, s.Digest)
		}
	}
}
