package safetensors_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis/checkpoint/safetensors"
	"github.com/deltascope/deltascope/internal/hostile"
)

func readHostile(t *testing.T, data []byte, maxTensors int) (*safetensors.Header, hostile.Usage, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "many.safetensors")
	hostile.WriteFile(t, path, data)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var h *safetensors.Header
	use := hostile.Measure(func() { h, err = safetensors.ReadHeader(f, int64(len(data)), path, 0, maxTensors) })
	return h, use, err
}

// TestHeaderOverTensorLimit: a header listing more tensors than the limit is
// refused by the counting pass, before anything is kept for a tensor or the
// header is held in memory. Before, the 18 MB header was read whole and
// decoded up to the limit (and the default limit was 1 M, so 70,000 passed).
func TestHeaderOverTensorLimit(t *testing.T) {
	data := hostile.ManyTensorsSafetensors(200_000, 38)
	_, use, err := readHostile(t, data, 1000)
	t.Logf("%d-byte header, limit 1000: %v; %v", len(data), use, err)
	if err == nil || !strings.Contains(err.Error(), "more than 1000 tensors, the limit (200000 listed") {
		t.Fatalf("error %v, want the count and the limit", err)
	}
	if use.Alloc > 1<<20 {
		t.Errorf("allocated %d KB refusing it; the count needs one 64 KB buffer", use.Alloc>>10)
	}

	// The default limit is what real checkpoints need (OpenVLA: 982 tensors).
	_, _, err = readHostile(t, hostile.ManyTensorsSafetensors(safetensors.DefaultMaxTensors+1, 8), 0)
	if err == nil || !strings.Contains(err.Error(), "more than 65536 tensors, the limit (65537 listed") {
		t.Fatalf("65,537 tensors under the default limit: %v", err)
	}
}

// TestLargeAllowedHeaderMemory: a header at the default tensor limit parses in
// memory that follows what is kept (the entries), not the header's length,
// which is streamed from the file rather than read whole.
func TestLargeAllowedHeaderMemory(t *testing.T) {
	n := safetensors.DefaultMaxTensors
	data := hostile.ManyTensorsSafetensors(n, 38)
	h, use, err := readHostile(t, data, 0)
	t.Logf("%d tensors, %d-byte header: %v", n, len(data), use)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Entries) != n {
		t.Fatalf("%d entries, want %d", len(h.Entries), n)
	}
	// Kept: ~64 B of Entry, a 40-byte name and a one-int shape per tensor
	// (~7.5 MB), and the duplicate check's set while parsing (~4 MB).
	if use.Peak > 32<<20 {
		t.Errorf("peak live heap +%d MB parsing a %d MB header; want it to follow the ~12 MB kept", use.Peak>>20, len(data)>>20)
	}
}

// TestTensorCountWithMetadata: __metadata__ is a key but not a tensor, so a
// header at the limit with metadata passes the counting pass, and one over it
// does not, whatever its strings hold.
func TestTensorCountWithMetadata(t *testing.T) {
	entry := `{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`
	for _, tc := range []struct {
		json string
		ok   bool
	}{
		{`{"__metadata__":{"__metadata__":"x:y"},"a":` + entry + `}`, true},
		{`{"a":` + entry + `,"__metadata__":{"k":"v"}}`, true},
		{`{"__metadata__":{"k":"v"},"a":` + entry + `,"b":` + entry + `}`, false},
		{`{"a:b":` + entry + `,"__metad\u0061ta__":` + entry + `}`, false},
	} {
		hdr := tc.json
		_, err := safetensors.ParseHeader([]byte(hdr), int64(8+len(hdr)), "m.safetensors", 1)
		if (err == nil) != tc.ok {
			t.Errorf("%s with a limit of 1: error %v, want ok=%v", hdr, err, tc.ok)
		}
	}
}
