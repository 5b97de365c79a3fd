package ghapp

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
)

// Limits bound what a source tarball may unpack to.
type Limits struct {
	// MaxBytes bounds the total size of the files (default 1 GiB).
	MaxBytes int64
	// MaxFiles bounds the number of entries (default 100,000).
	MaxFiles int
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = 1 << 30
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = 100_000
	}
	return l
}

// UnsafeEntryError is Extract's error for an entry that would write or
// point outside the tree, or that a source tree cannot hold.
type UnsafeEntryError struct {
	Name string
	Why  string
}

func (e *UnsafeEntryError) Error() string {
	return fmt.Sprintf("source tarball entry %q: %s", e.Name, e.Why)
}

// LimitError is Extract's error for a tarball over its Limits.
type LimitError struct{ Why string }

func (e *LimitError) Error() string { return "source tarball: " + e.Why }

// Extract unpacks a gzipped tarball as GitHub serves it (every path under
// one top directory, which is dropped) into dest, an existing directory.
// It refuses what could reach outside dest: absolute paths, ".."
// components, symbolic and hard links whose target is outside the tree;
// and devices, FIFOs and other special files. Every write goes through an
// os.Root on dest, so even a link planted earlier cannot lead a write out.
// It stops with a *LimitError past limits.
func Extract(r io.Reader, dest string, limits Limits) error {
	limits = limits.withDefaults()
	root, err := os.OpenRoot(dest)
	if err != nil {
		return fmt.Errorf("extracting the source: %w", err)
	}
	defer root.Close()
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("extracting the source: not a gzipped tarball: %w", err)
	}
	tr := tar.NewReader(gz)
	var files int
	var total int64
	var links []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("extracting the source: %w", err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue // GitHub's pax header with the commit
		}
		files++
		if files > limits.MaxFiles {
			return &LimitError{fmt.Sprintf("more than %d files", limits.MaxFiles)}
		}
		name, err := entryName(h.Name)
		if err != nil {
			return err
		}
		if name == "" {
			continue // the top directory
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o755); err != nil {
				return fmt.Errorf("extracting %s: %w", name, err)
			}
		case tar.TypeReg, tar.TypeRegA:
			if h.Size > limits.MaxBytes-total {
				return &LimitError{fmt.Sprintf("more than %d bytes of files", limits.MaxBytes)}
			}
			n, err := writeFile(root, name, tr, h.FileInfo().Mode().Perm())
			total += n
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := checkLink(name, h.Linkname); err != nil {
				return err
			}
			if err := mkParent(root, name); err != nil {
				return err
			}
			if err := root.Symlink(h.Linkname, name); err != nil {
				return fmt.Errorf("extracting %s: %w", name, err)
			}
			links = append(links, name)
		case tar.TypeLink:
			target, err := entryName(h.Linkname)
			if err != nil || target == "" {
				return &UnsafeEntryError{h.Name, "a hard link to " + h.Linkname + ", outside the tree"}
			}
			if err := mkParent(root, name); err != nil {
				return err
			}
			if err := root.Link(target, name); err != nil {
				return fmt.Errorf("extracting %s: a hard link to %s: %w", name, target, err)
			}
			links = append(links, name)
		default:
			return &UnsafeEntryError{h.Name, fmt.Sprintf("a special file (tar type %q), which a source tree cannot hold", h.Typeflag)}
		}
	}
	// Now that the tree is whole, follow every link as the kernel would:
	// a chain of links that each stay inside can still lead out.
	for _, name := range links {
		fi, err := root.Lstat(name)
		if err != nil {
			return fmt.Errorf("extracting %s: %w", name, err)
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			continue
		}
		if _, err := root.Stat(name); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ELOOP) {
			target, _ := root.Readlink(name)
			return &UnsafeEntryError{name, "a symbolic link to " + target + ", which leads outside the tree"}
		}
	}
	return nil
}

// entryName is a tarball entry's path without GitHub's top directory,
// checked to stay inside the tree ("" for the top directory itself).
func entryName(raw string) (string, error) {
	if strings.HasPrefix(raw, "/") {
		return "", &UnsafeEntryError{raw, "an absolute path"}
	}
	for _, part := range strings.Split(raw, "/") {
		if part == ".." {
			return "", &UnsafeEntryError{raw, "a path with .., outside the tree"}
		}
	}
	if strings.ContainsRune(raw, 0) {
		return "", &UnsafeEntryError{raw, "a NUL byte in the path"}
	}
	_, rest, _ := strings.Cut(strings.TrimPrefix(raw, "./"), "/")
	rest = path.Clean(rest)
	if rest == "." || rest == "" {
		return "", nil
	}
	return rest, nil
}

// checkLink refuses a symbolic link at name whose target leaves the tree.
func checkLink(name, target string) error {
	if target == "" || strings.HasPrefix(target, "/") {
		return &UnsafeEntryError{name, "a symbolic link to " + target + ", outside the tree"}
	}
	resolved := path.Join(path.Dir(name), target)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return &UnsafeEntryError{name, "a symbolic link to " + target + ", outside the tree"}
	}
	return nil
}

func mkParent(root *os.Root, name string) error {
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("extracting %s: %w", name, err)
		}
	}
	return nil
}

func writeFile(root *os.Root, name string, r io.Reader, perm os.FileMode) (int64, error) {
	if err := mkParent(root, name); err != nil {
		return 0, err
	}
	// Keep the executable bits; the rest as git has it.
	mode := os.FileMode(0o644)
	if perm&0o111 != 0 {
		mode = 0o755
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return 0, fmt.Errorf("extracting %s: %w", name, err)
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("extracting %s: %w", name, err)
	}
	return n, nil
}
