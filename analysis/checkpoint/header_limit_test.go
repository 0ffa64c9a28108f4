package checkpoint

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDefaultHeaderLimit: the default header limit is 16 MiB, which real
// checkpoints never reach (OpenVLA-7B's header is ~110 KB), so the review's
// 91 MB header of 65,536 names of 1,400 bytes is refused before a byte of it
// is read; under the format's 100 MB cap it was accepted, and one preview of
// two such files peaked at 435 MB (issue 14 follow-up). A limit asked above
// the format's cap is clamped to it.
func TestDefaultHeaderLimit(t *testing.T) {
	if DefaultLimits.MaxHeaderBytes != 16<<20 {
		t.Errorf("default header limit %d, want 16 MiB", DefaultLimits.MaxHeaderBytes)
	}
	// The file is sparse: its size and length prefix are the attack's.
	const hdrLen = 95_158_280
	path := filepath.Join(t.TempDir(), "long-names.safetensors")
	if err := os.WriteFile(path, binary.LittleEndian.AppendUint64(nil, hdrLen), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 8+hdrLen); err != nil {
		t.Fatal(err)
	}
	_, err := OpenSide([]string{path}, Options{})
	if err == nil || !strings.Contains(err.Error(), path+": header length 95158280 exceeds the limit of 16777216 bytes") {
		t.Errorf("the 91 MB header under the default limits: %v", err)
	}
	if l := (Options{Limits: Limits{MaxHeaderBytes: 1 << 30}}).limits(); l.MaxHeaderBytes != 100_000_000 {
		t.Errorf("a 1 GiB header limit is taken as %d, want the format's cap", l.MaxHeaderBytes)
	}
}
