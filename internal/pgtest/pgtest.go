// Package pgtest starts a private PostgreSQL cluster for tests: Debian's
// postgresql package, initdb and pg_ctl on a temporary folder, listening on a
// free loopback port and a socket inside that folder, with a fresh database
// per test. When the tests run as root, the cluster runs as the postgres user
// (initdb refuses root).
package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// Cluster is a running private PostgreSQL server.
type Cluster struct {
	dir, bin, data, port, superuser string
	runAs                           []string
	admin                           *sql.DB
	n                               atomic.Int64
}

// BinDir finds initdb and pg_ctl of Debian's postgresql package, newest
// major version first.
func BinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no initdb under /usr/lib/postgresql/*/bin (apt-get install -y postgresql)")
}

// Required reports whether a missing PostgreSQL must fail the tests: under
// CI=true it must; elsewhere the PostgreSQL tests are left out with a note.
func Required() bool { return os.Getenv("CI") == "true" }

// Start runs initdb and pg_ctl start in a new temporary folder.
func Start() (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, superuser: "postgres"}
	if c.dir, err = os.MkdirTemp("", "deltascope-pg-"); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(c.dir)
			return nil, fmt.Errorf("running as root and no postgres user to run initdb as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(c.dir, uid, gid); err != nil {
			os.RemoveAll(c.dir)
			return nil, err
		}
		c.runAs = []string{"runuser", "-u", "postgres", "--"}
	} else if u, err := user.Current(); err == nil {
		c.superuser = u.Username
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(c.dir)
		return nil, err
	}
	c.port = strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()

	c.data = filepath.Join(c.dir, "data")
	if out, err := c.run("initdb", "-D", c.data, "-U", c.superuser, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
		os.RemoveAll(c.dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	// fsync off: a test cluster need not survive a power cut, and it makes
	// every commit cheap on a shared CI disk.
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %s -k %s -c fsync=off -c max_connections=300", c.port, c.dir)
	if out, err := c.run("pg_ctl", "-D", c.data, "-o", opts, "-l", filepath.Join(c.dir, "log"), "-w", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		os.RemoveAll(c.dir)
		return nil, fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	if c.admin, err = sql.Open("pgx", c.URL("postgres")); err == nil {
		err = c.admin.Ping()
	}
	if err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	argv := append(append(append([]string{}, c.runAs...), filepath.Join(c.bin, name)), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = os.TempDir() // the postgres user may not enter the caller's folder
	return cmd.CombinedOutput()
}

// URL is the connection URL of database db.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%s/%s?sslmode=disable", c.superuser, c.port, db)
}

// Bin is the folder of the server's programs (createdb, psql, ...).
func (c *Cluster) Bin() string { return c.bin }

// Stop stops the server at once and removes its folder.
func (c *Cluster) Stop() {
	if c.admin != nil {
		c.admin.Close()
	}
	c.run("pg_ctl", "-D", c.data, "-m", "immediate", "-w", "stop")
	os.RemoveAll(c.dir)
}

// CreateDB creates an empty database (from template0) and returns its URL;
// it is dropped when tb ends, after tb's later cleanups (its connections')
// have run.
func (c *Cluster) CreateDB(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), c.n.Add(1))
	if _, err := c.admin.Exec(`CREATE DATABASE ` + name + ` TEMPLATE template0 ENCODING 'UTF8'`); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := c.admin.ExecContext(ctx, `DROP DATABASE `+name+` WITH (FORCE)`); err != nil {
			tb.Errorf("drop database %s: %v", name, err)
		}
	})
	return c.URL(name)
}

// NewDB starts a private cluster for tb alone and returns the URL of a fresh
// database in it; both go when tb ends. Without PostgreSQL it fails tb under
// CI=true (Required) and skips it elsewhere.
func NewDB(tb testing.TB) string {
	tb.Helper()
	c, err := Start()
	if err != nil {
		if Required() {
			tb.Fatalf("PostgreSQL (required under CI=true): %v", err)
		}
		tb.Skipf("PostgreSQL not installed: %v", err)
	}
	tb.Cleanup(c.Stop) // after the database's drop, which CreateDB registers next
	return c.CreateDB(tb)
}
