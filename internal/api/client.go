package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/convox-build-action/convox-build-action/internal/store"
)

// Client calls a server's API. Its errors wrap store.ErrNotFound for 404s
// and carry the server's message.
type Client struct {
	// BaseURL is the server's address, such as https://builds.example.com.
	BaseURL string
	// Token is the API's bearer token.
	Token string
	// HTTPClient makes the requests (default: one without a timeout, since
	// logs stream for as long as a build runs).
	HTTPClient *http.Client
}

// StatusError is a response the server refused.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string { return e.Message }

// Unwrap makes 404s match store.ErrNotFound.
func (e *StatusError) Unwrap() error {
	if e.Code == http.StatusNotFound {
		return store.ErrNotFound
	}
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	base := strings.TrimSuffix(c.BaseURL, "/")
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", c.BaseURL, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("server %s: %w", c.BaseURL, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var e Error
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
		}
		return nil, &StatusError{Code: resp.StatusCode, Message: e.Error}
	}
	return resp, nil
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	resp, err := c.do(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("server %s: reading %s: %w", c.BaseURL, path, err)
	}
	return nil
}

func appPath(app string) string { return "/apps/" + url.PathEscape(app) }

// ListBuilds returns app's builds, newest first: at most limit, all of
// them when limit is 0, the server's default number (10) when it is
// negative.
func (c *Client) ListBuilds(ctx context.Context, app string, limit int) ([]store.Build, error) {
	path := appPath(app) + "/builds"
	if limit >= 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var list []Build
	if err := c.getJSON(ctx, path, &list); err != nil {
		return nil, err
	}
	out := make([]store.Build, 0, len(list))
	for _, b := range list {
		out = append(out, *b.Store())
	}
	return out, nil
}

// GetBuild returns build id; app, when given, must be its app.
func (c *Client) GetBuild(ctx context.Context, app, id string) (*store.Build, error) {
	path := "/builds/" + url.PathEscape(id)
	if app != "" {
		path = appPath(app) + "/builds/" + url.PathEscape(id)
	}
	var b Build
	if err := c.getJSON(ctx, path, &b); err != nil {
		return nil, err
	}
	return b.Store(), nil
}

// Logs copies build id's log to w, following it until the build ends
// when follow is set.
func (c *Client) Logs(ctx context.Context, app, id string, follow bool, w io.Writer) error {
	path := appPath(app) + "/builds/" + url.PathEscape(id) + "/logs"
	if !follow {
		path += "?follow=false"
	}
	resp, err := c.do(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("server %s: reading the log of %s: %w", c.BaseURL, id, err)
	}
	return nil
}

// Export copies build id's export file to w.
func (c *Client) Export(ctx context.Context, app, id string, w io.Writer) error {
	resp, err := c.do(ctx, http.MethodGet, appPath(app)+"/builds/"+url.PathEscape(id)+".tgz", nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("server %s: downloading the export of %s: %w", c.BaseURL, id, err)
	}
	return nil
}

// Import sends an export file to be imported into app, pushing to
// repository (the server's default for app when empty), and returns the
// new build.
func (c *Client) Import(ctx context.Context, app string, r io.Reader, repository string) (*store.Build, error) {
	path := appPath(app) + "/builds/import"
	if repository != "" {
		path += "?repository=" + url.QueryEscape(repository)
	}
	resp, err := c.do(ctx, http.MethodPost, path, r, "application/gzip")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var b Build
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		return nil, fmt.Errorf("server %s: reading the imported build: %w", c.BaseURL, err)
	}
	return b.Store(), nil
}

// ListReleases returns app's releases, newest first; limit as for
// ListBuilds.
func (c *Client) ListReleases(ctx context.Context, app string, limit int) ([]store.Release, error) {
	path := appPath(app) + "/releases"
	if limit >= 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var list []Release
	if err := c.getJSON(ctx, path, &list); err != nil {
		return nil, err
	}
	out := make([]store.Release, 0, len(list))
	for _, r := range list {
		out = append(out, *r.Store())
	}
	return out, nil
}
