// Package datadir guards a data directory: one process at a time uses it.
package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the name of the lock in a data directory.
const LockFile = "pylee.lock"

// ErrLocked is returned when another process holds the data directory.
var ErrLocked = errors.New("data directory is in use")

// Lock is a held data directory lock; Release gives it up. The kernel
// releases it too when the process dies, so a crash leaves no stale lock.
type Lock struct{ f *os.File }

// Acquire takes the exclusive lock of dir, or fails at once with ErrLocked
// naming the process that holds it. Two Pylee processes over the same SQLite
// files would each run a relay over the same outbox.
func Acquire(dir string) (*Lock, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := strings.TrimSpace(string(holder))
			if who == "" {
				who = "another process"
			} else {
				who = "process " + who
			}
			return nil, fmt.Errorf("%w: %s holds %s; stop it or choose another --data-dir", ErrLocked, who, path)
		}
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// Release gives the lock up.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
