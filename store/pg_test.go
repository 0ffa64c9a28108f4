package store

import (
	"context"
	"database/sql"
	"flag"
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
	"sync/atomic"
	"testing"
	"time"
)

// The whole suite runs twice: on SQLite, then on a private PostgreSQL cluster
// (Debian's postgresql package) started for this test binary. mustOpen and
// openTest open the backend of the current pass, so no test is written twice.
// Under CI=true a missing PostgreSQL fails the run; elsewhere the second pass
// is left out with a note.

// backend is the pass being run: "sqlite" or "postgres".
var backend = "sqlite"

// sqliteOnly are the tests about the SQLite file itself, which the
// PostgreSQL pass leaves out (-test.skip): killing a process mid-write and
// reopening the file (TestKilledDuringFinish), WAL, PRAGMA user_version and
// integrity_check on a damaged file, the data folder's creation, and the pure
// functions that touch no database, which one pass covers.
var sqliteOnly = []string{
	"TestKilledDuringFinish",
	"TestIntegrityCheckFindsCorruption",
	"TestOpenCreatesFolderAndReadersCannotWrite",
	"TestOpenRefusesNewerSchema",
	"TestLoadMigrationsRejectsGaps",
	"TestMigrateToUnknownVersion",
	"TestF32LittleEndian", "TestF32RoundTrip", "TestDecodeF32RejectsRaggedBlob",
	"TestDefaultName", "TestCheckLocalView", "TestRoleAtLeast", "TestHashPasswordRoundTrip",
	"TestCheckEval", "TestShippedPasswordCost",
}

// pg is the cluster of the PostgreSQL pass.
var pg struct {
	dir, bin, port string
	superuser      string
	runAs          []string // runuser -u postgres -- when the tests run as root
	admin          *sql.DB  // the postgres database, for CREATE/DROP DATABASE
	n              atomic.Int64
	mu             sync.Mutex
	dbs            map[string]string // test folder -> database, so a reopen finds it
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if code != 0 {
		os.Exit(code)
	}
	bin, err := pgBinDir()
	if err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintf(os.Stderr, "store: PostgreSQL pass: %v (CI=true requires it: apt-get install -y postgresql)\n", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "store: note: PostgreSQL tests not run: %v (apt-get install -y postgresql)\n", err)
		os.Exit(0)
	}
	stop, err := startCluster(bin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "store: PostgreSQL pass: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("=== store: the same tests on PostgreSQL")
	backend = "postgres"
	skip := "^(" + strings.Join(sqliteOnly, "|") + ")$"
	if s := flag.Lookup("test.skip").Value.String(); s != "" {
		skip = s + "|" + skip
	}
	flag.Set("test.skip", skip)
	code = m.Run()
	stop()
	os.Exit(code)
}

// pgBinDir finds initdb and pg_ctl of Debian's postgresql package.
func pgBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { // newest major version first
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no initdb under /usr/lib/postgresql/*/bin")
}

// startCluster runs initdb and pg_ctl start on a temporary folder, listening
// on a free loopback port and a socket inside the folder; stop removes it.
func startCluster(bin string) (stop func(), err error) {
	pg.bin, pg.dbs = bin, map[string]string{}
	pg.dir, err = os.MkdirTemp("", "deltascope-pg-")
	if err != nil {
		return nil, err
	}
	superuser := "postgres"
	if os.Geteuid() == 0 {
		// initdb refuses to run as root: the cluster belongs to postgres.
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root and no postgres user to run initdb as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(pg.dir, uid, gid); err != nil {
			return nil, err
		}
		pg.runAs = []string{"runuser", "-u", "postgres", "--"}
	} else if u, err := user.Current(); err == nil {
		superuser = u.Username
	}
	pg.superuser = superuser
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	pg.port = strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()

	data := filepath.Join(pg.dir, "data")
	if out, err := pgRun("initdb", "-D", data, "-U", superuser, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %s -k %s -c fsync=off -c synchronous_commit=off -c max_connections=200", pg.port, pg.dir)
	if out, err := pgRun("pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(pg.dir, "log"), "-w", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(pg.dir, "log"))
		return nil, fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	stop = func() {
		if pg.admin != nil {
			pg.admin.Close()
		}
		pgRun("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
		os.RemoveAll(pg.dir)
	}
	pg.admin, err = openPostgres(pgURL(superuser, "postgres"), false, 2)
	if err == nil {
		err = pg.admin.Ping()
	}
	if err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

func pgRun(name string, args ...string) ([]byte, error) {
	argv := append(append(append([]string{}, pg.runAs...), filepath.Join(pg.bin, name)), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = os.TempDir()
	return cmd.CombinedOutput()
}

func pgURL(superuser, db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%s/%s?sslmode=disable", superuser, pg.port, db)
}

// pgDatabaseFor returns the database standing for the test folder dir,
// creating it (from template0, empty) on first use and dropping it when the
// test ends.
func pgDatabaseFor(tb testing.TB, dir string) string {
	tb.Helper()
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if name, ok := pg.dbs[dir]; ok {
		return pgURL(pg.superuser, name)
	}
	name := fmt.Sprintf("t%d_%d", os.Getpid(), pg.n.Add(1))
	if _, err := pg.admin.Exec(`CREATE DATABASE ` + name + ` TEMPLATE template0 ENCODING 'UTF8'`); err != nil {
		tb.Fatal(err)
	}
	pg.dbs[dir] = name
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := pg.admin.ExecContext(ctx, `DROP DATABASE `+name+` WITH (FORCE)`); err != nil {
			tb.Errorf("drop %s: %v", name, err)
		}
	})
	return pgURL(pg.superuser, name)
}

// openTest opens the database of test folder dir on the current backend at
// schema version target (the latest: SchemaVersion()).
func openTest(tb testing.TB, dir string, target int) (*DB, error) {
	tb.Helper()
	if backend == "postgres" {
		return openURL(context.Background(), pgDatabaseFor(tb, dir), target)
	}
	return open(context.Background(), dir, target)
}
