package build

import (
	"context"
	"os/exec"
	"strings"
)

// GitInfo is what a source directory's git checkout says about itself.
type GitInfo struct {
	SHA     string
	Subject string
	Clean   bool
}

// ReadGit reads HEAD's SHA and subject and whether the tree is clean; ok is
// false when dir is not in a git checkout (or git is missing).
func ReadGit(ctx context.Context, dir string) (info GitInfo, ok bool) {
	git := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...).Output()
		return strings.TrimSpace(string(out)), err
	}
	sha, err := git("rev-parse", "HEAD")
	if err != nil || sha == "" {
		return GitInfo{}, false
	}
	subject, _ := git("log", "-1", "--format=%s")
	status, err := git("status", "--porcelain", "--untracked-files=no")
	return GitInfo{SHA: sha, Subject: subject, Clean: err == nil && status == ""}, true
}

// Description is Convox's default build description, "build <sha10>
// <subject>", when the tree is clean; empty otherwise.
func (g GitInfo) Description() string {
	if !g.Clean || len(g.SHA) < 10 {
		return ""
	}
	return strings.TrimSpace("build " + g.SHA[:10] + " " + g.Subject)
}
