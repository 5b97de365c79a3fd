// Package envconfig turns a process environment into the engine's
// configuration, in one place for every front end (the CLI, the action, the
// webhook server): registry credentials, plain-HTTP registries and
// registry mirrors, buildkitd addresses, the database, the image registry
// and the GitHub Actions cache service.
//
// It reads variables only through the lookup function it is given (the
// front end's getenv, or a map in tests), never from the process itself. Its errors
// about a variable are *Error and name it, never a front end's flag or input.
package envconfig

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

// The variables this package reads.
const (
	// BuildkitHost is buildkitd's address, or several separated by commas.
	BuildkitHost = "BUILDKIT_HOST"
	// DatabaseURL says where builds, releases and logs are kept.
	DatabaseURL = "DATABASE_URL"
	// Registry is the registry host images are pushed to; an app's
	// repository is Registry/APP.
	Registry = "CONVOX_BUILD_REGISTRY"
	// RegistryInsecure ("true"/"false") allows plain-HTTP registries.
	RegistryInsecure = "CONVOX_BUILD_REGISTRY_INSECURE"
	// RegistryMirrors are registry mirrors for the pulls the process makes:
	// "docker.io=mirror.example.com[,host=mirror...]".
	RegistryMirrors = "REGISTRY_MIRRORS"
	// DockerConfig is the directory of Docker's config.json.
	DockerConfig = "DOCKER_CONFIG"
	// DockerHubUsername and DockerHubPassword are Docker Hub credentials,
	// named as Convox's rack parameters are.
	DockerHubUsername = "DOCKER_HUB_USERNAME"
	DockerHubPassword = "DOCKER_HUB_PASSWORD"
	// Home is the user's home directory, where ~/.docker is.
	Home = "HOME"
	// ActionsCacheURL, ActionsResultsURL and ActionsRuntimeToken reach the
	// GitHub Actions cache service; Actions sets them in a job.
	ActionsCacheURL     = "ACTIONS_CACHE_URL"
	ActionsResultsURL   = "ACTIONS_RESULTS_URL"
	ActionsRuntimeToken = "ACTIONS_RUNTIME_TOKEN"
)

// DefaultBuildkitHost is where buildkitd listens when installed as a
// system service; BuildkitHosts returns it when BUILDKIT_HOST is unset.
const DefaultBuildkitHost = "unix:///run/buildkit/buildkitd.sock"

// Error is a variable with a value that cannot be used. Its text names the
// variable and never shows a secret value.
type Error struct {
	// Var is the variable's name, e.g. "REGISTRY_MIRRORS".
	Var string
	Err error
}

func (e *Error) Error() string { return e.Var + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// RegistryOptions returns the options of every registry call: credentials
// from pairs ("host=user:password", the caller's own explicit input, which
// win), DOCKER_HUB_USERNAME and DOCKER_HUB_PASSWORD (both or neither), and
// the Docker config in DOCKER_CONFIG (default $HOME/.docker); plain HTTP
// when CONVOX_BUILD_REGISTRY_INSECURE is true; mirrors from
// REGISTRY_MIRRORS. A bad pair gives registry.ParsePair's error, which the
// caller attributes to its own input; a bad variable gives an *Error.
func RegistryOptions(getenv func(string) string, pairs []string) (registry.Options, error) {
	seen := map[string]bool{}
	for _, p := range pairs {
		host, _, _, err := registry.ParsePair(p)
		if err != nil {
			return registry.Options{}, err
		}
		if seen[host] {
			return registry.Options{}, fmt.Errorf("registry credentials: two pairs for %s; give one", host)
		}
		seen[host] = true
	}
	user, password := getenv(DockerHubUsername), getenv(DockerHubPassword)
	switch {
	case user != "" && password == "":
		return registry.Options{}, &Error{DockerHubPassword, fmt.Errorf("empty, but %s is set: set both or neither", DockerHubUsername)}
	case user == "" && password != "":
		return registry.Options{}, &Error{DockerHubUsername, fmt.Errorf("empty, but %s is set: set both or neither", DockerHubPassword)}
	}
	insecure, err := Bool(getenv, RegistryInsecure)
	if err != nil {
		return registry.Options{}, err
	}
	mirrors, err := registry.ParseMirrors(getenv(RegistryMirrors))
	if err != nil {
		return registry.Options{}, &Error{RegistryMirrors, err}
	}
	dir := getenv(DockerConfig)
	if dir == "" && getenv(Home) != "" {
		dir = filepath.Join(getenv(Home), ".docker")
	}
	auth, err := registry.NewAuth(registry.AuthOptions{
		Pairs:             pairs,
		DockerHubUsername: user,
		DockerHubPassword: password,
		DockerConfigDir:   dir,
	})
	if err != nil {
		if getenv(DockerConfig) != "" {
			return registry.Options{}, &Error{DockerConfig, err}
		}
		return registry.Options{}, err
	}
	if len(mirrors) == 0 {
		mirrors = nil
	}
	return registry.Options{Auth: auth, Insecure: insecure, Mirrors: mirrors}, nil
}

// Bool reads a true/false variable as strconv.ParseBool does; unset is
// false.
func Bool(getenv func(string) string, name string) (bool, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, &Error{name, fmt.Errorf("%q: want true or false", v)}
	}
	return b, nil
}

// BuildkitHosts returns the buildkitd addresses in BUILDKIT_HOST (several
// separated by commas), or DefaultBuildkitHost when it is unset.
func BuildkitHosts(getenv func(string) string) ([]string, error) {
	hosts, err := SplitHosts(getenv(BuildkitHost))
	if err != nil {
		return nil, &Error{BuildkitHost, err}
	}
	return hosts, nil
}

// SplitHosts splits a comma-separated list of buildkitd addresses, as
// BUILDKIT_HOST holds them, for a front end that takes the same list from
// its own input; "" is DefaultBuildkitHost.
func SplitHosts(value string) ([]string, error) {
	if strings.TrimSpace(value) == "" {
		return []string{DefaultBuildkitHost}, nil
	}
	var out []string
	for _, a := range strings.Split(value, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			return nil, fmt.Errorf("%q has an empty address: separate addresses with single commas", value)
		}
		out = append(out, a)
	}
	return out, nil
}

// Database returns DATABASE_URL, or else the user's default SQLite file
// (store.DefaultPath: under XDG_DATA_HOME or HOME).
func Database(getenv func(string) string) (string, error) {
	if u := strings.TrimSpace(getenv(DatabaseURL)); u != "" {
		return u, nil
	}
	p, err := store.DefaultPath(getenv)
	if err != nil {
		return "", &Error{Var: DatabaseURL, Err: err}
	}
	return p, nil
}

// ErrNoRepository says that neither the caller nor CONVOX_BUILD_REGISTRY
// gave an image repository.
var ErrNoRepository = errors.New("no image repository: " + Registry + " is not set")

// Repository returns the image repository of app: $CONVOX_BUILD_REGISTRY/app,
// or ErrNoRepository when CONVOX_BUILD_REGISTRY is unset.
func Repository(getenv func(string) string, app string) (string, error) {
	reg := strings.TrimSuffix(strings.TrimSpace(getenv(Registry)), "/")
	if reg == "" {
		return "", ErrNoRepository
	}
	if strings.Contains(reg, "://") {
		return "", &Error{Registry, fmt.Errorf("%q: give a registry host (and path), without scheme, e.g. registry.example.com", reg)}
	}
	return reg + "/" + app, nil
}

// GHACache is how to reach the GitHub Actions cache service.
type GHACache struct {
	// URL is ACTIONS_CACHE_URL (cache service v1), URLV2
	// ACTIONS_RESULTS_URL (v2), Token ACTIONS_RUNTIME_TOKEN.
	URL, URLV2, Token string
}

// GitHubActionsCache returns the Actions cache service settings; empty
// outside a GitHub Actions job.
func GitHubActionsCache(getenv func(string) string) GHACache {
	return GHACache{URL: getenv(ActionsCacheURL), URLV2: getenv(ActionsResultsURL), Token: getenv(ActionsRuntimeToken)}
}
