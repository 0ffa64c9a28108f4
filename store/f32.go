package store

import (
	"encoding/binary"
	"fmt"
	"math"
)

// encodeF32 packs v as little-endian float32, 4 bytes each; nil stays nil
// (stored as NULL: the array is absent), empty becomes an empty blob.
func encodeF32(v []float32) []byte {
	if v == nil {
		return nil
	}
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

// decodeF32 unpacks a blob written by encodeF32. A nil blob (NULL) gives nil.
func decodeF32(b []byte) ([]float32, error) {
	if b == nil {
		return nil, nil
	}
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("float32 blob of %d bytes is not a multiple of 4", len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}
