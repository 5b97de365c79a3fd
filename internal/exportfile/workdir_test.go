package exportfile

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// workDirChildEnv makes TestWorkDirChild act: the parent directory to
// create a work dir in.
const workDirChildEnv = "EXPORTFILE_TEST_WORKDIR_CHILD"

// TestWorkDirChild is the process TestWorkDirSweep kills: it makes a work
// dir, writes into it as an import would, prints its path, and waits to be
// killed. Run by itself it has nothing to do.
func TestWorkDirChild(t *testing.T) {
	parent := os.Getenv(workDirChildEnv)
	if parent == "" {
		return
	}
	wd, err := NewWorkDir(parent)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(filepath.Join(wd.Path(), "partial-blob"), make([]byte, 1<<20), 0o644); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println(wd.Path())
	time.Sleep(time.Minute)
	os.Exit(1)
}

// TestWorkDirSweep kills an import's process with SIGKILL, so it cannot
// clean up: its work dir stays, and the next NewWorkDir removes it, but
// not a work dir in use, nor one just made that has no lock file yet.
func TestWorkDirSweep(t *testing.T) {
	parent := t.TempDir()
	live, err := NewWorkDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(live.Path()), WorkDirPrefix) || filepath.Dir(live.Path()) != parent {
		t.Errorf("work dir %s, want %s/%s*", live.Path(), parent, WorkDirPrefix)
	}
	fresh := filepath.Join(parent, WorkDirPrefix+"fresh")
	if err := os.Mkdir(fresh, 0o700); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(parent, "not-ours")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestWorkDirChild$")
	cmd.Env = append(os.Environ(), workDirChildEnv+"="+parent)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	dead := strings.TrimSpace(line)
	if err != nil || !strings.HasPrefix(filepath.Base(dead), WorkDirPrefix) {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q (%v)", line, err)
	}
	// While the child lives, its work dir is not swept.
	if removed := SweepWorkDirs(parent); len(removed) != 0 {
		t.Errorf("swept %v while their process lived", removed)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(dead, "partial-blob")); err != nil {
		t.Fatalf("the killed import's work dir should still be there: %v", err)
	}

	next, err := NewWorkDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("NewWorkDir left the killed import's work dir: %v", err)
	}
	for _, d := range []string{live.Path(), next.Path(), fresh, other} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s removed: %v", d, err)
		}
	}
	// Old enough, a work dir without a lock file goes too.
	old := time.Now().Add(-unlockedGrace - time.Minute)
	if err := os.Chtimes(fresh, old, old); err != nil {
		t.Fatal(err)
	}
	if removed := SweepWorkDirs(parent); len(removed) != 1 || removed[0] != fresh {
		t.Errorf("swept %v, want [%s]", removed, fresh)
	}
	for _, w := range []*WorkDir{live, next} {
		if err := w.Close(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(w.Path()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Close left %s", w.Path())
		}
	}
}
