package registry

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/credentials"
	"github.com/google/go-containerregistry/pkg/authn"
)

// dockerHub is the canonical host this package uses for Docker Hub, whatever
// name a caller or a library gives it.
const dockerHub = "docker.io"

// helperCacheTTL is how long an answer from a credential helper is reused
// before the helper is asked again.
const helperCacheTTL = 5 * time.Minute

// AuthOptions configure NewAuth. The zero value reads only the Docker config
// file at its default place.
type AuthOptions struct {
	// Pairs are explicit credentials, each "host=user:password" (see
	// ParsePair). They win over every other source. Default none.
	Pairs []string
	// DockerHubUsername and DockerHubPassword (a password or an access
	// token) are offered to Docker Hub (docker.io, index.docker.io,
	// registry-1.docker.io), to lift its anonymous pull rate limit. Convox's
	// rack parameters call them DOCKER_HUB_USERNAME and DOCKER_HUB_PASSWORD;
	// reading the environment is the caller's job. Both or neither; default
	// neither.
	DockerHubUsername string
	DockerHubPassword string
	// DockerConfigDir is the directory holding the Docker config.json;
	// callers pass $DOCKER_CONFIG, or ~/.docker, here (internal/envconfig
	// does). Empty: no Docker config is read. A missing file is no error.
	DockerConfigDir string
}

// Auth resolves registry credentials, in this order: explicit
// host=user:password pairs; the Docker Hub username and token for docker.io,
// index.docker.io and registry-1.docker.io; the Docker config file
// (AuthOptions.DockerConfigDir/config.json) with its
// `auths` entries and credential helpers (`credHelpers`, `credsStore`), read
// through docker/cli; else anonymous.
//
// Like the docker CLI, the config-file step also honours DOCKER_AUTH_CONFIG.
// An Auth is safe for concurrent use; a nil *Auth is anonymous. Answers from
// credential helpers are reused for five minutes.
type Auth struct {
	pairs map[string]credential // by canonical host
	hub   *credential
	cf    *configfile.ConfigFile

	mu      sync.Mutex
	helper  map[string]cachedCredential // helper answers by canonical host
	secrets []string
}

// credential is one registry login. IdentityToken, when set, replaces the
// password (an OAuth refresh token, as Docker credential helpers return for
// the user "<token>").
type credential struct {
	Username, Password, IdentityToken string
}

type cachedCredential struct {
	cred    credential
	fetched time.Time
}

// NewAuth loads the Docker config file and checks the explicit credentials.
// It does not run credential helpers: they run when a host's credentials are
// first asked for.
func NewAuth(opts AuthOptions) (*Auth, error) {
	a := &Auth{pairs: map[string]credential{}, helper: map[string]cachedCredential{}}
	for _, p := range opts.Pairs {
		host, user, password, err := ParsePair(p)
		if err != nil {
			return nil, err
		}
		if _, dup := a.pairs[host]; dup {
			return nil, fmt.Errorf("registry credentials: two pairs for %s; give one", host)
		}
		a.pairs[host] = credential{Username: user, Password: password}
		a.addCredentialSecrets(user, password)
	}

	switch u, p := opts.DockerHubUsername, opts.DockerHubPassword; {
	case u != "" && p == "":
		return nil, errors.New("docker hub credentials: a username without a password; give both or neither")
	case u == "" && p != "":
		return nil, errors.New("docker hub credentials: a password without a username; give both or neither")
	case u != "":
		a.hub = &credential{Username: u, Password: p}
		a.addCredentialSecrets(u, p)
	}

	dir := opts.DockerConfigDir
	if dir == "" {
		return a, nil // no Docker config to read
	}
	cf, err := config.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the Docker config file in %s: %w", dir, err)
	}
	a.cf = cf
	for _, ac := range cf.GetAuthConfigs() {
		a.addCredentialSecrets(ac.Username, ac.Password)
		a.addSecret(ac.IdentityToken, ac.RegistryToken)
	}
	return a, nil
}

// ParsePair splits "host=user:password". The host may carry a port, and a
// scheme or path is dropped ("https://ghcr.io/" is ghcr.io); Docker Hub's
// names (docker.io, index.docker.io, registry-1.docker.io) all mean Docker
// Hub. The password may contain ':' and '='. Errors name the host and user
// but never show the password.
func ParsePair(s string) (host, user, password string, err error) {
	rawHost, rest, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", "", errors.New(`registry credential: no "=" (want host=user:password; the value is not shown as it may hold a secret)`)
	}
	host = canonicalHost(rawHost)
	if host == "" {
		return "", "", "", errors.New(`registry credential: empty host (want host=user:password)`)
	}
	if strings.ContainsAny(host, " \t\r\n") {
		return "", "", "", fmt.Errorf("registry credential for %q: the host contains white space (want host=user:password)", host)
	}
	user, password, ok = strings.Cut(rest, ":")
	if !ok {
		return "", "", "", fmt.Errorf(`registry credential for %s: no ":" after the "=" (want host=user:password; the value is not shown as it may hold a secret)`, host)
	}
	if user == "" {
		return "", "", "", fmt.Errorf("registry credential for %s: empty user (want host=user:password)", host)
	}
	if password == "" {
		return "", "", "", fmt.Errorf("registry credential for %s: empty password for user %q (want host=user:password)", host, user)
	}
	return host, user, password, nil
}

// canonicalHost turns a registry name, URL or config-file key into the host
// this package files credentials under.
func canonicalHost(s string) string {
	h := strings.ToLower(credentials.ConvertToHostname(strings.TrimSpace(s)))
	switch h {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		return dockerHub
	}
	return h
}

// Credentials returns the user and secret for a registry host, as BuildKit's
// session auth provider asks for them (it names Docker Hub
// "registry-1.docker.io"). Empty user and secret mean anonymous. For an
// identity token the user is empty and the secret is the token, as BuildKit
// expects.
func (a *Auth) Credentials(ctx context.Context, host string) (user, secret string, err error) {
	if err := ctx.Err(); err != nil {
		return "", "", err
	}
	c, err := a.lookup(host)
	if err != nil {
		return "", "", err
	}
	if c.IdentityToken != "" {
		return "", c.IdentityToken, nil
	}
	return c.Username, c.Password, nil
}

// Keychain returns the credentials as a go-containerregistry keychain.
func (a *Auth) Keychain() authn.Keychain { return keychain{a} }

// Secrets returns every secret value the Auth holds or has fetched so far
// (passwords, tokens, base64 "auth" fields), for Redact.
func (a *Auth) Secrets() []string {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.secrets)
}

// addCredentialSecrets records a password and the base64 "user:password"
// that Basic auth headers and config files carry.
func (a *Auth) addCredentialSecrets(user, password string) {
	if password == "" {
		return
	}
	a.addSecret(password, base64.StdEncoding.EncodeToString([]byte(user+":"+password)))
}

func (a *Auth) addSecret(values ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, v := range values {
		if v != "" && !slices.Contains(a.secrets, v) {
			a.secrets = append(a.secrets, v)
		}
	}
}

// lookup finds the credential for host; the zero credential is anonymous.
func (a *Auth) lookup(rawHost string) (credential, error) {
	if a == nil {
		return credential{}, nil
	}
	host := canonicalHost(rawHost)
	if c, ok := a.pairs[host]; ok {
		return c, nil
	}
	if host == dockerHub && a.hub != nil {
		return *a.hub, nil
	}
	if a.cf == nil {
		return credential{}, nil
	}

	a.mu.Lock()
	cached, ok := a.helper[host]
	a.mu.Unlock()
	if ok && time.Since(cached.fetched) < helperCacheTTL {
		return cached.cred, nil
	}

	// configfile files Docker Hub under "https://index.docker.io/v1/" when
	// asked for docker.io, and runs the credential helper configured for the
	// host, or credsStore, or reads `auths`.
	ac, err := a.cf.GetAuthConfig(host)
	if err != nil {
		where := "the Docker config file"
		if helper := a.helperFor(host); helper != "" {
			where = "docker-credential-" + helper + " (Docker config file)"
		}
		return credential{}, fmt.Errorf("getting credentials for %s from %s: %s", host, where, Redact(err.Error(), a.Secrets()))
	}
	c := credential{Username: ac.Username, Password: ac.Password, IdentityToken: ac.IdentityToken}
	if c.Password == "" && c.IdentityToken == "" && ac.RegistryToken != "" {
		c.Password = ac.RegistryToken
	}
	a.addCredentialSecrets(c.Username, c.Password)
	a.addSecret(c.IdentityToken)
	a.mu.Lock()
	a.helper[host] = cachedCredential{cred: c, fetched: time.Now()}
	a.mu.Unlock()
	return c, nil
}

// helperFor names the credential helper the config file sets for host.
func (a *Auth) helperFor(host string) string {
	key := host
	if host == dockerHub {
		key = "https://index.docker.io/v1/"
	}
	if h, ok := a.cf.CredentialHelpers[key]; ok {
		return h
	}
	return a.cf.CredentialsStore
}

// keychain adapts Auth to go-containerregistry.
type keychain struct{ a *Auth }

func (k keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), r)
}

func (k keychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := k.a.lookup(r.RegistryStr())
	if err != nil {
		return nil, err
	}
	if c == (credential{}) {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(authn.AuthConfig{Username: c.Username, Password: c.Password, IdentityToken: c.IdentityToken}), nil
}
