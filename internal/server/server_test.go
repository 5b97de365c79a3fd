package server

import (
	"strings"
	"testing"
)

func TestCheckRepositoryTemplate(t *testing.T) {
	for tmpl, want := range map[string]string{
		"registry.example.com/{owner}/{repo}": "",
		"127.0.0.1:5000/{app}":                "",
		"ghcr.io/acme/{repo}":                 "",
		"":                                    "no image repository",
		"registry.example.com":                "want a registry host and a path",
		"https://registry.example.com/x":      "without scheme",
		"registry.example.com/{org}/{repo}":   "the placeholders are {owner}, {repo} and {app}",
		"registry example.com/x":              "without scheme",
	} {
		err := CheckRepositoryTemplate(tmpl)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("CheckRepositoryTemplate(%q) = %v; want %q", tmpl, err, want)
		}
	}
	s := &Server{cfg: Config{ImageRepository: "registry.example.com/{owner}/{repo}/{app}"}}
	if got := s.repository("Acme", "Shop.Web", "shop-web"); got != "registry.example.com/acme/shop.web/shop-web" {
		t.Errorf("repository = %q", got)
	}
}

func TestBuildURL(t *testing.T) {
	for _, tc := range []struct{ public, want string }{
		{"https://builds.example.com", "https://builds.example.com/apps/shop/builds/BQULMXNMEIU"},
		{"https://builds.example.com/", "https://builds.example.com/apps/shop/builds/BQULMXNMEIU"},
		{"", ""},
	} {
		if got := BuildURL(tc.public, "shop", "BQULMXNMEIU"); got != tc.want {
			t.Errorf("BuildURL(%q) = %q, want %q", tc.public, got, tc.want)
		}
	}
}
