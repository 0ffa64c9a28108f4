package prune

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/deltascope/deltascope/analysis/tensor"
)

// A write that fails for want of space becomes a DiskFullError naming the
// export folder and the file; any other failure keeps its *tensor.Error.
// (The real full disk is tested through the CLI, on a small tmpfs, in
// cli/diskfull_test.go.)
func TestAsDiskFull(t *testing.T) {
	tmp, dir := "/out/.pruned.tmp-123", "/out/pruned"
	shard := filepath.Join(tmp, "model-00001-of-00002.safetensors")
	writeErr := func(errn syscall.Errno) error {
		return &os.PathError{Op: "write", Path: shard, Err: errn}
	}
	tests := []struct {
		name     string
		err      error
		wantFull bool
		wantFile string
	}{
		{"no space while writing a shard", writeFailed(shard, writeErr(syscall.ENOSPC)), true, "model-00001-of-00002.safetensors"},
		{"quota while streaming a tensor", streamFailed("/vla/model.safetensors", shard, "w", writeErr(syscall.EDQUOT)), true, "model-00001-of-00002.safetensors"},
		{"no space making the folder", &writeError{msg: tensor.Errorf(dir, "mkdir: no space"), cause: syscall.ENOSPC}, true, ""},
		{"another write error", writeFailed(shard, writeErr(syscall.EIO)), false, ""},
		{"a bad file", tensor.Errorf("/vla/model.safetensors", "truncated"), false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := asDiskFull(tt.err, tmp, dir)
			var full *DiskFullError
			if errors.As(got, &full) != tt.wantFull {
				t.Fatalf("asDiskFull(%v) = %v; DiskFullError %v, want %v", tt.err, got, !tt.wantFull, tt.wantFull)
			}
			var te *tensor.Error
			if !tt.wantFull {
				if got != tt.err || !errors.As(got, &te) {
					t.Errorf("a failure that is not a full disk changed: %v", got)
				}
				return
			}
			if full.File != tt.wantFile || full.Dir != dir {
				t.Errorf("names dir %q file %q, want %q %q", full.Dir, full.File, dir, tt.wantFile)
			}
			if !errors.Is(got, syscall.ENOSPC) && !errors.Is(got, syscall.EDQUOT) {
				t.Error("does not unwrap to the errno")
			}
			if errors.As(got, &te) {
				t.Error("a full disk still reads as a bad file (*tensor.Error)")
			}
			msg := got.Error()
			if !strings.HasPrefix(msg, dir+": the disk is full") || !strings.Contains(msg, "removed") || strings.Contains(msg, tmp) {
				t.Errorf("message %q: want the export folder first, the disk, the removal, and not the temporary name", msg)
			}
		})
	}
}
