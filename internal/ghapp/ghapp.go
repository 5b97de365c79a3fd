// Package ghapp authenticates as a GitHub App (github.com or GitHub
// Enterprise) with ghinstallation: it makes go-github clients for an
// installation, whose tokens are fetched and refreshed as needed and
// whose requests are retried as ghclient retries them, and downloads and
// safely extracts a repository's tarball at a commit. Signed URLs and
// tokens never appear in its errors; it logs nothing.
package ghapp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v60/github"

	"github.com/convox-build-action/convox-build-action/internal/ghclient"
)

// Options configure an App.
type Options struct {
	// AppID is the GitHub App's ID; required.
	AppID int64
	// PrivateKey is the App's private key (PEM); required.
	PrivateKey []byte
	// APIURL is the API's base URL: "" for github.com,
	// "https://ghe.example.com/api/v3/" for GitHub Enterprise.
	APIURL string
	// Client tunes retries and the base HTTP client (see ghclient).
	Client ghclient.Options
}

// App is a GitHub App. It is safe for concurrent use.
type App struct {
	opts Options
	atr  *ghinstallation.AppsTransport
	base http.RoundTripper

	mu    sync.Mutex
	insts map[int64]*Installation
}

// New checks the App's key and returns the App; nothing is sent to GitHub
// yet.
func New(opts Options) (*App, error) {
	if opts.AppID <= 0 {
		return nil, errors.New("GitHub App: no App ID")
	}
	if len(opts.PrivateKey) == 0 {
		return nil, errors.New("GitHub App: no private key")
	}
	base := http.DefaultTransport
	if opts.Client.HTTPClient != nil && opts.Client.HTTPClient.Transport != nil {
		base = opts.Client.HTTPClient.Transport
	}
	atr, err := ghinstallation.NewAppsTransport(base, opts.AppID, opts.PrivateKey)
	if err != nil {
		// The library's error quotes nothing of the key.
		return nil, fmt.Errorf("GitHub App %d: reading the private key: %w (want the PEM file GitHub generated for the App)", opts.AppID, err)
	}
	atr.BaseURL = baseURL(opts.APIURL)
	return &App{opts: opts, atr: atr, base: base, insts: map[int64]*Installation{}}, nil
}

// baseURL is ghinstallation's form of the API URL: scheme, host and path
// without the trailing slash.
func baseURL(apiURL string) string {
	if apiURL == "" {
		return "https://api.github.com"
	}
	return strings.TrimSuffix(apiURL, "/")
}

// Installation is the App's installation on an account: a client acting
// as it.
type Installation struct {
	ID     int64
	Client *github.Client
	tr     *ghinstallation.Transport
	app    *App
}

// Installation returns the client of installation id (one per ID, reused:
// its token is cached until it nears expiry).
func (a *App) Installation(id int64) (*Installation, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if in, ok := a.insts[id]; ok {
		return in, nil
	}
	tr := ghinstallation.NewFromAppsTransport(a.atr, id)
	tr.BaseURL = a.atr.BaseURL
	client, err := ghclient.NewWithTransport(a.opts.APIURL, tr, a.opts.Client)
	if err != nil {
		return nil, err
	}
	in := &Installation{ID: id, Client: client, tr: tr, app: a}
	a.insts[id] = in
	return in, nil
}

// Token returns the installation's current access token (fetching one if
// needed), so that callers can keep it out of what they show.
func (in *Installation) Token(ctx context.Context) (string, error) {
	tok, err := in.tr.Token(ctx)
	if err != nil {
		return "", fmt.Errorf("getting an access token for installation %d: %w", in.ID, ghclient.Redact(err))
	}
	return tok, nil
}

// DownloadTimeout bounds a tarball download.
const DownloadTimeout = 10 * time.Minute

// DownloadSource downloads owner/repo's tarball at sha and extracts it
// into dest (an existing, empty directory) within limits (see Extract).
// GitHub answers with a signed URL to the archive: it is fetched without
// the installation's token and never appears in an error.
func (in *Installation) DownloadSource(ctx context.Context, owner, repo, sha, dest string, limits Limits) error {
	ctx, cancel := context.WithTimeout(ctx, DownloadTimeout)
	defer cancel()
	what := fmt.Sprintf("%s/%s@%s", owner, repo, sha)
	link, resp, err := in.Client.Repositories.GetArchiveLink(ctx, owner, repo, github.Tarball, &github.RepositoryContentGetOptions{Ref: sha}, 1)
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			return &NotFoundError{What: what}
		}
		return fmt.Errorf("asking GitHub for the tarball of %s: %w", what, ghclient.Redact(err))
	}
	client := &http.Client{Transport: ghclient.RetryTransport(in.app.base, in.app.opts.Client)}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link.String(), nil)
	if err != nil {
		return fmt.Errorf("downloading the tarball of %s: %w", what, ghclient.Redact(err))
	}
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("downloading the tarball of %s: %w", what, ghclient.Redact(err))
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("downloading the tarball of %s: the archive server answered %s", what, res.Status)
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	if err := Extract(res.Body, dest, limits); err != nil {
		return fmt.Errorf("the source of %s: %w", what, ghclient.Redact(err))
	}
	return nil
}

// NotFoundError says GitHub has no such repository or commit (or the App
// may not read it).
type NotFoundError struct{ What string }

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("GitHub has no %s, or the App may not read it (is it installed on the repository, with contents: read?)", e.What)
}
