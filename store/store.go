// Package store keeps deltascope's state in one SQLite database (or, for a
// lab sharing one store between machines, PostgreSQL: dialect.go): checkpoints
// seen, analyses and their job state, and every result row (per-tensor
// statistics, per-row/column arrays, unit scores, alignment reports). It knows
// nothing of HTTP; the handlers map its coded errors to statuses.
//
// Writes go through a single connection (SQLite allows one writer at a time;
// queueing in Go beats SQLITE_BUSY retries), reads through a separate pool of
// query-only connections that see committed snapshots thanks to WAL. A result
// is written in one transaction, so readers see all of it or none of it.
package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// FileName is the database file inside the data folder.
const FileName = "deltascope.db"

// DB is an open deltascope database.
type DB struct {
	path   string
	writer *sql.DB // exactly one connection: every write queues here
	reader *sql.DB // query-only connections for concurrent reads
	// dialect is the engine: SQLite (a file) or PostgreSQL (OpenURL).
	dialect dialect
	// schema is the version the database was migrated to: the latest, except
	// in tests that build databases of earlier versions (migrate_test.go),
	// where queries leave out the columns that version lacks.
	schema int

	// Now returns the current time; tests replace it to get distinct, ordered
	// timestamps.
	Now func() time.Time

	pw passwordCost // bcrypt cost of new hashes (SetPasswordCost)
}

// Open opens (creating if needed) dir/deltascope.db and migrates it to the
// latest schema. It refuses a database written by a newer deltascope.
func Open(ctx context.Context, dir string) (*DB, error) {
	return open(ctx, dir, len(migrations))
}

// open is Open migrating only to schema version target; tests use it to build
// databases of earlier versions.
func open(ctx context.Context, dir string, target int) (*DB, error) {
	if dir == "" {
		return nil, fmt.Errorf("store: empty data folder")
	}
	if strings.ContainsAny(dir, "?#") {
		// The driver splits its DSN at '?': such a path would be misread.
		return nil, fmt.Errorf("store: %s: data folder path may not contain '?' or '#'", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db := &DB{path: path, Now: time.Now}

	var err error
	db.writer, err = sql.Open("sqlite", path+"?"+strings.Join([]string{
		"_pragma=busy_timeout(10000)",
		"_pragma=journal_mode(WAL)",
		"_pragma=foreign_keys(1)",
		"_pragma=synchronous(NORMAL)",
		"_txlock=immediate",
	}, "&"))
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	db.writer.SetMaxOpenConns(1)
	db.writer.SetMaxIdleConns(1)
	db.writer.SetConnMaxLifetime(0)
	db.writer.SetConnMaxIdleTime(0)

	// Migrate before the readers exist, so they never see a half-built schema.
	if err := db.migrateTo(ctx, target); err != nil {
		db.writer.Close()
		return nil, err
	}
	db.schema = target

	// query_only rather than mode=ro: a read-only open of a WAL database needs
	// the -shm file to exist and be writable anyway, and query_only refuses
	// writes just as firmly. Deferred transactions (the default) so that a read
	// transaction takes a snapshot without asking for the write lock.
	db.reader, err = sql.Open("sqlite", path+"?"+strings.Join([]string{
		"_pragma=busy_timeout(10000)",
		"_pragma=foreign_keys(1)",
		"_pragma=query_only(1)",
	}, "&"))
	if err != nil {
		db.writer.Close()
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	n := max(4, runtime.NumCPU())
	db.reader.SetMaxOpenConns(n)
	db.reader.SetMaxIdleConns(n)
	if err := db.reader.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	return db, nil
}

// OpenURL opens (creating the schema if needed) the PostgreSQL database at
// url (postgres://USER@HOST:PORT/DB) and migrates it to the latest schema.
// Several processes may share it: writes are serializable transactions.
func OpenURL(ctx context.Context, url string) (*DB, error) {
	return openURL(ctx, url, len(migrations))
}

func openURL(ctx context.Context, url string, target int) (*DB, error) {
	if !IsPostgresURL(url) {
		return nil, fmt.Errorf("store: --db %q: only PostgreSQL URLs (postgres://USER@HOST:PORT/DB) are supported; an SQLite database is a folder given with --data", redactURL(url))
	}
	db := &DB{path: redactURL(url), Now: time.Now, dialect: dialectPostgres}
	var err error
	if db.writer, err = openPostgres(url, false, 1); err != nil {
		return nil, err
	}
	if err := db.writer.PingContext(ctx); err != nil {
		db.writer.Close()
		return nil, fmt.Errorf("store: %s: %w", db.path, err)
	}
	if err := db.migrateTo(ctx, target); err != nil {
		db.writer.Close()
		return nil, err
	}
	db.schema = target
	if db.reader, err = openPostgres(url, true, max(4, runtime.NumCPU())); err != nil {
		db.writer.Close()
		return nil, err
	}
	return db, nil
}

// Path is the database file (for PostgreSQL: its URL without the password).
func (db *DB) Path() string { return db.path }

// Close closes the readers, then the writer; the last connection to close
// checkpoints the WAL into the database file.
func (db *DB) Close() error {
	var err error
	if db.reader != nil {
		err = db.reader.Close()
	}
	if db.writer != nil {
		if e := db.writer.Close(); err == nil {
			err = e
		}
	}
	return err
}

// IntegrityCheck runs PRAGMA integrity_check and PRAGMA foreign_key_check and
// fails unless the first says "ok" and the second finds nothing.
// PostgreSQL checks foreign keys on every write and has no integrity_check:
// there it confirms the schema version instead.
func (db *DB) IntegrityCheck(ctx context.Context) error {
	if db.dialect == dialectPostgres {
		v, err := db.version(ctx, db.reader)
		if err != nil {
			return fmt.Errorf("store: integrity check: %w", err)
		}
		if v != db.schema {
			return fmt.Errorf("store: %s: integrity check failed: schema version %d, want %d", db.path, v, db.schema)
		}
		return nil
	}
	rows, err := db.reader.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return fmt.Errorf("store: integrity check: %w", err)
	}
	var msgs []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return fmt.Errorf("store: integrity check: %w", err)
		}
		msgs = append(msgs, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: integrity check: %w", err)
	}
	if len(msgs) != 1 || msgs[0] != "ok" {
		return fmt.Errorf("store: %s: integrity check failed: %s", db.path, strings.Join(msgs, "; "))
	}

	rows, err = db.reader.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		return fmt.Errorf("store: foreign key check: %w", err)
	}
	defer rows.Close()
	if rows.Next() {
		var table string
		var rowid sql.NullInt64
		var parent string
		var fkid int64
		if err := rows.Scan(&table, &rowid, &parent, &fkid); err != nil {
			return fmt.Errorf("store: foreign key check: %w", err)
		}
		return fmt.Errorf("store: %s: foreign key check failed: %s row %d refers to a missing %s row", db.path, table, rowid.Int64, parent)
	}
	return rows.Err()
}

// now is the current time in Unix milliseconds, the unit of every *_at column.
func (db *DB) now() int64 { return db.Now().UnixMilli() }

// readTx runs fn in a read transaction on the reader pool: every query in fn
// sees the same committed snapshot.
func (db *DB) readTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer tx.Rollback()
	return fn(tx)
}

// writeTx runs fn in an immediate transaction on the writer and commits when
// fn returns nil. On PostgreSQL the transaction is serializable, and one that
// lost a conflict with another process is run again from the start.
func (db *DB) writeTx(ctx context.Context, fn func(*sql.Tx) error) error {
	if db.dialect != dialectPostgres {
		return db.writeTxOnce(ctx, fn)
	}
	for attempt := 0; ; attempt++ {
		err := db.writeTxOnce(ctx, fn)
		if !retryable(err) || attempt >= maxRetries {
			return err
		}
		if err := retryPause(ctx, attempt); err != nil {
			return err
		}
	}
}

func (db *DB) writeTxOnce(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}
