package spectral

import (
	"context"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/lapack64"
	"gonum.org/v1/gonum/mat"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/tensor"
)

// matrix is ΔW restricted to rows [r0, r0+rows) of an aligned pair, read
// from the files on every pass; only the current chunk of rows is decoded.
type matrix struct {
	base, vla  *checkpoint.Tensor
	r0         int64
	rows, cols int64
	head       Tensor
	round      func(float64) float64 // base → VLA storage precision, or nil
	k, l       int                   // singular values kept, range finder width
	power      int                   // most subspace iterations
	tol        float64               // relative to σ₁: change that ends the iterations
	chunkRows  int64
}

func newMatrix(b, v *checkpoint.Tensor, r0, rows, cols int64, head Tensor, opt Options) *matrix {
	m := &matrix{base: b, vla: v, r0: r0, rows: rows, cols: cols, head: head, power: opt.Power, tol: opt.Tol}
	if !opt.Exact {
		// The same rounding as the analysis (a dtype it does not round to is
		// compared exactly there too), so the spectrum is of the same ΔW.
		m.round, _ = analysis.BaseRounding(b.DType, v.DType)
	}
	small := int(min(rows, cols))
	m.k = min(opt.Rank, small)
	m.l = min(m.k+opt.Oversample, small)
	// Taking every direction (l = the smaller dimension) makes the first
	// product span the whole range, so one round gives every singular value
	// exactly. It costs 2 passes of 2·small flops per element, the iterations
	// up to (power+1) passes of 4·l: when the exact way is no dearer, take it.
	if !opt.Randomized && small <= (1+opt.Power)*m.l {
		m.l = small
	}
	if m.l == small {
		m.power = 0
	}
	m.chunkRows = max(1, opt.ChunkElems/cols)
	return m
}

// passes is how many times the computation reads the matrix at most.
func (m *matrix) passes() int { return 2 + 2*m.power }

func (m *matrix) bytesPerPass() int64 {
	return m.rows * m.cols * (m.base.DType.Bits() + m.vla.DType.Bits()) / 8
}

// spectrum runs the randomized subspace iteration (Halko et al., algorithm 4.4):
//
//	Q = orth(ΔW Ω); Z = ΔWᵀQ; repeat { Q = orth(ΔW orth(Z)); Z = ΔWᵀQ }
//
// The singular values of Z are those of QᵀΔW, ΔW's projection onto the range
// found; they grow towards ΔW's own with every round, and the rounds stop once
// the top K move by less than Tol·σ₁, or after Power rounds. They come from
// the R factor of the QR that orthonormalizes Z anyway. ‖ΔW‖²_F is summed
// exactly along the first pass. Every buffer comes from sc, reused across the
// tensors a worker computes.
func (m *matrix) spectrum(ctx context.Context, opt Options, prog *reporter, sc *scratch) (Spectrum, error) {
	rows, cols, l := int(m.rows), int(m.cols), m.l
	omega := sc.gaussian(cols, l, seedFor(opt.Seed, m.head.VLA, m.head.Block))
	y := blas64.General{Rows: rows, Cols: l, Stride: l, Data: grow(&sc.y, rows*l)}
	z := blas64.General{Rows: cols, Cols: l, Stride: l, Data: grow(&sc.z, cols*l)}
	d := sc.chunk(m)

	right := func(x blas64.General) (float64, error) {
		return d.pass(ctx, prog, func(i0 int, dc blas64.General) {
			// Y[i0:i0+c] = D·X
			blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, dc, x, 0, rowsOf(y, i0, dc.Rows))
		})
	}
	left := func(q blas64.General) error {
		clear(z.Data)
		_, err := d.pass(ctx, prog, func(i0 int, dc blas64.General) {
			// Z += Dᵀ·Q[i0:i0+c]
			blas64.Gemm(blas.Trans, blas.NoTrans, 1, dc, rowsOf(q, i0, dc.Rows), 1, z)
		})
		return err
	}
	fro2, err := right(omega)
	if err != nil {
		return Spectrum{}, err
	}
	sc.orth(y, false)
	if err := left(y); err != nil {
		return Spectrum{}, err
	}
	sv := sc.orth(z, true)
	for round := range m.power {
		if _, err := right(z); err != nil {
			return Spectrum{}, err
		}
		sc.orth(y, false)
		if err := left(y); err != nil {
			return Spectrum{}, err
		}
		next := sc.orth(z, true)
		var moved float64
		for i := range m.k {
			moved = max(moved, math.Abs(next[i]-sv[i]))
		}
		sv = next
		if moved <= m.tol*sv[0] {
			// The passes not needed still count as read, so that progress
			// reaches its total.
			prog.add(int64(2*(m.power-round-1)) * m.bytesPerPass())
			break
		}
	}
	return FromSingularValues(slices.Clone(sv[:m.k]), fro2), nil
}

// rowsOf is rows [i0, i0+n) of a as a BLAS view (no copy).
func rowsOf(a blas64.General, i0, n int) blas64.General {
	return blas64.General{Rows: n, Cols: a.Cols, Stride: a.Stride, Data: a.Data[i0*a.Stride : (i0+n-1)*a.Stride+a.Cols]}
}

// scratch holds one worker's buffers, grown to the largest tensor it has
// seen: a model's spectra then allocate them a few times, not once per pass.
type scratch struct {
	omega, y, z   []float64
	tau, work, rr []float64
	rawB, rawV    []byte
	base, delta   []float64
}

func grow[T any](s *[]T, n int) []T {
	if cap(*s) < n {
		*s = make([]T, n)
	}
	*s = (*s)[:n]
	return *s
}

// orth replaces a (tall, rows ≥ cols) with an orthonormal basis of its
// columns: the thin Q of its QR factorization (LAPACK dgeqrf + dorgqr), in
// place. With values set it also returns the singular values of a as it was,
// descending: those of its cols × cols R factor, so the SVD stays small.
// (mat.QR would form the full square Q, enormous for a 250k-row vocabulary.)
func (sc *scratch) orth(a blas64.General, values bool) []float64 {
	k := a.Cols
	tau := grow(&sc.tau, k)
	query := grow(&sc.work, max(1, len(sc.work)))
	lapack64.Geqrf(a, tau, query, -1)
	need := int(query[0])
	lapack64.Orgqr(a, tau, query, -1)
	need = max(need, int(query[0]), 1)
	work := grow(&sc.work, max(need, len(sc.work)))
	lapack64.Geqrf(a, tau, work, len(work))
	var sv []float64
	if values {
		rr := grow(&sc.rr, k*k)
		clear(rr)
		for i := range k {
			copy(rr[i*k+i:(i+1)*k], a.Data[i*a.Stride+i:i*a.Stride+k])
		}
		var svd mat.SVD
		if svd.Factorize(mat.NewDense(k, k, rr), mat.SVDNone) {
			sv = svd.Values(nil)
		} else {
			// gonum's SVD fails only on NaN or Inf input; the chunk decoder
			// turns those into zeros first, so no file can get here.
			sv = make([]float64, k)
		}
	}
	lapack64.Orgqr(a, tau, work, len(work))
	return sv
}

// gaussian is an n × l matrix of standard normal draws from a seeded PCG, so
// the same files give the same spectrum to the last digit.
func (sc *scratch) gaussian(n, l int, seed uint64) blas64.General {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	data := grow(&sc.omega, n*l)
	for i := range data {
		data[i] = rng.NormFloat64()
	}
	return blas64.General{Rows: n, Cols: l, Stride: l, Data: data}
}

func seedFor(seed uint64, name, block string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(block))
	return seed ^ h.Sum64()
}

// chunk decodes a few rows of both sides at a time into ΔW rows.
type chunk struct {
	m            *matrix
	rawB, rawV   []byte
	base, delta  []float64
	bBits, vBits int64
}

func (sc *scratch) chunk(m *matrix) *chunk {
	n := int(m.chunkRows * m.cols)
	c := &chunk{m: m, bBits: m.base.DType.Bits(), vBits: m.vla.DType.Bits()}
	c.rawB = grow(&sc.rawB, n*int(c.bBits)/8)
	c.rawV = grow(&sc.rawV, n*int(c.vBits)/8)
	c.base = grow(&sc.base, n)
	c.delta = grow(&sc.delta, n)
	return c
}

// pass reads the whole matrix once, calling f with each chunk of ΔW rows
// (row-major, first row i0 of the matrix), and returns Σ ΔW² over it.
// Non-finite elements count as unchanged: one NaN would otherwise turn every
// singular value into NaN, and the analysis already reports them.
func (c *chunk) pass(ctx context.Context, prog *reporter, f func(i0 int, d blas64.General)) (float64, error) {
	m := c.m
	var fro2 float64
	for r := int64(0); r < m.rows; r += m.chunkRows {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		nr := min(m.chunkRows, m.rows-r)
		n := nr * m.cols
		e0 := (m.r0 + r) * m.cols
		rb, rv := c.rawB[:n*c.bBits/8], c.rawV[:n*c.vBits/8]
		if err := m.base.ReadAt(rb, e0*c.bBits/8); err != nil {
			return 0, err
		}
		if err := m.vla.ReadAt(rv, e0*c.vBits/8); err != nil {
			return 0, err
		}
		bs, ds := c.base[:n], c.delta[:n]
		if err := tensor.DecodeFloat64(m.base.DType, bs, rb); err != nil {
			return 0, tensor.TensorErrorf(m.base.File, m.base.Name, "%v", err)
		}
		if err := tensor.DecodeFloat64(m.vla.DType, ds, rv); err != nil {
			return 0, tensor.TensorErrorf(m.vla.File, m.vla.Name, "%v", err)
		}
		for i, b := range bs {
			if m.round != nil {
				b = m.round(b)
			}
			v := ds[i] - b
			if math.IsNaN(v) || math.IsInf(v, 0) {
				v = 0
			}
			ds[i] = v
			fro2 += v * v
		}
		f(int(r), blas64.General{Rows: int(nr), Cols: int(m.cols), Stride: int(m.cols), Data: ds})
		prog.add(n * (c.bBits + c.vBits) / 8)
	}
	return fro2, nil
}
