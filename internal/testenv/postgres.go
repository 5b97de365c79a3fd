package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// PostgresURL returns the URL of a new, empty PostgreSQL database that is
// dropped when t ends. The URL carries a user and password
// (postgres://convox:PASSWORD@127.0.0.1:PORT/t_xxxx?sslmode=disable); the
// server checks the password.
//
// On first use in a test process it starts a throwaway cluster from
// Debian's postgresql package (/usr/lib/postgresql/*/bin) in a temporary
// directory, as the unprivileged user "postgres" (or "nobody") when run as
// root, listening on 127.0.0.1 only. StopPostgres stops it: call it after
// m.Run in TestMain (testenv.Main does). Should the test process die
// first, the server gets SIGTERM and exits, leaving its directory behind.
//
// Without PostgreSQL installed the test fails, telling to run
// scripts/postgres.sh.
func PostgresURL(t testing.TB) string {
	t.Helper()
	c, err := startPostgresOnce()
	if err != nil {
		t.Fatalf("testenv: PostgreSQL: %v", err)
	}
	name := "t_" + pgRandomHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testenv: PostgreSQL: creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := c.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: PostgreSQL: dropping database %s: %v", name, err)
		}
	})
	return c.url(name)
}

// StopPostgres stops the cluster PostgresURL started, if any, and removes
// its files. Call it once the tests have run (a later PostgresURL would
// start a new cluster).
func StopPostgres() {
	pgMu.Lock()
	defer pgMu.Unlock()
	if pgCluster != nil {
		pgCluster.stop()
	}
	pgCluster, pgErr = nil, nil
}

var (
	pgMu      sync.Mutex
	pgCluster *postgresCluster
	pgErr     error // why the cluster could not start: not retried
	pgBinGlob = "/usr/lib/postgresql/*/bin/postgres"
)

func startPostgresOnce() (*postgresCluster, error) {
	pgMu.Lock()
	defer pgMu.Unlock()
	if pgCluster == nil && pgErr == nil {
		pgCluster, pgErr = startPostgres()
	}
	return pgCluster, pgErr
}

type postgresCluster struct {
	dir      string
	port     int
	password string
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the server process has exited
	admin    *sql.DB       // connected to the "postgres" database
}

const pgUser = "convox"

func (c *postgresCluster) url(db string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", pgUser, c.password, c.port, db)
}

// postgresBin finds the directory of Debian's PostgreSQL server programs,
// the newest version when several are installed.
func postgresBin() (string, error) {
	found, _ := filepath.Glob(pgBinGlob)
	sort.Slice(found, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(found[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(found[j]))))
		return vi > vj
	})
	for _, p := range found {
		bin := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(bin, "initdb")); err == nil {
			return bin, nil
		}
	}
	return "", errors.New("the server is not installed (no /usr/lib/postgresql/*/bin/postgres and initdb): run scripts/postgres.sh (apt-get install postgresql)")
}

func startPostgres() (*postgresCluster, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	removeOrphanedPostgresDirs()
	dir, err := os.MkdirTemp("", "testenv-postgres-")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	c := &postgresCluster{dir: dir, password: pgRandomHex(12)}
	ok := false
	defer func() {
		if !ok {
			c.stop()
		}
	}()

	// PostgreSQL refuses to run as root: run it as an unprivileged user
	// owning the directory.
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		if cred, err = pgUnprivileged(); err != nil {
			return nil, err
		}
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(c.password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(pwfile, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", pgUser, "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	os.Remove(pwfile)

	// A free port can be taken between choosing and binding it: retry.
	for attempt := 1; ; attempt++ {
		err := c.startServer(bin, data, cred)
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(err.Error(), "already in use") {
			return nil, err
		}
	}
	ok = true
	return c, nil
}

// removeOrphanedPostgresDirs removes the directories of clusters whose
// test process died without StopPostgres (their server exits with it).
func removeOrphanedPostgresDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "testenv-postgres-*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "owner.pid"))
		if err != nil {
			continue // just created, or not ours
		}
		pid, err := strconv.Atoi(string(b))
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		if pm, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			server, _ := strconv.Atoi(strings.SplitN(string(pm), "\n", 2)[0])
			if server > 0 && syscall.Kill(server, 0) != syscall.ESRCH {
				continue // its server is still shutting down
			}
		}
		os.RemoveAll(dir)
	}
}

// pgUnprivileged is the user to run PostgreSQL as when we are root.
func pgUnprivileged() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New(`running as root and found no user "postgres" or "nobody" to run the server as`)
}

func (c *postgresCluster) startServer(bin, data string, cred *syscall.Credential) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	c.port = l.Addr().(*net.TCPAddr).Port
	l.Close()

	logPath := filepath.Join(c.dir, "postgres.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	// Durability is not needed: turn off what makes writes slow.
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(c.port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+c.dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200")
	cmd.Dir = c.dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	c.cmd = cmd
	c.exited = make(chan struct{})
	go func() { cmd.Wait(); close(c.exited) }()

	db, err := sql.Open("pgx", c.url("postgres"))
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = db.PingContext(ctx)
		cancel()
		if err == nil {
			c.admin = db
			return nil
		}
		select {
		case <-c.exited:
			db.Close()
			c.cmd = nil
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres exited at start-up:\n%s", out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			db.Close()
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres on port %d not ready after 30s: %v\n%s", c.port, err, out)
		}
	}
}

// stop shuts the server down (fast mode: clients are disconnected) and
// removes its directory.
func (c *postgresCluster) stop() {
	if c.admin != nil {
		c.admin.Close()
	}
	if c.cmd != nil {
		c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.exited:
		case <-time.After(15 * time.Second):
			c.cmd.Process.Kill()
			<-c.exited
		}
	}
	os.RemoveAll(c.dir)
}

func pgRandomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
