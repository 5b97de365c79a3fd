package exportfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// WorkDirPrefix begins the name of every directory NewWorkDir makes.
const WorkDirPrefix = "convox-build-import-"

// lockName is the file in a work dir whose lock marks it in use.
const lockName = ".lock"

// unlockedGrace is how old a work dir without a lock file must be before
// a sweep removes it: NewWorkDir creates the lock file right after the
// directory, so only a process killed between the two leaves one.
const unlockedGrace = 10 * time.Minute

// WorkDir is a directory to extract an import into. While it is open its
// lock file is locked (an advisory lock the kernel drops when the process
// dies, even by SIGKILL), which is how a later NewWorkDir tells an
// abandoned work dir from one in use.
type WorkDir struct {
	path string
	lock *os.File
}

// NewWorkDir creates a work dir under parent (os.TempDir() when empty),
// named WorkDirPrefix followed by a random suffix, after removing the work
// dirs under parent that no process holds any more: those of imports killed
// before they could clean up. Close removes it.
func NewWorkDir(parent string) (*WorkDir, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	SweepWorkDirs(parent)
	dir, err := os.MkdirTemp(parent, WorkDirPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("creating a work dir for the import: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		if err = lockOwn(f); err != nil {
			f.Close()
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("locking the import's work dir %s: %w", dir, err)
	}
	return &WorkDir{path: dir, lock: f}, nil
}

// Path returns the work dir's path.
func (w *WorkDir) Path() string { return w.path }

// Close removes the work dir and everything in it, then drops its lock.
func (w *WorkDir) Close() error {
	err := os.RemoveAll(w.path)
	w.lock.Close()
	if err != nil {
		return fmt.Errorf("removing the import's work dir: %w", err)
	}
	return nil
}

// SweepWorkDirs removes the work dirs under parent that no process holds
// and returns their paths. A work dir in use is never removed. Errors are
// skipped: what cannot be removed now is tried again next time.
func SweepWorkDirs(parent string) []string {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), WorkDirPrefix) {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		if sweep(dir) {
			removed = append(removed, dir)
		}
	}
	return removed
}

func sweep(dir string) bool {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		fi, err := os.Stat(dir)
		if err != nil || time.Since(fi.ModTime()) < unlockedGrace {
			return false
		}
		return os.RemoveAll(dir) == nil
	}
	if err != nil {
		return false
	}
	defer f.Close()
	locked, err := tryLock(f)
	if err != nil || !locked {
		return false
	}
	return os.RemoveAll(dir) == nil
}
