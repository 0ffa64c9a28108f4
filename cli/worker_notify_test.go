package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/deltascope/deltascope/analysis/synth"
	"github.com/deltascope/deltascope/internal/pgtest"
	"github.com/deltascope/deltascope/store"
)

// A page server started with --workers 0 and a worker sharing one PostgreSQL:
// the server runs nothing, the worker everything, and what the worker does
// reaches the server's pages through PostgreSQL notifications.

func TestServeWorkersZeroNeedsSharedStore(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--workers", "0", "--data", t.TempDir(), "--no-demo"},
		{"serve", "--workers", "-1", "--data", t.TempDir(), "--no-demo"},
	} {
		code, _, stderr := runCLI(t, "", args...)
		if code == 0 || !strings.Contains(stderr, "--workers") || !strings.Contains(stderr, "--db") {
			t.Errorf("deltascope %s: exit %d, stderr %q; want a refusal naming --workers and --db", strings.Join(args, " "), code, stderr)
		}
	}
}

// shapeOnlyPair writes a TinyLlama-shaped pair of holes (no disk) at width
// scale and returns the JSON body that posts its analysis.
func shapeOnlyPair(t *testing.T, scale float64) (root, body string) {
	t.Helper()
	root = t.TempDir()
	gen, err := synth.Generate(context.Background(), synth.Options{Preset: "tinyllama", Scale: scale, Out: root, ShapeOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(map[string][]string{"base": specsUnder(root, gen.Base), "vla": specsUnder(root, gen.VLA)})
	return root, string(data)
}

// processLog is a child process's stderr, kept for the test to read.
type processLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *processLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *processLog) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

// waitFor waits until the log holds s and returns when it saw it.
func (l *processLog) waitFor(t *testing.T, s string, within time.Duration) time.Time {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if l.count(s) > 0 {
			return time.Now()
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Fatalf("no %q in the log within %s:\n%s", s, within, l.buf.String())
	return time.Time{}
}

// startLoggedWorker runs `deltascope worker` in a child process (the test
// binary, as startServer does), waits until it says it started, and keeps
// its log.
func startLoggedWorker(t *testing.T, args ...string) (*exec.Cmd, *processLog) {
	t.Helper()
	log := &processLog{}
	argv, _ := json.Marshal(append([]string{"worker"}, args...))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DELTASCOPE_AS_MAIN="+string(argv))
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = log
	if testing.Verbose() {
		cmd.Stderr = io.MultiWriter(log, os.Stderr)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "deltascope worker:") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("worker did not start: %q", lines.Text())
	}
	go io.Copy(io.Discard, stdout)
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, log
}

// sseEvent is one server-sent progress event, with when it arrived.
type sseEvent struct {
	at        time.Time
	Status    string `json:"status"`
	BytesDone int64  `json:"bytes_done"`
}

// readEvents reads GET /api/analyses/{id}/events until the stream ends (the
// analysis ended) or ctx does.
func readEvents(ctx context.Context, url string) ([]sseEvent, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var events []sseEvent
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(nil, 1<<20)
	kind := ""
	for lines.Scan() {
		line := lines.Text()
		if k, ok := strings.CutPrefix(line, "event: "); ok {
			kind = k
		} else if data, ok := strings.CutPrefix(line, "data: "); ok && kind == "progress" {
			e := sseEvent{at: time.Now()}
			if err := json.Unmarshal([]byte(data), &e); err != nil {
				return events, fmt.Errorf("event data %q: %v", data, err)
			}
			events = append(events, e)
		}
	}
	return events, lines.Err()
}

// TestServeWorkersZeroEventsFromWorker: an analysis posted to a page server
// that runs no jobs is computed by a worker, and a server-sent-event client of
// the page server sees its progress as the worker writes it (every 250 ms,
// faster than the events' 1 s re-read of the store could show it) and its end.
func TestServeWorkersZeroEventsFromWorker(t *testing.T) {
	url := pgtest.NewDB(t)
	root, body := shapeOnlyPair(t, 0.7) // 2 × 1.1 GB of holes: seconds of reading on one thread
	srv := startServer(t, "--db", url, "--data", t.TempDir(), "--root", root, "--workers", "0", "--job-timeout", "30s")
	id := srv.post(t, "/api/analyses", body)["id"].(string)

	// Nothing computes it yet: the server runs no jobs.
	time.Sleep(500 * time.Millisecond)
	if a := srv.get(t, "/api/analyses/"+id); a["status"] != "queued" {
		t.Fatalf("with --workers 0 and no worker the analysis is %v; want still queued", a["status"])
	}

	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	var events []sseEvent
	var readErr error
	read := make(chan struct{})
	go func() {
		defer close(read)
		events, readErr = readEvents(ctx, srv.url+"/api/analyses/"+id+"/events")
	}()
	_, log := startLoggedWorker(t, "--db", url, "--root", root, "--threads", "1", "--job-timeout", "30s")
	<-read
	if readErr != nil || len(events) == 0 {
		t.Fatalf("events: %d, %v", len(events), readErr)
	}
	if last := events[len(events)-1]; last.Status != "done" {
		t.Fatalf("the last event is %s; want done (%d events)", last.Status, len(events))
	}
	var progress, quick int
	var prev time.Time
	for _, e := range events {
		if e.Status != "running" || e.BytesDone == 0 {
			continue
		}
		progress++
		if !prev.IsZero() && e.at.Sub(prev) < 600*time.Millisecond {
			quick++
		}
		prev = e.at
	}
	t.Logf("%d events, %d of progress, %d within 600 ms of the one before", len(events), progress, quick)
	if progress == 0 {
		t.Fatal("no progress event while the worker computed")
	}
	if quick < 2 {
		t.Errorf("only %d progress events followed the one before within 600 ms: the server did not hear the worker's progress as it was written", quick)
	}
	if n := log.count(`msg="analysis done"`); n != 1 {
		t.Errorf("the worker logged %d analyses done; want 1", n)
	}
}

// TestServeWorkersZeroCancelStopsWorker: a cancel posted to the page server
// stops the worker's computation within about a second, though the worker
// writes its progress (where it would otherwise notice) only once a minute.
func TestServeWorkersZeroCancelStopsWorker(t *testing.T) {
	url := pgtest.NewDB(t)
	root, body := shapeOnlyPair(t, 1) // 2 × 2.2 GB of holes: seconds of reading on one thread
	srv := startServer(t, "--db", url, "--data", t.TempDir(), "--root", root, "--workers", "0", "--job-timeout", "30s")
	_, log := startLoggedWorker(t, "--db", url, "--root", root, "--threads", "1", "--job-timeout", "30s", "--progress-every", "1m")
	db, err := store.OpenURL(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	id := srv.post(t, "/api/analyses", body)["id"].(string)
	waitAnalysis(t, db, id, "the worker computes it", func(a *store.Analysis) bool {
		return a.Status == store.StatusRunning && a.BytesDone > 0
	})
	cancelled := time.Now()
	if a := srv.post(t, "/api/analyses/"+id+"/cancel", ""); a["status"] != "cancelled" {
		t.Fatalf("after cancel the analysis is %v", a["status"])
	}
	stopped := log.waitFor(t, `msg="analysis cancelled"`, 20*time.Second)
	if took := stopped.Sub(cancelled); took > 1500*time.Millisecond {
		t.Errorf("the worker stopped %s after the cancel; want within about a second", took)
	} else {
		t.Logf("the worker stopped %s after the cancel", took)
	}
	if log.count("job cancelled by another process") != 1 {
		t.Error("the worker did not log the cancel it heard of")
	}
	if log.count(`msg="analysis done"`) != 0 {
		t.Error("the worker finished the cancelled analysis")
	}
	if a, _ := db.Get(context.Background(), id); a.Status != store.StatusCancelled {
		t.Errorf("the analysis ended %s; want cancelled", a.Status)
	}
}

// TestSpectrumOnWorkerOnce: a spectrum asked of a page server with --workers
// 0 is computed by a worker, once: a second worker starting meanwhile leaves
// it running where it is (no requeue of another live process's job), and
// River holds one job for it, completed on its first attempt.
func TestSpectrumOnWorkerOnce(t *testing.T) {
	url := pgtest.NewDB(t)
	root, body := shapeOnlyPair(t, 0.5)
	srv := startServer(t, "--db", url, "--data", t.TempDir(), "--root", root, "--workers", "0", "--job-timeout", "30s")
	_, first := startLoggedWorker(t, "--db", url, "--root", root, "--job-timeout", "30s")
	ctx := context.Background()
	db, err := store.OpenURL(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	id := srv.post(t, "/api/analyses", body)["id"].(string)
	waitAnalysis(t, db, id, "the worker finishes it", func(a *store.Analysis) bool { return a.Status == store.StatusDone })

	srv.post(t, "/api/analyses/"+id+"/spectrum", `{"rank": 8}`)
	var running *store.Spectrum
	for deadline := time.Now().Add(20 * time.Second); running == nil; time.Sleep(20 * time.Millisecond) {
		s, err := db.SpectrumOf(ctx, id, 8, false)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case s.Status == store.StatusRunning && s.BytesDone > 0:
			running = s
		case s.Status.Terminal():
			t.Fatalf("the spectrum ended %s (%s) before the test saw it running", s.Status, s.Error)
		case time.Now().After(deadline):
			t.Fatalf("the spectrum is still %s after 20 s", s.Status)
		}
	}
	_, second := startLoggedWorker(t, "--db", url, "--root", root, "--job-timeout", "30s")
	second.waitFor(t, "job queue started", 10*time.Second)
	// The second worker is up and working the queue: the spectrum must still
	// be the first one's run, never put back in the queue.
	for {
		s, err := db.SpectrumOf(ctx, id, 8, false)
		if err != nil {
			t.Fatal(err)
		}
		if s.Status == store.StatusDone {
			break
		}
		if s.Status != store.StatusRunning || s.StartedAt == nil || !s.StartedAt.Equal(*running.StartedAt) || s.BytesDone < running.BytesDone {
			t.Fatalf("after a second worker started the spectrum is %s, started %v, %d bytes read; want the first run (started %v, %d bytes and on)",
				s.Status, s.StartedAt, s.BytesDone, running.StartedAt, running.BytesDone)
		}
		running.BytesDone = s.BytesDone
		time.Sleep(20 * time.Millisecond)
	}
	if n := first.count(`msg="spectrum started"`) + second.count(`msg="spectrum started"`); n != 1 {
		t.Errorf("the spectrum was started %d times; want once", n)
	}
	if first.count(`msg="spectrum done"`) != 1 {
		t.Error("the first worker did not finish the spectrum")
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var jobs, completed, attempt int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE state = 'completed'), coalesce(max(attempt), 0)
			FROM river_job WHERE kind = 'deltascope_spectrum'`).Scan(&jobs, &completed, &attempt); err != nil {
			t.Fatal(err)
		}
		if completed > 0 {
			break
		}
	}
	if jobs != 1 || completed != 1 || attempt != 1 {
		t.Errorf("river_job for the spectrum: %d jobs, %d completed, attempt %d; want one, completed on its first attempt", jobs, completed, attempt)
	}
	if s, err := db.SpectrumOf(ctx, id, 8, true); err != nil || s.Result == nil {
		t.Errorf("the spectrum's result: %v", err)
	}
}
