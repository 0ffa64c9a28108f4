package store

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/deltascope/deltascope/internal/pgtest"
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
	*pgtest.Cluster
	mu  sync.Mutex
	dbs map[string]string // test folder -> database URL, so a reopen finds it
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if code != 0 {
		os.Exit(code)
	}
	c, err := pgtest.Start()
	if err != nil {
		if pgtest.Required() {
			fmt.Fprintf(os.Stderr, "store: PostgreSQL pass (required under CI=true): %v\n", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "store: note: the PostgreSQL pass did not run: %v\n", err)
		os.Exit(0)
	}
	pg.Cluster, pg.dbs = c, map[string]string{}
	fmt.Println("=== store: the same tests on PostgreSQL")
	backend = "postgres"
	skip := "^(" + strings.Join(sqliteOnly, "|") + ")$"
	if s := flag.Lookup("test.skip").Value.String(); s != "" {
		skip = s + "|" + skip
	}
	flag.Set("test.skip", skip)
	code = m.Run()
	c.Stop()
	os.Exit(code)
}

// pgDatabaseFor returns the database standing for the test folder dir,
// creating it on first use; it is dropped when the test ends.
func pgDatabaseFor(tb testing.TB, dir string) string {
	tb.Helper()
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if url, ok := pg.dbs[dir]; ok {
		return url
	}
	url := pg.CreateDB(tb)
	pg.dbs[dir] = url
	return url
}

// openTest opens the database of test folder dir on the current backend at
// schema version target (the latest: SchemaVersion()).
func openTest(tb testing.TB, dir string, target int) (*DB, error) {
	tb.Helper()
	if backend == "postgres" {
		url := pgDatabaseFor(tb, dir)
		tb.Logf("on PostgreSQL: %s", url) // the test names are the same in both passes
		return openURL(context.Background(), url, target)
	}
	return open(context.Background(), dir, target)
}
