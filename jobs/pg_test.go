package jobs

import (
	"context"
	"database/sql"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/deltascope/deltascope/internal/pgtest"
	"github.com/deltascope/deltascope/store"
)

// pgStore makes a fresh PostgreSQL database for t and returns its URL, the
// store on it, and a plain connection for the test's own statements (admin);
// both are closed when t ends, before the database is dropped.
func pgStore(t *testing.T) (url string, db *store.DB, admin *sql.DB) {
	t.Helper()
	url = pgtest.NewDB(t)
	db, err := store.OpenURL(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	admin, err = sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	return url, db, admin
}
