package cli

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/deltascope/deltascope/analysis/synth"
)

// lineWatcher reports, on a channel, the first write containing want.
type lineWatcher struct {
	want string
	seen chan struct{}
	done bool
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	if !w.done && strings.Contains(string(p), w.want) {
		w.done = true
		close(w.seen)
	}
	return len(p), nil
}

// Stopped while it generates the demo pair, serve returns only once the demo
// goroutine has ended: nothing uses the database after serve closes it, and
// no half-made demo folder is left.
func TestServeWaitsForDemo(t *testing.T) {
	// The generation takes a while to wind down once cancelled (as removing
	// a large partial pair does): serve must wait for it all the same.
	orig := generateDemo
	generateDemo = func(ctx context.Context, o synth.Options) (*synth.Pair, error) {
		p, err := orig(ctx, o)
		if ctx.Err() != nil {
			time.Sleep(300 * time.Millisecond)
		}
		return p, err
	}
	t.Cleanup(func() { generateDemo = orig })
	data := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lineWatcher{want: "serving on", seen: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		errc <- runServe(ctx, Env{Stdout: out, Stderr: io.Discard}, []string{"--addr", "127.0.0.1:0", "--data", data})
	}()
	select {
	case <-out.seen:
	case err := <-errc:
		t.Fatalf("serve ended before serving: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	// Until the demo generation has begun writing: then it is surely running.
	for deadline := time.Now().Add(30 * time.Second); !writing(data) || !demoStarted(data); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the demo generation never started")
		}
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("serve: %v", err)
	}
	buf := make([]byte, 1<<20)
	if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "cli.ensureDemo") {
		t.Errorf("the demo goroutine outlived serve (and its database):\n%s", stacks)
	}
	if _, err := os.Stat(filepath.Join(data, "demo")); err == nil {
		if _, err := os.Stat(filepath.Join(data, "demo", "pair.json")); err != nil {
			t.Errorf("a demo folder without pair.json was left: %v", err)
		}
	}
}

// demoStarted reports whether the demo's temporary folder exists under data.
func demoStarted(data string) bool {
	m, _ := filepath.Glob(filepath.Join(data, ".demo.tmp*"))
	m2, _ := filepath.Glob(filepath.Join(data, "demo.tmp"))
	return len(m)+len(m2) > 0
}
