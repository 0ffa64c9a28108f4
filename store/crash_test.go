package store

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
)

const crashDirEnv = "DELTASCOPE_STORE_CRASH_DIR"

// TestKilledDuringFinish runs Finish in a child process that is SIGKILLed after
// writing every row but before the commit. The database reopens intact, shows
// nothing of the result, and the analysis is recovered as interrupted.
func TestKilledDuringFinish(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(t, dir)
		return
	}
	ctx := context.Background()
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	kept, want := finishSample(t, db, "fp-kept-b", "fp-kept-v", dir)
	a, err := db.CreateAnalysis(ctx, sampleRequest)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledDuringFinish$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != -1 {
		t.Fatalf("child was not killed: %v\n%s", err, out)
	}

	db = mustOpenDir(t, dir)
	if err := db.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := db.Get(ctx, a.ID)
	if err != nil || got.Status != StatusRunning || got.CacheKey != "" {
		t.Fatalf("killed analysis: %+v, %v; want running, no cache key", got, err)
	}
	for _, q := range []string{
		`SELECT count(*) FROM tensor_stats WHERE analysis_id = ?`,
		`SELECT count(*) FROM unit_scores WHERE analysis_id = ?`,
		`SELECT count(*) FROM alignment_issues WHERE analysis_id = ?`,
	} {
		if n := countRows(t, db, q, a.ID); n != 0 {
			t.Fatalf("%s: %d rows of an uncommitted result", q, n)
		}
	}
	if n := countRows(t, db, `SELECT count(*) FROM checkpoints WHERE fingerprint LIKE 'fp-crash%'`); n != 0 {
		t.Fatalf("%d checkpoints of an uncommitted Finish", n)
	}
	if _, err := db.Tensors(ctx, a.ID, TensorFilter{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("Tensors of the killed analysis: %v, want ErrConflict", err)
	}
	if n, err := db.RecoverInterrupted(ctx, false); err != nil || n != 1 {
		t.Fatalf("RecoverInterrupted = %d, %v", n, err)
	}
	if got, _ := db.Get(ctx, a.ID); got.Status != StatusFailed || got.Error != "interrupted" {
		t.Fatalf("after recovery: %+v", got)
	}
	res, err := db.Result(ctx, kept.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "result committed before the crash", res, want)
}

// crashChild claims the queued analysis and dies inside Finish's transaction.
func crashChild(t *testing.T, dir string) {
	ctx := context.Background()
	db, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := db.ClaimNext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	testHookBeforeCommit = func() {
		p, _ := os.FindProcess(os.Getpid())
		p.Kill() // SIGKILL on Unix: no deferred cleanup, no rollback
		select {}
	}
	err = db.Finish(ctx, a.ID, record("fp-crash-b", dir+"/b", 1, 1), record("fp-crash-v", dir+"/v", 1, 1), sampleResult())
	t.Fatalf("Finish returned (%v) instead of dying", err)
}
