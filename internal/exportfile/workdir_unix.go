//go:build unix

package exportfile

import (
	"errors"
	"os"
	"syscall"
)

// tryLock takes an exclusive flock on f without waiting, reporting whether
// it got it. The lock lasts until f is closed or the process ends.
func tryLock(f *os.File) (bool, error) {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, syscall.EWOULDBLOCK):
			return false, nil
		case errors.Is(err, syscall.EINTR):
			continue
		}
		return false, err
	}
}

// lockOwn locks the lock file of a new work dir.
func lockOwn(f *os.File) error {
	locked, err := tryLock(f)
	if err == nil && !locked {
		err = errors.New("locked by another process")
	}
	return err
}
