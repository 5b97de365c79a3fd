package build_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/convox-build-action/convox-build-action/internal/devenv"
	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

func TestBuildToRegistryRequiringAuth(t *testing.T) {
	h := newHarness(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("hunter2-registry"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(htpasswd, []byte("ci:"+string(hash)+"\n"), 0o600)
	private := testenv.Registry(t, devenv.RegistryOptions{Htpasswd: htpasswd})

	req := h.request(t, "multi")
	req.Repository = private.Addr + "/multi"
	req.Services = []string{"api", "cache"} // a build and an image copy

	// Without credentials: failed, naming the registry and the 401.
	b, err := h.engine.Run(context.Background(), req)
	if err == nil {
		t.Fatal("push to a registry requiring auth succeeded without credentials")
	}
	t.Logf("without credentials: %v", err)
	if !strings.Contains(err.Error(), private.Addr) || !strings.Contains(err.Error(), "401") {
		t.Errorf("error %q should name %s and the 401", err, private.Addr)
	}
	if b == nil || b.Status != store.StatusFailed {
		t.Errorf("build = %+v, want failed", b)
	}

	// With credentials: complete, and the password appears nowhere.
	auth, err := registry.NewAuth(registry.AuthOptions{Pairs: []string{private.Addr + "=ci:hunter2-registry"}})
	if err != nil {
		t.Fatal(err)
	}
	req.Registry.Auth = auth
	b, err = h.engine.Run(context.Background(), req)
	if err != nil {
		t.Fatalf("build with credentials: %v", err)
	}
	if len(b.Services) != 2 {
		t.Fatalf("services = %+v", b.Services)
	}
	opts := registry.Options{Auth: auth}
	for _, s := range b.Services {
		d, err := registry.Digest(context.Background(), s.Image, opts)
		if err != nil || d != s.Digest {
			t.Errorf("%s: registry digest %s, %v; recorded %s", s.Image, d, err, s.Digest)
		}
	}
	if strings.Contains(storedLogs(t, h.store, b.ID), "hunter2-registry") {
		t.Error("the registry password is in the build log")
	}
}
