package analysis

import (
	"bytes"
	"math"
	"unsafe"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/kernel"
	"github.com/deltascope/deltascope/analysis/tensor"
)

// worker owns the buffers one goroutine reads blocks into, sized once for the
// largest block so that a whole analysis allocates them a single time.
type worker struct {
	maxElems int64
	fp       *fingerprints
	edges    []edge
	rawB     []byte
	rawV     []byte
	b32, v32 []float32
	b64      []float64
	mapped   []byteRange // mapped ranges read by recent blocks, not yet released
}

// byteRange is bytes [off, off+size) of a tensor.
type byteRange struct {
	t         *checkpoint.Tensor
	off, size int64
}

func newWorker(maxElems int64, fp *fingerprints) *worker {
	return &worker{maxElems: maxElems, fp: fp}
}

// hash adds bytes read at byte offset off of t to t's fingerprint.
func (w *worker) hash(t *checkpoint.Tensor, data []byte, off int64) {
	h := w.fp.of(t)
	if h == nil {
		return
	}
	var sum wordSum
	w.edges = hashBytes(&sum, w.edges[:0], data, off)
	h.merge(sum, w.edges, int64(len(data)))
}

// read returns bytes [off, off+size) of t: a slice of the mapped file when t is
// mapped (no copy; released after the block), else read with pread into *raw.
func (w *worker) read(t *checkpoint.Tensor, off, size int64, raw *[]byte) ([]byte, error) {
	if m := t.Mapped(off, size); m != nil {
		w.mapped = append(w.mapped, byteRange{t, off, size})
		return m, nil
	}
	return w.readRaw(t, off, size, raw)
}

// releaseBatch is how many mapped bytes a worker reads before releasing them:
// one madvise per range per block would dominate with small blocks.
const releaseBatch = 16 << 20

// releaseMapped drops the pages the worker's recent blocks mapped from this
// process's resident memory (without it, RSS would grow to the size of both
// checkpoints) once they add up to releaseBatch, or always when final.
func (w *worker) releaseMapped(final bool) {
	var pending int64
	for _, r := range w.mapped {
		pending += r.size
	}
	if !final && pending < releaseBatch {
		return
	}
	for _, r := range w.mapped {
		r.t.Release(r.off, r.size)
	}
	w.mapped = w.mapped[:0]
}

// hashOnly reads a range no comparison reads, for the fingerprint alone.
func (w *worker) hashOnly(b block) error {
	rb, err := w.read(b.t, b.off, b.size, &w.rawB)
	if err != nil {
		return err
	}
	w.hash(b.t, rb, b.off)
	return nil
}

// run processes one block (a comparison or a hash-only read), then releases
// the mapped pages read so far once they add up to a batch. The goroutine runs
// with debug.SetPanicOnFault: a fault while reading a mapped file (truncated or
// shrunk after it was opened) is recovered here and reported as an error
// naming that file. Other panics are bugs and propagate.
func (w *worker) run(b block) (p *partial, err error) {
	defer func() {
		w.releaseMapped(false)
		if r := recover(); r != nil {
			fault, ok := r.(interface{ Addr() uintptr })
			if !ok {
				panic(r)
			}
			p, err = nil, faultError(b, fault.Addr())
		}
	}()
	if b.job == nil {
		return nil, w.hashOnly(b)
	}
	return w.process(b)
}

// faultError names the file whose mapping holds addr.
func faultError(b block, addr uintptr) error {
	ts := []*checkpoint.Tensor{b.t}
	if b.job != nil {
		ts = []*checkpoint.Tensor{b.job.base, b.job.vla}
	}
	for _, t := range ts {
		if t.MappedAt(addr) {
			return tensor.TensorErrorf(t.File, t.Name, "file changed or was truncated while reading")
		}
	}
	return tensor.Errorf(ts[0].File, "memory fault at %#x while reading (file changed or was truncated while reading?)", addr)
}

func (w *worker) process(b block) (*partial, error) {
	j := b.job
	n := b.e1 - b.e0
	r0, r1 := b.e0/j.cols, (b.e1-1)/j.cols
	var p *partial
	switch {
	case !j.matrix:
		p = newPartial(r0, 0, 0, 0)
	case r0 == r1: // a segment of one row (or a single full row)
		p = newPartial(r0, b.e0%j.cols, 1, n)
	default:
		p = newPartial(r0, 0, r1-r0+1, j.cols)
	}
	switch {
	case !j.numeric:
		return p, w.compareRaw(b, p)
	case j.wide:
		return p, w.numeric64(b, p)
	}
	be, bRaw := encodingOf(j.base.DType)
	ve, vRaw := encodingOf(j.vla.DType)
	if bRaw && vRaw {
		if j.roundBase != nil && be == kernel.F32 && ve == kernel.BF16 {
			be = kernel.F32AsBF16 // rounded in the kernel's registers
		}
		return p, w.numericRaw(b, p, be, ve)
	}
	bs, err := w.load32(j.base, b.e0, n, &w.b32, &w.rawB)
	if err != nil {
		return nil, err
	}
	if j.roundBase != nil {
		roundInPlace(bs, j.roundBase) // bs is this worker's own buffer
	}
	vs, err := w.load32(j.vla, b.e0, n, &w.v32, &w.rawV)
	if err != nil {
		return nil, err
	}
	round := roundingFor(j.base.DType, j.vla.DType)
	err = w.segments(b, p, n, nil, func(lo, hi int64, colDD, colBB []float64) (float64, float64) {
		before := p.tot.Changed
		dd, bb := kernel.Row(&p.tot, bs[lo:hi], vs[lo:hi], colDD, colBB)
		if round != nil {
			// Elements that differ only by the VLA's storage rounding did not change.
			p.changed += countChangedRounded(bs[lo:hi], vs[lo:hi], round)
		} else {
			p.changed += p.tot.Changed - before
		}
		return dd, bb
	})
	return p, err
}

// encodingOf says whether the kernel reads dtype d straight from its bytes.
func encodingOf(d tensor.DType) (kernel.Encoding, bool) {
	switch d {
	case tensor.F32:
		return kernel.F32, true
	case tensor.BF16:
		return kernel.BF16, true
	}
	return 0, false
}

// readChunkBytes bounds how much of each side the hot path reads at once when
// it copies with pread: the copy and the kernel then meet in a core's L2 cache
// instead of streaming megabytes out to L3 and back. Measured on the 2-core VM
// (TinyLlama pair): 0.69 s with whole 2 MiB blocks, see the closing note for
// the chunked numbers.
const readChunkBytes = 256 << 10

// numericRaw is the hot path (F32 and BF16 on both sides): the kernel reads the
// stored bytes, so no element is widened into a float32 buffer. Mapped files
// are read in place; otherwise the block is read in chunks of whole row
// segments, which leaves every sum as if it had been read at once.
func (w *worker) numericRaw(b block, p *partial, be, ve kernel.Encoding) error {
	j := b.job
	bsz, vsz := int64(be.Size()), int64(ve.Size())
	chunk := readChunkBytes / max(bsz, vsz)
	if j.base.Mapped(0, 0) != nil && j.vla.Mapped(0, 0) != nil {
		chunk = b.e1 - b.e0
	}
	// An F32 base against a BF16 VLA is the one pair here where the VLA is
	// narrower: elements that differ only by its storage rounding did not change.
	rounded := (be == kernel.F32 || be == kernel.F32AsBF16) && ve == kernel.BF16
	var rb, rv []byte
	var first int64 // element of the block the chunk in rb, rv starts at
	load := func(lo, hi int64) error {
		var err error
		e0, n := b.e0+lo, hi-lo
		if rb, err = w.read(j.base, e0*bsz, n*bsz, &w.rawB); err != nil {
			return err
		}
		w.hash(j.base, rb, e0*bsz)
		if rv, err = w.read(j.vla, e0*vsz, n*vsz, &w.rawV); err != nil {
			return err
		}
		w.hash(j.vla, rv, e0*vsz)
		first = lo
		return nil
	}
	return w.segments(b, p, chunk, load, func(lo, hi int64, colDD, colBB []float64) (float64, float64) {
		before, nfB, nfV := p.tot.Changed, p.tot.NonFiniteBase, p.tot.NonFiniteVLA
		lo, hi = lo-first, hi-first
		sb, sv := rb[lo*bsz:hi*bsz], rv[lo*vsz:hi*vsz]
		dd, bb := kernel.RowRaw(&p.tot, be, sb, ve, sv, colDD, colBB)
		// With the base rounded in the kernel (F32AsBF16), the kernel's count is
		// ChangedBeyondBF16's wherever every element is finite on both sides
		// (the two differ only in how they count NaN and Inf): a second pass over
		// the row is needed only when the segment held one.
		if rounded && be == kernel.F32AsBF16 && p.tot.NonFiniteBase == nfB && p.tot.NonFiniteVLA == nfV {
			p.changed += p.tot.Changed - before
		} else if rounded {
			p.changed += kernel.ChangedBeyondBF16(sb, sv)
		} else {
			p.changed += p.tot.Changed - before
		}
		return dd, bb
	})
}

// segments calls row for each row segment of the block, [lo, hi) in elements
// from the block's start, with the column accumulators it should add into, and
// adds the segment's Σd² and Σb² into the row norms. Segments are grouped into
// chunks of at most chunk elements (at least one segment each); load, when
// set, is called with each chunk's range before its segments.
func (w *worker) segments(b block, p *partial, chunk int64, load func(lo, hi int64) error, row func(lo, hi int64, colDD, colBB []float64) (float64, float64)) error {
	j := b.job
	scratchDD, scratchBB := w.scratch(j)
	segEnd := func(e int64) int64 { return min(b.e1, (e/j.cols+1)*j.cols) }
	for start := b.e0; start < b.e1; {
		stop := segEnd(start)
		for stop < b.e1 && segEnd(stop)-start <= chunk {
			stop = segEnd(stop)
		}
		if load != nil {
			if err := load(start-b.e0, stop-b.e0); err != nil {
				return err
			}
		}
		for e := start; e < stop; {
			r, c := e/j.cols, e%j.cols
			end := segEnd(e)
			colDD, colBB := scratchDD, scratchBB
			if j.matrix {
				off := c - p.c0
				colDD, colBB = p.colDD[off:off+(end-e)], p.colBB[off:off+(end-e)]
			}
			dd, bb := row(e-b.e0, end-b.e0, colDD, colBB)
			if j.matrix {
				p.rowDD[r-p.r0] += dd
				p.rowBB[r-p.r0] += bb
			}
			e = end
		}
		start = stop
	}
	return nil
}

// scratch gives column accumulators for tensors without per-column output, so the
// kernel always has somewhere to write.
func (w *worker) scratch(j *pairJob) ([]float64, []float64) {
	if j.matrix {
		return nil, nil
	}
	need := int(min(j.cols, w.maxElems))
	if cap(w.b64) < 2*need {
		w.b64 = make([]float64, 2*need)
	}
	s := w.b64[:2*need]
	clear(s)
	return s[:need], s[need:]
}

// load32 reads n elements of t from element e0 as float32. F32 is read straight
// into the float buffer (the host is little-endian, as the format is); BF16 and
// F16 go through the kernel's widening; everything else through the exact decoder.
func (w *worker) load32(t *checkpoint.Tensor, e0, n int64, dst *[]float32, raw *[]byte) ([]float32, error) {
	if int64(cap(*dst)) < n {
		*dst = make([]float32, w.maxElems)
	}
	out := (*dst)[:n]
	off := e0 * t.DType.Bits() / 8
	size := n * t.DType.Bits() / 8
	if t.DType == tensor.F32 {
		if n == 0 {
			return out, nil
		}
		view := unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), size)
		if m := t.Mapped(off, size); m != nil {
			copy(view, m)
			w.mapped = append(w.mapped, byteRange{t, off, size})
		} else if err := t.ReadAt(view, off); err != nil {
			return nil, err
		}
		w.hash(t, view, off)
		return out, nil
	}
	rb, err := w.read(t, off, size, raw)
	if err != nil {
		return nil, err
	}
	w.hash(t, rb, off)
	switch t.DType {
	case tensor.BF16:
		kernel.WidenBF16(out, rb)
	case tensor.F16:
		kernel.WidenF16(out, rb)
	default:
		if err := tensor.DecodeFloat32(t.DType, out, rb); err != nil {
			return nil, tensor.TensorErrorf(t.File, t.Name, "%v", err)
		}
	}
	return out, nil
}

func (w *worker) readRaw(t *checkpoint.Tensor, off, size int64, raw *[]byte) ([]byte, error) {
	if int64(cap(*raw)) < size {
		*raw = make([]byte, size)
	}
	rb := (*raw)[:size]
	return rb, t.ReadAt(rb, off)
}

// numeric64 is the path for F64 tensors, whose precision float32 would lose. It is
// rare (edge cases, a few reference checkpoints), so it stays scalar.
func (w *worker) numeric64(b block, p *partial) error {
	j := b.job
	n := b.e1 - b.e0
	load := func(t *checkpoint.Tensor, raw *[]byte) ([]float64, error) {
		rb, err := w.read(t, b.e0*t.DType.Bits()/8, n*t.DType.Bits()/8, raw)
		if err != nil {
			return nil, err
		}
		w.hash(t, rb, b.e0*t.DType.Bits()/8)
		out := make([]float64, n)
		if err := tensor.DecodeFloat64(t.DType, out, rb); err != nil {
			return nil, tensor.TensorErrorf(t.File, t.Name, "%v", err)
		}
		return out, nil
	}
	bs, err := load(j.base, &w.rawB)
	if err != nil {
		return err
	}
	vs, err := load(j.vla, &w.rawV)
	if err != nil {
		return err
	}
	for i := int64(0); i < n; i++ {
		e := b.e0 + i
		r, c := e/j.cols, e%j.cols
		bv, vv := bs[i], vs[i]
		if j.roundBase != nil {
			bv = j.roundBase(bv)
		}
		if math.IsNaN(bv) || math.IsInf(bv, 0) || math.IsNaN(vv) || math.IsInf(vv, 0) {
			if math.IsNaN(bv) || math.IsInf(bv, 0) {
				p.tot.NonFiniteBase++
			}
			if math.IsNaN(vv) || math.IsInf(vv, 0) {
				p.tot.NonFiniteVLA++
			}
			p.tot.N++
			continue
		}
		d := vv - bv
		p.tot.BB += bv * bv
		p.tot.VV += vv * vv
		p.tot.DD += d * d
		p.tot.BV += bv * vv
		p.tot.AbsD += math.Abs(d)
		p.tot.MaxAbsD = max(p.tot.MaxAbsD, math.Abs(d))
		p.tot.N++
		if d != 0 {
			p.changed++
			p.tot.Changed++
		}
		if j.matrix {
			p.rowDD[r-p.r0] += d * d
			p.rowBB[r-p.r0] += bv * bv
			p.colDD[c-p.c0] += d * d
			p.colBB[c-p.c0] += bv * bv
		}
	}
	return nil
}

// compareRaw handles integer, bool and complex tensors: only whether each element
// changed is meaningful. Same dtype: compare element bytes; different integer
// dtypes: compare values.
func (w *worker) compareRaw(b block, p *partial) error {
	j := b.job
	n := b.e1 - b.e0
	rb, err := w.read(j.base, b.e0*j.base.DType.Bits()/8, n*j.base.DType.Bits()/8, &w.rawB)
	if err != nil {
		return err
	}
	rv, err := w.read(j.vla, b.e0*j.vla.DType.Bits()/8, n*j.vla.DType.Bits()/8, &w.rawV)
	if err != nil {
		return err
	}
	w.hash(j.base, rb, b.e0*j.base.DType.Bits()/8)
	w.hash(j.vla, rv, b.e0*j.vla.DType.Bits()/8)
	p.tot.N += n
	if j.base.DType == j.vla.DType {
		size := j.base.DType.Bits() / 8
		for i := int64(0); i < n; i++ {
			if !bytes.Equal(rb[i*size:(i+1)*size], rv[i*size:(i+1)*size]) {
				p.changed++
			}
		}
		return nil
	}
	bf, vf := make([]float64, n), make([]float64, n)
	if tensor.DecodeFloat64(j.base.DType, bf, rb) != nil || tensor.DecodeFloat64(j.vla.DType, vf, rv) != nil {
		// Complex against real: every element counts as changed.
		p.changed += n
		return nil
	}
	for i := range bf {
		if bf[i] != vf[i] {
			p.changed++
		}
	}
	return nil
}

// roundingFor returns how a base value would be stored in the VLA's dtype when
// the VLA is narrower, so that "changed" means changed beyond storage rounding:
// a frozen F32 tensor saved as BF16 has not changed.
func roundingFor(base, vla tensor.DType) func(float32) float32 {
	if base == vla {
		return nil
	}
	switch vla {
	case tensor.BF16:
		return roundBF16
	case tensor.F16:
		return roundF16
	}
	return nil
}

func countChangedRounded(b, v []float32, round func(float32) float32) int64 {
	var n int64
	for i := range b {
		r := round(b[i])
		if r != v[i] && !(r != r && v[i] != v[i]) {
			n++
		}
	}
	return n
}

// roundBF16 rounds to the nearest BF16 value, ties to even, as torch's .to(bfloat16).
func roundBF16(f float32) float32 {
	u := math.Float32bits(f)
	if f != f {
		return f
	}
	u += 0x7FFF + (u>>16)&1
	return math.Float32frombits(u &^ 0xFFFF)
}

// roundF16 rounds to the nearest IEEE half value, ties to even, returned as float32.
func roundF16(f float32) float32 {
	if f != f || math.IsInf(float64(f), 0) {
		return f
	}
	a := math.Abs(float64(f))
	if a >= 65520 { // rounds to infinity in half precision
		return float32(math.Copysign(math.Inf(1), float64(f)))
	}
	// Quantum of the half value nearest a: 2^(e-10) for normals, 2^-24 below 2^-14.
	e := math.Floor(math.Log2(a))
	if a == 0 || e < -14 {
		e = -14
	}
	q := math.Ldexp(1, int(e)-10)
	return float32(math.Copysign(math.RoundToEven(a/q)*q, float64(f)))
}
