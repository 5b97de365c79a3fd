package testenv

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/buildkit"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

// Solver is a client of the process's test buildkitd, closed when the
// test ends.
func Solver(t testing.TB) *buildkit.Client {
	t.Helper()
	c, err := build.Dial(context.Background(), Build(t).BuildkitAddr, build.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Store is a SQLite store of the test's own, closed when the test ends.
func Store(t testing.TB) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "builds.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Engine is an engine on the test buildkitd and a store of the test's own.
func Engine(t testing.TB) *build.Engine {
	t.Helper()
	return &build.Engine{Solver: Solver(t), Store: Store(t)}
}

// WaitActive waits (up to a minute) until the buildkitd of c runs n
// builds, as its build history says.
func WaitActive(t testing.TB, c *buildkit.Client, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := c.ActiveBuilds(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s runs %d builds, want %d", c.Addr(), got, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
