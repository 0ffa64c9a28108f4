package prune

import "encoding/binary"

// keepPattern is a row's keep mask for a masked copy: 0xff over the bytes of
// kept columns, 0 over those of the pruned ones.
func keepPattern(rowBytes, es int64, cols []int32) []byte {
	keep := make([]byte, rowBytes)
	for i := range keep {
		keep[i] = 0xff
	}
	for _, c := range cols {
		clear(keep[int64(c)*es : (int64(c)+1)*es])
	}
	return keep
}

// andBytes sets dst[i] &= mask[i]; mask is at least as long as dst.
func andBytes(dst, mask []byte) {
	mask = mask[:len(dst)]
	n := len(dst) &^ 7
	for i := 0; i < n; i += 8 {
		d, m := dst[i:i+8:i+8], mask[i:i+8:i+8]
		binary.LittleEndian.PutUint64(d, binary.LittleEndian.Uint64(d)&binary.LittleEndian.Uint64(m))
	}
	for i := n; i < len(dst); i++ {
		dst[i] &= mask[i]
	}
}
