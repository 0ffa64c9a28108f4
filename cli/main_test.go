package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deltascope/deltascope/analysis/synth"
	"github.com/deltascope/deltascope/internal/testfixtures"
	"github.com/deltascope/deltascope/store"
)

// The test binary doubles as the deltascope binary: with DELTASCOPE_AS_MAIN set
// it runs the command line, so crash tests can start, kill and restart a real
// server process.
func TestMain(m *testing.M) {
	if args := os.Getenv("DELTASCOPE_AS_MAIN"); args != "" {
		var argv []string
		json.Unmarshal([]byte(args), &argv)
		os.Exit(Main(argv, Env{Stdout: os.Stdout, Stderr: os.Stderr}))
	}
	os.Exit(m.Run())
}

// serverProcess is `deltascope serve` in a child process.
type serverProcess struct {
	cmd  *exec.Cmd
	url  string
	done chan error
}

func startServer(t *testing.T, args ...string) *serverProcess {
	t.Helper()
	argv, _ := json.Marshal(append([]string{"serve", "--addr", "127.0.0.1:0", "--no-demo"}, args...))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DELTASCOPE_AS_MAIN="+string(argv))
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serverProcess{cmd: cmd, done: make(chan error, 1)}
	lines := bufio.NewScanner(stdout)
	if lines.Scan() {
		if _, url, ok := strings.Cut(lines.Text(), "serving on "); ok {
			p.url = url
		}
	}
	go func() { io.Copy(io.Discard, stdout); p.done <- cmd.Wait() }()
	if p.url == "" {
		cmd.Process.Kill()
		t.Fatalf("server did not start: %v", <-p.done)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *serverProcess) get(t *testing.T, path string) map[string]any {
	t.Helper()
	resp, err := http.Get(p.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return out
}

func (p *serverProcess) post(t *testing.T, path, body string) map[string]any {
	t.Helper()
	resp, err := http.Post(p.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode >= 300 {
		t.Fatalf("POST %s: %d %v", path, resp.StatusCode, out)
	}
	return out
}

// waitFor polls the analysis until cond holds.
func (p *serverProcess) waitFor(t *testing.T, id string, what string, cond func(a map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if a := p.get(t, "/api/analyses/"+id); cond(a) {
			return a
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("analysis %s: timed out waiting until %s", id, what)
	return nil
}

// bigPair writes a full-size OpenVLA-7B pair as sparse files (no disk used), so
// an analysis runs for seconds: long enough to be killed in the middle.
func bigPair(t *testing.T) (root, body string) {
	t.Helper()
	root = t.TempDir()
	pair, err := synth.Generate(context.Background(), synth.Options{Preset: "openvla-7b", Scale: 1, Out: root, ShapeOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string][]string{"base": pair.Base, "vla": pair.VLA})
	return root, string(b)
}

func running(a map[string]any) bool {
	done, _ := a["bytes_done"].(float64)
	return a["status"] == "running" && done > 0
}

func TestKilledServerRestartsClean(t *testing.T) {
	root, pair := bigPair(t)
	data := t.TempDir()
	srv := startServer(t, "--data", data, "--root", root)
	id := srv.post(t, "/api/analyses", pair)["id"].(string)
	srv.waitFor(t, id, "it runs", running)
	srv.cmd.Process.Signal(syscall.SIGKILL)
	<-srv.done

	// Straight after the crash: the database is intact and nothing half-done shows.
	db, err := store.Open(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.IntegrityCheck(context.Background()); err != nil {
		t.Fatalf("integrity after SIGKILL: %v", err)
	}
	if _, err := db.Tensors(context.Background(), id, store.TensorFilter{}); err == nil {
		t.Error("a killed analysis shows tensors")
	}
	db.Close()

	// Restarted without resuming: failed, with the reason.
	srv = startServer(t, "--data", data, "--root", root, "--interrupted", "fail")
	a := srv.get(t, "/api/analyses/"+id)
	if a["status"] != "failed" || !strings.Contains(fmt.Sprint(a["error"]), "interrupted") {
		t.Errorf("after restart: %v", a)
	}
	srv.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-srv.done; err != nil {
		t.Errorf("SIGTERM exit: %v", err)
	}
}

func TestKilledJobResumesAndCancels(t *testing.T) {
	root, pair := bigPair(t)
	data := t.TempDir()
	srv := startServer(t, "--data", data, "--root", root)
	id := srv.post(t, "/api/analyses", pair)["id"].(string)
	srv.waitFor(t, id, "it runs", running)
	srv.cmd.Process.Signal(syscall.SIGKILL)
	<-srv.done

	// Resumed by default: it runs again, from the start.
	srv = startServer(t, "--data", data, "--root", root)
	a := srv.waitFor(t, id, "it runs again", running)
	if a["attempts"].(float64) != 2 {
		t.Errorf("attempts %v, want 2", a["attempts"])
	}
	// Cancelling a running analysis stops it.
	srv.post(t, "/api/analyses/"+id+"/cancel", "")
	srv.waitFor(t, id, "it is cancelled", func(a map[string]any) bool { return a["status"] == "cancelled" })

	// SIGTERM mid-job: the job goes back to the queue and the process exits 0.
	id2 := srv.post(t, "/api/analyses", pair)["id"].(string)
	srv.waitFor(t, id2, "it runs", running)
	start := time.Now()
	srv.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-srv.done; err != nil {
		t.Errorf("SIGTERM exit: %v", err)
	}
	if el := time.Since(start); el > shutdownGrace+5*time.Second {
		t.Errorf("shutdown took %v", el)
	}
	db, err := store.Open(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.Get(context.Background(), id2)
	if err != nil || got.Status != store.StatusQueued {
		t.Errorf("after SIGTERM the job is %v (%v), want queued", got.Status, err)
	}
	if err := db.IntegrityCheck(context.Background()); err != nil {
		t.Error(err)
	}
}

// analyze --data answers the second time from the database.
func TestAnalyzeDataCache(t *testing.T) {
	data := t.TempDir()
	out1, out2 := filepath.Join(t.TempDir(), "a.json"), filepath.Join(t.TempDir(), "b.json")
	args := []string{"analyze", "--base", testfixtures.Path("pi05", "base"), "--vla", testfixtures.Path("pi05", "vla", "model.safetensors"), "--data", data, "--rows", "--units"}
	for _, out := range []string{out1, out2} {
		var stderr strings.Builder
		if code := Main(append(args, "--json", out), Env{Stdout: io.Discard, Stderr: &stderr}); code != 0 {
			t.Fatalf("analyze: %d %s", code, stderr.String())
		}
	}
	a, _ := os.ReadFile(out1)
	b, _ := os.ReadFile(out2)
	if string(a) != string(b) {
		t.Error("the cached answer differs from the computed one")
	}
	db, err := store.Open(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	list, _ := db.List(context.Background(), 10)
	if len(list) != 1 || list[0].Status != store.StatusDone {
		t.Errorf("database holds %d analyses, want one done", len(list))
	}
}
