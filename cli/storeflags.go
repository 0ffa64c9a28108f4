package cli

import (
	"context"
	"fmt"

	"github.com/deltascope/deltascope/store"
)

// storeFlags are --data DIR (the embedded SQLite store in DIR) and --db URL
// (a PostgreSQL store that several servers and machines share), on every
// command that opens the database.
type storeFlags struct {
	cmd      string
	data, db *string
	def      string // the data folder when neither flag is given ("": none)
	// filesToo: --data still names the folder for local files (serve's
	// uploads and demo) when --db holds the database.
	filesToo bool
}

const dbUsage = "PostgreSQL store postgres://USER@HOST:PORT/DB, shared by several servers (instead of --data)"

func addStoreFlags(fs *flagSet, def, dataUsage string) storeFlags {
	return storeFlags{cmd: fs.cmd, def: def, data: fs.String("data", "", dataUsage), db: fs.String("db", "", dbUsage)}
}

// check refuses --db with --data (which database would be meant?) and a
// --db that is not a PostgreSQL URL.
func (s storeFlags) check() error {
	if *s.db == "" {
		return nil
	}
	if *s.data != "" && !s.filesToo {
		return fmt.Errorf("%s: --db and --data are exclusive: --db names a PostgreSQL store, --data a folder holding an SQLite one", s.cmd)
	}
	if !store.IsPostgresURL(*s.db) {
		return fmt.Errorf("%s: --db %q is not a PostgreSQL URL (postgres://USER@HOST:PORT/DB); for the embedded SQLite store give --data DIR", s.cmd, *s.db)
	}
	return nil
}

// dir is the data folder: --data, or the command's default.
func (s storeFlags) dir() string {
	if *s.data != "" {
		return *s.data
	}
	return s.def
}

// enabled reports whether a store was asked for (analyze caches only then).
func (s storeFlags) enabled() bool { return *s.db != "" || s.dir() != "" }

// open opens the store the flags name.
func (s storeFlags) open(ctx context.Context) (*store.DB, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if *s.db != "" {
		return store.OpenURL(ctx, *s.db)
	}
	return store.Open(ctx, s.dir())
}
