package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// sqlStore implements Store on database/sql for both dialects. Queries use
// $N placeholders, which both drivers accept.
type sqlStore struct {
	db       *sql.DB
	postgres bool // else SQLite
	now      func() time.Time
}

// timeArg is how t is passed to the database: NULL when zero, otherwise
// microseconds since the epoch (SQLite INTEGER) or a UTC time
// (PostgreSQL TIMESTAMPTZ).
func (s *sqlStore) timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	if s.postgres {
		return t.UTC().Truncate(time.Microsecond)
	}
	return t.UnixMicro()
}

// dbTime scans what timeArg stored.
type dbTime struct{ t *time.Time }

func (d dbTime) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*d.t = time.Time{}
	case int64:
		*d.t = time.UnixMicro(x).UTC()
	case time.Time:
		*d.t = x.UTC()
	default:
		return fmt.Errorf("scanning time: unexpected %T", v)
	}
	return nil
}

const buildColumns = `id, app, description, entrypoint, git_sha, manifest, process, release, reason, repository, status, started, ended, heartbeat, services`

func (s *sqlStore) buildArgs(b *Build) ([]any, error) {
	if b.ID == "" || b.App == "" {
		return nil, fmt.Errorf("build %q of app %q: ID and App are required", b.ID, b.App)
	}
	if !b.Status.valid() {
		return nil, fmt.Errorf("build %s: invalid status %q", b.ID, b.Status)
	}
	services := []ServiceImage{}
	if b.Services != nil {
		services = b.Services
	}
	js, err := json.Marshal(services)
	if err != nil {
		return nil, fmt.Errorf("build %s: encoding services: %w", b.ID, err)
	}
	return []any{b.ID, b.App, b.Description, b.Entrypoint, b.GitSHA, b.Manifest, b.Process,
		b.Release, b.Reason, b.Repository, string(b.Status), s.timeArg(b.Started),
		s.timeArg(b.Ended), s.timeArg(b.Heartbeat), string(js)}, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanBuild(row scanner) (*Build, error) {
	var b Build
	var status, services string
	err := row.Scan(&b.ID, &b.App, &b.Description, &b.Entrypoint, &b.GitSHA, &b.Manifest, &b.Process,
		&b.Release, &b.Reason, &b.Repository, &status, dbTime{&b.Started}, dbTime{&b.Ended},
		dbTime{&b.Heartbeat}, &services)
	if err != nil {
		return nil, err
	}
	b.Status = Status(status)
	if err := json.Unmarshal([]byte(services), &b.Services); err != nil {
		return nil, fmt.Errorf("build %s: decoding services: %w", b.ID, err)
	}
	if len(b.Services) == 0 {
		b.Services = nil
	}
	return &b, nil
}

func (s *sqlStore) CreateBuild(ctx context.Context, b *Build) error {
	nb := *b
	if nb.Heartbeat.IsZero() {
		nb.Heartbeat = s.now()
	}
	args, err := s.buildArgs(&nb)
	if err != nil {
		return fmt.Errorf("creating %w", err)
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO builds (`+buildColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
		ON CONFLICT (id) DO NOTHING`, args...)
	if err != nil {
		return fmt.Errorf("creating build %s: %w", b.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("creating build %s: %w", b.ID, err)
	} else if n == 0 {
		return fmt.Errorf("creating build %s: %w", b.ID, ErrExists)
	}
	return nil
}

func (s *sqlStore) UpdateBuild(ctx context.Context, b *Build) error {
	args, err := s.buildArgs(b)
	if err != nil {
		return fmt.Errorf("updating %w", err)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE builds SET app = $2, description = $3,
		entrypoint = $4, git_sha = $5, manifest = $6, process = $7, release = $8, reason = $9,
		repository = $10, status = $11, started = $12, ended = $13,
		heartbeat = COALESCE($14, heartbeat), services = $15
		WHERE id = $1`, args...)
	return checkAffected(res, err, "updating build", b.ID)
}

// checkAffected turns the result of an UPDATE of build id into an error.
func checkAffected(res sql.Result, err error, doing, id string) error {
	if err != nil {
		return fmt.Errorf("%s %s: %w", doing, id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s %s: %w", doing, id, err)
	}
	if n == 0 {
		return fmt.Errorf("build %s: %w", id, ErrNotFound)
	}
	return nil
}

func (s *sqlStore) GetBuild(ctx context.Context, id string) (*Build, error) {
	b, err := scanBuild(s.db.QueryRowContext(ctx, `SELECT `+buildColumns+` FROM builds WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("build %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("getting build %s: %w", id, err)
	}
	return b, nil
}

// limitClause is " LIMIT n", or "" when limit <= 0.
func limitClause(limit int) string {
	if limit <= 0 {
		return ""
	}
	return " LIMIT " + strconv.Itoa(limit)
}

func (s *sqlStore) ListBuilds(ctx context.Context, app string, limit int) ([]Build, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+buildColumns+` FROM builds
		WHERE ($1 = '' OR app = $1)
		ORDER BY (started IS NULL) DESC, started DESC, id DESC`+limitClause(limit), app)
	if err != nil {
		return nil, fmt.Errorf("listing builds of app %q: %w", app, err)
	}
	defer rows.Close()
	var builds []Build
	for rows.Next() {
		b, err := scanBuild(rows)
		if err != nil {
			return nil, fmt.Errorf("listing builds of app %q: %w", app, err)
		}
		builds = append(builds, *b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing builds of app %q: %w", app, err)
	}
	return builds, nil
}

func (s *sqlStore) Heartbeat(ctx context.Context, id string, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("heartbeat of build %s: zero time", id)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE builds SET heartbeat = $2
		WHERE id = $1 AND status IN ('created', 'running')`, id, s.timeArg(at))
	err = checkAffected(res, err, "recording heartbeat of build", id)
	if errors.Is(err, ErrNotFound) {
		// Tell a build that ended from one that does not exist.
		var status string
		serr := s.db.QueryRowContext(ctx, `SELECT status FROM builds WHERE id = $1`, id).Scan(&status)
		if serr == nil {
			return fmt.Errorf("recording heartbeat of build %s: it %w (%s)", id, ErrEnded, status)
		}
	}
	return err
}

func (s *sqlStore) FailStale(ctx context.Context, olderThan time.Time, reason string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `UPDATE builds
		SET status = 'failed', reason = $2, ended = COALESCE(ended, $3)
		WHERE status IN ('created', 'running') AND (heartbeat IS NULL OR heartbeat < $1)
		RETURNING id`, s.timeArg(olderThan), reason, s.timeArg(s.now()))
	if err != nil {
		return nil, fmt.Errorf("failing stale builds: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("failing stale builds: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("failing stale builds: %w", err)
	}
	return ids, nil
}

func (s *sqlStore) CountBuilds(ctx context.Context) (map[Status]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT status, COUNT(*) FROM builds GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("counting builds: %w", err)
	}
	defer rows.Close()
	out := map[Status]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("counting builds: %w", err)
		}
		out[Status(st)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("counting builds: %w", err)
	}
	return out, nil
}

func (s *sqlStore) CreateRelease(ctx context.Context, r *Release) error {
	if r.ID == "" || r.App == "" {
		return fmt.Errorf("creating release %q of app %q: ID and App are required", r.ID, r.App)
	}
	created := r.Created
	if created.IsZero() {
		created = s.now()
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO releases (id, app, build, manifest, description, created)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING`,
		r.ID, r.App, r.Build, r.Manifest, r.Description, s.timeArg(created))
	if err != nil {
		return fmt.Errorf("creating release %s: %w", r.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("creating release %s: %w", r.ID, err)
	} else if n == 0 {
		return fmt.Errorf("creating release %s: %w", r.ID, ErrExists)
	}
	return nil
}

const releaseColumns = `id, app, build, manifest, description, created`

func scanRelease(row scanner) (*Release, error) {
	var r Release
	err := row.Scan(&r.ID, &r.App, &r.Build, &r.Manifest, &r.Description, dbTime{&r.Created})
	return &r, err
}

func (s *sqlStore) GetRelease(ctx context.Context, id string) (*Release, error) {
	r, err := scanRelease(s.db.QueryRowContext(ctx, `SELECT `+releaseColumns+` FROM releases WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("release %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("getting release %s: %w", id, err)
	}
	return r, nil
}

func (s *sqlStore) ListReleases(ctx context.Context, app string, limit int) ([]Release, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+releaseColumns+` FROM releases
		WHERE ($1 = '' OR app = $1)
		ORDER BY created DESC, id DESC`+limitClause(limit), app)
	if err != nil {
		return nil, fmt.Errorf("listing releases of app %q: %w", app, err)
	}
	defer rows.Close()
	var releases []Release
	for rows.Next() {
		r, err := scanRelease(rows)
		if err != nil {
			return nil, fmt.Errorf("listing releases of app %q: %w", app, err)
		}
		releases = append(releases, *r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing releases of app %q: %w", app, err)
	}
	return releases, nil
}

// logChunk is how many lines one SQLite INSERT carries: 2 parameters a line
// stay well under its limit of 32766.
const logChunk = 1000

func (s *sqlStore) AppendLogs(ctx context.Context, buildID string, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	if err := s.appendLogs(ctx, buildID, lines); err != nil {
		return fmt.Errorf("appending %d log lines to build %s: %w", len(lines), buildID, err)
	}
	return nil
}

func (s *sqlStore) appendLogs(ctx context.Context, buildID string, lines []string) (err error) {
	if s.postgres {
		return s.appendLogsPostgres(ctx, buildID, lines)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	// The transaction holds SQLite's write lock: concurrent appends queue.
	var last int64
	err = tx.QueryRowContext(ctx, `UPDATE builds SET log_seq = log_seq + $2 WHERE id = $1 RETURNING log_seq`,
		buildID, int64(len(lines))).Scan(&last)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("build %s: %w", buildID, ErrNotFound)
	}
	if err != nil {
		return err
	}
	seq := last - int64(len(lines))
	now := s.timeArg(s.now())
	var q strings.Builder
	args := make([]any, 0, 2+2*min(len(lines), logChunk))
	for start := 0; start < len(lines); start += logChunk {
		chunk := lines[start:min(start+logChunk, len(lines))]
		q.Reset()
		q.WriteString(`INSERT INTO build_logs (build_id, time, seq, text) VALUES `)
		args = append(args[:0], buildID, now)
		for i, line := range chunk {
			if i > 0 {
				q.WriteByte(',')
			}
			n := len(args)
			fmt.Fprintf(&q, "($1, $2, $%d, $%d)", n+1, n+2)
			seq++
			args = append(args, seq, cleanText(line))
		}
		if _, err = tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// appendLogsPostgres appends in one statement (one round trip, the same
// statement for any number of lines). Reserving the numbers locks the
// build's row, so concurrent appends to one build queue.
func (s *sqlStore) appendLogsPostgres(ctx context.Context, buildID string, lines []string) error {
	clean := make([]string, len(lines))
	for i, l := range lines {
		clean[i] = cleanText(l)
	}
	res, err := s.db.ExecContext(ctx, `WITH reserved AS (
			UPDATE builds SET log_seq = log_seq + $3 WHERE id = $1 RETURNING log_seq
		)
		INSERT INTO build_logs (build_id, time, seq, text)
		SELECT $1, $2, reserved.log_seq - $3 + line.n, line.text
		FROM reserved, unnest($4::text[]) WITH ORDINALITY AS line (text, n)`,
		buildID, s.timeArg(s.now()), int64(len(lines)), clean)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("build %s: %w", buildID, ErrNotFound)
	}
	return nil
}

// cleanText makes s storable as TEXT in both databases: valid UTF-8 without
// NUL bytes.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	return s
}

func (s *sqlStore) ReadLogs(ctx context.Context, buildID string, afterSeq int64, limit int) ([]LogLine, error) {
	lines, err := s.readLogs(ctx, buildID, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("reading logs of build %s: %w", buildID, err)
	}
	if len(lines) == 0 {
		var one int
		err := s.db.QueryRowContext(ctx, `SELECT 1 FROM builds WHERE id = $1`, buildID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("build %s: %w", buildID, ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("reading logs of build %s: %w", buildID, err)
		}
	}
	return lines, nil
}

func (s *sqlStore) readLogs(ctx context.Context, buildID string, afterSeq int64, limit int) ([]LogLine, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, time, text FROM build_logs
		WHERE build_id = $1 AND seq > $2 ORDER BY seq`+limitClause(limit), buildID, afterSeq)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var lines []LogLine
	for rows.Next() {
		var l LogLine
		if err := rows.Scan(&l.Seq, dbTime{&l.Time}, &l.Text); err != nil {
			return nil, err
		}
		lines = append(lines, l)
	}
	return lines, rows.Err()
}

func (s *sqlStore) Close() error { return s.db.Close() }
