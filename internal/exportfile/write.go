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
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

// Annotations on the image descriptor in a service archive's index.json.
const (
	annotationRefName       = "org.opencontainers.image.ref.name" // the tag, e.g. "web.BABCDEFGHIJ"
	annotationContainerName = "io.containerd.image.name"          // the whole image reference
)

// maxManifestDepth bounds how deeply indexes may nest.
const maxManifestDepth = 8

// Write streams an export of b to w: build.json, build.log (logs, one line
// each), then for each service, in b.Services order, its image pulled from
// the registry by digest (the repository of the service's Image, "@", its
// Digest). Every manifest is fetched before anything is written, so a
// missing image fails before the first byte; a failure later (a blob gone
// or corrupt) leaves w holding an incomplete export, which Read refuses.
// w is only written to, never sought: a pipe or stdout works. Write does
// not close w.
//
// b needs a valid build ID, a manifest (convox.yml) whose services are
// exactly b's, and, for every service, a valid unique name and a sha256
// digest: Read refuses anything less. The build's status is not checked.
// Two services with the same image each get their own archive, as Convox
// does.
func Write(ctx context.Context, w io.Writer, b *store.Build, logs []string, reg Registry) error {
	if err := checkBuild(b); err != nil {
		return fmt.Errorf("exporting build %s: %w", b.ID, err)
	}
	m, err := parseManifest(b.Manifest)
	if err == nil {
		err = m.covers(b.Services)
	}
	if err != nil {
		return fmt.Errorf("exporting build %s: %w", b.ID, err)
	}
	buildJSON, err := encodeBuild(b)
	if err != nil {
		return err
	}
	nameOpts, remoteOpts, err := registry.Remote(reg)
	if err != nil {
		return fmt.Errorf("exporting build %s: %w", b.ID, err)
	}
	puller, err := remote.NewPuller(remoteOpts...)
	if err != nil {
		return fmt.Errorf("exporting build %s: %w", b.ID, err)
	}
	modTime := exportTime(b)
	var plans []*imagePlan
	for _, s := range b.Services {
		p, err := planImage(ctx, puller, b.ID, s, nameOpts, modTime)
		if err != nil {
			return fmt.Errorf("exporting build %s: service %s: %w", b.ID, s.Service, err)
		}
		plans = append(plans, p)
	}

	gz, err := gzip.NewWriterLevel(w, gzip.BestSpeed) // layers are compressed already
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	if err := writeFile(tw, BuildJSONName, buildJSON, modTime); err != nil {
		return fmt.Errorf("exporting build %s: writing %s: %w", b.ID, BuildJSONName, err)
	}
	var log bytes.Buffer
	for _, l := range logs {
		log.WriteString(l)
		log.WriteByte('\n')
	}
	if err := writeFile(tw, BuildLogName, log.Bytes(), modTime); err != nil {
		return fmt.Errorf("exporting build %s: writing %s: %w", b.ID, BuildLogName, err)
	}
	for _, p := range plans {
		if err := p.write(ctx, tw, puller); err != nil {
			return fmt.Errorf("exporting build %s: service %s: %w", b.ID, p.service, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("exporting build %s: %w", b.ID, err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("exporting build %s: %w", b.ID, err)
	}
	return nil
}

// exportTime is the modification time of every entry: when the build ended
// (or started), so that one build always exports to the same bytes.
func exportTime(b *store.Build) time.Time {
	t := b.Ended
	if t.IsZero() {
		t = b.Started
	}
	if t.Before(time.Unix(0, 0)) {
		t = time.Unix(0, 0)
	}
	return t.UTC().Truncate(time.Second)
}

func fileHeader(name string, size int64, modTime time.Time) *tar.Header {
	return &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Size:     size,
		Mode:     0o644,
		ModTime:  modTime,
	}
}

func writeFile(tw *tar.Writer, name string, data []byte, modTime time.Time) error {
	if err := tw.WriteHeader(fileHeader(name, int64(len(data)), modTime)); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// entry is one file of a service archive: data held in memory, or a blob
// streamed from the registry when data is nil.
type entry struct {
	name   string
	size   int64
	data   []byte
	digest v1.Hash
}

// imagePlan is a service archive, known in full (names and sizes) before
// its first byte is written, since a tar header carries the size.
type imagePlan struct {
	service string
	archive string // <service>.<BUILDID>.tar
	repo    name.Repository
	modTime time.Time
	entries []entry
	size    int64 // of the archive tar
	// while planning:
	seen   map[v1.Hash]bool
	docker []dockerManifest
	image  string
}

// dockerManifest is one entry of docker save's manifest.json.
type dockerManifest struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

type ociLayout struct {
	ImageLayoutVersion string `json:"imageLayoutVersion"`
}

func blobName(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

// planImage fetches the manifests of service s's image and lays out its
// archive.
func planImage(ctx context.Context, puller *remote.Puller, buildID string, s store.ServiceImage, nameOpts []name.Option, modTime time.Time) (*imagePlan, error) {
	ref, err := name.ParseReference(s.Image, nameOpts...)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", s.Image, err)
	}
	p := &imagePlan{
		service: s.Service,
		archive: ArchiveName(s.Service, buildID),
		repo:    ref.Context(),
		modTime: modTime,
		seen:    map[v1.Hash]bool{},
		image:   s.Image,
	}
	h, err := v1.NewHash(s.Digest)
	if err != nil {
		return nil, fmt.Errorf("digest %q: %w", s.Digest, err)
	}
	// The size and media type come from the registry; walk checks them.
	root, err := p.walk(ctx, puller, v1.Descriptor{Digest: h, Size: -1}, 0)
	if err != nil {
		return nil, err
	}

	// The tag part of the image reference names the image in index.json.
	annotations := map[string]string{annotationContainerName: s.Image}
	if tag, ok := ref.(name.Tag); ok {
		annotations[annotationRefName] = tag.TagStr()
	} else {
		annotations[annotationRefName] = s.Service + "." + buildID
	}
	root.Annotations = annotations
	index, err := json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests:     []v1.Descriptor{root},
	})
	if err != nil {
		return nil, err
	}
	layout, _ := json.Marshal(ociLayout{ImageLayoutVersion: "1.0.0"})
	if p.docker == nil {
		p.docker = []dockerManifest{}
	}
	docker, err := json.Marshal(p.docker)
	if err != nil {
		return nil, err
	}
	meta := []entry{
		{name: "oci-layout", data: layout},
		{name: "index.json", data: index},
		{name: "manifest.json", data: docker},
	}
	for i := range meta {
		meta[i].size = int64(len(meta[i].data))
	}
	p.entries = append(meta, p.entries...)

	// A tar is a header per file, the file padded to 512 bytes, and two
	// zero blocks.
	for _, e := range p.entries {
		hl, err := headerLength(fileHeader(e.name, e.size, modTime))
		if err != nil {
			return nil, err
		}
		p.size += hl + (e.size+511)/512*512
	}
	p.size += 1024
	return p, nil
}

// walk adds desc and everything it references to the plan, fetching
// manifests; desc.Size < 0 takes the size the registry reports. It returns
// desc completed with the media type and size.
func (p *imagePlan) walk(ctx context.Context, puller *remote.Puller, desc v1.Descriptor, depth int) (v1.Descriptor, error) {
	if depth > maxManifestDepth {
		return desc, fmt.Errorf("manifests nested more than %d deep", maxManifestDepth)
	}
	if desc.Size >= 0 && !desc.MediaType.IsIndex() && !desc.MediaType.IsImage() && !desc.MediaType.IsSchema1() {
		if !p.seen[desc.Digest] {
			p.seen[desc.Digest] = true
			p.entries = append(p.entries, entry{name: blobName(desc.Digest), size: desc.Size, digest: desc.Digest})
		}
		return desc, nil
	}
	ref := p.repo.Digest(desc.Digest.String())
	d, err := puller.Get(ctx, ref)
	if err != nil {
		return desc, fmt.Errorf("pulling %s: %w", ref, err)
	}
	if d.Digest != desc.Digest {
		return desc, fmt.Errorf("pulling %s: the registry sent manifest %s", ref, d.Digest)
	}
	if desc.Size >= 0 && desc.Size != int64(len(d.Manifest)) {
		return desc, fmt.Errorf("pulling %s: manifest is %d bytes, its descriptor says %d", ref, len(d.Manifest), desc.Size)
	}
	if desc.MediaType == "" {
		desc.MediaType = d.MediaType
	}
	desc.Size = int64(len(d.Manifest))
	if !p.seen[desc.Digest] {
		p.seen[desc.Digest] = true
		p.entries = append(p.entries, entry{name: blobName(desc.Digest), size: desc.Size, data: d.Manifest, digest: desc.Digest})
	}
	switch mt := d.MediaType; {
	case mt.IsIndex():
		im, err := v1.ParseIndexManifest(bytes.NewReader(d.Manifest))
		if err != nil {
			return desc, fmt.Errorf("parsing index %s: %w", ref, err)
		}
		for _, child := range im.Manifests {
			if _, err := p.walk(ctx, puller, child, depth+1); err != nil {
				return desc, err
			}
		}
	case mt.IsImage():
		m, err := v1.ParseManifest(bytes.NewReader(d.Manifest))
		if err != nil {
			return desc, fmt.Errorf("parsing manifest %s: %w", ref, err)
		}
		if _, err := p.walk(ctx, puller, m.Config, depth+1); err != nil {
			return desc, err
		}
		dm := dockerManifest{Config: blobName(m.Config.Digest), Layers: []string{}}
		if len(p.docker) == 0 {
			// docker load tags the first image only; the others of an
			// index load untagged.
			dm.RepoTags = []string{p.image}
		}
		for _, l := range m.Layers {
			if _, err := p.walk(ctx, puller, l, depth+1); err != nil {
				return desc, err
			}
			dm.Layers = append(dm.Layers, blobName(l.Digest))
		}
		p.docker = append(p.docker, dm)
	default:
		return desc, fmt.Errorf("pulling %s: unsupported manifest type %q", ref, mt)
	}
	return desc, nil
}

// headerLength is how many bytes tar.Writer writes for hdr.
func headerLength(hdr *tar.Header) (int64, error) {
	var c countingWriter
	if err := tar.NewWriter(&c).WriteHeader(hdr); err != nil {
		return 0, err
	}
	return c.n, nil
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// write writes the service archive as one entry of tw, streaming the blobs
// from the registry.
func (p *imagePlan) write(ctx context.Context, tw *tar.Writer, puller *remote.Puller) error {
	if err := tw.WriteHeader(fileHeader(p.archive, p.size, p.modTime)); err != nil {
		return fmt.Errorf("writing %s: %w", p.archive, err)
	}
	inner := tar.NewWriter(tw)
	for _, e := range p.entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := inner.WriteHeader(fileHeader(e.name, e.size, p.modTime)); err != nil {
			return fmt.Errorf("writing %s: %s: %w", p.archive, e.name, err)
		}
		if e.data != nil {
			if _, err := inner.Write(e.data); err != nil {
				return fmt.Errorf("writing %s: %s: %w", p.archive, e.name, err)
			}
			continue
		}
		if err := p.copyBlob(ctx, inner, puller, e); err != nil {
			return err
		}
	}
	if err := inner.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", p.archive, err)
	}
	return nil
}

// copyBlob copies blob e from the registry to w: exactly e.size bytes,
// whose digest the registry client checks at the end.
func (p *imagePlan) copyBlob(ctx context.Context, w io.Writer, puller *remote.Puller, e entry) error {
	ref := p.repo.Digest(e.digest.String())
	l, err := puller.Layer(ctx, ref)
	if err != nil {
		return fmt.Errorf("pulling blob %s: %w", ref, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("pulling blob %s: %w", ref, err)
	}
	defer rc.Close()
	n, err := io.CopyN(w, rc, e.size)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("pulling blob %s: got %d bytes, its descriptor says %d", ref, n, e.size)
		}
		return fmt.Errorf("pulling blob %s: %w", ref, err)
	}
	// Reading to the end makes the client check the digest.
	var one [1]byte
	m, err := io.ReadFull(rc, one[:])
	switch {
	case m > 0:
		return fmt.Errorf("pulling blob %s: longer than the %d bytes its descriptor says", ref, e.size)
	case !errors.Is(err, io.EOF):
		return fmt.Errorf("pulling blob %s: %w", ref, err)
	}
	return nil
}
