package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrations are the embedded schema steps in order; after applying the first
// k of them, PRAGMA user_version is k. Files are named NNNN_what.sql and must
// number 0001, 0002, ... without gaps. Never edit a shipped file: add one.
var migrations = mustLoadMigrations()

type migration struct {
	name string
	sql  string
}

func mustLoadMigrations() []migration {
	ms, err := loadMigrations(migrationFS)
	if err != nil {
		panic(err) // a build defect, caught by every test
	}
	return ms
}

func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []migration
	for i, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || n != i+1 {
			return nil, fmt.Errorf("store: migration %s: want a name starting %04d_", name, i+1)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{name: base, sql: string(b)})
	}
	return out, nil
}

// SchemaVersion is the schema version this code writes.
func SchemaVersion() int { return len(migrations) }

// migrateTo applies migrations up to version target, each in its own
// transaction together with its user_version bump, so a crash leaves the
// database at a whole version.
func (db *DB) migrateTo(ctx context.Context, target int) error {
	if target < 0 || target > len(migrations) {
		return fmt.Errorf("store: no schema version %d (known: 0..%d)", target, len(migrations))
	}
	if db.dialect == dialectPostgres {
		return db.migratePostgres(ctx, target)
	}
	v, err := userVersion(ctx, db.writer)
	if err != nil {
		return fmt.Errorf("store: %s: %w", db.path, err)
	}
	if v > len(migrations) {
		return fmt.Errorf("store: %s: database schema version %d is newer than this deltascope's %d; upgrade deltascope", db.path, v, len(migrations))
	}
	for i := v; i < target; i++ {
		m := migrations[i]
		err := db.writeTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			// PRAGMA takes no bound parameters; i+1 is our own integer.
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1))
			return err
		})
		if err != nil {
			return fmt.Errorf("store: %s: migration %s: %w", db.path, m.name, err)
		}
	}
	return nil
}

func userVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var v int
	err := q.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v)
	return v, err
}

// version is the schema version of the database.
func (db *DB) version(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	if db.dialect != dialectPostgres {
		return userVersion(ctx, q)
	}
	var v int
	err := q.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
	return v, err
}

// migratePostgres is migrateTo on PostgreSQL: the same files through pgDDL,
// each with its schema_version bump in one transaction (PostgreSQL's DDL is
// transactional), under an advisory lock so that processes starting together
// migrate once.
func (db *DB) migratePostgres(ctx context.Context, target int) error {
	for {
		done := false
		err := db.writeTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, int64(migrationLock)); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, pgSetup); err != nil {
				return err
			}
			v, err := db.version(ctx, tx)
			if err != nil {
				return err
			}
			if v > len(migrations) {
				return fmt.Errorf("database schema version %d is newer than this deltascope's %d; upgrade deltascope", v, len(migrations))
			}
			if v >= target {
				done = true
				return nil
			}
			m := migrations[v]
			if _, err := tx.ExecContext(ctx, pgDDL(m.sql)); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			// A rebuilt table (0004) copies its rows with their ids, which
			// does not move an identity's sequence: move every one past its
			// column's largest value, as SQLite's rowid would be.
			if _, err := tx.ExecContext(ctx, pgResyncIdentities); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, v+1)
			return err
		})
		if err != nil {
			return fmt.Errorf("store: %s: %w", db.path, err)
		}
		if done {
			return nil
		}
	}
}
