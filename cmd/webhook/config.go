package main

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v10"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/envconfig"
	"github.com/convox-build-action/convox-build-action/internal/ghapp"
	"github.com/convox-build-action/convox-build-action/internal/server"
	"github.com/convox-build-action/convox-build-action/internal/webhook"
)

// config is the server's environment (README, "Webhook server"). Registry
// credentials also come from the variables envconfig reads:
// DOCKER_HUB_USERNAME and DOCKER_HUB_PASSWORD, DOCKER_CONFIG,
// CONVOX_BUILD_REGISTRY_INSECURE, REGISTRY_MIRRORS.
type config struct {
	AppID               int64         `env:"GITHUB_APP_ID"`
	PrivateKey          string        `env:"GITHUB_PRIVATE_KEY"`
	PrivateKeyFile      string        `env:"GITHUB_PRIVATE_KEY_FILE"`
	WebhookSecret       string        `env:"GITHUB_WEBHOOK_SECRET"`
	GitHubAPIURL        string        `env:"GITHUB_API_URL"`
	DataDir             string        `env:"DATA_DIR"`
	DatabaseURL         string        `env:"DATABASE_URL"`
	BuildkitTLSCACert   string        `env:"BUILDKIT_TLS_CA_CERT"`
	BuildkitTLSCert     string        `env:"BUILDKIT_TLS_CERT"`
	BuildkitTLSKey      string        `env:"BUILDKIT_TLS_KEY"`
	ImageRepository     string        `env:"IMAGE_REPOSITORY"`
	RegistryAuth        string        `env:"REGISTRY_AUTH"`
	PublicURL           string        `env:"PUBLIC_URL"`
	ListenAddr          string        `env:"LISTEN_ADDR" envDefault:":8080"`
	Workers             int           `env:"WORKERS" envDefault:"2"`
	BuildForks          bool          `env:"BUILD_FORKS" envDefault:"false"`
	BuildTags           bool          `env:"BUILD_TAGS" envDefault:"false"`
	BuildTimeout        time.Duration `env:"BUILD_TIMEOUT" envDefault:"30m"`
	DrainTimeout        time.Duration `env:"DRAIN_TIMEOUT" envDefault:"60s"`
	CheckUpdateInterval time.Duration `env:"CHECK_UPDATE_INTERVAL" envDefault:"5s"`
	HeartbeatInterval   time.Duration `env:"HEARTBEAT_INTERVAL" envDefault:"5s"`
	MaxSourceBytes      int64         `env:"MAX_SOURCE_BYTES" envDefault:"1073741824"`
	MaxSourceFiles      int           `env:"MAX_SOURCE_FILES" envDefault:"100000"`
	LogLevel            string        `env:"LOG_LEVEL" envDefault:"info"`
	APIToken            string        `env:"API_TOKEN"`
	PublicPages         bool          `env:"PUBLIC_PAGES" envDefault:"false"`
	ClientID            string        `env:"GITHUB_CLIENT_ID"`
	ClientSecret        string        `env:"GITHUB_CLIENT_SECRET"`
	SessionSecret       string        `env:"SESSION_SECRET"`
	GitHubURL           string        `env:"GITHUB_URL"`
}

// loaded is the configuration the server runs with.
type loaded struct {
	server   server.Config
	logLevel slog.Level
	// summary is what is logged at start-up: no secrets.
	summary []any
}

// loadConfig reads the server's configuration from environ (a variable
// name to value map). Its errors name the variable and never show a
// secret.
func loadConfig(environ map[string]string) (*loaded, error) {
	var c config
	if err := env.ParseWithOptions(&c, env.Options{Environment: environ}); err != nil {
		return nil, explainEnvError(err)
	}
	getenv := func(k string) string { return environ[k] }
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.WebhookSecret == "" {
		fail("GITHUB_WEBHOOK_SECRET is not set or empty: the server does not start without it, since every delivery must be signed with it")
	}
	if c.AppID <= 0 {
		fail("GITHUB_APP_ID is not set: give the GitHub App's ID (its settings page shows it)")
	}
	key := []byte(c.PrivateKey)
	switch {
	case c.PrivateKey != "" && c.PrivateKeyFile != "":
		fail("GITHUB_PRIVATE_KEY and GITHUB_PRIVATE_KEY_FILE are both set: give one")
	case c.PrivateKeyFile != "":
		var err error
		if key, err = readFile(c.PrivateKeyFile); err != nil {
			fail("GITHUB_PRIVATE_KEY_FILE: %v", err)
		}
	case c.PrivateKey == "":
		fail("neither GITHUB_PRIVATE_KEY nor GITHUB_PRIVATE_KEY_FILE is set: give the GitHub App's private key (PEM)")
	}
	if c.GitHubAPIURL != "" && !strings.HasPrefix(c.GitHubAPIURL, "https://") && !strings.HasPrefix(c.GitHubAPIURL, "http://") {
		fail("GITHUB_API_URL %q: want a URL such as https://ghe.example.com/api/v3/", c.GitHubAPIURL)
	}
	if c.DataDir == "" {
		c.DataDir = defaultDataDir(getenv)
		if c.DataDir == "" {
			fail("DATA_DIR is not set and neither are XDG_DATA_HOME nor HOME: give a directory for the database and sources")
		}
	}
	if c.ImageRepository == "" {
		if reg, err := envconfig.Repository(getenv, "{app}"); err == nil {
			c.ImageRepository = reg
		}
	}
	if err := server.CheckRepositoryTemplate(c.ImageRepository); err != nil {
		fail("IMAGE_REPOSITORY: %v", err)
	}
	hosts, err := envconfig.BuildkitHosts(getenv)
	if err != nil {
		errs = append(errs, err)
	}
	var pairs []string
	for _, line := range strings.Split(c.RegistryAuth, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			pairs = append(pairs, line)
		}
	}
	reg, err := envconfig.RegistryOptions(getenv, pairs)
	if err != nil {
		var ee *envconfig.Error
		if errors.As(err, &ee) {
			errs = append(errs, err)
		} else {
			fail("REGISTRY_AUTH: %v", err)
		}
	}
	if c.PublicURL != "" && !strings.HasPrefix(c.PublicURL, "https://") && !strings.HasPrefix(c.PublicURL, "http://") {
		fail("PUBLIC_URL %q: want the URL the server is reached at, such as https://builds.example.com", c.PublicURL)
	}
	if c.Workers < 1 {
		fail("WORKERS=%d: want at least 1", c.Workers)
	}
	for name, d := range map[string]time.Duration{"BUILD_TIMEOUT": c.BuildTimeout, "DRAIN_TIMEOUT": c.DrainTimeout,
		"CHECK_UPDATE_INTERVAL": c.CheckUpdateInterval, "HEARTBEAT_INTERVAL": c.HeartbeatInterval} {
		if d <= 0 {
			fail("%s=%s: want a positive duration such as 30s", name, d)
		}
	}
	if (c.ClientID == "") != (c.ClientSecret == "") {
		fail("GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET go together: give both (signing in to the build pages) or neither")
	}
	if c.SessionSecret != "" && len(c.SessionSecret) < 16 {
		fail("SESSION_SECRET: at least 16 characters are needed")
	}
	if c.APIToken != "" && len(c.APIToken) < 16 {
		fail("API_TOKEN: at least 16 characters are needed (a random token: openssl rand -hex 32)")
	}
	if c.GitHubURL != "" && !strings.HasPrefix(c.GitHubURL, "https://") && !strings.HasPrefix(c.GitHubURL, "http://") {
		fail("GITHUB_URL %q: want GitHub's web address, such as https://ghe.example.com", c.GitHubURL)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		fail("LOG_LEVEL %q: want debug, info, warn or error", c.LogLevel)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	l := &loaded{logLevel: level, server: server.Config{
		AppID:               c.AppID,
		PrivateKey:          key,
		WebhookSecret:       []byte(c.WebhookSecret),
		GitHubAPIURL:        c.GitHubAPIURL,
		DatabaseURL:         c.DatabaseURL,
		DataDir:             c.DataDir,
		BuildkitHosts:       hosts,
		BuildkitTLS:         build.DialOptions{CACert: c.BuildkitTLSCACert, Cert: c.BuildkitTLSCert, Key: c.BuildkitTLSKey},
		ImageRepository:     c.ImageRepository,
		Registry:            reg,
		PublicURL:           c.PublicURL,
		ListenAddr:          c.ListenAddr,
		Workers:             c.Workers,
		Policy:              webhook.Policy{BuildForks: c.BuildForks, BuildTags: c.BuildTags, AppID: c.AppID},
		BuildTimeout:        c.BuildTimeout,
		DrainTimeout:        c.DrainTimeout,
		CheckUpdateInterval: c.CheckUpdateInterval,
		HeartbeatInterval:   c.HeartbeatInterval,
		SourceLimits:        ghapp.Limits{MaxBytes: c.MaxSourceBytes, MaxFiles: c.MaxSourceFiles},
		APIToken:            c.APIToken,
		PublicPages:         c.PublicPages,
		OAuthClientID:       c.ClientID,
		OAuthClientSecret:   c.ClientSecret,
		SessionSecret:       []byte(c.SessionSecret),
		GitHubURL:           c.GitHubURL,
	}}
	database := "sqlite (" + filepath.Join(c.DataDir, "builds.db") + ")"
	if c.DatabaseURL != "" {
		database = redactURL(c.DatabaseURL)
	}
	l.summary = []any{
		"app_id", c.AppID, "github_api", orDefault(c.GitHubAPIURL, "https://api.github.com/"),
		"database", database, "data_dir", c.DataDir, "buildkit_hosts", hosts,
		"image_repository", c.ImageRepository, "public_url", c.PublicURL, "listen_addr", c.ListenAddr,
		"workers", c.Workers, "build_forks", c.BuildForks, "build_tags", c.BuildTags,
		"build_timeout", c.BuildTimeout.String(), "drain_timeout", c.DrainTimeout.String(),
		"registry_credentials", len(pairs), "log_level", level.String(),
		"api", c.APIToken != "", "pages", pagesMode(c),
	}
	return l, nil
}

// explainEnvError names the variables of env's parse errors (it names
// struct fields).
func explainEnvError(err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	var out []error
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if f, ok := reflect.TypeOf(config{}).FieldByName(pe.Name); ok {
				name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
				out = append(out, fmt.Errorf("%s: %v", name, pe.Err))
				continue
			}
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// pagesMode says how the build pages are served.
func pagesMode(c config) string {
	switch {
	case c.PublicPages:
		return "public"
	case c.ClientID != "":
		return "sign in with GitHub"
	default:
		return "off"
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// defaultDataDir is $XDG_DATA_HOME/convox-build, else
// $HOME/.local/share/convox-build.
func defaultDataDir(getenv func(string) string) string {
	if d := getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "convox-build")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "convox-build")
	}
	return ""
}
