// Package hostile writes the checkpoint files an adversarial review used to
// exhaust deltascope's memory, so that the reader's, the server's and the CLI's
// tests replay the same attacks on real files, and measures what parsing them
// costs.
package hostile

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"time"
)

// PickleBombPickle is the data.pkl of the bomb: an empty list, then blocks of
// MARK + perBlock × None + APPENDS, then STOP. Each None costs the file one
// byte and an unbounded unpickler a 16-byte list slot (plus the slices it
// copies and regrows on the way): memory grows linearly with the pickle.
func PickleBombPickle(blocks, perBlock int) []byte {
	var b bytes.Buffer
	b.Grow(blocks*(perBlock+2) + 4)
	b.Write([]byte{0x80, 2, ']'})
	nones := bytes.Repeat([]byte{'N'}, perBlock)
	for range blocks {
		b.WriteByte('(')
		b.Write(nones)
		b.WriteByte('e')
	}
	b.WriteByte('.')
	return b.Bytes()
}

// PickleBomb is a torch.save-shaped zip whose data.pkl is PickleBombPickle,
// deflated when deflate is true (~1000:1 for this pickle: 8 M Nones fit in
// ~8 KB) and stored otherwise.
func PickleBomb(blocks, perBlock int, deflate bool) []byte {
	method := zip.Store
	if deflate {
		method = zip.Deflate
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(w, flate.BestCompression)
	})
	for _, e := range []struct {
		name   string
		data   []byte
		method uint16
	}{
		{"archive/data.pkl", PickleBombPickle(blocks, perBlock), method},
		{"archive/version", []byte("3\n"), zip.Store},
	} {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: e.method})
		if err != nil {
			panic(err) // writing to memory cannot fail
		}
		w.Write(e.data)
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// ManyTensorsSafetensors is a valid safetensors file of n zero-size F32
// tensors named "t.<i>" (with names padded to nameLen bytes when longer): all
// header, no data. At n = 1 M and nameLen ~60 the header is ~89 MB, the
// review's preview attack.
func ManyTensorsSafetensors(n, nameLen int) []byte {
	var h bytes.Buffer
	h.WriteByte('{')
	pad := ""
	for i := range n {
		if i > 0 {
			h.WriteByte(',')
		}
		name := fmt.Sprintf("t.%d", i)
		if len(name) < nameLen {
			if len(pad) < nameLen {
				pad = strings.Repeat("x", nameLen)
			}
			name += "." + pad[:nameLen-len(name)-1]
		}
		fmt.Fprintf(&h, `%q:{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`, name)
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	out := make([]byte, 8, 8+h.Len())
	binary.LittleEndian.PutUint64(out, uint64(h.Len()))
	return append(out, h.Bytes()...)
}

// WriteFile writes data to path, failing the caller's test on error.
func WriteFile(tb interface {
	Helper()
	Fatal(...any)
}, path string, data []byte) {
	tb.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// Usage is what running f cost the process's Go heap.
type Usage struct {
	Alloc uint64 // bytes allocated while f ran (garbage included): an upper bound on the peak
	Peak  uint64 // highest live heap seen above the starting point, sampled every 200 µs
}

func (u Usage) String() string {
	return fmt.Sprintf("allocated %d MB, peak live heap +%d MB", u.Alloc>>20, u.Peak>>20)
}

// Measure runs f and reports its heap usage. The process's other goroutines
// count too, so callers keep them quiet; the figures are upper bounds.
func Measure(f func()) Usage {
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	base := sample[0].Value.Uint64()
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > base && v-base > peak {
				peak = v - base
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	f()
	close(stop)
	wg.Wait()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	return Usage{Alloc: after.TotalAlloc - before.TotalAlloc, Peak: peak}
}
