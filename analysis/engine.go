package analysis

import (
	"context"
	"fmt"
	"maps"
	"math"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deltascope/deltascope/analysis/arch"
	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/kernel"
	"github.com/deltascope/deltascope/analysis/tensor"
)

// Options tune an analysis. The zero value is ready to use.
type Options struct {
	// Map holds user alignment rules 'REGEX=>REPLACEMENT', applied to base names
	// before the built-in rules.
	Map []string
	// Workers is the number of tensor blocks processed at once (0: GOMAXPROCS).
	Workers int
	// Geometry overrides the attention layout of a component ("llm", "vision.siglip"...).
	Geometry map[string]arch.Geometry
	// Progress, when set, is called about ten times a second and once at the end,
	// never concurrently.
	Progress func(Progress)
	// BlockElems is the number of elements a worker reads at once (0: 1 Mi).
	// Results do not depend on it beyond float64 rounding; tests shrink it to
	// exercise block seams.
	BlockElems int64
	// Fingerprint computes a content fingerprint of each side (every tensor's bytes,
	// including tensors that are not compared) during the same pass.
	Fingerprint bool
	// Exact subtracts at full precision. By default each pair is compared at
	// the VLA tensor's stored precision (see precision.go).
	Exact bool
}

// Progress reports how far an analysis has read.
type Progress struct {
	BytesDone, BytesTotal     int64
	TensorsDone, TensorsTotal int
	Tensor                    string // the VLA name of a tensor being read
}

const defaultBlockElems = 1 << 20

// Analyze aligns the two sides and computes every statistic in one fused pass per
// tensor pair, in parallel across blocks of rows. The result does not depend on
// the number of workers: block partial sums are merged in block order.
func Analyze(ctx context.Context, base, vla *checkpoint.Side, opt Options) (*Result, error) {
	rules, err := parseMaps(opt.Map)
	if err != nil {
		return nil, err
	}
	bn, vn := base.Named(), vla.Named()
	al := arch.Align(bn, vn, rules)

	res := &Result{
		EngineVersion: EngineVersion,
		Warnings:      []string{},
		BaseParams:    base.Params(), VLAParams: vla.Params(),
	}
	res.BaseOnly, res.VLAOnly, res.Mismatched, res.Ambiguous = listedApart(bn, vn, al)

	res.Exact = opt.Exact
	res.Suggestions = arch.Suggest(bn, vn, al)
	if len(al.Pairs) == 0 {
		return nil, &NoAlignmentError{BaseTensors: len(bn), VLATensors: len(vn), Mismatched: len(al.Mismatched), Suggestions: res.Suggestions,
			Unmatched: ExplainUnmatched(res)}
	}

	jobs := make([]*pairJob, 0, len(al.Pairs))
	unrounded := map[string]bool{}
	for _, p := range al.Pairs {
		j, err := newPairJob(base.Tensors[p.Base], vla.Tensors[p.VLA], p)
		if err != nil {
			return nil, err
		}
		if !opt.Exact {
			round, ok := BaseRounding(j.base.DType, j.vla.DType)
			j.roundBase = round
			if !ok {
				unrounded[j.vla.DType.String()] = true
			}
		}
		jobs = append(jobs, j)
		if p.Overlap {
			res.Mismatched = append(res.Mismatched, overlapMismatch(bn[p.Base], vn[p.VLA], j.rows))
		}
	}
	var fp *fingerprints
	if opt.Fingerprint {
		fp = newFingerprints(base, vla)
	}
	if err := run(ctx, jobs, fp, opt); err != nil {
		return nil, err
	}
	if fp != nil {
		var err error
		if res.BaseFingerprint, err = fp.side(base); err != nil {
			return nil, err
		}
		if res.VLAFingerprint, err = fp.side(vla); err != nil {
			return nil, err
		}
	}

	var dd, bb float64
	for _, j := range jobs {
		res.Tensors = append(res.Tensors, j.stats)
		res.Compared += j.stats.Compared
		if j.stats.Numeric {
			dd += j.tot.DD
			bb += j.tot.BB
		}
	}
	res.GlobalRelDelta = ratio(math.Sqrt(dd), math.Sqrt(bb))
	sort.Slice(res.Tensors, func(a, b int) bool { return res.Tensors[a].VLA < res.Tensors[b].VLA })
	sort.Slice(res.Mismatched, func(a, b int) bool { return res.Mismatched[a].VLA < res.Mismatched[b].VLA })

	var configs [][]byte
	for _, s := range append(append([]*checkpoint.Source{}, vla.Sources...), base.Sources...) {
		if s.Config != nil {
			configs = append(configs, s.Config)
		}
	}
	for _, d := range slices.Sorted(maps.Keys(unrounded)) {
		res.Warnings = append(res.Warnings, fmt.Sprintf("VLA tensors stored as %s: deltascope does not round to it, so their base is compared at full precision", d))
	}
	geo, guessed, warn := arch.GeometriesGuessed(configs, vn, opt.Geometry)
	res.Geometry = geo
	res.GeometryGuessed = guessed
	res.Warnings = append(res.Warnings, warn...)
	units, warn := BuildUnits(res, ScoreDefault)
	res.Units = units
	res.Warnings = append(res.Warnings, warn...)
	return res, nil
}

// ratio divides, keeping 0/0 = 0 (an all-zero tensor that stayed zero did not change).
func ratio(num, den float64) Num {
	if num == 0 {
		return 0
	}
	return Num(num / den)
}

// pairJob is one aligned tensor pair cut into blocks.
type pairJob struct {
	base, vla  *checkpoint.Tensor
	rows, cols int64 // of the compared region: the first `rows` rows of both
	matrix     bool  // rank ≥ 2: per-row and per-column norms are reported
	numeric    bool  // both sides real floats
	wide       bool  // a side is F64: decode to float64
	// roundBase, when set, rounds each base value to the VLA's dtype before
	// anything is computed (the default; nil under Options.Exact or when the
	// VLA's dtype holds every base value).
	roundBase func(float64) float64
	blocks    []block
	pending   atomic.Int64
	stats     TensorStats

	// Block partials are merged in block order as soon as they can be, so that
	// only the few finished out of order wait (not a whole tensor's worth of
	// per-column arrays), and the sums do not depend on which worker was faster.
	mu                         sync.Mutex
	parts                      []*partial // finished, not yet merged
	next                       int        // the next block to merge
	tot                        kernel.Totals
	changed                    int64
	rowDD, rowBB, colDD, colBB []float64
}

type block struct {
	job    *pairJob
	index  int
	e0, e1 int64 // element range of the flattened compared region

	// A hash-only block (job == nil) reads bytes [off, off+size) of t that no
	// comparison reads (unaligned tensors, rows beyond an overlap) for the fingerprint.
	t         *checkpoint.Tensor
	off, size int64
}

// bytes is how much a block reads from disk, for progress.
func (b block) bytes() int64 {
	if b.job == nil {
		return b.size
	}
	return b.job.bytesOf(b.job.base, b.e1-b.e0) + b.job.bytesOf(b.job.vla, b.e1-b.e0)
}

// prefetchBlocks is how far ahead of the workers the disk is asked to read:
// 8 blocks of 1 Mi element pairs are 32 MiB of BF16 pairs, several disk
// requests' worth, and little next to the page cache.
const prefetchBlocks = 8

// willNeed asks the OS to start reading the block's bytes of both tensors.
func (b block) willNeed() {
	if b.job == nil {
		b.t.WillNeed(b.off, b.size)
		return
	}
	j := b.job
	j.base.WillNeed(j.bytesOf(j.base, b.e0), j.bytesOf(j.base, b.e1-b.e0))
	j.vla.WillNeed(j.bytesOf(j.vla, b.e0), j.bytesOf(j.vla, b.e1-b.e0))
}

// hashBlockBytes is the size of hash-only reads.
const hashBlockBytes = 4 << 20

// hashOnlyBlocks covers every byte of every tensor that the comparisons leave unread.
func hashOnlyBlocks(jobs []*pairJob, fp *fingerprints) []block {
	if fp == nil {
		return nil
	}
	covered := map[*checkpoint.Tensor]int64{}
	for _, j := range jobs {
		covered[j.base] = j.bytesOf(j.base, j.rows*j.cols)
		covered[j.vla] = j.bytesOf(j.vla, j.rows*j.cols)
	}
	ts := make([]*checkpoint.Tensor, 0, len(fp.byTensor))
	for t := range fp.byTensor {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(a, b int) bool {
		if ts[a].File != ts[b].File {
			return ts[a].File < ts[b].File
		}
		return ts[a].Offset < ts[b].Offset
	})
	var out []block
	for _, t := range ts {
		for off := covered[t]; off < t.Size; off += hashBlockBytes {
			out = append(out, block{t: t, off: off, size: min(hashBlockBytes, t.Size-off)})
		}
	}
	return out
}

// partial is what one block found; merged into its job in block order.
type partial struct {
	tot          kernel.Totals
	changed      int64
	r0, c0       int64
	rowDD, rowBB []float64
	colDD, colBB []float64
}

// maxCols bounds the per-column accumulators: no real layer has more than a few
// tens of thousands of input features, and a forged shape must not make us
// allocate gigabytes.
const maxCols = 1 << 22

func newPairJob(b, v *checkpoint.Tensor, p arch.Pair) (*pairJob, error) {
	j := &pairJob{base: b, vla: v}
	j.numeric = b.DType.IsFloat() && v.DType.IsFloat()
	j.wide = b.DType == tensor.F64 || v.DType == tensor.F64
	j.matrix = len(v.Shape) >= 2 && len(b.Shape) >= 2
	switch {
	case len(v.Shape) == 0 || len(b.Shape) == 0:
		j.rows, j.cols = 1, 1
	case len(v.Shape) == 1 || len(b.Shape) == 1:
		j.rows, j.cols = 1, min(b.Shape[0], v.Shape[0])
	default:
		j.rows = min(b.Shape[0], v.Shape[0])
		j.cols = 1
		for _, d := range v.Shape[1:] {
			j.cols *= d
		}
	}
	if b.Elements() == 0 || v.Elements() == 0 {
		j.rows, j.cols = 0, max(j.cols, 1)
	}
	if j.matrix && j.cols > maxCols {
		return nil, tensor.TensorErrorf(v.File, v.Name, "%d columns per row is more than deltascope handles (%d)", j.cols, maxCols)
	}
	cls := arch.Classify(v.Name, v.Shape)
	j.stats = TensorStats{
		Base: b.Name, VLA: v.Name, Component: cls.Component, Layer: cls.Layer, Kind: cls.Kind, Of: cls.Of, Rule: p.Rule,
		DTypeBase: b.DType.String(), DTypeVLA: v.DType.String(), ShapeBase: nonNil(b.Shape), ShapeVLA: nonNil(v.Shape),
		Overlap: p.Overlap, Numeric: j.numeric,
	}
	return j, nil
}

func nonNil(s []int64) []int64 {
	if s == nil {
		return []int64{}
	}
	return s
}

// plan cuts the compared region into blocks of whole rows, or of segments of one
// row when a row alone is bigger than a block. Packed dtypes (F4, F6) need cuts
// on byte boundaries; a row layout that cannot give them is read as one block.
func (j *pairJob) plan(blockElems int64) {
	n := j.rows * j.cols
	if n == 0 {
		return
	}
	g := max(j.base.DType.GroupElems(), j.vla.DType.GroupElems())
	add := func(e0, e1 int64) {
		j.blocks = append(j.blocks, block{job: j, index: len(j.blocks), e0: e0, e1: e1})
	}
	switch {
	case g > 1 && j.cols%g != 0:
		add(0, n)
	case j.cols <= blockElems:
		per := max(1, blockElems/j.cols)
		for r := int64(0); r < j.rows; r += per {
			add(r*j.cols, min(r+per, j.rows)*j.cols)
		}
	default:
		seg := max(g, blockElems/g*g)
		for r := int64(0); r < j.rows; r++ {
			for c := int64(0); c < j.cols; c += seg {
				add(r*j.cols+c, r*j.cols+min(c+seg, j.cols))
			}
		}
	}
	j.parts = make([]*partial, len(j.blocks))
	j.pending.Store(int64(len(j.blocks)))
}

func (j *pairJob) bytesOf(t *checkpoint.Tensor, elems int64) int64 {
	return elems * t.DType.Bits() / 8
}

func run(ctx context.Context, jobs []*pairJob, fp *fingerprints, opt Options) error {
	blockElems := opt.BlockElems
	if blockElems <= 0 {
		blockElems = defaultBlockElems
	}
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var total int64
	for _, j := range jobs {
		j.plan(blockElems)
		total += j.bytesOf(j.base, j.rows*j.cols) + j.bytesOf(j.vla, j.rows*j.cols)
		if len(j.blocks) == 0 {
			j.finish()
		}
	}
	extra := hashOnlyBlocks(jobs, fp)
	for _, b := range extra {
		total += b.size
	}
	// The largest block any worker will see sizes its buffers, once.
	var maxBlock int64
	for _, j := range jobs {
		for _, b := range j.blocks {
			maxBlock = max(maxBlock, b.e1-b.e0)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		done      atomic.Int64
		tensors   atomic.Int64
		current   atomic.Pointer[string]
		firstErr  error
		errOnce   sync.Once
		wg        sync.WaitGroup
		queue     = make(chan block)
		stopProg  = make(chan struct{})
		progGroup sync.WaitGroup
	)
	for _, j := range jobs {
		if len(j.blocks) == 0 {
			tensors.Add(1)
		}
	}
	report := func() {
		if opt.Progress != nil {
			name := ""
			if p := current.Load(); p != nil {
				name = *p
			}
			opt.Progress(Progress{BytesDone: done.Load(), BytesTotal: total, TensorsDone: int(tensors.Load()), TensorsTotal: len(jobs), Tensor: name})
		}
	}
	if opt.Progress != nil {
		progGroup.Add(1)
		go func() {
			defer progGroup.Done()
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					report()
				case <-stopProg:
					return
				}
			}
		}()
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Workers read mapped files: a file truncated under us faults, and
			// must become an error, not a crash (see worker.run).
			defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
			w := newWorker(maxBlock, fp)
			defer w.releaseMapped(true)
			for b := range queue {
				if b.job == nil {
					current.Store(&b.t.Name)
					if _, err := w.run(b); err != nil {
						errOnce.Do(func() { firstErr = err; cancel() })
					}
					done.Add(b.bytes())
					continue
				}
				current.Store(&b.job.vla.Name)
				p, err := w.run(b)
				if err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					continue
				}
				b.job.merge(b.index, p)
				done.Add(b.bytes())
				if b.job.pending.Add(-1) == 0 {
					b.job.finish()
					tensors.Add(1)
				}
			}
		}()
	}
	// Blocks go out in file order; each hand-out asks the OS to start reading
	// the block prefetchBlocks further on, so the disk works while the
	// workers compute (see Tensor.WillNeed).
	order := make([]block, 0, len(extra)+len(jobs))
	for _, j := range jobs {
		order = append(order, j.blocks...)
	}
	order = append(order, extra...)
	for _, b := range order[:min(prefetchBlocks, len(order))] {
		b.willNeed()
	}
feed:
	for k, b := range order {
		if k+prefetchBlocks < len(order) {
			order[k+prefetchBlocks].willNeed()
		}
		select {
		case queue <- b:
		case <-ctx.Done():
			break feed
		}
	}
	close(queue)
	wg.Wait()
	close(stopProg)
	progGroup.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	report()
	return nil
}

// merge records block i's partial and folds every partial that is now next in
// block order into the job's sums, recycling their arrays.
func (j *pairJob) merge(i int, p *partial) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.parts[i] = p
	for ; j.next < len(j.parts) && j.parts[j.next] != nil; j.next++ {
		p := j.parts[j.next]
		j.parts[j.next] = nil
		j.tot.Merge(&p.tot)
		j.changed += p.changed
		if j.matrix {
			if j.rowDD == nil {
				j.rowDD, j.rowBB = writtenZeros(j.rows), writtenZeros(j.rows)
				j.colDD, j.colBB = writtenZeros(j.cols), writtenZeros(j.cols)
			}
			addInto(j.rowDD[p.r0:], p.rowDD)
			addInto(j.rowBB[p.r0:], p.rowBB)
			addInto(j.colDD[p.c0:], p.colDD)
			addInto(j.colBB[p.c0:], p.colBB)
		}
		partials.Put(p)
	}
}

// partials recycles block partials: allocating their column arrays afresh for
// every block was a measurable share of the run.
var partials = sync.Pool{New: func() any { return new(partial) }}

// newPartial returns a zeroed partial with row and column arrays of the given
// lengths (none for a tensor without per-row output).
func newPartial(r0, c0 int64, rows, cols int64) *partial {
	p := partials.Get().(*partial)
	rowDD, rowBB, colDD, colBB := p.rowDD, p.rowBB, p.colDD, p.colBB
	*p = partial{r0: r0, c0: c0}
	p.rowDD, p.rowBB = zeroed(rowDD, rows), zeroed(rowBB, rows)
	p.colDD, p.colBB = zeroed(colDD, cols), zeroed(colBB, cols)
	return p
}

func zeroed(s []float64, n int64) []float64 {
	if int64(cap(s)) < n {
		return writtenZeros(n) // the kernel reads its columns before writing them
	}
	s = s[:n]
	clear(s)
	return s
}

// finish derives the statistics from the merged sums (every block merged).
func (j *pairJob) finish() {
	rowDD, rowBB, colDD, colBB := j.rowDD, j.rowBB, j.colDD, j.colBB
	if j.matrix && rowDD == nil { // no blocks: an empty tensor
		rowDD, rowBB = make([]float64, j.rows), make([]float64, j.rows)
		colDD, colBB = make([]float64, j.cols), make([]float64, j.cols)
	}
	j.parts, j.rowDD, j.rowBB, j.colDD, j.colBB = nil, nil, nil, nil, nil
	t := &j.tot
	s := &j.stats
	s.Compared = j.rows * j.cols
	if s.Compared > 0 {
		s.ChangedFraction = Num(float64(j.changed) / float64(s.Compared))
	}
	if !j.numeric {
		return
	}
	s.FroBase, s.FroVLA, s.FroDelta = Num(math.Sqrt(t.BB)), Num(math.Sqrt(t.VV)), Num(math.Sqrt(t.DD))
	s.RelDelta = ratio(float64(s.FroDelta), float64(s.FroBase))
	s.Cosine = Num(t.BV / (math.Sqrt(t.BB) * math.Sqrt(t.VV)))
	s.MaxAbsDelta = Num(t.MaxAbsD)
	if s.Compared > 0 {
		s.MeanAbsDelta = Num(t.AbsD / float64(s.Compared))
	}
	s.NonFiniteBase, s.NonFiniteVLA = t.NonFiniteBase, t.NonFiniteVLA
	if j.matrix {
		s.RowDelta, s.RowBase = sqrt32(rowDD), sqrt32(rowBB)
		s.ColDelta, s.ColBase = sqrt32(colDD), sqrt32(colBB)
	}
}

// writtenZeros returns n zeros whose memory has been written. A large make
// hands out fresh pages without writing them; addInto's first read of such a
// page maps the kernel's shared zero page, and its write then replaces that
// mapping, which flushes the TLB of every CPU running the process (an IPI to
// the other worker): measured, 2.5 % of a BF16 analysis's CPU time went to
// those flushes. Written first, each page is faulted in once, for writing.
func writtenZeros(n int64) []float64 {
	s := make([]float64, n)
	clear(s)
	return s
}

func addInto(dst, src []float64) {
	for i, v := range src {
		dst[i] += v
	}
}

func sqrt32(s []float64) []float32 {
	out := make([]float32, len(s))
	for i, v := range s {
		out[i] = float32(math.Sqrt(v))
	}
	return out
}
