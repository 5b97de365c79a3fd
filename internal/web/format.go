package web

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/ghclient"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

// ago says how long before now t was: "3 minutes ago".
func ago(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	unit := func(n int, name string) string {
		if n == 1 {
			return "1 " + name + " ago"
		}
		return fmt.Sprintf("%d %ss ago", n, name)
	}
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return unit(int(d/time.Minute), "minute")
	case d < 24*time.Hour:
		return unit(int(d/time.Hour), "hour")
	default:
		return unit(int(d/(24*time.Hour)), "day")
	}
}

// elapsed is how long the build took, or has taken so far.
func elapsed(b store.Build, now time.Time) string {
	if b.Started.IsZero() {
		return ""
	}
	end := b.Ended
	if end.IsZero() {
		end = now
	}
	return end.Sub(b.Started).Round(time.Second).String()
}

func randomToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// githubLogin asks GitHub whose token this is.
func githubLogin(ctx context.Context, apiURL, token string) (string, error) {
	gh, err := ghclient.New(apiURL, token, ghclient.Options{MaxRetries: 1})
	if err != nil {
		return "", err
	}
	u, _, err := gh.Users.Get(ctx, "")
	if err != nil {
		return "", ghclient.Redact(err)
	}
	if u.GetLogin() == "" {
		return "", fmt.Errorf("GitHub gave no login")
	}
	return u.GetLogin(), nil
}
