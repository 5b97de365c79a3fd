package web

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/ghclient"
)

// accessTTL is how long GitHub's answer to "may this user read this
// repository" is kept.
const accessTTL = 5 * time.Minute

// maxAccessEntries bounds the cache.
const maxAccessEntries = 10000

// accessCache asks GitHub, with the user's own token, whether the user can
// read a repository, and remembers the answer briefly.
type accessCache struct {
	apiURL string
	now    func() time.Time

	mu      sync.Mutex
	entries map[string]accessEntry
}

type accessEntry struct {
	ok      bool
	expires time.Time
}

// canRead reports whether the user holding token may read repo
// ("owner/name"). GitHub answers 404 for a private repository the user
// cannot see.
func (a *accessCache) canRead(ctx context.Context, login, token, repo string) (bool, error) {
	key := strings.ToLower(login + "\x00" + repo)
	now := a.now()
	a.mu.Lock()
	e, ok := a.entries[key]
	a.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.ok, nil
	}
	owner, name, found := strings.Cut(repo, "/")
	if !found {
		return false, nil
	}
	gh, err := ghclient.New(a.apiURL, token, ghclient.Options{MaxRetries: 1})
	if err != nil {
		return false, err
	}
	_, resp, err := gh.Repositories.Get(ctx, owner, name)
	allowed := err == nil
	if err != nil && (resp == nil || (resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusForbidden)) {
		return false, ghclient.Redact(err) // GitHub did not answer: do not cache
	}
	a.mu.Lock()
	if len(a.entries) >= maxAccessEntries {
		for k, v := range a.entries {
			if now.After(v.expires) || len(a.entries) >= maxAccessEntries {
				delete(a.entries, k)
			}
		}
	}
	a.entries[key] = accessEntry{ok: allowed, expires: now.Add(accessTTL)}
	a.mu.Unlock()
	return allowed, nil
}
