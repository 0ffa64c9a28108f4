package store

import (
	"context"
	"errors"
	"sync"
	"testing"
)

func TestCreateAnalysis(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	a, err := db.CreateAnalysis(ctx, AnalysisRequest{Base: []string{"b"}, VLA: []string{"v"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.ID) != 12 || a.Status != StatusQueued || a.Attempts != 0 || a.StartedAt != nil || a.Summary != nil || a.Progress() != 0 {
		t.Fatalf("new analysis: %+v", a)
	}
	if a.Request.Map == nil || a.Request.Base[0] != "b" || a.Request.VLA[0] != "v" {
		t.Fatalf("request stored as %+v", a.Request)
	}
	if _, err := db.CreateAnalysis(ctx, AnalysisRequest{Base: []string{"b"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("request without VLA sources: %v, want ErrInvalid", err)
	}
}

func TestCreateRunning(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	a, err := db.CreateRunning(ctx, sampleRequest)
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != StatusRunning || a.Attempts != 1 || a.StartedAt == nil {
		t.Fatalf("CreateRunning: %+v", a)
	}
	if got, err := db.ClaimNext(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a worker claimed the CLI's analysis: %+v, %v", got, err)
	}
	if err := db.Finish(ctx, a.ID, record("b", "/b", 1, 1), record("v", "/v", 1, 1), sampleResult()); err != nil {
		t.Fatal(err)
	}
}

func TestClaimNextOldestFirst(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	var ids []string
	for range 3 {
		a, err := db.CreateAnalysis(ctx, sampleRequest)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	for i, want := range ids {
		a, err := db.ClaimNext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if a.ID != want || a.Status != StatusRunning || a.Attempts != 1 || a.StartedAt == nil {
			t.Fatalf("claim %d: %+v, want %s running, attempt 1", i, a, want)
		}
	}
	if _, err := db.ClaimNext(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("claim from an empty queue: %v, want ErrNotFound", err)
	}
}

// TestClaimNextAtomic has two workers drain the queue at once: every analysis
// is claimed exactly once.
func TestClaimNextAtomic(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	const n = 40
	for range n {
		if _, err := db.CreateAnalysis(ctx, sampleRequest); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	claimed := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
			for {
				a, err := db.ClaimNext(ctx)
				if errors.Is(err, ErrNotFound) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				claimed[a.ID]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(claimed) != n {
		t.Fatalf("%d distinct analyses claimed, want %d", len(claimed), n)
	}
	for id, k := range claimed {
		if k != 1 {
			t.Errorf("%s claimed %d times", id, k)
		}
	}
	if got := countRows(t, db, `SELECT count(*) FROM analyses WHERE status = 'running' AND attempts = 1`); got != n {
		t.Fatalf("%d running with one attempt, want %d", got, n)
	}
}

func TestUpdateProgress(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	a := startAnalysis(t, db, sampleRequest)
	if err := db.UpdateProgress(ctx, a.ID, 250, 1000, "llm.3.ffn_gate"); err != nil {
		t.Fatal(err)
	}
	got, err := db.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.BytesDone != 250 || got.BytesTotal != 1000 || got.CurrentTensor != "llm.3.ffn_gate" || got.Progress() != 0.25 {
		t.Fatalf("after progress: %+v (progress %v)", got, got.Progress())
	}
}

func TestCancel(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	done, _ := finishSample(t, db, "fp-b", "fp-v", t.TempDir())
	running := startAnalysis(t, db, sampleRequest)
	queued, err := db.CreateAnalysis(ctx, sampleRequest)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name        string
		id          string
		wantRunning bool
		wantErr     error
	}{
		{"queued", queued.ID, false, nil},
		{"running", running.ID, true, nil},
		{"again", running.ID, false, ErrConflict},
		{"done", done.ID, false, ErrConflict},
		{"unknown", "nope", false, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wasRunning, err := db.Cancel(ctx, tt.id)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Cancel = %v, want %v", err, tt.wantErr)
			}
			if wasRunning != tt.wantRunning {
				t.Fatalf("wasRunning = %v, want %v", wasRunning, tt.wantRunning)
			}
		})
	}
	for _, id := range []string{queued.ID, running.ID} {
		a, err := db.Get(ctx, id)
		if err != nil || a.Status != StatusCancelled || a.FinishedAt == nil {
			t.Fatalf("%s after Cancel: %+v, %v", id, a, err)
		}
	}
	if a, _ := db.Get(ctx, done.ID); a.Status != StatusDone {
		t.Fatalf("done analysis became %s", a.Status)
	}
	// The cancelled job's worker learns of it, and its result is discarded.
	if err := db.UpdateProgress(ctx, running.ID, 1, 2, "x"); !errors.Is(err, ErrConflict) {
		t.Fatalf("progress of a cancelled analysis: %v, want ErrConflict", err)
	}
	err = db.Finish(ctx, running.ID, record("fp-x", "/x", 1, 1), record("fp-y", "/y", 1, 1), sampleResult())
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("Finish of a cancelled analysis: %v, want ErrConflict", err)
	}
	if n := countRows(t, db, `SELECT count(*) FROM tensor_stats WHERE analysis_id = ?`, running.ID); n != 0 {
		t.Fatalf("cancelled analysis has %d tensor rows", n)
	}
	if n := countRows(t, db, `SELECT count(*) FROM checkpoints WHERE fingerprint = 'fp-x'`); n != 0 {
		t.Fatalf("discarded Finish left its checkpoint behind")
	}
	if err := db.Fail(ctx, running.ID, "late failure"); !errors.Is(err, ErrConflict) {
		t.Fatalf("Fail of a cancelled analysis: %v, want ErrConflict", err)
	}
}

func TestFail(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	a := startAnalysis(t, db, sampleRequest)
	if err := db.Fail(ctx, a.ID, "base: model.safetensors: header too large"); err != nil {
		t.Fatal(err)
	}
	got, err := db.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusFailed || got.Error != "base: model.safetensors: header too large" || got.FinishedAt == nil {
		t.Fatalf("after Fail: %+v", got)
	}
	if _, err := db.Result(ctx, a.ID); !errors.Is(err, ErrConflict) {
		t.Fatalf("Result of a failed analysis: %v, want ErrConflict", err)
	}
}

func TestRecoverInterrupted(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		resume   bool
		attempts int // claims of the interrupted analysis before the crash
		want     Status
		wantErr  string
	}{
		{"fail", false, 1, StatusFailed, "interrupted"},
		{"resume", true, 1, StatusQueued, ""},
		{"resume, attempts exhausted", true, MaxAttempts, StatusFailed, "interrupted 3 times"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			db := mustOpenDir(t, dir)
			done, _ := finishSample(t, db, "fp-b", "fp-v", dir)
			a := startAnalysis(t, db, sampleRequest)
			for range tt.attempts - 1 {
				if _, err := db.RecoverInterrupted(ctx, true); err != nil {
					t.Fatal(err)
				}
				if _, err := db.ClaimNext(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.UpdateProgress(ctx, a.ID, 10, 20, "t"); err != nil {
				t.Fatal(err)
			}
			queued, err := db.CreateAnalysis(ctx, sampleRequest)
			if err != nil {
				t.Fatal(err)
			}
			db.Close() // the "crash": the next server opens the same file

			db = mustOpenDir(t, dir)
			n, err := db.RecoverInterrupted(ctx, tt.resume)
			if err != nil || n != 1 {
				t.Fatalf("RecoverInterrupted = %d, %v; want 1", n, err)
			}
			got, err := db.Get(ctx, a.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.want || got.Error != tt.wantErr || got.Attempts != tt.attempts {
				t.Fatalf("interrupted analysis: status %s, error %q, attempts %d; want %s, %q, %d",
					got.Status, got.Error, got.Attempts, tt.want, tt.wantErr, tt.attempts)
			}
			if tt.want == StatusQueued && (got.BytesDone != 0 || got.CurrentTensor != "") {
				t.Fatalf("requeued analysis keeps stale progress: %+v", got)
			}
			for id, want := range map[string]Status{queued.ID: StatusQueued, done.ID: StatusDone} {
				if a, err := db.Get(ctx, id); err != nil || a.Status != want {
					t.Fatalf("bystander %s: %+v, %v; want %s", id, a, err, want)
				}
			}
			if n, err := db.RecoverInterrupted(ctx, tt.resume); err != nil || n != 0 {
				t.Fatalf("second RecoverInterrupted = %d, %v; want 0", n, err)
			}
			if err := db.IntegrityCheck(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	var ids []string
	for range 5 {
		a, err := db.CreateAnalysis(ctx, sampleRequest)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	got, err := db.List(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].ID != ids[4] || got[1].ID != ids[3] || got[2].ID != ids[2] {
		t.Fatalf("List(3) = %v, want the newest three of %v, newest first", got, ids)
	}
}
