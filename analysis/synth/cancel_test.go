package synth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cancelWhenWriting cancels once a file under dir (recursively) holds data:
// Generate is then in the middle of writing values.
func cancelWhenWriting(t *testing.T, dir string, cancel func()) {
	t.Helper()
	go func() {
		defer cancel()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			found := false
			filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() && filepath.Ext(p) == ".safetensors" {
					if info, err := d.Info(); err == nil && info.Size() > 1<<20 {
						found = true
						return filepath.SkipAll
					}
				}
				return nil
			})
			if found {
				return
			}
		}
	}()
}

// Into a new folder: cancelled half-way, nothing appears, not even the
// temporary folder it was written under, nor the folders above it that did
// not exist yet.
func TestGenerateCancelledNewFolder(t *testing.T) {
	for name, rel := range map[string]string{"beside": "pair", "under new folders": "runs/a/pair"} {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			out := filepath.Join(parent, filepath.FromSlash(rel))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cancelWhenWriting(t, parent, cancel)
			_, err := Generate(ctx, Options{Preset: "tinyllama", Scale: 0.5, Out: out, Seed: 1})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Generate = %v, want context.Canceled", err)
			}
			if left, _ := os.ReadDir(parent); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

// Into an existing folder: cancelled half-way, the folder keeps what it held
// before and nothing else.
func TestGenerateCancelledExistingFolder(t *testing.T) {
	out := t.TempDir()
	keep := filepath.Join(out, "notes.txt")
	if err := os.WriteFile(keep, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cancelWhenWriting(t, out, cancel)
	_, err := Generate(ctx, Options{Preset: "tinyllama", Scale: 0.5, Out: out, Seed: 1})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Generate = %v, want context.Canceled", err)
	}
	left, _ := os.ReadDir(out)
	if len(left) != 1 || left[0].Name() != "notes.txt" {
		t.Errorf("after a cancelled Generate the folder holds %v, want only notes.txt", left)
	}
}

// A new folder is renamed into place whole: its files are where pair.json
// says, and no temporary folder stays beside it.
func TestGenerateNewFolderWhole(t *testing.T) {
	parent := t.TempDir()
	out := filepath.Join(parent, "a", "pair")
	if _, err := Generate(context.Background(), Options{Preset: "pi05", Scale: testScale, Out: out, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	p, err := ReadPair(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range append(p.Base, p.VLA...) {
		_, path, ok := strings.Cut(spec, "=")
		if !ok {
			path = spec
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("pair.json names %s: %v", path, err)
		}
	}
	if left, _ := os.ReadDir(filepath.Join(parent, "a")); len(left) != 1 {
		t.Errorf("beside the pair: %v", left)
	}
}
