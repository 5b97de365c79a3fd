package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Error is a failed registry operation. Its text names what was being done,
// the image reference (which names the registry) and the HTTP status, and is
// redacted: no credentials, no URL query strings.
type Error struct {
	// Op is what was being done: "pulling", "pushing", "resolving" or
	// "reading the config of".
	Op string
	// Ref is the fully qualified image reference
	// ("index.docker.io/library/postgres:15").
	Ref string
	// Host is the host that failed: the registry of Ref, or another one it
	// sent the client to (a token server, blob storage).
	Host string
	// StatusCode is the HTTP status of the failing answer; 0 when there was
	// none (the registry could not be reached).
	StatusCode int

	msg   string
	cause error
}

func (e *Error) Error() string { return e.Op + " " + e.Ref + ": " + e.msg }

// Unwrap gives context.Canceled or context.DeadlineExceeded when the
// operation was cut short by its context, else nil: the underlying errors are
// not exposed, as their text is not redacted.
func (e *Error) Unwrap() error { return e.cause }

// newError describes err, from doing op on ref (a registry host and path),
// for a person.
func (c *call) newError(op, ref, registryHost string, err error) *Error {
	e := &Error{Op: op, Ref: ref, Host: registryHost}
	var terr *transport.Error
	var opErr *net.OpError
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, context.Canceled):
		e.cause, e.msg = context.Canceled, context.Canceled.Error()
	case errors.Is(err, context.DeadlineExceeded):
		e.cause, e.msg = context.DeadlineExceeded, context.DeadlineExceeded.Error()
	case errors.As(err, &terr):
		e.StatusCode = terr.StatusCode
		e.msg = fmt.Sprintf("%d %s", terr.StatusCode, http.StatusText(terr.StatusCode))
		var details []string
		for _, d := range terr.Errors {
			detail := d.Message
			if detail == "" {
				detail = strings.ToLower(strings.ReplaceAll(string(d.Code), "_", " "))
			}
			if !slices.Contains(details, detail) {
				details = append(details, detail)
			}
		}
		if len(details) > 0 {
			e.msg += ": " + strings.Join(details, "; ")
		}
		if terr.Request != nil && terr.Request.URL != nil && terr.Request.URL.Host != "" {
			e.Host = terr.Request.URL.Host
		}
	case errors.As(err, &opErr):
		e.msg = opErr.Error()
	case errors.As(err, &dnsErr):
		e.msg = dnsErr.Error()
	default:
		e.msg = err.Error()
	}
	if e.Host != registryHost {
		e.msg += " (from " + e.Host + ")"
	}
	if e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden {
		e.msg += c.credentialsHint(registryHost)
	}
	if n := c.rt.gaveUp(e.Host); n > 1 {
		e.msg += fmt.Sprintf(" (gave up after %d attempts)", n)
	}
	e.msg = Redact(e.msg, c.secrets())
	return e
}

// credentialsHint says whether this call had credentials for host, for a 401
// or 403.
func (c *call) credentialsHint(host string) string {
	if c.opts.Auth != nil {
		if cred, err := c.opts.Auth.lookup(host); err == nil && cred != (credential{}) {
			return " (the credentials for " + host + " were refused or lack access)"
		}
	}
	return " (no credentials for " + host + "; give host=user:password or use docker login)"
}
