package jobs

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/deltascope/deltascope/store"
)

// TestNoticesSurviveALostConnection: two runners on one PostgreSQL store (as
// a page server and a worker would be) hear each other's notices; when the
// database drops their LISTEN connections they reconnect and hear the next
// ones; and each stops within a second of its context.
func TestNoticesSurviveALostConnection(t *testing.T) {
	url, db, admin := pgStore(t)
	ctx := context.Background()
	// The backends whose last statement was the LISTEN, done: the runners'
	// listening connections, waiting for notices.
	listeners := func() map[int]bool {
		t.Helper()
		// Idle: the LISTEN has finished (committed); while it still runs,
		// a notice sent meanwhile is not delivered to it.
		rows, err := admin.Query(`SELECT pid FROM pg_stat_activity WHERE query = 'LISTEN ' || $1 AND state = 'idle'`, NotifyChannel)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		pids := map[int]bool{}
		for rows.Next() {
			var pid int
			if err := rows.Scan(&pid); err != nil {
				t.Fatal(err)
			}
			pids[pid] = true
		}
		return pids
	}
	// waitListeners waits for n listening connections other than those in
	// gone (dropped ones the server may still list a moment).
	waitListeners := func(n int, gone map[int]bool, what string) map[int]bool {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			now := listeners()
			for pid := range gone {
				delete(now, pid)
			}
			if len(now) == n {
				return now
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d LISTEN connections; want %d", what, len(now), n)
			}
		}
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := func() (*Runner, func() time.Duration) {
		// ServeOnly: the notices are under test, not the jobs.
		r := New(db, Options{QueueURL: url, ServeOnly: true, Log: log})
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { r.Run(rctx); close(done) }()
		stop := func() time.Duration {
			begin := time.Now()
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return within 10 s of its context's end")
			}
			return time.Since(begin)
		}
		t.Cleanup(func() { cancel(); <-done })
		return r, stop
	}
	pages, stopPages := start()
	worker, stopWorker := start()
	first := waitListeners(2, nil, "at start")

	events, unsubscribe := pages.Subscribe()
	defer unsubscribe()
	heard := func(id, what string) {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case got := <-events:
				if got == id {
					return
				}
			case <-timeout:
				t.Fatalf("%s: the other runner's notice about %s never arrived", what, id)
			}
		}
	}
	a, err := db.CreateAnalysis(ctx, store.AnalysisRequest{Base: []string{"/nowhere/base"}, VLA: []string{"/nowhere/vla"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := worker.Cancel(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	heard(a.ID, "connected")

	// The database drops both listeners: each reconnects and hears again.
	for pid := range first {
		var ok bool
		if err := admin.QueryRow(`SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
			t.Fatalf("terminate LISTEN connection %d: %v, %v", pid, ok, err)
		}
	}
	waitListeners(2, first, "after the database dropped them")
	b, err := db.CreateAnalysis(ctx, store.AnalysisRequest{Base: []string{"/nowhere/base"}, VLA: []string{"/nowhere/vla"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := worker.Cancel(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	heard(b.ID, "reconnected")

	for name, stop := range map[string]func() time.Duration{"pages": stopPages, "worker": stopWorker} {
		if took := stop(); took > time.Second {
			t.Errorf("the %s runner took %s to stop; want under a second", name, took)
		}
	}
	waitListeners(0, nil, "after both runners stopped")
}
