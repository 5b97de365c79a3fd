package manifest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ReadFile reads the convox.yml called name in the source directory dir,
// where name is relative to dir. Like a Dockerfile, it must stay inside
// the source directory: a name that leads out of dir, or that is (or passes
// through) a link pointing outside it, is refused; links inside dir are
// followed. It reads at most MaxSize+1 bytes, leaving Parse to refuse a
// larger file. A missing file gives the *fs.PathError of opening it, so
// errors.Is(err, fs.ErrNotExist) and os.IsNotExist hold.
//
// The CLI's manifest validate (through Load) and the build engine both read
// convox.yml with it.
func ReadFile(dir, name string) ([]byte, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("opening source directory: %w", err)
	}
	defer root.Close()
	f, err := openNonBlocking(root, name)
	if err != nil {
		if escapesRoot(err) {
			if filepath.IsAbs(name) || escapes(filepath.ToSlash(name)) {
				return nil, fmt.Errorf("%s is outside the source directory %s; give a path inside it", name, dir)
			}
			return nil, fmt.Errorf("%s is, or is under, a link to outside the source directory %s; refusing to follow it (links must stay inside the source directory)", name, dir)
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			pe.Op = "open"
		}
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return data, nil
}

// openNonBlocking opens name for reading without waiting for a writer when
// it is a named pipe (the caller refuses what is not a regular file).
func openNonBlocking(root *os.Root, name string) (*os.File, error) {
	return root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

// escapesRoot reports whether err is os.Root refusing a path that leads
// out of the root (by "..", an absolute name or a link).
func escapesRoot(err error) bool {
	var pe *os.PathError
	return errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "path escapes from parent")
}

// Load reads and parses the convox.yml at path and checks the Dockerfile of
// every service that builds one: a missing, empty or unparsable Dockerfile
// is an error at the service's build in convox.yml, naming the Dockerfile
// and its line. Build paths are relative to the directory of convox.yml.
//
// The source directory (see ReadFile) is the current directory when path
// is a relative path inside it, so that neither convox.yml nor a directory
// on the way to it may be a link out of it; otherwise it is the directory
// that holds convox.yml. Dockerfiles are read inside it too.
//
// Problems are reported relative to path as given. On success the returned
// Manifest's Warnings hold any warnings; on failure the error is a Problems
// when the file was read, and the Manifest is returned too when the YAML
// itself was readable.
func Load(ctx context.Context, path string, opts Options) (*Manifest, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	root, name := ".", path
	if !filepath.IsLocal(path) {
		root, name = filepath.Dir(path), filepath.Base(path)
	}
	data, err := ReadFile(root, name)
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	m, ps, _ := Parse(path, data, opts)
	if m == nil {
		return nil, ps.Err()
	}
	ps = append(ps, m.checkDockerfiles(root, filepath.ToSlash(filepath.Dir(name)))...).Sorted()
	m.Warnings = ps.Warnings()
	return m, ps.Err()
}

// checkDockerfiles reads, as Plan does, the Dockerfile of each service that
// builds, its paths being relative to base inside the source directory
// dir, and reports what would make its build fail.
func (m *Manifest) checkDockerfiles(dir, base string) Problems {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Problems{{File: m.File, Severity: Error, Message: fmt.Sprintf("opening source directory: %v", err)}}
	}
	defer root.Close()
	var ps Problems
	for _, s := range m.Services {
		if s.Image != "" || badBuildPath(s) {
			continue
		}
		if _, err := readDockerfile(root, cleanJoin(base, s.Dockerfile())); err != nil {
			at := s.buildPosition()
			ps = append(ps, Problem{File: m.File, Line: at.Line, Col: at.Col, Severity: Error, Message: fmt.Sprintf("service %s: %v", s.Name, err)})
		}
	}
	return ps
}

// buildPosition is where the service says what it builds: build.manifest,
// build.path or build when given, else the service's name.
func (s *Service) buildPosition() Position {
	for _, k := range []string{"build.manifest", "build.path", "build"} {
		if p, ok := s.pos[k]; ok {
			return p
		}
	}
	return Position{s.Line, s.Col}
}
