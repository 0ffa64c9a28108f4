package safetensors_test

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/deltascope/deltascope/analysis/checkpoint/safetensors"
	"github.com/deltascope/deltascope/analysis/tensor"
)

// FuzzParseHeader feeds arbitrary header bytes and data-section sizes to the
// parser: it must never panic, every refusal must be a *tensor.Error, and every
// header it accepts must tile its data section exactly.
func FuzzParseHeader(f *testing.F) {
	fx := fixturesDir(f)
	files, err := filepath.Glob(filepath.Join(fx, "edge", "*.safetensors"))
	if err != nil {
		f.Fatal(err)
	}
	files = append(files, filepath.Join(fx, "pi05", "vla", "model.safetensors"),
		filepath.Join(fx, "pi05", "base", "model-00001-of-00004.safetensors"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		n := binary.LittleEndian.Uint64(b)
		hdr := b[8 : 8+n]
		f.Add(hdr, uint64(len(b))-8-n)
	}
	for _, s := range []string{
		`{}`, `[]`, `{"__metadata__":{"a":1}}`, `{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}`,
		`{"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,4]}}`,
		`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}`,
		`{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`,
		`{"a":[[[[[[[[[[[[[[[[`, "{\"\xff\":1}",
	} {
		f.Add([]byte(s), uint64(4))
	}
	f.Fuzz(func(t *testing.T, hdr []byte, dataLen uint64) {
		dataLen %= 1 << 40 // keep fileSize in int64 whatever the fuzzer picks
		fileSize := 8 + int64(len(hdr)) + int64(dataLen)
		h, err := safetensors.ParseHeader(hdr, fileSize, "fuzz.safetensors", 1000)
		if err != nil {
			var te *tensor.Error
			if !errors.As(err, &te) || te.Path != "fuzz.safetensors" {
				t.Fatalf("error %T %v is not a *tensor.Error naming the file", err, err)
			}
			return
		}
		if len(h.Entries) > 1000 {
			t.Fatalf("%d entries accepted with a limit of 1000", len(h.Entries))
		}
		checkInvariants(t, h, int64(len(hdr)), fileSize)
	})
}
