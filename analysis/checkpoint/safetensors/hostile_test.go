package safetensors_test

import (
	"fmt"
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

// TestTensorNameLimit: a name longer than MaxNameLen is refused, naming the
// file and the tensor's place in the header rather than quoting the name
// whole; a name of exactly MaxNameLen is a name. Before, 65,536 names of
// 1,400 bytes (a 91 MB header) were accepted and one preview of two such
// files peaked at 435 MB (issue 14 follow-up).
func TestTensorNameLimit(t *testing.T) {
	entry := `{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`
	for _, n := range []int{safetensors.MaxNameLen, safetensors.MaxNameLen + 1, 1400, 1 << 20} {
		long := strings.Repeat("x", n)
		hdr := `{"a":` + entry + `,"__metadata__":{"format":"pt"},"b":` + entry + `,"` + long + `":` + entry + `}`
		h, err := safetensors.ParseHeader([]byte(hdr), int64(8+len(hdr)), "m.safetensors", 0)
		if n <= safetensors.MaxNameLen {
			if err != nil || len(h.Entries) != 3 {
				t.Errorf("a %d-byte name: %v", n, err)
			}
			continue
		}
		want := fmt.Sprintf("m.safetensors: tensor 3 of the header has a name of %d bytes", n)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "over the limit of 1024 bytes") {
			t.Errorf("a %d-byte name: %v, want %q", n, err, want)
		} else if len(err.Error()) > 300 {
			t.Errorf("the error quotes %d bytes of the name", len(err.Error()))
		}
	}
}

// TestLongNamesAtTheLimitsMemory: the most names the default limits let
// through (a 16 MiB header of 1,024-byte names, 15,500 tensors) parse in
// memory proportional to what is kept, ~1× the names, not a multiple of it.
func TestLongNamesAtTheLimitsMemory(t *testing.T) {
	data := hostile.ManyTensorsSafetensors(15_500, safetensors.MaxNameLen)
	if len(data) > 16<<20 {
		t.Fatalf("the header is %d bytes, over the 16 MiB default limit", len(data))
	}
	h, use, err := readHostile(t, data, 0)
	t.Logf("%d-byte header of 1 KB names: %v", len(data), use)
	if err != nil || len(h.Entries) != 15_500 {
		t.Fatalf("%v", err)
	}
	if use.Peak > 2*uint64(len(data)) {
		t.Errorf("peak live heap +%d MB parsing a %d MB header; want under twice its size", use.Peak>>20, len(data)>>20)
	}
}
