package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/deltascope/deltascope/analysis/arch"
)

var wantTables = map[int][]string{
	1: {"checkpoints", "checkpoint_locations", "checkpoint_sources", "checkpoint_files", "analyses",
		"tensor_stats", "tensor_arrays", "unit_scores", "alignment_issues"},
	2: {"users", "api_tokens", "sessions", "recipes", "comments", "review_events", "eval_results", "uploads"},
}

func tableExists(t *testing.T, db *DB, name string) bool {
	t.Helper()
	if db.dialect == dialectPostgres {
		return countRows(t, db, `SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?`, name) == 1
	}
	return countRows(t, db, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, name) == 1
}

func TestMigrateFromEmpty(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	v, err := db.version(ctx, db.reader)
	if err != nil {
		t.Fatal(err)
	}
	if v != SchemaVersion() || v < 2 {
		t.Fatalf("user_version = %d, want %d (≥ 2)", v, SchemaVersion())
	}
	for _, names := range wantTables {
		for _, name := range names {
			if !tableExists(t, db, name) {
				t.Errorf("table %s missing", name)
			}
		}
	}
	if db.dialect == dialectSQLite { // PostgreSQL has no journal modes: it always writes ahead
		var mode string
		if err := db.reader.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("journal_mode = %q, %v; want wal", mode, err)
		}
	}
	if err := db.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateFromEarlierVersions builds a database at every earlier schema
// version, stores a finished analysis in it, then opens it with the current
// code: the schema reaches the latest version and the result is intact.
func TestMigrateFromEarlierVersions(t *testing.T) {
	ctx := context.Background()
	for k := 1; k < SchemaVersion(); k++ {
		t.Run(migrations[k-1].name, func(t *testing.T) {
			dir := t.TempDir()
			old, err := openTest(t, dir, k)
			if err != nil {
				t.Fatal(err)
			}
			useFakeClock(old)
			if v, _ := old.version(ctx, old.reader); v != k {
				t.Fatalf("user_version = %d, want %d", v, k)
			}
			for _, name := range wantTables[k+1] {
				if tableExists(t, old, name) {
					t.Fatalf("table %s exists at version %d", name, k)
				}
			}
			a, want := finishSample(t, old, "fp-base", "fp-vla", dir)
			if k < adviceSchema { // a database without the column kept no advice
				want.Suggestions, want.GeometryGuessed = []arch.Suggestion{}, []string{}
			}
			queued, err := old.CreateAnalysis(ctx, sampleRequest)
			if err != nil {
				t.Fatal(err)
			}
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}

			db := mustOpenDir(t, dir)
			if v, _ := db.version(ctx, db.reader); v != SchemaVersion() {
				t.Fatalf("user_version after migration = %d, want %d", v, SchemaVersion())
			}
			for _, name := range wantTables[k+1] {
				if !tableExists(t, db, name) {
					t.Errorf("table %s missing after migration", name)
				}
			}
			got, err := db.Result(ctx, a.ID)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, "result", got, want)
			if q, err := db.Get(ctx, queued.ID); err != nil || q.Status != StatusQueued {
				t.Fatalf("queued analysis after migration: %+v, %v", q, err)
			} else if q.Named || q.Name != DefaultName(sampleRequest) || q.Tags == nil {
				t.Errorf("an analysis from before names reads as %q (named %v), tags %#v", q.Name, q.Named, q.Tags)
			}
			if err := db.IntegrityCheck(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	if _, err := db.writer.Exec(`PRAGMA user_version = 999`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err := Open(ctx, dir)
	if err == nil || !strings.Contains(err.Error(), "newer") || !strings.Contains(err.Error(), filepath.Join(dir, FileName)) {
		t.Fatalf("Open of a version-999 database: %v, want a 'newer' error naming the file", err)
	}
}

func TestLoadMigrationsRejectsGaps(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		ok    bool
	}{
		{"in order", []string{"0001_a.sql", "0002_b.sql"}, true},
		{"gap", []string{"0001_a.sql", "0003_c.sql"}, false},
		{"no number", []string{"init.sql"}, false},
		{"starts at 2", []string{"0002_b.sql"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for _, f := range tt.files {
				fsys["migrations/"+f] = &fstest.MapFile{Data: []byte("SELECT 1;")}
			}
			ms, err := loadMigrations(fsys)
			if (err == nil) != tt.ok {
				t.Fatalf("loadMigrations(%v) = %d migrations, %v; want ok=%v", tt.files, len(ms), err, tt.ok)
			}
		})
	}
}

func TestMigrateToUnknownVersion(t *testing.T) {
	_, err := open(context.Background(), t.TempDir(), SchemaVersion()+1)
	if err == nil {
		t.Fatal("open at an unknown version succeeded")
	}
	if errors.Is(err, ErrNotFound) {
		t.Fatalf("unexpected domain error %v", err)
	}
}

func TestOpenCreatesFolderAndReadersCannotWrite(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "a", "b")
	db := mustOpenDir(t, dir)
	if db.Path() != filepath.Join(dir, FileName) {
		t.Fatalf("Path() = %s", db.Path())
	}
	if _, err := db.reader.ExecContext(ctx, `INSERT INTO checkpoints (fingerprint, params, bytes, created_at) VALUES ('x', 1, 1, 1)`); err == nil {
		t.Fatal("a reader connection wrote to the database")
	}
}

func TestIntegrityCheckFindsCorruption(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	finishSample(t, db, "fp-b", "fp-v", dir)
	var root, pageSize int
	if err := db.reader.QueryRow(`SELECT rootpage FROM sqlite_schema WHERE name = 'tensor_stats_lookup'`).Scan(&root); err != nil {
		t.Fatal(err)
	}
	if err := db.reader.QueryRow(`PRAGMA page_size`).Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Scribble over one index page: the schema stays readable, the index does not.
	path := filepath.Join(dir, FileName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := (root - 1) * pageSize
	if root < 2 || off+pageSize > len(b) {
		t.Fatalf("index root page %d outside a %d-byte file", root, len(b))
	}
	for i := off; i < off+pageSize; i++ {
		b[i] = 0xa5
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.IntegrityCheck(ctx); err == nil {
		t.Fatal("IntegrityCheck passed on a corrupted database")
	} else {
		t.Log(err)
	}
}
