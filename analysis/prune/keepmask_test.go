package prune

import (
	"bytes"
	"testing"
)

// andBytes with keepPattern zeroes exactly the pruned columns' bytes, on rows
// whose length is not a multiple of 8 too.
func TestKeepPatternZeroesPrunedColumns(t *testing.T) {
	for _, c := range []struct {
		es   int64
		cols int64
		cut  []int32
	}{{2, 11, []int32{0, 3, 4, 10}}, {4, 5, []int32{1}}, {1, 17, []int32{16}}, {8, 3, []int32{0, 1, 2}}} {
		rowBytes := c.es * c.cols
		row := make([]byte, rowBytes)
		for i := range row {
			row[i] = byte(i + 1)
		}
		want := bytes.Clone(row)
		for _, k := range c.cut {
			clear(want[int64(k)*c.es : (int64(k)+1)*c.es])
		}
		andBytes(row, keepPattern(rowBytes, c.es, c.cut))
		if !bytes.Equal(row, want) {
			t.Errorf("es %d cols %d cut %v: %v, want %v", c.es, c.cols, c.cut, row, want)
		}
	}
}
