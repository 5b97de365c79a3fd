//go:build !unix

package exportfile

import (
	"os"
	"time"
)

// tryLock, without flock, holds no lock: it reports a work dir free only
// once its lock file is a day old, so a sweep removes only old ones.
func tryLock(f *os.File) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	return time.Since(fi.ModTime()) > 24*time.Hour, nil
}

// lockOwn has no lock to take.
func lockOwn(*os.File) error { return nil }
