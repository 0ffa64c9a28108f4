package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deltascope/deltascope/internal/hostile"
)

// takeAllSlots holds every header slot, as concurrent parses of large headers
// would, until the returned function is called.
func takeAllSlots(t *testing.T) (free func()) {
	t.Helper()
	for range HeaderSlots {
		headerSlots <- struct{}{}
	}
	freed := false
	free = func() {
		if !freed {
			freed = true
			for range HeaderSlots {
				<-headerSlots
			}
		}
	}
	t.Cleanup(free)
	return free
}

// TestHeaderSlots: while every slot is taken, a large header waits up to
// HeaderWait and then fails with ErrBusy naming the file (the server answers
// 429); a small header never waits; with no HeaderWait (CLI, job runner) the
// open waits for a slot and succeeds.
func TestHeaderSlots(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.safetensors")
	hostile.WriteFile(t, big, hostile.ManyTensorsSafetensors(20_000, 40)) // ~1.8 MB header
	small := filepath.Join(fixtures, "pi05", "vla", "model.safetensors")

	free := takeAllSlots(t)
	start := time.Now()
	_, err := OpenSource(big, Options{HeaderWait: 50 * time.Millisecond})
	if !errors.Is(err, ErrBusy) || !strings.HasPrefix(err.Error(), big+": ") {
		t.Fatalf("all slots taken: got %v, want ErrBusy naming %s", err, big)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond || waited > 2*time.Second {
		t.Errorf("waited %v for a slot, want about the 50 ms asked", waited)
	}
	src, err := OpenSource(small, Options{HeaderWait: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("a small header must not need a slot: %v", err)
	}
	src.Close()

	go func() { time.Sleep(100 * time.Millisecond); free() }()
	src, err = OpenSource(big, Options{})
	if err != nil {
		t.Fatalf("no HeaderWait: must wait for the slot, got %v", err)
	}
	defer src.Close()
	if len(src.Tensors) != 20_000 {
		t.Fatalf("%d tensors, want 20000", len(src.Tensors))
	}
	if len(headerSlots) != 0 {
		t.Errorf("%d slots still taken after the opens", len(headerSlots))
	}
}

// TestValidateFile: the upload check refuses the pickle bomb and a header over
// the tensor limit with the file's name, passes real checkpoints and files
// that are not checkpoints, and never opens a FIFO.
func TestValidateFile(t *testing.T) {
	dir := t.TempDir()
	hostile.WriteFile(t, filepath.Join(dir, "bomb.pt"), hostile.PickleBomb(8, 1<<20, false))
	hostile.WriteFile(t, filepath.Join(dir, "many.safetensors"), hostile.ManyTensorsSafetensors(70_000, 8))
	hostile.WriteFile(t, filepath.Join(dir, "tokenizer.json"), []byte("{}"))
	raw, err := os.ReadFile(filepath.Join(fixtures, "pi05", "vla", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	hostile.WriteFile(t, filepath.Join(dir, "model.safetensors"), raw)
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe.safetensors"), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for name, want := range map[string]string{
		"bomb.pt":           "vla/bomb.pt: data.pkl offset",
		"many.safetensors":  "vla/many.safetensors: header lists more than 65536 tensors",
		"pipe.safetensors":  "vla/pipe.safetensors: not a regular file",
		"model.safetensors": "",
		"tokenizer.json":    "",
	} {
		var err error
		use := hostile.Measure(func() { err = ValidateFile(root, name, "vla/"+name, Options{}) })
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: error %v, want %q", name, err, want)
		}
		if use.Alloc > 300<<20 {
			t.Errorf("%s: validation allocated %d MB", name, use.Alloc>>20)
		}
	}
}

// TestOpenRegular: exports reopen files by path; a FIFO in a file's place is
// refused at once (an ordinary open would wait for a writer forever), and a
// file over the size limit is refused by ReadRegular.
func TestOpenRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "config.json")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := OpenRegular(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), fifo+": not a regular file") {
			t.Errorf("OpenRegular(FIFO): %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OpenRegular blocked on a FIFO")
	}
	file := filepath.Join(dir, "tokenizer.json")
	hostile.WriteFile(t, file, []byte(`{"a": 1}`))
	if data, err := ReadRegular(file, 8); err != nil || string(data) != `{"a": 1}` {
		t.Errorf("ReadRegular at the limit: %q %v", data, err)
	}
	if _, err := ReadRegular(file, 7); err == nil || !strings.Contains(err.Error(), "larger than the 7 bytes") {
		t.Errorf("ReadRegular over the limit: %v", err)
	}
}
