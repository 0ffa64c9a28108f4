package jobs

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/deltascope/deltascope/store"
)

// A job River discarded after its worker died on every attempt leaves its
// analysis failed with the reason, not "running" for good; an analysis that
// started again after an old discard, and one still queued, are left alone.
func TestDiscardedJobFailsItsAnalysis(t *testing.T) {
	url, db, admin := pgStore(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	driver := riverpgxv5.New(pool)
	if err := migrateRiver(ctx, pool, driver); err != nil {
		t.Fatal(err)
	}
	client, err := river.NewClient(driver, &river.Config{})
	if err != nil {
		t.Fatal(err)
	}

	req := func(n string) store.AnalysisRequest {
		return store.AnalysisRequest{Base: []string{"/ckpt/base-" + n}, VLA: []string{"/ckpt/vla-" + n}}
	}
	// stuck: claimed, then its job discarded (the rescuer's doing, after
	// the third dead worker). restarted: its job was discarded before it
	// was claimed again. queued: never claimed.
	ids := map[string]string{}
	for _, n := range []string{"stuck", "restarted", "queued"} {
		a, err := db.CreateAnalysis(ctx, req(n))
		if err != nil {
			t.Fatal(err)
		}
		ids[n] = a.ID
		if _, err := client.Insert(ctx, analysisArgs{ID: a.ID}, nil); err != nil {
			t.Fatal(err)
		}
	}
	discard := func(id, when string) {
		t.Helper()
		if _, err := admin.Exec(`UPDATE river_job SET state = 'discarded', attempt = 3, finalized_at = `+when+`,
			errors = ARRAY['{"at": "2026-12-02T12:00:00Z", "attempt": 3, "error": "rescued: worker gone", "trace": ""}'::jsonb]
			WHERE args->>'id' = $1`, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ClaimID(ctx, ids["stuck"]); err != nil {
		t.Fatal(err)
	}
	discard(ids["stuck"], "now()")
	discard(ids["restarted"], "now() - interval '1 hour'")
	if _, err := db.ClaimID(ctx, ids["restarted"]); err != nil {
		t.Fatal(err)
	}
	discard(ids["queued"], "now()")

	r := New(db, Options{QueueURL: url, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	n, err := r.failDiscarded(ctx, client)
	if err != nil || n != 1 {
		t.Fatalf("failDiscarded = %d, %v; want the one stuck analysis", n, err)
	}
	a, _ := db.Get(ctx, ids["stuck"])
	if a.Status != store.StatusFailed || !strings.Contains(a.Error, "3 attempts") || !strings.Contains(a.Error, "rescued: worker gone") {
		t.Errorf("stuck analysis: %s %q", a.Status, a.Error)
	}
	if a, _ := db.Get(ctx, ids["restarted"]); a.Status != store.StatusRunning {
		t.Errorf("an analysis claimed after its old job's discard became %s", a.Status)
	}
	if a, _ := db.Get(ctx, ids["queued"]); a.Status != store.StatusQueued {
		t.Errorf("a queued analysis became %s", a.Status)
	}
	// A second sweep finds nothing more to do.
	if n, err := r.failDiscarded(ctx, client); err != nil || n != 0 {
		t.Errorf("second sweep failed %d (%v)", n, err)
	}
}
