package store

import (
	"math"
	"testing"
)

func TestF32RoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   []float32
	}{
		{"nil", nil},
		{"empty", []float32{}},
		{"specials", []float32{0, float32(math.Copysign(0, -1)), 1, -2.5, math.MaxFloat32, math.SmallestNonzeroFloat32,
			float32(math.Inf(1)), float32(math.Inf(-1)), math.Float32frombits(0x7fc00001)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := encodeF32(tt.in)
			if len(b) != 4*len(tt.in) {
				t.Fatalf("%d bytes for %d floats", len(b), len(tt.in))
			}
			out, err := decodeF32(b)
			if err != nil {
				t.Fatal(err)
			}
			if (out == nil) != (tt.in == nil) || len(out) != len(tt.in) {
				t.Fatalf("decoded %v, want %v", out, tt.in)
			}
			for i := range out {
				if math.Float32bits(out[i]) != math.Float32bits(tt.in[i]) {
					t.Errorf("[%d] = %#x, want %#x", i, math.Float32bits(out[i]), math.Float32bits(tt.in[i]))
				}
			}
		})
	}
}

func TestF32LittleEndian(t *testing.T) {
	b := encodeF32([]float32{1})
	if want := []byte{0, 0, 0x80, 0x3f}; string(b) != string(want) {
		t.Fatalf("encodeF32(1) = % x, want % x", b, want)
	}
}

func TestDecodeF32RejectsRaggedBlob(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 7} {
		if _, err := decodeF32(make([]byte, n)); err == nil {
			t.Errorf("decodeF32 of %d bytes succeeded", n)
		}
	}
}
