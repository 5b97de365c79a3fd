// Command generate writes convox-export.tgz, a build export made the way
// Convox v3 makes one (provider/k8s/build.go, BuildExport), and
// convox-export.json, the digests of the images it holds.
//
// It pushes two small images to an in-process registry as Convox's build
// would tag them (<repository>:<service>.<BUILDID>), then does what
// BuildExport does: build.json (Convox's Build, indented, mode 0600) into a
// gzipped tar; `skopeo copy --src-creds USER:PASS docker://... oci-archive:`
// for each service of the manifest into a temp dir made with
// os.MkdirTemp(os.TempDir(), ""); then a filepath.Walk of that dir writing
// tar.FileInfoHeader headers whose names drop the first three parts of the
// path ("/tmp/NNN/web.B....tar" -> "web.B....tar"), which makes the walk's
// first entry, the temp dir itself, a directory with an empty name.
//
// The one difference: skopeo is given --src-tls-verify=false, since the
// registry here speaks plain HTTP.
//
// Run from the repository root, with skopeo installed (Debian's skopeo):
//
//	TMPDIR=/tmp go run ./testdata/convox-export/generate
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/convox-build-action/convox-build-action/internal/devenv"
)

// convoxBuild has the fields and JSON names of Convox's structs.Build.
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

const (
	app     = "shop"
	buildID = "BCONVOXEXPT"
	out     = "testdata/convox-export"
)

const manifest = `services:
  web:
    build: .
    port: 3000
  redis:
    image: redis:7
`

func main() {
	if os.TempDir() != "/tmp" {
		log.Fatal("run with TMPDIR=/tmp: Convox's walk drops exactly three path parts")
	}
	ctx := context.Background()
	reg, err := devenv.StartRegistry(ctx, devenv.RegistryOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()
	repo := reg.Addr + "/" + app

	images := map[string]v1.Image{
		"web":   image(map[string]string{"srv/index.html": "<h1>shop</h1>\n", "srv/VERSION": "1.0.0\n"}, []string{"/bin/httpd", "-f", "-h", "/srv"}),
		"redis": image(map[string]string{"usr/local/bin/redis-server": "#!/bin/sh\necho redis\n"}, []string{"redis-server"}),
	}
	for svc, img := range images {
		ref, err := name.ParseReference(fmt.Sprintf("%s:%s.%s", repo, svc, buildID), name.Insecure)
		if err != nil {
			log.Fatal(err)
		}
		if err := remote.Write(ref, img); err != nil {
			log.Fatal(err)
		}
	}

	build := convoxBuild{
		Id:          buildID,
		App:         app,
		Description: "Merge pull request #42 from shop/checkout",
		GitSha:      "5f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c",
		Logs:        fmt.Sprintf("object://%s/build/%s/logs", app, buildID),
		Manifest:    manifest,
		Release:     "RCONVOXEXPT",
		Status:      "complete",
		Started:     time.Date(2025, 3, 4, 5, 6, 7, 891011121, time.UTC),
		Ended:       time.Date(2025, 3, 4, 5, 8, 9, 101112131, time.UTC),
		Tags:        map[string]string{},
	}
	var file bytes.Buffer
	if err := export(&file, build, []string{"web", "redis"}, repo, "convox", "secret"); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "convox-export.tgz"), file.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	digests, err := archiveDigests(file.Bytes())
	if err != nil {
		log.Fatal(err)
	}
	j, _ := json.MarshalIndent(digests, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "convox-export.json"), append(j, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d bytes, %s\n", filepath.Join(out, "convox-export.tgz"), file.Len(), j)
}

// image is a one-layer image in Docker's media types (what Convox's
// BuildKit pushes) with fixed times, so its digest is stable.
func image(files map[string]string, entrypoint []string) v1.Image {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for _, n := range sortedKeys(files) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o755, Size: int64(len(files[n])), ModTime: time.Unix(1700000000, 0)})
		tw.Write([]byte(files[n]))
	}
	tw.Close()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layer.Bytes())), nil })
	if err != nil {
		log.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		log.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.OS = "amd64", "linux"
	cfg.Config.Entrypoint = entrypoint
	cfg.Created = v1.Time{Time: time.Unix(1700000000, 0).UTC()}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		log.Fatal(err)
	}
	return img
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

// export does what Convox's BuildExport does once it has the build and the
// services of its manifest.
func export(w io.Writer, build convoxBuild, services []string, repo, user, pass string) error {
	bjson, err := json.MarshalIndent(build, "", "  ")
	if err != nil {
		return err
	}
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "build.json", Mode: 0600, Size: int64(len(bjson))}); err != nil {
		return err
	}
	if _, err := tw.Write(bjson); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(os.TempDir(), "")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // Convox's os.Remove leaves the archives behind
	for _, service := range services {
		from := fmt.Sprintf("docker://%s:%s.%s", repo, service, build.Id)
		to := fmt.Sprintf("oci-archive:%s/%s.%s.tar", tmp, service, build.Id)
		cmd := exec.Command("skopeo", "copy", "--src-tls-verify=false", "--src-creds", user+":"+pass, from, to)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("skopeo copy %s: %v\n%s", from, err, out)
		}
	}
	err = filepath.Walk(tmp, func(file string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		header, err := tar.FileInfoHeader(fi, file)
		if err != nil {
			return err
		}
		header.Name = strings.Join(strings.Split(file, "/")[3:], "/")
		if err := tw.WriteHeader(header); err != nil {
			return err
		}
		if !fi.IsDir() {
			data, err := os.Open(file)
			if err != nil {
				return err
			}
			defer data.Close()
			if _, err := io.Copy(tw, data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// archiveDigests returns, per service, the digest of the one image each
// service archive's index.json lists.
func archiveDigests(file []byte) (map[string]string, error) {
	zr, err := gzip.NewReader(bytes.NewReader(file))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg || !strings.HasSuffix(h.Name, ".tar") {
			continue
		}
		inner := tar.NewReader(tr)
		for {
			ih, err := inner.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
			if ih.Name != "index.json" {
				continue
			}
			var idx v1.IndexManifest
			if err := json.NewDecoder(inner).Decode(&idx); err != nil {
				return nil, err
			}
			if len(idx.Manifests) != 1 {
				return nil, fmt.Errorf("%s: %d manifests", h.Name, len(idx.Manifests))
			}
			out[strings.Split(h.Name, ".")[0]] = idx.Manifests[0].Digest.String()
		}
	}
}
