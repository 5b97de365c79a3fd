package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func baseEnv(t *testing.T) map[string]string {
	return map[string]string{
		"GITHUB_APP_ID":         "4242",
		"GITHUB_PRIVATE_KEY":    "-----BEGIN RSA PRIVATE KEY-----\nSECRETKEYBYTES\n-----END RSA PRIVATE KEY-----\n",
		"GITHUB_WEBHOOK_SECRET": "s3cret-webhook",
		"IMAGE_REPOSITORY":      "registry.example.com/{owner}/{repo}",
		"HOME":                  t.TempDir(),
	}
}

func TestConfigDefaults(t *testing.T) {
	e := baseEnv(t)
	l, err := loadConfig(e)
	if err != nil {
		t.Fatal(err)
	}
	c := l.server
	if c.AppID != 4242 || string(c.WebhookSecret) != "s3cret-webhook" || c.ListenAddr != ":8080" || c.Workers != 2 ||
		c.BuildTimeout != 30*time.Minute || c.DrainTimeout != time.Minute || c.CheckUpdateInterval != 5*time.Second ||
		c.HeartbeatInterval != 5*time.Second || c.Policy.BuildForks || c.Policy.BuildTags || c.Policy.AppID != 4242 ||
		c.DataDir != filepath.Join(e["HOME"], ".local", "share", "convox-build") || c.DatabaseURL != "" ||
		len(c.BuildkitHosts) != 1 || c.BuildkitHosts[0] != "unix:///run/buildkit/buildkitd.sock" ||
		c.SourceLimits.MaxBytes != 1<<30 || c.SourceLimits.MaxFiles != 100000 || l.logLevel.String() != "INFO" {
		t.Errorf("defaults: %+v", c)
	}
	summary := fmt.Sprint(l.summary...)
	for _, secret := range []string{"s3cret-webhook", "SECRETKEYBYTES"} {
		if strings.Contains(summary, secret) {
			t.Errorf("start-up summary shows a secret: %s", summary)
		}
	}
}

func TestConfigSettings(t *testing.T) {
	e := baseEnv(t)
	delete(e, "GITHUB_PRIVATE_KEY")
	keyFile := filepath.Join(t.TempDir(), "app.pem")
	os.WriteFile(keyFile, []byte("PEMFROMFILE"), 0o600)
	for k, v := range map[string]string{
		"GITHUB_PRIVATE_KEY_FILE": keyFile, "GITHUB_API_URL": "https://ghe.example.com/api/v3/",
		"DATABASE_URL": "postgres://u:dbpassword@db/builds", "DATA_DIR": "/srv/builds", "BUILDKIT_HOST": "tcp://a:1234,tcp://b:1234",
		"PUBLIC_URL": "https://builds.example.com", "LISTEN_ADDR": "127.0.0.1:9000", "WORKERS": "4", "BUILD_FORKS": "true",
		"BUILD_TAGS": "true", "BUILD_TIMEOUT": "10m", "DRAIN_TIMEOUT": "2m", "CHECK_UPDATE_INTERVAL": "1s",
		"HEARTBEAT_INTERVAL": "2s", "LOG_LEVEL": "debug", "REGISTRY_AUTH": "registry.example.com=bot:regpassword\n",
	} {
		e[k] = v
	}
	l, err := loadConfig(e)
	if err != nil {
		t.Fatal(err)
	}
	c := l.server
	if string(c.PrivateKey) != "PEMFROMFILE" || c.GitHubAPIURL != "https://ghe.example.com/api/v3/" || c.DataDir != "/srv/builds" ||
		len(c.BuildkitHosts) != 2 || c.PublicURL != "https://builds.example.com" || c.ListenAddr != "127.0.0.1:9000" ||
		c.Workers != 4 || !c.Policy.BuildForks || !c.Policy.BuildTags || c.BuildTimeout != 10*time.Minute ||
		c.DrainTimeout != 2*time.Minute || c.CheckUpdateInterval != time.Second || c.HeartbeatInterval != 2*time.Second ||
		l.logLevel.String() != "DEBUG" {
		t.Errorf("settings: %+v", c)
	}
	if u, p, err := c.Registry.Auth.Credentials(t.Context(), "registry.example.com"); err != nil || u != "bot" || p != "regpassword" {
		t.Errorf("registry credentials: %q %q %v", u, p, err)
	}
	summary := fmt.Sprint(l.summary...)
	if strings.Contains(summary, "dbpassword") || strings.Contains(summary, "regpassword") || !strings.Contains(summary, "postgres://u:***@db/builds") {
		t.Errorf("summary: %s", summary)
	}

	// Without IMAGE_REPOSITORY, CONVOX_BUILD_REGISTRY/{app}.
	e = baseEnv(t)
	delete(e, "IMAGE_REPOSITORY")
	e["CONVOX_BUILD_REGISTRY"] = "127.0.0.1:5000"
	if l, err := loadConfig(e); err != nil || l.server.ImageRepository != "127.0.0.1:5000/{app}" {
		t.Errorf("repository from CONVOX_BUILD_REGISTRY: %+v, %v", l, err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change map[string]string
		want   string
	}{
		{"no secret", map[string]string{"GITHUB_WEBHOOK_SECRET": ""}, "GITHUB_WEBHOOK_SECRET is not set or empty: the server does not start without it"},
		{"no app", map[string]string{"GITHUB_APP_ID": ""}, "GITHUB_APP_ID is not set"},
		{"bad app", map[string]string{"GITHUB_APP_ID": "four"}, "GITHUB_APP_ID"},
		{"no key", map[string]string{"GITHUB_PRIVATE_KEY": ""}, "neither GITHUB_PRIVATE_KEY nor GITHUB_PRIVATE_KEY_FILE is set"},
		{"two keys", map[string]string{"GITHUB_PRIVATE_KEY_FILE": "/x.pem"}, "GITHUB_PRIVATE_KEY and GITHUB_PRIVATE_KEY_FILE are both set"},
		{"missing key file", map[string]string{"GITHUB_PRIVATE_KEY": "", "GITHUB_PRIVATE_KEY_FILE": "/nonexistent/app.pem"}, "GITHUB_PRIVATE_KEY_FILE: open /nonexistent/app.pem"},
		{"no repository", map[string]string{"IMAGE_REPOSITORY": ""}, "IMAGE_REPOSITORY: no image repository"},
		{"bad placeholder", map[string]string{"IMAGE_REPOSITORY": "r.example.com/{org}/{repo}"}, "the placeholders are {owner}, {repo} and {app}"},
		{"scheme", map[string]string{"IMAGE_REPOSITORY": "https://r.example.com/x"}, "without scheme"},
		{"workers", map[string]string{"WORKERS": "0"}, "WORKERS=0: want at least 1"},
		{"level", map[string]string{"LOG_LEVEL": "loud"}, `LOG_LEVEL "loud"`},
		{"timeout", map[string]string{"BUILD_TIMEOUT": "soon"}, "BUILD_TIMEOUT"},
		{"buildkit", map[string]string{"BUILDKIT_HOST": "unix:///a,,unix:///b"}, "BUILDKIT_HOST"},
		{"registry pair", map[string]string{"REGISTRY_AUTH": "registry.example.com:bot:pw-not-shown"}, "REGISTRY_AUTH"},
		{"mirrors", map[string]string{"REGISTRY_MIRRORS": "nonsense"}, "REGISTRY_MIRRORS"},
		{"public url", map[string]string{"PUBLIC_URL": "builds.example.com"}, "PUBLIC_URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := baseEnv(t)
			for k, v := range tc.change {
				e[k] = v
			}
			_, err := loadConfig(e)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want %q", err, tc.want)
			}
			for _, secret := range []string{"s3cret-webhook", "SECRETKEYBYTES", "pw-not-shown"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a secret: %v", err)
				}
			}
		})
	}
}

// TestRefusesToStartWithoutSecret runs the command's entry point.
func TestRefusesToStartWithoutSecret(t *testing.T) {
	e := baseEnv(t)
	delete(e, "GITHUB_WEBHOOK_SECRET")
	var stderr bytes.Buffer
	if code := run(context.Background(), e, &stderr); code != 2 || !strings.Contains(stderr.String(), "GITHUB_WEBHOOK_SECRET is not set or empty") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
