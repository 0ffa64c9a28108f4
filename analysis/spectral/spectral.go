// Package spectral computes the top singular values of ΔW = W_VLA − W_VLM for
// every aligned 2-D weight pair: "is the fine-tune low-rank, and would a LoRA of
// rank r have done it?".
//
// The values come from a randomized SVD with subspace (power) iterations
// (Halko, Martinsson & Tropp 2011, algorithm 4.4), in float64, without ever
// holding a whole ΔW, let alone a model, in memory: every product ΔW·X and
// ΔWᵀ·Q is computed from rows of both files decoded a chunk at a time. A
// tensor costs 2·(power+1) reads of both sides and about 4·l flops per element
// per read pair (l = rank + oversampling), far more than the one fused read of
// the norms, which is why it runs as its own job.
//
// Like the rest of analysis/, the package knows nothing of HTTP or SQL.
package spectral

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
	"github.com/deltascope/deltascope/analysis/checkpoint"
)

// DefaultRank is K, the number of singular values kept per tensor.
const DefaultRank = 32

// MaxRank bounds K: the work and the scratch matrices grow with it, and no
// question the pages ask needs more.
const MaxRank = 256

// maxDim bounds each dimension of a matrix whose spectrum is computed: the
// scratch matrices are (rows + cols) × l float64s, and a forged header must not
// make us allocate gigabytes. The largest real dimension (Gemma's vocabulary,
// 257,216 rows) is well below it.
const maxDim = 1 << 20

// maxScratchBytes bounds the (rows + cols) × l float64s one matrix needs: a
// 257k-row vocabulary at the default rank takes 130 MiB; the largest rank on
// the largest matrix allowed would take gigabytes.
const maxScratchBytes = 1 << 30

// Options tune a computation. The zero value is ready to use.
type Options struct {
	// Rank is K, the number of singular values kept (0: DefaultRank).
	Rank int
	// Oversample is how many extra random directions the range finder carries
	// beyond K (0: K, at least 10). More costs time, gains accuracy on flat spectra.
	Oversample int
	// Power is the most subspace iterations per tensor (0: 4; negative: none).
	// Each costs two more reads of the tensor; they stop early once the top K
	// singular values move by less than Tol·σ₁ from one to the next.
	Power int
	// Tol is that convergence threshold (0: 1e-7).
	Tol float64
	// Randomized keeps the random range finder even for matrices whose full
	// range is as cheap to take, which gives their spectrum exactly. For tests
	// and cost measurements of the randomized path.
	Randomized bool
	// Map holds user alignment rules 'REGEX=>REPLACEMENT', as for analysis.Analyze.
	Map []string
	// Exact subtracts at full precision; by default the base is first rounded to
	// the VLA's dtype when the VLA is stored narrower (BF16, F16), as the
	// analysis does, so that storage rounding is not counted as change.
	Exact bool
	// Workers is the number of tensors computed at once (0: 1). gonum's BLAS
	// runs a product on several cores only when it spans at least four 64 × 64
	// blocks, and decoding runs on one, so one worker keeps about one core
	// busy (0.9 on the OpenVLA-shaped pair at scale 0.05, 2 cores, load 1.6).
	Workers int
	// Seed makes the random test matrices reproducible (0 is a fine seed).
	Seed uint64
	// Progress, when set, is called at most about ten times a second and once
	// at the end, never concurrently.
	Progress func(Progress)
	// ChunkElems is how many elements of each side are decoded at once (0: 256 Ki).
	// Tests shrink it to exercise chunk seams.
	ChunkElems int64
}

// Progress reports how far a computation has read.
type Progress struct {
	BytesDone, BytesTotal     int64
	TensorsDone, TensorsTotal int
	Tensor                    string
}

// Spectrum is the top of the singular value spectrum of one ΔW and what it
// says about its rank. Field names are part of the `analyze --json` contract.
type Spectrum struct {
	// SingularValues are σ₁ ≥ σ₂ ≥ … ≥ σ_K of ΔW.
	SingularValues []float64 `json:"singular_values"`
	// Energy[k-1] is the fraction of ‖ΔW‖²_F the top k directions capture:
	// Σ_{i≤k} σᵢ² / ‖ΔW‖²_F (exact: the denominator is summed over every element).
	Energy []float64 `json:"energy"`
	// StableRank is ‖ΔW‖²_F / σ₁² (0 for an unchanged tensor).
	StableRank analysis.Num `json:"stable_rank"`
	// Rank90 is the smallest k whose energy reaches 90 %, or nil when K
	// directions do not reach it ("> K"); 0 for an unchanged tensor.
	Rank90 *int `json:"rank90"`
	// FroDelta is ‖ΔW‖_F of the matrix the spectrum is of.
	FroDelta float64 `json:"fro_delta"`
}

// Tensor is the spectrum of one aligned pair, or of one block of a fused
// q;k;v matrix.
type Tensor struct {
	Base      string `json:"base"`
	VLA       string `json:"vla"`
	Component string `json:"component"`
	Layer     int    `json:"layer"`
	Kind      string `json:"kind"`
	// Block is "" for the whole tensor, or "q", "k", "v" for the thirds of a
	// fused attention qkv weight.
	Block string `json:"block,omitempty"`
	Rows  int64  `json:"rows"`
	Cols  int64  `json:"cols"`
	Spectrum
}

// Result is every spectrum of a pair of models.
type Result struct {
	Rank       int      `json:"rank"`
	Oversample int      `json:"oversample"`
	Power      int      `json:"power"`
	Exact      bool     `json:"exact"`
	Tensors    []Tensor `json:"tensors"`
	// Skipped names tensors that are 2-D but were not computed, with the reason.
	Skipped []string `json:"skipped"`
}

func (o Options) normalized() (Options, error) {
	if o.Rank == 0 {
		o.Rank = DefaultRank
	}
	if o.Rank < 1 || o.Rank > MaxRank {
		return o, fmt.Errorf("rank %d: give a rank between 1 and %d", o.Rank, MaxRank)
	}
	if o.Oversample == 0 {
		o.Oversample = max(o.Rank, 10)
	}
	if o.Oversample < 0 || o.Oversample > MaxRank {
		return o, fmt.Errorf("oversampling %d: give 0 to %d", o.Oversample, MaxRank)
	}
	switch {
	case o.Power == 0:
		o.Power = 4
	case o.Power < 0:
		o.Power = 0
	case o.Power > 50:
		return o, fmt.Errorf("%d power iterations: give at most 50", o.Power)
	}
	if o.Tol <= 0 {
		o.Tol = 1e-7
	}
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.ChunkElems <= 0 {
		o.ChunkElems = 256 << 10
	}
	return o, nil
}

// Compute aligns the two sides as the analysis does and computes the spectrum
// of every numeric pair of rank exactly 2, and of each third of a fused qkv
// weight. Tensors come out in the order of their VLA names, blocks after the
// whole tensor.
func Compute(ctx context.Context, base, vla *checkpoint.Side, opt Options) (*Result, error) {
	opt, err := opt.normalized()
	if err != nil {
		return nil, err
	}
	rules := make([]arch.MapRule, 0, len(opt.Map))
	for _, m := range opt.Map {
		r, err := arch.ParseMapRule(m)
		if err != nil {
			return nil, fmt.Errorf("--map %q: %w", m, err)
		}
		rules = append(rules, r)
	}
	al := arch.Align(base.Named(), vla.Named(), rules)
	res := &Result{Rank: opt.Rank, Oversample: opt.Oversample, Power: opt.Power, Exact: opt.Exact, Tensors: []Tensor{}, Skipped: []string{}}

	var work []*matrix
	for _, p := range al.Pairs {
		b, v := base.Tensors[p.Base], vla.Tensors[p.VLA]
		if len(b.Shape) != 2 || len(v.Shape) != 2 || !b.DType.IsFloat() || !v.DType.IsFloat() {
			continue
		}
		rows, cols := min(b.Shape[0], v.Shape[0]), v.Shape[1]
		if rows == 0 || cols == 0 {
			continue
		}
		cls := arch.Classify(v.Name, v.Shape)
		head := Tensor{Base: b.Name, VLA: v.Name, Component: cls.Component, Layer: cls.Layer, Kind: cls.Kind, Rows: rows, Cols: cols}
		if why := unsupported(b, v, rows, cols); why != "" {
			res.Skipped = append(res.Skipped, v.Name+": "+why)
			continue
		}
		m := newMatrix(b, v, 0, rows, cols, head, opt)
		if need := (rows + cols) * int64(m.l) * 8; need > maxScratchBytes {
			res.Skipped = append(res.Skipped, fmt.Sprintf("%s: %d × %d at rank %d needs %d MiB of scratch (limit %d MiB); ask for a smaller rank",
				v.Name, rows, cols, opt.Rank, need>>20, maxScratchBytes>>20))
			continue
		}
		work = append(work, m)
		// A fused q;k;v weight stacks three projections: each has its own rank
		// story (the key projection may have moved little while the values moved
		// much), so each third gets a spectrum too.
		if cls.Kind == arch.KindAttnQKV && rows%3 == 0 {
			for i, name := range []string{"q", "k", "v"} {
				h := head
				h.Block, h.Rows = name, rows/3
				work = append(work, newMatrix(b, v, int64(i)*rows/3, rows/3, cols, h, opt))
			}
		}
	}

	var total int64
	for _, m := range work {
		total += m.bytesPerPass() * int64(m.passes())
	}
	prog := newReporter(opt.Progress, total, len(work))

	out := make([]Tensor, len(work))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		firstErr error
		errOnce  sync.Once
	)
	for range min(opt.Workers, max(1, len(work))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := &scratch{}
			for {
				i := int(next.Add(1) - 1)
				if i >= len(work) || ctx.Err() != nil {
					return
				}
				m := work[i]
				prog.current(m.head.VLA)
				sp, err := m.spectrum(ctx, opt, prog, sc)
				if err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				out[i] = m.head
				out[i].Spectrum = sp
				prog.tensorDone()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	prog.final()
	res.Tensors = out
	sort.SliceStable(res.Tensors, func(a, b int) bool { return res.Tensors[a].VLA < res.Tensors[b].VLA })
	return res, nil
}

// unsupported says why a 2-D pair cannot be computed, or "".
func unsupported(b, v *checkpoint.Tensor, rows, cols int64) string {
	if rows > maxDim || cols > maxDim {
		return fmt.Sprintf("%d × %d is larger than deltascope computes spectra for (%d per dimension)", rows, cols, maxDim)
	}
	if b.Shape[1] != v.Shape[1] {
		return fmt.Sprintf("shapes %v and %v differ beyond dim 0", b.Shape, v.Shape)
	}
	for _, t := range []*checkpoint.Tensor{b, v} {
		if g := t.DType.GroupElems(); g > 1 && cols%g != 0 {
			return fmt.Sprintf("%s rows of %d elements do not start on byte boundaries", t.DType, cols)
		}
	}
	return ""
}

// FromSingularValues derives energy, stable rank and rank90 from the top
// singular values and the exact squared Frobenius norm of ΔW.
func FromSingularValues(sv []float64, fro2 float64) Spectrum {
	s := Spectrum{SingularValues: sv, Energy: make([]float64, len(sv)), FroDelta: math.Sqrt(fro2)}
	if fro2 == 0 || len(sv) == 0 || sv[0] == 0 {
		// An unchanged tensor: nothing to capture, so every prefix captures all of it.
		for i := range s.Energy {
			s.Energy[i] = 1
		}
		zero := 0
		s.Rank90 = &zero
		return s
	}
	var acc float64
	for i, v := range sv {
		acc += v * v
		// Rounding can push the captured sum a hair past the total when the
		// matrix has rank ≤ K; a fraction above 1 would only confuse.
		s.Energy[i] = min(1, acc/fro2)
		if s.Rank90 == nil && s.Energy[i] >= 0.9 {
			k := i + 1
			s.Rank90 = &k
		}
	}
	s.StableRank = analysis.Num(fro2 / (sv[0] * sv[0]))
	return s
}

// reporter throttles progress callbacks and keeps them from running concurrently.
type reporter struct {
	fn   func(Progress)
	mu   sync.Mutex
	p    Progress
	last time.Time
}

func newReporter(fn func(Progress), total int64, tensors int) *reporter {
	return &reporter{fn: fn, p: Progress{BytesTotal: total, TensorsTotal: tensors}}
}

func (r *reporter) current(name string) {
	r.mu.Lock()
	r.p.Tensor = name
	r.mu.Unlock()
}

func (r *reporter) add(bytes int64) {
	if r.fn == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.p.BytesDone += bytes
	if time.Since(r.last) >= 100*time.Millisecond {
		r.last = time.Now()
		r.fn(r.p)
	}
}

func (r *reporter) tensorDone() {
	r.mu.Lock()
	r.p.TensorsDone++
	r.mu.Unlock()
}

func (r *reporter) final() {
	if r.fn == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.p.BytesDone = r.p.BytesTotal
	r.fn(r.p)
}
