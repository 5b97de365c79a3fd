package registry

import (
	"cmp"
	"regexp"
	"slices"
	"strings"
)

// urlPattern finds URLs in free text.
var urlPattern = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]+`)

// Redact returns s with every secret replaced by "***", and in every URL the
// user information ("user:password@") and the query string and fragment
// (signed URLs, tokens) removed. Empty secrets are ignored.
func Redact(s string, secrets []string) string {
	s = urlPattern.ReplaceAllStringFunc(s, redactURL)
	secrets = slices.Clone(secrets)
	// Longest first, so a secret that contains another is replaced whole.
	slices.SortFunc(secrets, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "***")
		}
	}
	return s
}

func redactURL(u string) string {
	// Punctuation that ends a sentence or wraps the URL stays outside it.
	trimmed := strings.TrimRight(u, ".,;:)]}")
	tail := u[len(trimmed):]
	scheme, rest, _ := strings.Cut(trimmed, "://")
	authorityEnd := strings.IndexAny(rest, "/?#")
	if authorityEnd < 0 {
		authorityEnd = len(rest)
	}
	if at := strings.LastIndex(rest[:authorityEnd], "@"); at >= 0 {
		rest = rest[at+1:]
	}
	if q := strings.IndexAny(rest, "?#"); q >= 0 {
		rest = rest[:q]
	}
	return scheme + "://" + rest + tail
}
