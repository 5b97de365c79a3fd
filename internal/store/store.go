// Package store keeps builds, releases and build logs in one database:
// a SQLite file by default, or PostgreSQL when given a postgres:// URL.
//
// Open applies the schema migrations (tables builds, releases, build_logs
// and schema_migrations) before it returns, so a database can be shared
// with other users such as a job queue that keep their own tables. Times
// are stored in UTC with microsecond precision; a zero time.Time means
// "not set" and is stored as NULL.
//
// The store logs nothing. Errors say what was being done and never contain
// the password of a database URL.
package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// Sentinel errors, to be tested with errors.Is. Returned errors wrap them
// with the kind and ID of the record, e.g. "build BQULMXNMEIU: not found".
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrEnded is Heartbeat's error for a build that is no longer created
	// or running: another process marked it ended.
	ErrEnded = errors.New("has ended")
)

// Status is the state of a Build: created, then running, then complete or
// failed.
type Status string

// Build statuses, spelled as Convox does.
const (
	StatusCreated  Status = "created"
	StatusRunning  Status = "running"
	StatusComplete Status = "complete"
	StatusFailed   Status = "failed"
)

func (s Status) valid() bool {
	switch s {
	case StatusCreated, StatusRunning, StatusComplete, StatusFailed:
		return true
	}
	return false
}

// Build is one build of an app: every service compiled into an image.
type Build struct {
	ID          string
	App         string
	Description string
	Entrypoint  string
	GitSHA      string
	Manifest    string // the convox.yml text
	Process     string
	Release     string // ID of the Release made from this build, if any
	Reason      string // why the build failed
	Repository  string
	Status      Status
	Started     time.Time // zero when unset
	Ended       time.Time // zero when unset
	// Services holds each service's result, in the order given.
	Services []ServiceImage
	// Heartbeat is the last liveness mark of the process running the
	// build; see Store.Heartbeat and Store.FailStale.
	Heartbeat time.Time
}

// ServiceImage is what building one service produced.
type ServiceImage struct {
	Service     string `json:"service"`
	Image       string `json:"image"` // <repository>:<service>.<BUILDID>
	Digest      string `json:"digest,omitempty"`
	Entrypoint  string `json:"entrypoint,omitempty"`
	ImageOnly   bool   `json:"image-only,omitempty"` // copied from `image:`, not built
	DurationMS  int64  `json:"duration-ms,omitempty"`
	CachedSteps int    `json:"cached-steps,omitempty"`
	TotalSteps  int    `json:"total-steps,omitempty"`
}

// Release references the Build a deploy would use.
type Release struct {
	ID          string
	App         string
	Build       string // Build ID
	Manifest    string
	Description string
	Created     time.Time // set to the current time by CreateRelease when zero
}

// LogLine is one line of a build's log.
type LogLine struct {
	Seq  int64 // 1, 2, 3... per build, in the order the lines were appended
	Time time.Time
	Text string
}

// Store keeps builds, releases and build logs. Its methods are safe for
// concurrent use. Methods given an unknown ID return an error wrapping
// ErrNotFound.
type Store interface {
	// CreateBuild inserts b; ErrExists if its ID is taken. A zero
	// Heartbeat is set to the current time (in the stored record only).
	CreateBuild(ctx context.Context, b *Build) error
	// UpdateBuild replaces every field of the stored build b.ID, except
	// that a zero Heartbeat keeps the stored one.
	UpdateBuild(ctx context.Context, b *Build) error
	GetBuild(ctx context.Context, id string) (*Build, error)
	// ListBuilds returns app's builds (every app's when app is ""),
	// newest first: builds not started yet, then by Started descending,
	// then by ID descending. limit <= 0 means no limit.
	ListBuilds(ctx context.Context, app string, limit int) ([]Build, error)
	// Heartbeat sets the build's Heartbeat to at, marking the process
	// running it alive. A build that is no longer created or running is
	// left as it is and gives an error wrapping ErrEnded.
	Heartbeat(ctx context.Context, id string, at time.Time) error
	// FailStale marks failed, with reason, every created or running build
	// whose Heartbeat is before olderThan (or unset), sets its Ended to
	// the current time if unset, and returns their IDs in no set order.
	FailStale(ctx context.Context, olderThan time.Time, reason string) ([]string, error)

	// CountBuilds counts the builds of every app by status.
	CountBuilds(ctx context.Context) (map[Status]int, error)

	// CreateRelease inserts r; ErrExists if its ID is taken.
	CreateRelease(ctx context.Context, r *Release) error
	GetRelease(ctx context.Context, id string) (*Release, error)
	// ListReleases returns app's releases (every app's when app is ""),
	// newest Created first, then by ID descending. limit <= 0 means no
	// limit.
	ListReleases(ctx context.Context, app string, limit int) ([]Release, error)

	// AppendLogs appends lines, in order, to the build's log in one
	// transaction, numbering them after the last line stored. Invalid
	// UTF-8 and NUL bytes become U+FFFD. Concurrent calls for one build
	// are serialized: each call's lines stay contiguous.
	AppendLogs(ctx context.Context, buildID string, lines []string) error
	// ReadLogs returns up to limit lines (all when limit <= 0) whose Seq
	// is greater than afterSeq, in order. To follow a log, pass the Seq of
	// the last line read: lines become visible in Seq order, so a follower
	// misses none. An unknown build is ErrNotFound; a build without (more)
	// lines gives no lines and no error.
	ReadLogs(ctx context.Context, buildID string, afterSeq int64, limit int) ([]LogLine, error)

	Close() error
}

// Open opens the database at dbURL and migrates it to the current schema.
//
//   - "postgres://..." or "postgresql://..." opens PostgreSQL with pgx; the
//     URL may carry any libpq/pgx parameter (sslmode, pool settings...).
//   - "sqlite:///abs/path.db", "sqlite:rel/path.db", "file:path.db" or a
//     plain file path opens that SQLite file, creating it (mode 0600) and
//     its directory (0700) if missing.
//
// SQLite runs in WAL mode with a busy timeout and one connection; a
// PostgreSQL Store uses up to 10 connections.
func Open(ctx context.Context, dbURL string) (Store, error) {
	kind, target, err := parseURL(dbURL)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "postgres":
		return openPostgres(ctx, target)
	default:
		return openSQLite(ctx, target)
	}
}

// DefaultPath is where a user's builds are kept when no database is
// named: $XDG_DATA_HOME/convox-build/builds.db, or
// $HOME/.local/share/convox-build/builds.db when XDG_DATA_HOME is unset or
// not absolute. getenv looks the variables up.
func DefaultPath(getenv func(string) string) (string, error) {
	dir := getenv("XDG_DATA_HOME")
	if !filepath.IsAbs(dir) {
		home := getenv("HOME")
		if !filepath.IsAbs(home) {
			return "", errors.New("finding the data directory: neither XDG_DATA_HOME nor HOME is an absolute path (set DATABASE_URL)")
		}
		dir = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(dir, "convox-build", "builds.db"), nil
}

// parseURL tells which database dbURL names: ("postgres", url) or
// ("sqlite", file path).
func parseURL(dbURL string) (kind, target string, err error) {
	switch {
	case dbURL == "":
		return "", "", errors.New("no database URL (want postgres://..., sqlite:///path.db or a file path)")
	case strings.HasPrefix(dbURL, "postgres://"), strings.HasPrefix(dbURL, "postgresql://"):
		return "postgres", dbURL, nil
	case strings.HasPrefix(dbURL, "sqlite:"), strings.HasPrefix(dbURL, "file:"):
		_, rest, _ := strings.Cut(dbURL, ":")
		if rest == "" || strings.ContainsAny(rest, "?#") {
			return "", "", fmt.Errorf("database URL %q: want sqlite:///absolute/path.db or file:path.db, without parameters", dbURL)
		}
		if strings.HasPrefix(rest, "//") {
			// sqlite:///abs/path or sqlite://localhost/abs/path
			u, err := url.Parse(dbURL)
			if err != nil {
				return "", "", fmt.Errorf("parsing database URL %q: %w", dbURL, err)
			}
			if u.Host != "" && u.Host != "localhost" {
				return "", "", fmt.Errorf("database URL %q: a SQLite file cannot be on host %q (use sqlite:///absolute/path.db)", dbURL, u.Host)
			}
			rest = u.Path
		}
		if rest == "" {
			return "", "", fmt.Errorf("database URL %q: no file path (want sqlite:///absolute/path.db)", dbURL)
		}
		return "sqlite", rest, nil
	case strings.Contains(dbURL, "://"):
		scheme, _, _ := strings.Cut(dbURL, "://")
		return "", "", fmt.Errorf("database URL %s: unsupported scheme %q (want postgres://, sqlite:// or a file path)", Redact(dbURL), scheme)
	default:
		return "sqlite", dbURL, nil
	}
}

// Redact returns dbURL with its password, if any, replaced by "***", for
// errors and logs: postgres://user:***@host/db.
func Redact(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil || u.User == nil {
		if err != nil && strings.Contains(dbURL, "@") {
			// Unparsable: hide everything between "scheme://" and "@".
			scheme, rest, ok := strings.Cut(dbURL, "://")
			if at := strings.LastIndex(rest, "@"); ok && at >= 0 {
				return scheme + "://***" + rest[at:]
			}
			return "***"
		}
		return dbURL
	}
	if _, ok := u.User.Password(); !ok {
		return dbURL
	}
	u.User = url.UserPassword(u.User.Username(), "***")
	return strings.Replace(u.String(), ":%2A%2A%2A@", ":***@", 1)
}

// redactError hides dbURL's password in err's message, keeping err for
// errors.Is and errors.As.
func redactError(err error, dbURL string) error {
	u, perr := url.Parse(dbURL)
	if err == nil || perr != nil || u.User == nil {
		return err
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" {
		return err
	}
	msg := err.Error()
	clean := msg
	for _, s := range []string{pw, url.QueryEscape(pw), url.PathEscape(pw)} {
		clean = strings.ReplaceAll(clean, ":"+s+"@", ":***@")
		clean = strings.ReplaceAll(clean, "password="+s, "password=***")
	}
	if len(pw) >= 6 { // long enough not to mangle unrelated words
		clean = strings.ReplaceAll(clean, pw, "***")
	}
	if clean == msg {
		return err
	}
	return &redactedError{msg: clean, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
