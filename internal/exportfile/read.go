package exportfile

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/convox-build-action/convox-build-action/internal/store"
)

// Archive is an export Read has checked and extracted.
type Archive struct {
	// Build is the build as exported: its ID and its Services' Image
	// references are those of the exporting side. For a file Convox
	// wrote, the Services come from its archives, in the order of the
	// manifest's services, with Image "<repository>:<service>.<ID>" when
	// build.json names a repository (else empty) and ImageOnly set for the
	// manifest's image: services.
	Build store.Build
	// Dir holds one OCI image layout per service, Dir/<service>.<BUILDID>,
	// each checked: every blob's digest, and every blob the service's image
	// references present with the size its descriptor gives; and the
	// build's log, as ReadLogs gives it.
	Dir string

	log *logSpool // nil when the export has no build.log
}

// Layout returns the directory of service's OCI image layout.
func (a *Archive) Layout(service string) string {
	return filepath.Join(a.Dir, strings.TrimSuffix(ArchiveName(service, a.Build.ID), ".tar"))
}

// ErrTruncated is wrapped by Read's error when the export ends early.
var ErrTruncated = errors.New("unexpected EOF: the file is truncated")

// Read reads an export from r (a pipe or stdin works: Read never seeks) and
// extracts the services' images into dir, checking everything: entry names
// and types, sizes against the limits above, every blob's sha256 against its
// name and its size against its descriptor (before writing it when the
// descriptor came first), the gzip checksum, that the file does not expand
// more than MaxExpansion times, that build.json's manifest is a convox.yml
// whose services are exactly the export's, and that every service has its
// archive, whose index.json holds the image build.json records (or, in a
// file Convox wrote, one image), with every blob that image references.
// Entries may come in any order. build.log is kept on disk, cut to
// MaxLogLines lines and MaxLogBytes bytes; memory use does not grow with
// the file.
//
// dir must be empty or not exist; Read creates it. When Read fails it
// returns no Archive and removes everything it wrote, dir included when Read
// created it. Errors name the entry that was wrong, such as
// `web.BABCDEFGHIJ.tar: blob sha256:... does not match its digest`; callers
// add the file name. A truncated file gives an error wrapping ErrTruncated.
func Read(ctx context.Context, r io.Reader, dir string) (*Archive, error) {
	created, err := prepareDir(dir)
	if err != nil {
		return nil, err
	}
	a, err := read(ctx, r, dir)
	if err != nil {
		cleanDir(dir, created)
		return nil, err
	}
	return a, nil
}

// prepareDir makes sure dir exists and is empty, reporting whether it
// created it.
func prepareDir(dir string) (created bool, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return false, fmt.Errorf("creating %s: %w", dir, err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("reading %s: %w", dir, err)
	case len(entries) > 0:
		return false, fmt.Errorf("extracting into %s: the directory is not empty", dir)
	}
	return false, nil
}

func cleanDir(dir string, created bool) {
	if created {
		os.RemoveAll(dir)
		return
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// expansionGuard fails when, within a window of expansionWindow
// decompressed bytes, more than expansionSlack came out of the
// decompressor and they are more than MaxExpansion times what went in: so
// Read never writes more than MaxExpansion times the file's size plus
// expansionWindow, wherever in the file a bomb sits. Bytes read while the
// guard is paused (build.log, which Read cuts to MaxLogBytes whatever its
// size) do not count.
type expansionGuard struct {
	r       io.Reader
	in      *countingReader
	in0     int64 // in.n when the window started
	out     int64 // bytes out in the window
	paused  bool
	pauseIn int64 // in.n when paused
}

const expansionWindow = 64 << 20

func (g *expansionGuard) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if g.paused {
		return n, err
	}
	g.out += int64(n)
	in := g.in.n - g.in0
	if g.out > expansionSlack && g.out > MaxExpansion*in {
		return 0, fmt.Errorf("the file expands more than %d-fold when decompressed (%d MiB from %d KiB): a decompression bomb, not a build export; refusing it",
			MaxExpansion, g.out>>20, in>>10)
	}
	if g.out >= expansionWindow {
		g.in0, g.out = g.in.n, 0
	}
	return n, err
}

// pause stops counting until resume.
func (g *expansionGuard) pause() {
	g.paused, g.pauseIn = true, g.in.n
}

func (g *expansionGuard) resume() {
	g.paused = false
	g.in0 += g.in.n - g.pauseIn
}

// readError explains an error from the gzip or tar reader.
func readError(err error) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return ErrTruncated
	case errors.Is(err, gzip.ErrChecksum):
		return errors.New("gzip checksum mismatch: the file is corrupt")
	case errors.Is(err, gzip.ErrHeader):
		return errors.New("bad gzip data after the start: the file is corrupt")
	case errors.Is(err, tar.ErrHeader):
		return errors.New("invalid tar header: the file is corrupt")
	}
	return err
}

// errNotGzip is Read's error for a file that does not start as gzip does.
var errNotGzip = errors.New("not a gzip file (an export is a gzipped tar, as builds export writes)")

// reader holds what Read has seen so far.
type reader struct {
	dir      string
	total    int64 // bytes of entries so far, nested ones included
	build    *store.Build
	listed   bool // build.json lists the services (ours; Convox's does not)
	log      *logSpool
	archives map[string]*imageDir // by archive name
	seen     map[string]bool
	guard    *expansionGuard
}

func read(ctx context.Context, r io.Reader, dir string) (*Archive, error) {
	in := &countingReader{r: ctxReader{ctx, r}}
	br := bufio.NewReader(in)
	// gzip's magic number first: a short file that is not gzip is "not
	// gzip", not "truncated".
	magic, err := br.Peek(2)
	switch {
	case len(magic) == 0 && errors.Is(err, io.EOF):
		return nil, errors.New("the file is empty (an export is a gzipped tar)")
	case len(magic) > 0 && magic[0] != 0x1f, len(magic) > 1 && magic[1] != 0x8b:
		return nil, errNotGzip
	case err != nil && !errors.Is(err, io.EOF):
		return nil, err
	}
	gz, err := gzip.NewReader(br)
	switch {
	case errors.Is(err, gzip.ErrHeader):
		return nil, errNotGzip
	case errors.Is(err, io.EOF):
		return nil, ErrTruncated
	case err != nil:
		return nil, readError(err)
	}
	guarded := &expansionGuard{r: gz, in: in}
	rd := &reader{dir: dir, archives: map[string]*imageDir{}, seen: map[string]bool{}, guard: guarded}
	tr := tar.NewReader(guarded)
	for n := 1; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, readError(err)
		}
		if n > MaxEntries {
			return nil, fmt.Errorf("more than %d entries", MaxEntries)
		}
		if err := rd.entry(ctx, hdr, tr); err != nil {
			return nil, err
		}
	}
	// What follows the tar is padding; reading to the end checks the gzip
	// checksum.
	if n, err := io.Copy(io.Discard, io.LimitReader(guarded, 1<<20)); err != nil {
		return nil, readError(err)
	} else if n == 1<<20 {
		return nil, errors.New("more than 1 MiB of data after the end of the tar")
	}
	return rd.finish()
}

// entryName checks a name and returns it cleaned.
func entryName(name string) (string, error) {
	if len(name) > MaxNameLength {
		return "", fmt.Errorf("entry name longer than %d bytes: %.40q...", MaxNameLength, name)
	}
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, `\`) || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("invalid entry name %q", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("entry name %q points outside the export", name)
		}
	}
	clean := path.Clean(name)
	return clean, nil
}

func (rd *reader) addSize(name string, size int64) error {
	if size < 0 || size > MaxTotalSize-rd.total {
		return fmt.Errorf("%s: %d bytes would take the export past %d GiB", name, size, MaxTotalSize>>30)
	}
	rd.total += size
	return nil
}

var archivePattern = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9_-]{0,62})\.(B[A-Z]{10})\.tar$`)

func (rd *reader) entry(ctx context.Context, hdr *tar.Header, tr io.Reader) error {
	// Convox's export starts with a directory entry with an empty name
	// (its walk of the temp dir it wrote the archives in).
	if hdr.Typeflag == tar.TypeDir && (hdr.Name == "" || hdr.Name == "./") {
		return nil
	}
	name, err := entryName(hdr.Name)
	if err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeDir && name == "." {
		return nil
	}
	if hdr.Typeflag != tar.TypeReg {
		return fmt.Errorf("%s: not a regular file (tar type %q)", name, hdr.Typeflag)
	}
	if err := rd.addSize(name, hdr.Size); err != nil {
		return err
	}
	if rd.seen[name] {
		return fmt.Errorf("%s: the export holds it twice", name)
	}
	rd.seen[name] = true
	switch {
	case name == BuildJSONName:
		data, err := readAll(tr, hdr.Size, maxJSONSize, name)
		if err != nil {
			return err
		}
		rd.build, rd.listed, err = decodeBuild(data)
		return err
	case name == BuildLogName:
		if hdr.Size > maxLogSize {
			return fmt.Errorf("%s: %d bytes is more than the %d allowed", name, hdr.Size, maxLogSize)
		}
		rd.guard.pause()
		rd.log, err = spoolLog(filepath.Join(rd.dir, BuildLogName), tr, hdr.Size)
		rd.guard.resume()
		return err
	case archivePattern.MatchString(name):
		img, err := rd.extractImage(ctx, name, tr)
		if err != nil {
			return err
		}
		rd.archives[name] = img
		return nil
	}
	return fmt.Errorf("unexpected entry %q (an export holds %s, %s and <service>.<BUILDID>.tar files)", name, BuildJSONName, BuildLogName)
}

// readAll reads an entry of size bytes, refusing more than max.
func readAll(r io.Reader, size, max int64, name string) ([]byte, error) {
	if size > max {
		return nil, fmt.Errorf("%s: %d bytes is more than the %d allowed", name, size, max)
	}
	// Not make([]byte, size): a header may claim what the file lacks.
	data, err := io.ReadAll(io.LimitReader(r, size))
	if err == nil && int64(len(data)) < size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, readError(err))
	}
	return data, nil
}

// imageDir is a service archive extracted as an OCI image layout.
type imageDir struct {
	archive string
	dir     string
	index   v1.IndexManifest
	blobs   map[string]int64    // hex -> size, of the blobs extracted
	want    map[string]expected // hex -> what a descriptor seen so far says
}

// expected is what a descriptor says of a blob.
type expected struct {
	desc  v1.Descriptor
	from  string // "index.json" or "manifest sha256:..."
	depth int
}

var blobPattern = regexp.MustCompile(`^blobs/sha256/([0-9a-f]{64})$`)

// extractImage extracts the service archive called archive from r into a
// directory named after it, checking every blob's digest, and its size
// against its descriptor as soon as both are known: a blob whose
// descriptor came first is refused at its header.
func (rd *reader) extractImage(ctx context.Context, archive string, r io.Reader) (*imageDir, error) {
	img := &imageDir{
		archive: archive,
		dir:     filepath.Join(rd.dir, strings.TrimSuffix(archive, ".tar")),
		blobs:   map[string]int64{},
		want:    map[string]expected{},
	}
	if err := os.MkdirAll(filepath.Join(img.dir, "blobs", "sha256"), 0o755); err != nil {
		return nil, err
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf(archive+": "+format, args...)
	}
	tr := tar.NewReader(r)
	seen := map[string]bool{}
	for n := 1; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fail("%w", readError(err))
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if n > MaxImageEntries {
			return nil, fail("more than %d entries", MaxImageEntries)
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return nil, fail("%w", err)
		}
		if hdr.Typeflag == tar.TypeDir {
			switch name {
			case ".", "blobs", "blobs/sha256":
				continue
			}
			return nil, fail("unexpected directory %q", name)
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, fail("%s: not a regular file (tar type %q)", name, hdr.Typeflag)
		}
		if err := rd.addSize(archive+": "+name, hdr.Size); err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, fail("%s: the archive holds it twice", name)
		}
		seen[name] = true
		switch name {
		case "oci-layout", "index.json", "manifest.json", "repositories":
			data, err := readAll(tr, hdr.Size, maxJSONSize, archive+": "+name)
			if err != nil {
				return nil, err
			}
			if !json.Valid(data) {
				return nil, fail("%s: not valid JSON", name)
			}
			if name == "index.json" {
				if err := json.Unmarshal(data, &img.index); err != nil {
					return nil, fail("%s: %w", name, err)
				}
				for _, d := range img.index.Manifests {
					if err := img.expect(d, "index.json", 0); err != nil {
						return nil, err
					}
				}
			}
			if name == "oci-layout" {
				var l ociLayout
				if err := json.Unmarshal(data, &l); err != nil || l.ImageLayoutVersion == "" {
					return nil, fail("%s: not an OCI layout file", name)
				}
			}
			if err := os.WriteFile(filepath.Join(img.dir, name), data, 0o644); err != nil {
				return nil, err
			}
			continue
		}
		m := blobPattern.FindStringSubmatch(name)
		if m == nil {
			return nil, fail("unexpected entry %q (an OCI image layout holds oci-layout, index.json and blobs/sha256/<digest>)", name)
		}
		w, known := img.want[m[1]]
		if known && hdr.Size != w.desc.Size {
			return nil, fail("blob sha256:%s is %d bytes in the archive, but %s says %d: refusing it before extracting it", m[1], hdr.Size, w.from, w.desc.Size)
		}
		if err := writeBlob(filepath.Join(img.dir, filepath.FromSlash(name)), m[1], tr, hdr.Size); err != nil {
			return nil, fail("%w", err)
		}
		img.blobs[m[1]] = hdr.Size
		if known {
			if err := img.expectChildren(w); err != nil {
				return nil, err
			}
		}
	}
	if !seen["oci-layout"] {
		return nil, fail("no oci-layout file: not an OCI image layout")
	}
	if !seen["index.json"] {
		return nil, fail("no index.json: not an OCI image layout")
	}
	return img, nil
}

// expect records what descriptor d, found in from, says of its blob, and
// checks it against the blob if that is extracted already.
func (img *imageDir) expect(d v1.Descriptor, from string, depth int) error {
	if depth > maxManifestDepth {
		return fmt.Errorf("%s: manifests nested more than %d deep", img.archive, maxManifestDepth)
	}
	if d.Digest.Algorithm != "sha256" || !digestPattern.MatchString(d.Digest.String()) {
		return fmt.Errorf("%s: %s: blob %q: only sha256 digests are supported", img.archive, from, d.Digest)
	}
	if d.Size < 0 {
		return fmt.Errorf("%s: %s: blob %s: negative size %d", img.archive, from, d.Digest, d.Size)
	}
	if w, ok := img.want[d.Digest.Hex]; ok {
		if w.desc.Size != d.Size {
			return fmt.Errorf("%s: blob %s: %s says %d bytes, %s says %d", img.archive, d.Digest, w.from, w.desc.Size, from, d.Size)
		}
		return nil
	}
	w := expected{desc: d, from: from, depth: depth}
	img.want[d.Digest.Hex] = w
	size, ok := img.blobs[d.Digest.Hex]
	if !ok {
		return nil
	}
	if size != d.Size {
		return fmt.Errorf("%s: blob %s is %d bytes, %s says %d", img.archive, d.Digest, size, from, d.Size)
	}
	return img.expectChildren(w)
}

// expectChildren records the descriptors in the extracted manifest or
// index w describes.
func (img *imageDir) expectChildren(w expected) error {
	d := w.desc
	if !d.MediaType.IsImage() && !d.MediaType.IsIndex() {
		return nil
	}
	if d.Size > maxJSONSize {
		return fmt.Errorf("%s: manifest %s: %d bytes is more than the %d allowed", img.archive, d.Digest, d.Size, maxJSONSize)
	}
	data, err := os.ReadFile(filepath.Join(img.dir, "blobs", "sha256", d.Digest.Hex))
	if err != nil {
		return err
	}
	from := "manifest " + d.Digest.String()
	if d.MediaType.IsIndex() {
		im, err := v1.ParseIndexManifest(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("%s: index %s: %w", img.archive, d.Digest, err)
		}
		for _, c := range im.Manifests {
			if err := img.expect(c, from, w.depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	m, err := v1.ParseManifest(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%s: manifest %s: %w", img.archive, d.Digest, err)
	}
	if err := img.expect(m.Config, from, w.depth+1); err != nil {
		return err
	}
	for _, l := range m.Layers {
		if err := img.expect(l, from, w.depth+1); err != nil {
			return err
		}
	}
	return nil
}

// writeBlob copies the blob with digest sha256:hexDigest, size bytes, from r
// to file, checking the digest.
func writeBlob(file, hexDigest string, r io.Reader, size int64) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.CopyN(io.MultiWriter(f, h), r, size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("blob sha256:%s: %w", hexDigest, readError(err))
	}
	if hex.EncodeToString(h.Sum(nil)) != hexDigest {
		return fmt.Errorf("blob sha256:%s does not match its digest", hexDigest)
	}
	return nil
}

// finish checks that the export is whole: build.json, and for each service
// its archive with its image complete; that the services are those of the
// manifest; and nothing else.
func (rd *reader) finish() (*Archive, error) {
	if rd.build == nil {
		return nil, fmt.Errorf("no %s: not a build export", BuildJSONName)
	}
	b := rd.build
	names := make([]string, 0, len(rd.archives))
	for archive := range rd.archives {
		names = append(names, archive)
	}
	sort.Strings(names)
	for _, archive := range names {
		if id := archivePattern.FindStringSubmatch(archive)[2]; id != b.ID {
			return nil, fmt.Errorf("%s: an archive of build %s, but %s is of build %s", archive, id, BuildJSONName, b.ID)
		}
	}
	m, err := parseManifest(b.Manifest)
	if err != nil {
		return nil, err
	}
	if !rd.listed {
		// Convox's file: a service per archive, its image the one its
		// index.json lists.
		for _, archive := range names {
			service := archivePattern.FindStringSubmatch(archive)[1]
			img := rd.archives[archive]
			if n := len(img.index.Manifests); n != 1 {
				return nil, fmt.Errorf("%s: index.json lists %d images; a service archive holds one", archive, n)
			}
			s := store.ServiceImage{Service: service, Digest: img.index.Manifests[0].Digest.String(), ImageOnly: m.imageOnly[service]}
			if b.Repository != "" {
				s.Image = b.Repository + ":" + service + "." + b.ID
			}
			b.Services = append(b.Services, s)
		}
		m.sort(b.Services)
	}
	want := map[string]bool{}
	for _, s := range b.Services {
		want[ArchiveName(s.Service, b.ID)] = true
	}
	var extra []string
	for _, archive := range names {
		if !want[archive] {
			extra = append(extra, archive)
		}
	}
	if len(extra) > 0 {
		return nil, fmt.Errorf("%s: not a service of build %s in %s", strings.Join(extra, ", "), b.ID, BuildJSONName)
	}
	if len(b.Services) == 0 {
		return nil, fmt.Errorf("no service images: %s lists no services and the export holds no <service>.%s.tar archive; nothing to import", BuildJSONName, b.ID)
	}
	for _, s := range b.Services {
		archive := ArchiveName(s.Service, b.ID)
		img := rd.archives[archive]
		if img == nil {
			return nil, fmt.Errorf("%s missing: %s lists service %s", archive, BuildJSONName, s.Service)
		}
		if err := img.check(archive, s.Digest); err != nil {
			return nil, err
		}
	}
	if err := m.covers(b.Services); err != nil {
		return nil, err
	}
	return &Archive{Build: *b, Dir: rd.dir, log: rd.log}, nil
}

// check verifies that index.json lists digest and that every blob it
// references is present with the size its descriptor gives.
func (img *imageDir) check(archive, digest string) error {
	var root *v1.Descriptor
	for i, d := range img.index.Manifests {
		if d.Digest.String() == digest {
			root = &img.index.Manifests[i]
			break
		}
	}
	if root == nil {
		return fmt.Errorf("%s: index.json does not list the image %s that %s records", archive, digest, BuildJSONName)
	}
	if !root.MediaType.IsImage() && !root.MediaType.IsIndex() {
		return fmt.Errorf("%s: image %s has media type %q, not an image manifest or index", archive, digest, root.MediaType)
	}
	return img.walk(archive, *root, 0)
}

func (img *imageDir) walk(archive string, d v1.Descriptor, depth int) error {
	if depth > maxManifestDepth {
		return fmt.Errorf("%s: manifests nested more than %d deep", archive, maxManifestDepth)
	}
	if d.Digest.Algorithm != "sha256" {
		return fmt.Errorf("%s: blob %s: only sha256 digests are supported", archive, d.Digest)
	}
	size, ok := img.blobs[d.Digest.Hex]
	if !ok {
		return fmt.Errorf("%s: blob %s missing", archive, d.Digest)
	}
	if size != d.Size {
		return fmt.Errorf("%s: blob %s is %d bytes, its descriptor says %d", archive, d.Digest, size, d.Size)
	}
	if !d.MediaType.IsImage() && !d.MediaType.IsIndex() {
		return nil
	}
	if size > maxJSONSize {
		return fmt.Errorf("%s: manifest %s: %d bytes is more than the %d allowed", archive, d.Digest, size, maxJSONSize)
	}
	data, err := os.ReadFile(filepath.Join(img.dir, "blobs", "sha256", d.Digest.Hex))
	if err != nil {
		return err
	}
	if d.MediaType.IsIndex() {
		im, err := v1.ParseIndexManifest(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("%s: index %s: %w", archive, d.Digest, err)
		}
		for _, c := range im.Manifests {
			if err := img.walk(archive, c, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	m, err := v1.ParseManifest(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%s: manifest %s: %w", archive, d.Digest, err)
	}
	if err := img.walk(archive, m.Config, depth+1); err != nil {
		return err
	}
	for _, l := range m.Layers {
		if err := img.walk(archive, l, depth+1); err != nil {
			return err
		}
	}
	return nil
}
