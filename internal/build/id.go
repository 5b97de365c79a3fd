package build

import (
	"crypto/rand"
	"fmt"
	"regexp"
)

// NewID returns a Convox ID: prefix ("B" for builds, "R" for releases)
// followed by 10 random uppercase letters.
func NewID(prefix string) string {
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	var b [10]byte
	// 256 = 9*26 + 22: reject bytes >= 234 so every letter is equally likely.
	out := make([]byte, 0, 10)
	for len(out) < 10 {
		if _, err := rand.Read(b[:]); err != nil {
			panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on Linux
		}
		for _, c := range b {
			if c < 234 && len(out) < 10 {
				out = append(out, letters[int(c)%26])
			}
		}
	}
	return prefix + string(out)
}

var buildIDPattern = regexp.MustCompile(`^B[A-Z]{10}$`)

// ValidBuildID reports whether id looks like a build ID ("BQULMXNMEIU").
func ValidBuildID(id string) bool { return buildIDPattern.MatchString(id) }

// CheckBuildID returns a clear error for a malformed build ID.
func CheckBuildID(id string) error {
	if !ValidBuildID(id) {
		return &InputError{Field: FieldID, Err: fmt.Errorf("invalid build ID %q: a build ID is B followed by 10 uppercase letters, like BQULMXNMEIU", id)}
	}
	return nil
}
