package analysis

import (
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// A fingerprint is a property of the content: not of block sizes, workers, the
// file format or the path.
func TestFingerprintIsContentOnly(t *testing.T) {
	a := analyzeFixture(t, Options{Fingerprint: true})
	b := analyzeFixture(t, Options{Fingerprint: true, BlockElems: 77, Workers: 3})
	c := analyzeFixture(t, Options{Fingerprint: true}, filepath.Join(fixtures, "pi05", "base_pickle", "pytorch_model.bin"))
	if len(a.BaseFingerprint) != 64 || a.BaseFingerprint == a.VLAFingerprint {
		t.Fatalf("fingerprints %q %q", a.BaseFingerprint, a.VLAFingerprint)
	}
	if a.BaseFingerprint != b.BaseFingerprint || a.VLAFingerprint != b.VLAFingerprint {
		t.Error("fingerprint depends on block size or workers")
	}
	if a.BaseFingerprint != c.BaseFingerprint {
		t.Error("the same base as a torch pickle has another fingerprint")
	}
	if d := analyzeFixture(t, Options{}); d.BaseFingerprint != "" {
		t.Error("fingerprint computed without being asked for")
	}
}

// Hashing a range in arbitrary pieces equals hashing it whole.
func TestHashBytesSeams(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 1000)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	hashWhole := func(data []byte) wordSum {
		h := &tensorHash{}
		var s wordSum
		e := hashBytes(&s, nil, data, 0)
		h.merge(s, e, int64(len(data)))
		return h.digest()
	}
	want := hashWhole(data)
	for trial := range 50 {
		h := &tensorHash{}
		for off := 0; off < len(data); {
			n := min(len(data)-off, 1+r.IntN(40))
			var s wordSum
			e := hashBytes(&s, nil, data[off:off+n], int64(off))
			h.merge(s, e, int64(n))
			off += n
		}
		if got := h.digest(); got != want {
			t.Fatalf("trial %d: pieces give %x, whole %x", trial, got, want)
		}
	}
	data[500] ^= 1
	if hashWhole(data) == want {
		t.Error("a flipped bit leaves the hash unchanged")
	}
}

func TestFingerprintCoversUnreadTensors(t *testing.T) {
	// The VLA's action expert has no base counterpart and the embedding's last
	// 32 base rows are outside the overlap; both must still be hashed, or side()
	// reports incomplete coverage.
	res := analyzeFixture(t, Options{Fingerprint: true})
	if res.VLAFingerprint == "" || len(res.VLAOnly) == 0 {
		t.Fatal("no fingerprint or no VLA-only tensors")
	}
}

// The fingerprint is a cache identity stored in databases: hashBytes must keep
// giving the digest it always gave. The pinned value is that of the
// word-at-a-time loop before sumWords; the same data is also checked against
// wordSum.add word by word, from every starting alignment.
func TestHashBytesDigestUnchanged(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	data := make([]byte, 4099)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	digest := func(data []byte, off int64) wordSum {
		var s wordSum
		e := hashBytes(&s, nil, data, off)
		h := &tensorHash{}
		h.merge(s, e, int64(len(data)))
		return h.digest()
	}
	if got, want := digest(data[3:], 3), (wordSum{0xc603922292d04e7e, 0x19eacaa625289a31}); got != want {
		t.Fatalf("digest %#x, want %#x: the fingerprint of every stored checkpoint would change", got, want)
	}
	for off := range 8 {
		for _, n := range []int{0, 7, 8, 31, 32, 33, 64, 100, 4090} {
			part := data[off : off+n]
			var want wordSum // word by word: whole words at the offset's alignment, edges OR-ed
			words := map[uint64]uint64{}
			for i, c := range part {
				p := uint64(off + i)
				words[p/8] |= uint64(c) << (8 * (p % 8))
			}
			for k, w := range words {
				want.add(k, w)
			}
			if got := digest(part, int64(off)); got != want {
				t.Fatalf("offset %d, %d bytes: %#x, word by word %#x", off, n, got, want)
			}
		}
	}
}

// BenchmarkHashBytes is the fingerprint's cost per byte read: it runs over
// every byte of both checkpoints when a server analyses a pair.
func BenchmarkHashBytes(b *testing.B) {
	data := make([]byte, 256<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	b.SetBytes(int64(len(data)))
	var edges []edge
	for b.Loop() {
		var s wordSum
		edges = hashBytes(&s, edges[:0], data, 4)
	}
}

// The vector path of sumWords (where this CPU and build have one) gives the
// scalar path's sums for every length, alignment of the remainder and word
// index, including indices where the keys wrap around 2⁶⁴.
func TestSumWordsVectorMatches(t *testing.T) {
	if sumWordsVector == nil {
		return // no vector path in this build or on this CPU: sumWords is sumWordsScalar
	}
	r := rand.New(rand.NewPCG(13, 14))
	data := make([]byte, 8*300)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	for _, k := range []uint64{0, 1, 7, 1 << 20, 1<<64 - 5, r.Uint64()} {
		for _, words := range []int{0, 1, 3, 4, 5, 8, 31, 32, 33, 300} {
			start := wordSum{a: r.Uint64(), b: r.Uint64()}
			want, got := start, start
			sumWordsScalar(&want, k, data[:8*words])
			sumWordsVector(&got, k, data[:8*words])
			if got != want {
				t.Fatalf("k %d, %d words: vector %#x, scalar %#x", k, words, got, want)
			}
		}
	}
}
