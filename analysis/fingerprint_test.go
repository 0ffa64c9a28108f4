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
