package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/deltascope/deltascope/analysis/synth"
	"github.com/deltascope/deltascope/internal/pgtest"
	"github.com/deltascope/deltascope/store"
)

func TestWorkerFlagErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"worker"}, "give --db"},
		{[]string{"worker", "--db", "deltascope-data"}, "is not a PostgreSQL URL"},
		{[]string{"worker", "--db", "postgres://u@127.0.0.1:1/x", "--job-timeout", "soon"}, "--job-timeout"},
	} {
		code, _, stderr := runCLI(t, "", tt.args...)
		if code == 0 || !strings.Contains(stderr, tt.want) {
			t.Errorf("deltascope %s: exit %d, stderr %q; want a failure saying %q", strings.Join(tt.args, " "), code, stderr, tt.want)
		}
	}
}

// startWorker is startLoggedWorker without the log.
func startWorker(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd, _ := startLoggedWorker(t, args...)
	return cmd
}

// TestWorkerKilledMidAnalysis: a worker SIGKILLed in the middle of an analysis, and a second worker: River's
// rescuer hands the job to the second, which takes the analysis over; it ends
// done once, with its rows stored once.
func TestWorkerKilledMidAnalysis(t *testing.T) {
	url := pgtest.NewDB(t)
	ctx := context.Background()
	// A TinyLlama-sized pair of holes (2 × 2.2 GB, no disk): a second or two
	// of reading, long enough to be killed in.
	root := t.TempDir()
	gen, err := synth.Generate(ctx, synth.Options{Preset: "tinyllama", Scale: 1, Out: root, ShapeOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	pairJSON, _ := json.Marshal(gen)
	pair := string(pairJSON)

	// The store and the queue's tables exist before anyone races for them.
	db, err := store.OpenURL(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	id := postAnalysis(t, db, root, pair) // queued first: the worker enqueues it as it starts
	first := startWorker(t, "--db", url, "--root", root, "--job-timeout", "30s")
	waitAnalysis(t, db, id, "the first worker computes it", func(a *store.Analysis) bool {
		return a.Status == store.StatusRunning && a.BytesDone > 0
	})
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	if a, _ := db.Get(ctx, id); a.Status != store.StatusRunning {
		t.Fatalf("after SIGKILL the analysis is %s; want still running (nobody finished it)", a.Status)
	}
	if _, err := db.Tensors(ctx, id, store.TensorFilter{}); err == nil {
		t.Fatal("a killed worker's analysis shows tensors")
	}

	startWorker(t, "--db", url, "--root", root, "--job-timeout", "30s")
	a := waitAnalysis(t, db, id, "the second worker finishes it", func(a *store.Analysis) bool { return a.Status.Terminal() })
	if a.Status != store.StatusDone || a.Attempts != 2 {
		t.Fatalf("after the rescue: %s, attempt %d (%s); want done on attempt 2", a.Status, a.Attempts, a.Error)
	}
	tensors, err := db.Tensors(ctx, id, store.TensorFilter{})
	if err != nil || len(tensors) == 0 {
		t.Fatalf("the rescued analysis: %d tensors, %v", len(tensors), err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// River records a job's completion a moment after Work returns.
	var jobs, completed int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE state = 'completed') FROM river_job WHERE args->>'id' = $1`, id).Scan(&jobs, &completed); err != nil {
			t.Fatal(err)
		}
		if completed > 0 {
			break
		}
	}
	if jobs != 1 || completed != 1 {
		t.Errorf("river_job for the analysis: %d jobs, %d completed; want one, completed", jobs, completed)
	}

	// Cancelled from another process (a page server's Cancel is this): the
	// worker stops at its next progress report, long before the end.
	second := postAnalysis(t, db, root, pair)
	waitAnalysis(t, db, second, "the worker computes it", func(a *store.Analysis) bool {
		return a.Status == store.StatusRunning && a.BytesDone > 0
	})
	cancelled := time.Now()
	if _, err := db.Cancel(ctx, second); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'completed') FROM river_job WHERE args->>'id' = $1`, second).Scan(&completed); err != nil {
			t.Fatal(err)
		}
		if completed == 1 {
			break
		}
	}
	if took := time.Since(cancelled); completed != 1 || took > 5*time.Second {
		t.Errorf("after a cancel from another process the worker's job completed=%d after %s; want it done within a few progress reports", completed, took)
	}
	if a, _ := db.Get(ctx, second); a.Status != store.StatusCancelled {
		t.Errorf("the cancelled analysis is %s", a.Status)
	}
}

// postAnalysis queues an analysis of the pair (a JSON {"base", "vla"}) as the
// page server would, without one: a worker enqueues it when it starts.
func postAnalysis(t *testing.T, db *store.DB, root, pair string) string {
	t.Helper()
	var req store.AnalysisRequest
	if err := json.Unmarshal([]byte(pair), &req); err != nil {
		t.Fatal(err)
	}
	req.Base, req.VLA = specsUnder(root, req.Base), specsUnder(root, req.VLA)
	a, err := db.CreateAnalysis(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return a.ID
}

func waitAnalysis(t *testing.T, db *store.DB, id, what string, cond func(*store.Analysis) bool) *store.Analysis {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		a, err := db.Get(context.Background(), id)
		if err == nil && cond(a) {
			return a
		}
		if err == nil && a.Status.Terminal() {
			t.Fatalf("analysis %s ended %s (%s) before %s", id, a.Status, a.Error, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("analysis %s: timed out waiting until %s", id, what)
	return nil
}

// specsUnder makes [PREFIX=]PATH specs with paths relative to root absolute,
// as the server does with a posted request.
func specsUnder(root string, specs []string) []string {
	var out []string
	for _, s := range specs {
		prefix, path, ok := strings.Cut(s, "=")
		if !ok {
			prefix, path = "", s
		} else {
			prefix += "="
		}
		out = append(out, prefix+filepath.Join(root, path))
	}
	return out
}

// TestWorkersDrainQueueThroughKill is the shared queue under load: one page
// server and three workers on one PostgreSQL drain twelve analyses posted at
// once while a worker is SIGKILLed in the middle of one. Every analysis ends
// done, once (one River job each, completed), and the stored result is the one
// a local run computes.
func TestWorkersDrainQueueThroughKill(t *testing.T) {
	url := pgtest.NewDB(t)
	ctx := context.Background()
	// Twelve pairs of holes in twelve folders: the same content (so the
	// results compare), but other files, so that no post is answered from
	// the cache of one finished meanwhile, which on a loaded machine left
	// fewer jobs than analyses and never four running at once.
	root := t.TempDir()
	var bodies []string
	var base, vla []string
	for i := range 12 {
		dir := filepath.Join(root, fmt.Sprint(i))
		gen, err := synth.Generate(ctx, synth.Options{Preset: "tinyllama", Scale: 0.3, Out: dir, ShapeOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		base, vla = specsUnder(dir, gen.Base), specsUnder(dir, gen.VLA)
		body, _ := json.Marshal(map[string][]string{"base": base, "vla": vla})
		bodies = append(bodies, string(body))
	}

	db, err := store.OpenURL(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv := startServer(t, "--db", url, "--data", t.TempDir(), "--root", root, "--threads", "1", "--job-timeout", "30s")
	var workers []*exec.Cmd
	for range 3 {
		workers = append(workers, startWorker(t, "--db", url, "--root", root, "--threads", "1", "--job-timeout", "30s"))
	}
	var ids []string
	for _, body := range bodies {
		ids = append(ids, srv.post(t, "/api/analyses", body)["id"].(string))
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Four processes computing one each: the first worker is surely in the
	// middle of one when it is killed.
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		var busy int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM analyses WHERE status = 'running' AND bytes_done > 0`).Scan(&busy); err != nil {
			t.Fatal(err)
		}
		if busy == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never four analyses running at once (last %d)", busy)
		}
	}
	workers[0].Process.Signal(syscall.SIGKILL)
	workers[0].Wait()

	for deadline := time.Now().Add(4 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var left int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM analyses WHERE status IN ('queued', 'running')`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			rows, _ := conn.Query(ctx, `SELECT a.id, a.status, a.attempts, coalesce(j.state::text, '-'), coalesce(j.attempt, 0), coalesce(j.errors::text, '')
				FROM analyses a LEFT JOIN river_job j ON j.args->>'id' = a.id WHERE a.status IN ('queued', 'running')`)
			for rows.Next() {
				var id, st, js, errs string
				var att, jatt int
				rows.Scan(&id, &st, &att, &js, &jatt, &errs)
				t.Logf("%s: %s attempt %d; job %s attempt %d %.300s", id, st, att, js, jatt, errs)
			}
			rows.Close()
			t.Fatalf("%d analyses still queued or running after 4 minutes", left)
		}
	}
	retried := 0
	for _, id := range ids {
		a, err := db.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if a.Status != store.StatusDone {
			t.Fatalf("analysis %s ended %s (%s)", id, a.Status, a.Error)
		}
		retried += a.Attempts - 1
	}
	if retried < 1 {
		t.Errorf("no analysis needed a second attempt, yet a worker was killed in the middle of one")
	}
	var jobs, completed int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE state = 'completed') FROM river_job`).Scan(&jobs, &completed); err != nil {
			t.Fatal(err)
		}
		if completed == len(ids) {
			break
		}
	}
	if jobs != len(ids) || completed != len(ids) {
		t.Errorf("river_job: %d jobs, %d completed; want %d, each completed once", jobs, completed, len(ids))
	}
	// The shared result, read back by analyze --db, is a local run's.
	shared := analyzeJSON(t, base[0], vla[0], "--db", url)
	local := analyzeJSON(t, base[0], vla[0], "--data", t.TempDir())
	if string(shared) != string(local) {
		t.Error("the result the workers stored differs from a local run's")
	}
}
