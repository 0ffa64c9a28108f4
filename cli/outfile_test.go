package cli

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/deltascope/deltascope/internal/testfixtures"
)

// --json to a pipe or a device writes into it and leaves it what it was (a
// rename over /dev/null once made it a plain file for the whole machine); to a
// symbolic link, replaces the file it points to and keeps the link.
func TestJSONOutputToPipeAndLink(t *testing.T) {
	pair := []string{"--base", testfixtures.Path("pi05", "base"), "--vla", testfixtures.Path("pi05", "vla", "model.safetensors")}
	dir := t.TempDir()

	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		f, err := os.Open(fifo)
		if err != nil {
			got <- nil
			return
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		got <- b
	}()
	if code, _, stderr := run(t, append([]string{"analyze", "--json", fifo}, pair...)...); code != 0 {
		t.Fatalf("analyze --json FIFO: exit %d: %s", code, stderr)
	}
	var res map[string]any
	if err := json.Unmarshal(<-got, &res); err != nil || res["tensors"] == nil {
		t.Fatalf("the pipe's reader got no analysis: %v", err)
	}
	if info, err := os.Lstat(fifo); err != nil || info.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("%s is no longer a pipe: %v %v", fifo, info.Mode(), err)
	}

	real := filepath.Join(dir, "real.json")
	if err := os.WriteFile(real, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, append([]string{"analyze", "--json", link}, pair...)...); code != 0 {
		t.Fatalf("analyze --json LINK: exit %d: %s", code, stderr)
	}
	if info, err := os.Lstat(link); err != nil || info.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("%s is no longer a link", link)
	}
	b, _ := os.ReadFile(real)
	if err := json.Unmarshal(b, &res); err != nil || res["tensors"] == nil {
		t.Fatalf("the link's target holds %.40q", b)
	}

	if code, _, stderr := run(t, append([]string{"analyze", "--json", dir}, pair...)...); code == 0 || !strings.Contains(stderr, dir+": is a folder") {
		t.Errorf("analyze --json FOLDER: exit %d, %q", code, stderr)
	}
}
