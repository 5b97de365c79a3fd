// Package exportfile writes and reads the Convox v3 build export file, the
// file `builds export` writes and `builds import` reads.
//
// An export is a gzipped tar holding, in this order:
//
//   - build.json: the Build with Convox's field names (id app description
//     entrypoint git-sha logs manifest process release reason repository
//     status started ended; times in RFC 3339, UTC) plus a "services" array
//     giving each service's service, image, digest, entrypoint and
//     image-only. "logs" is in Convox's form, object://APP/build/ID/logs;
//   - build.log: the build's log, one line per log line (Convox's import
//     ignores it, as it ignores every entry that is neither build.json nor
//     a .tar);
//   - <service>.<BUILDID>.tar for each service: the service's image as an
//     OCI image layout (oci-layout, index.json whose one manifest carries the
//     annotation org.opencontainers.image.ref.name, blobs/sha256/...) with a
//     docker-save style manifest.json, so `docker load` accepts it too, and
//     `skopeo copy oci-archive:...`, which Convox's import runs, too.
//
// Read also reads the files Convox's own `convox builds export` writes:
// build.json without "services", a directory entry with an empty name, and
// one <service>.<BUILDID>.tar per service written by skopeo (blobs first,
// no digest list anywhere): there each archive's index.json names its one
// image, and everything that image references is checked as for ours.
//
// Images keep their exact manifest bytes, so digests round-trip: the digest
// an image had in the exporting registry is the digest it has after Push.
//
// Write streams (it never seeks), so its writer may be a pipe or stdout;
// Read reads a stream too, in bounded memory, checks everything it reads
// and writes no more than the sizes the file declares. Push copies the
// images Read extracted to another repository. The package logs nothing.
package exportfile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

// Names of the fixed entries of an export.
const (
	BuildJSONName = "build.json"
	BuildLogName  = "build.log"
)

// Limits Read enforces on an export.
const (
	// MaxTotalSize bounds the sum of the sizes of all entries, nested ones
	// included (10 GiB).
	MaxTotalSize = 10 << 30
	// MaxNameLength bounds the length of an entry name.
	MaxNameLength = 255
	// MaxEntries bounds the number of top-level entries.
	MaxEntries = 10000
	// MaxImageEntries bounds the number of entries in one service archive.
	MaxImageEntries = 100000
	// maxJSONSize bounds build.json, index.json, manifest.json and every
	// manifest.
	maxJSONSize = 64 << 20
	// maxLogSize bounds the build.log entry.
	maxLogSize = 1 << 30
	// MaxLogLines bounds the log lines an import keeps: Read keeps the
	// first ones and Archive.ReadLogs ends with a line saying how many
	// were left out.
	MaxLogLines = 100000
	// MaxLogBytes bounds the log text an import keeps, likewise.
	MaxLogBytes = 64 << 20
	// MaxLogLineLength bounds one log line: a longer line becomes several.
	MaxLogLineLength = 64 << 10
	// MaxExpansion bounds how many times larger than the compressed bytes
	// read so far the decompressed bytes may grow, once past
	// expansionSlack: image layers are compressed already, so an export
	// shrinks little under gzip, and a file that expands a hundredfold is
	// a decompression bomb.
	MaxExpansion = 100
	// expansionSlack is what may be decompressed before MaxExpansion
	// applies (tar headers and JSON compress well).
	expansionSlack = 16 << 20
)

// Registry says how to reach registries: credentials, plain HTTP where
// allowed, bounded retries (see registry.Options; the zero value is
// anonymous, HTTPS except on loopback).
type Registry = registry.Options

var (
	buildIDPattern     = regexp.MustCompile(`^B[A-Z]{10}$`)
	serviceNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)
	digestPattern      = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// ArchiveName is the name of a service's image archive in an export:
// "<service>.<buildID>.tar".
func ArchiveName(service, buildID string) string {
	return service + "." + buildID + ".tar"
}

// buildJSON is build.json: Convox's Build fields, in Convox's order, then
// the services.
type buildJSON struct {
	ID          string        `json:"id"`
	App         string        `json:"app"`
	Description string        `json:"description"`
	Entrypoint  string        `json:"entrypoint"`
	GitSHA      string        `json:"git-sha"`
	Logs        string        `json:"logs"`
	Manifest    string        `json:"manifest"`
	Process     string        `json:"process"`
	Release     string        `json:"release"`
	Reason      string        `json:"reason"`
	Repository  string        `json:"repository"`
	Status      string        `json:"status"`
	Started     time.Time     `json:"started"`
	Ended       time.Time     `json:"ended"`
	Services    []serviceJSON `json:"services"`
}

// LogsURL is build.json's "logs" for build id of app: where Convox keeps a
// build's log (its object store), object://APP/build/ID/logs.
func LogsURL(app, id string) string {
	return "object://" + app + "/build/" + id + "/logs"
}

type serviceJSON struct {
	Service    string `json:"service"`
	Image      string `json:"image"`
	Digest     string `json:"digest"`
	Entrypoint string `json:"entrypoint"`
	ImageOnly  bool   `json:"image-only"`
}

// encodeBuild returns build.json for b: indented, HTML characters
// unescaped, ending in a newline.
func encodeBuild(b *store.Build) ([]byte, error) {
	j := buildJSON{
		ID:          b.ID,
		App:         b.App,
		Description: b.Description,
		Entrypoint:  b.Entrypoint,
		GitSHA:      b.GitSHA,
		Logs:        LogsURL(b.App, b.ID),
		Manifest:    b.Manifest,
		Process:     b.Process,
		Release:     b.Release,
		Reason:      b.Reason,
		Repository:  b.Repository,
		Status:      string(b.Status),
		Started:     b.Started.UTC(),
		Ended:       b.Ended.UTC(),
		Services:    []serviceJSON{},
	}
	for _, s := range b.Services {
		j.Services = append(j.Services, serviceJSON{
			Service:    s.Service,
			Image:      s.Image,
			Digest:     s.Digest,
			Entrypoint: s.Entrypoint,
			ImageOnly:  s.ImageOnly,
		})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(j); err != nil {
		return nil, fmt.Errorf("encoding %s: %w", BuildJSONName, err)
	}
	return buf.Bytes(), nil
}

// decodeBuild parses and checks build.json. listed reports whether it has
// a "services" array: ours does, Convox's does not.
func decodeBuild(data []byte) (b *store.Build, listed bool, err error) {
	var j buildJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, false, fmt.Errorf("%s: %w", BuildJSONName, err)
	}
	b = &store.Build{
		ID:          j.ID,
		App:         j.App,
		Description: j.Description,
		Entrypoint:  j.Entrypoint,
		GitSHA:      j.GitSHA,
		Manifest:    j.Manifest,
		Process:     j.Process,
		Release:     j.Release,
		Reason:      j.Reason,
		Repository:  j.Repository,
		Status:      store.Status(j.Status),
		Started:     j.Started,
		Ended:       j.Ended,
	}
	for _, s := range j.Services {
		b.Services = append(b.Services, store.ServiceImage{
			Service:    s.Service,
			Image:      s.Image,
			Digest:     s.Digest,
			Entrypoint: s.Entrypoint,
			ImageOnly:  s.ImageOnly,
		})
	}
	if err := checkBuild(b); err != nil {
		return nil, false, fmt.Errorf("%s: %w", BuildJSONName, err)
	}
	return b, j.Services != nil, nil
}

// checkBuild checks what an export relies on: a valid build ID, and for each
// service a unique valid name and a sha256 digest.
func checkBuild(b *store.Build) error {
	if !buildIDPattern.MatchString(b.ID) {
		return fmt.Errorf("invalid build ID %q (want B and 10 uppercase letters)", b.ID)
	}
	seen := map[string]bool{}
	for _, s := range b.Services {
		if !serviceNamePattern.MatchString(s.Service) {
			return fmt.Errorf("invalid service name %q", s.Service)
		}
		if seen[s.Service] {
			return fmt.Errorf("service %s listed twice", s.Service)
		}
		seen[s.Service] = true
		if !digestPattern.MatchString(s.Digest) {
			if s.Digest == "" {
				return fmt.Errorf("service %s has no image digest", s.Service)
			}
			return fmt.Errorf("service %s: invalid image digest %q (want sha256:<64 hex digits>)", s.Service, s.Digest)
		}
	}
	return nil
}
