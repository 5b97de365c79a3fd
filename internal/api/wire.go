// Package api is the builds API over HTTP: the JSON routes a server offers
// (builds, a build, its log streamed while it runs, its export, imports,
// releases) and the Client the remote CLI uses to call them, so that a
// command prints the same whether it reads the local store or a server.
//
// Routes, all under a bearer token:
//
//	GET  /apps/{app}/builds[?limit=N]   builds, newest first (JSON array)
//	GET  /apps/{app}/builds/{id}        one build (JSON)
//	GET  /apps/{app}/builds/{id}/logs   the log as text, streamed until the build ends
//	GET  /apps/{app}/builds/{id}.tgz    the build's export file
//	POST /apps/{app}/builds/import      import an export file (the body); 201 with the new build
//	GET  /apps/{app}/releases[?limit=N] releases, newest first (JSON array)
//	GET  /builds/{id}                   one build, whatever its app
//
// Errors are JSON, {"error": "..."}, with 400, 401, 404, 409 or 500.
package api

import (
	"time"

	"github.com/convox-build-action/convox-build-action/internal/store"
)

// Build is a build as the API sends it: Convox's field names, plus each
// service's result.
type Build struct {
	ID          string               `json:"id"`
	App         string               `json:"app"`
	Description string               `json:"description"`
	Entrypoint  string               `json:"entrypoint"`
	GitSHA      string               `json:"git-sha"`
	Manifest    string               `json:"manifest"`
	Process     string               `json:"process"`
	Release     string               `json:"release"`
	Reason      string               `json:"reason"`
	Repository  string               `json:"repository"`
	Status      string               `json:"status"`
	Started     *time.Time           `json:"started,omitempty"`
	Ended       *time.Time           `json:"ended,omitempty"`
	Services    []store.ServiceImage `json:"services"`
}

// Release is a release as the API sends it.
type Release struct {
	ID          string     `json:"id"`
	App         string     `json:"app"`
	Build       string     `json:"build"`
	Manifest    string     `json:"manifest"`
	Description string     `json:"description"`
	Created     *time.Time `json:"created,omitempty"`
}

// Error is the body of every error response.
type Error struct {
	Error string `json:"error"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func timeOf(p *time.Time) time.Time {
	if p == nil {
		return time.Time{}
	}
	return p.UTC()
}

// FromStore is b in the API's form.
func FromStore(b *store.Build) Build {
	services := b.Services
	if services == nil {
		services = []store.ServiceImage{}
	}
	return Build{ID: b.ID, App: b.App, Description: b.Description, Entrypoint: b.Entrypoint, GitSHA: b.GitSHA,
		Manifest: b.Manifest, Process: b.Process, Release: b.Release, Reason: b.Reason, Repository: b.Repository,
		Status: string(b.Status), Started: timePtr(b.Started), Ended: timePtr(b.Ended), Services: services}
}

// Store is b as the store keeps it.
func (b Build) Store() *store.Build {
	out := &store.Build{ID: b.ID, App: b.App, Description: b.Description, Entrypoint: b.Entrypoint, GitSHA: b.GitSHA,
		Manifest: b.Manifest, Process: b.Process, Release: b.Release, Reason: b.Reason, Repository: b.Repository,
		Status: store.Status(b.Status), Started: timeOf(b.Started), Ended: timeOf(b.Ended), Services: b.Services}
	if len(out.Services) == 0 {
		out.Services = nil
	}
	return out
}

// ReleaseFromStore is r in the API's form.
func ReleaseFromStore(r *store.Release) Release {
	return Release{ID: r.ID, App: r.App, Build: r.Build, Manifest: r.Manifest, Description: r.Description, Created: timePtr(r.Created)}
}

// Store is r as the store keeps it.
func (r Release) Store() *store.Release {
	return &store.Release{ID: r.ID, App: r.App, Build: r.Build, Manifest: r.Manifest, Description: r.Description, Created: timeOf(r.Created)}
}
