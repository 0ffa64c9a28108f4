package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"time"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/spectral"
	"github.com/deltascope/deltascope/jobs"
	"github.com/deltascope/deltascope/store"
)

// spectralJSON is `analyze --json` with `--spectral`: the analysis's own
// object, each 2-D tensor carrying its spectrum. The wrapper's Tensors field
// is shallower than the embedded Result's, so it is the one encoded.
type spectralJSON struct {
	*analysis.Result
	Tensors  []tensorWithSpectrum `json:"tensors"`
	Spectral spectralSettings     `json:"spectral"`
}

type spectralSettings struct {
	Rank       int      `json:"rank"`
	Oversample int      `json:"oversample"`
	Power      int      `json:"power_iterations"`
	Skipped    []string `json:"skipped"`
}

type tensorWithSpectrum struct {
	analysis.TensorStats
	Spectrum *spectral.Spectrum `json:"spectrum,omitempty"`
	// Blocks are the spectra of the q, k and v thirds of a fused qkv weight.
	Blocks []spectrumBlock `json:"spectrum_blocks,omitempty"`
}

type spectrumBlock struct {
	Block string `json:"block"`
	spectral.Spectrum
}

// computeSpectra opens both sides again (headers only: the analysis closed
// them) and computes every 2-D pair's spectrum, drawing a progress bar on a
// terminal. With --data the spectra are cached with the analysis (which
// analyzeCached has just stored or found): a repeated run reads them back.
func computeSpectra(ctx context.Context, env Env, sf storeFlags, bases, vlas, maps []string, rank int, po pairOptions) (*spectral.Result, error) {
	if sf.enabled() {
		bases, vlas = absSpecs(bases), absSpecs(vlas)
	}
	base, vla, err := openPair(ctx, bases, vlas)
	if err != nil {
		return nil, err
	}
	defer base.Close()
	defer vla.Close()
	var db *store.DB
	var a *store.Analysis
	if sf.enabled() {
		if db, err = sf.open(ctx); err != nil {
			return nil, err
		}
		defer db.Close()
		req := store.AnalysisRequest{Base: bases, VLA: vlas, Map: maps, Exact: po.exact, Geometry: po.geometry}
		if a, err = db.FindCachedRequest(ctx, jobs.Identities(base), jobs.Identities(vla), req); err != nil {
			return nil, err
		}
		if sp, err := db.SpectrumOf(ctx, a.ID, rank, true); err == nil && sp.Status == store.StatusDone && sp.Result != nil {
			return sp.Result, nil
		}
	}
	// One tensor keeps about one core busy: compute one per core.
	opt := spectral.Options{Rank: rank, Map: maps, Exact: po.exact, Workers: runtime.GOMAXPROCS(0)}
	if env.StderrIsTTY {
		bar := newProgressBar(env.Stderr)
		opt.Progress = func(p spectral.Progress) {
			bar.update(analysis.Progress{BytesDone: p.BytesDone, BytesTotal: p.BytesTotal, Tensor: p.Tensor})
		}
		defer bar.finish()
	}
	start := time.Now()
	res, err := spectral.Compute(ctx, base, vla, opt)
	if err != nil || db == nil {
		return res, err
	}
	// A server computing the same job now is no reason to fail the command.
	if err := db.StoreSpectrum(ctx, a.ID, res, time.Since(start).Seconds()); err != nil && !errors.Is(err, store.ErrConflict) {
		return nil, err
	}
	return res, nil
}

// withSpectra attaches each spectrum to its tensor of out.
func withSpectra(out *analysis.Result, sp *spectral.Result) *spectralJSON {
	byName := map[string]int{}
	j := &spectralJSON{Result: out, Tensors: make([]tensorWithSpectrum, len(out.Tensors)),
		Spectral: spectralSettings{Rank: sp.Rank, Oversample: sp.Oversample, Power: sp.Power, Skipped: sp.Skipped}}
	for i, t := range out.Tensors {
		j.Tensors[i].TensorStats = t
		byName[t.VLA] = i
	}
	for _, s := range sp.Tensors {
		i, ok := byName[s.VLA]
		if !ok {
			continue
		}
		if s.Block == "" {
			v := s.Spectrum
			j.Tensors[i].Spectrum = &v
		} else {
			j.Tensors[i].Blocks = append(j.Tensors[i].Blocks, spectrumBlock{Block: s.Block, Spectrum: s.Spectrum})
		}
	}
	return j
}

// printSpectra summarises the spectra: how many matrices a LoRA of rank 8, 16
// or K would have covered to 90 % of their ΔW energy.
func printSpectra(w io.Writer, sp *spectral.Result) {
	var whole []spectral.Tensor
	for _, t := range sp.Tensors {
		if t.Block == "" && t.FroDelta > 0 {
			whole = append(whole, t)
		}
	}
	fmt.Fprintf(w, "spectra of %d changed 2-D tensors (top %d singular values of ΔW)\n", len(whole), sp.Rank)
	if len(whole) == 0 {
		return
	}
	// LoRA ranks people use, up to K (beyond K the spectrum says nothing).
	ranks := []int{sp.Rank}
	for _, r := range []int{16, 8} {
		if r < sp.Rank {
			ranks = append([]int{r}, ranks...)
		}
	}
	for _, r := range ranks {
		n := 0
		for _, t := range whole {
			if t.Rank90 != nil && *t.Rank90 <= r {
				n++
			}
		}
		fmt.Fprintf(w, "  90 %% of ΔW energy within rank %-3d: %d of %d tensors\n", r, n, len(whole))
	}
	srs := make([]float64, len(whole))
	for i, t := range whole {
		srs[i] = float64(t.StableRank)
	}
	sort.Float64s(srs)
	fmt.Fprintf(w, "  stable rank ‖ΔW‖²/σ₁²: median %.3g, max %.3g\n", srs[len(srs)/2], srs[len(srs)-1])
	for _, s := range sp.Skipped {
		fmt.Fprintf(w, "warning: spectrum skipped: %s\n", s)
	}
}
