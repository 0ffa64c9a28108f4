package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/spectral"
	"github.com/deltascope/deltascope/jobs"
	"github.com/deltascope/deltascope/store"
)

func runAnalyze(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("analyze", 0)
	bases := fs.List("base", "a source of the base model (repeatable): [PREFIX=]PATH")
	vlas := fs.List("vla", "a source of the VLA (repeatable): [PREFIX=]PATH")
	maps := fs.List("map", "an alignment rule 'REGEX=>REPLACEMENT' applied to base names (repeatable)")
	jsonOut := fs.String("json", "", "write the result as JSON to FILE (- for stdout)")
	rows := fs.Bool("rows", "include per-row and per-column norms in the JSON")
	units := fs.Bool("units", "include per-channel and per-head unit scores in the JSON")
	sf := addStoreFlags(fs, "", "cache results in the database in DIR (the one `serve --data` uses)")
	pf := addPairFlags(fs)
	strict := fs.Bool("strict", "fail (exit non-zero) when any tensor stays unmatched")
	spectra := fs.Bool("spectral", "also compute the top singular values of each 2-D ΔW (a randomized SVD: several reads of every matrix)")
	rank := fs.Int("rank", spectral.DefaultRank, "with --spectral: how many singular values per tensor (K)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(*bases) == 0 || len(*vlas) == 0 {
		return fmt.Errorf("analyze: give at least one --base and one --vla\n%s", fs.Usage())
	}
	if err := sf.check(); err != nil {
		return err
	}
	po, err := pf.options()
	if err != nil {
		return err
	}
	if !*spectra && *rank != spectral.DefaultRank {
		return fmt.Errorf("analyze: --rank is the number of singular values of --spectral; add --spectral")
	}
	if *spectra && (*rank < 1 || *rank > spectral.MaxRank) {
		return fmt.Errorf("analyze: --rank %d: give a rank between 1 and %d", *rank, spectral.MaxRank)
	}
	var res *analysis.Result
	if sf.enabled() {
		res, err = analyzeCached(ctx, env, sf, *bases, *vlas, *maps, po)
	} else {
		res, err = analyzePair(ctx, env, *bases, *vlas, *maps, po, false)
	}
	if err != nil {
		return err
	}
	// --strict still writes the output, so a failing CI run can be read; its
	// failure is the one stderr line every failure is, so the summary and the
	// suggestions go into that line instead of before it.
	var strictErr error
	if *strict {
		strictErr = unmatchedError(res)
	}
	if strictErr == nil {
		reportUnmatched(env.Stderr, res)
	}
	var sp *spectral.Result
	if *spectra {
		if sp, err = computeSpectra(ctx, env, sf, *bases, *vlas, *maps, *rank, po); err != nil {
			return err
		}
	}
	if *jsonOut != "" {
		out := *res
		out.Tensors = append([]analysis.TensorStats(nil), res.Tensors...)
		if !*rows {
			for i := range out.Tensors {
				t := &out.Tensors[i]
				t.RowDelta, t.ColDelta, t.RowBase, t.ColBase = nil, nil, nil, nil
			}
		}
		if !*units {
			out.Units = nil
		}
		var v any = &out
		if sp != nil {
			v = withSpectra(&out, sp)
		}
		if err := writeJSON(ctx, *jsonOut, env.Stdout, v); err != nil {
			return err
		}
		if *jsonOut == "-" {
			return strictErr
		}
	}
	printSummary(env.Stdout, res)
	if sp != nil {
		printSpectra(env.Stdout, sp)
	}
	return strictErr
}

// analyzePair opens both sides and runs the engine, drawing a progress bar on a
// terminal.
func analyzePair(ctx context.Context, env Env, bases, vlas, maps []string, po pairOptions, fingerprint bool) (*analysis.Result, error) {
	base, vla, err := openPair(ctx, bases, vlas)
	if err != nil {
		return nil, err
	}
	defer base.Close()
	defer vla.Close()
	return analyzeSides(ctx, env, base, vla, maps, po, fingerprint)
}

// openPair opens both sides for reading with pread, not mapped: see
// checkpoint.Options.Map for why.
func openPair(ctx context.Context, bases, vlas []string) (*checkpoint.Side, *checkpoint.Side, error) {
	base, err := checkpoint.OpenSide(bases, checkpoint.Options{Context: ctx})
	if err != nil {
		return nil, nil, err
	}
	vla, err := checkpoint.OpenSide(vlas, checkpoint.Options{Context: ctx})
	if err != nil {
		base.Close()
		return nil, nil, err
	}
	return base, vla, nil
}

func analyzeSides(ctx context.Context, env Env, base, vla *checkpoint.Side, maps []string, po pairOptions, fingerprint bool) (*analysis.Result, error) {
	opt := po.analysisOptions(maps, fingerprint)
	if env.StderrIsTTY {
		bar := newProgressBar(env.Stderr)
		opt.Progress = bar.update
		defer bar.finish()
	}
	return analysis.Analyze(ctx, base, vla, opt)
}

// analyzeCached answers from the database when the same files (same quick
// identities, same rules, same engine) were analysed before, and stores a new
// result otherwise, where `serve --data DIR` finds it too.
func analyzeCached(ctx context.Context, env Env, sf storeFlags, bases, vlas, maps []string, po pairOptions) (*analysis.Result, error) {
	db, err := sf.open(ctx)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	base, vla, err := openPair(ctx, absSpecs(bases), absSpecs(vlas))
	if err != nil {
		return nil, err
	}
	defer base.Close()
	defer vla.Close()
	req := store.AnalysisRequest{Base: absSpecs(bases), VLA: absSpecs(vlas), Map: maps, Exact: po.exact, Geometry: po.geometry}
	if a, err := db.FindCachedRequest(ctx, jobs.Identities(base), jobs.Identities(vla), req); err == nil {
		return db.Result(ctx, a.ID)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	a, err := db.CreateRunning(ctx, req)
	if err != nil {
		return nil, err
	}
	res, err := analyzeSides(ctx, env, base, vla, maps, po, true)
	if err != nil {
		if na, ok := errors.AsType[*analysis.NoAlignmentError](err); ok {
			db.FailAdvised(context.WithoutCancel(ctx), a.ID, err.Error(), store.Advice{Suggestions: na.Suggestions, Unmatched: na.Unmatched})
			return nil, err
		}
		if ctx.Err() != nil { // Ctrl-C: the dashboard shows it cancelled, not failed with "context canceled"
			db.Cancel(context.WithoutCancel(ctx), a.ID)
			return nil, err
		}
		db.Fail(context.WithoutCancel(ctx), a.ID, err.Error())
		return nil, err
	}
	if err := db.Finish(ctx, a.ID, jobs.Record(base, res.BaseFingerprint), jobs.Record(vla, res.VLAFingerprint), res); err != nil {
		return nil, err
	}
	return res, nil
}

// absSpecs makes spec paths absolute, so the stored request means the same files
// to a server started from another folder. s3:// and hf:// paths are absolute
// already (and filepath would fold their "//").
func absSpecs(specs []string) []string {
	return checkpoint.MapSpecPaths(specs, func(p string) string {
		if checkpoint.IsRemote(p) {
			return p
		}
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
		return p
	})
}

// writeJSON writes v to path (see writeOutput), or to stdout for "-".
func writeJSON(ctx context.Context, path string, stdout io.Writer, v any) error {
	if path == "-" {
		return json.NewEncoder(stdout).Encode(v)
	}
	return writeOutput(ctx, path, func(w io.Writer) error { return json.NewEncoder(w).Encode(v) })
}

func printSummary(w io.Writer, res *analysis.Result) {
	fmt.Fprintf(w, "aligned %d tensors (%s parameters compared); base-only %d, VLA-only %d, mismatched %d, ambiguous %d\n",
		len(res.Tensors), groupDigits(res.Compared), len(res.BaseOnly), len(res.VLAOnly), len(res.Mismatched), len(res.Ambiguous))
	fmt.Fprintf(w, "global relative ΔW %.4g (%s)\n", float64(res.GlobalRelDelta), precisionLabel(res.Exact))
	type group struct {
		name   string
		dd, bb float64
	}
	groups := map[string]*group{}
	for _, t := range res.Tensors {
		if !t.Numeric {
			continue
		}
		key := t.Component + " " + t.Kind
		g := groups[key]
		if g == nil {
			g = &group{name: key}
			groups[key] = g
		}
		g.dd += float64(t.FroDelta) * float64(t.FroDelta)
		g.bb += float64(t.FroBase) * float64(t.FroBase)
	}
	list := make([]*group, 0, len(groups))
	for _, g := range groups {
		list = append(list, g)
	}
	rel := func(g *group) float64 {
		if g.bb == 0 {
			return 0
		}
		return math.Sqrt(g.dd / g.bb)
	}
	sort.Slice(list, func(a, b int) bool { return rel(list[a]) > rel(list[b]) })
	fmt.Fprintln(w, "relative ΔW by module (most changed first):")
	for _, g := range list {
		fmt.Fprintf(w, "  %-32s %.4g\n", g.name, rel(g))
	}
	for _, m := range res.Warnings {
		fmt.Fprintf(w, "warning: %s\n", m)
	}
}

// progressBar draws bytes done / total, rate and ETA on one terminal line.
type progressBar struct {
	w     io.Writer
	start time.Time
	last  analysis.Progress
}

func newProgressBar(w io.Writer) *progressBar { return &progressBar{w: w, start: time.Now()} }

func (b *progressBar) update(p analysis.Progress) {
	b.last = p
	frac := 0.0
	if p.BytesTotal > 0 {
		frac = float64(p.BytesDone) / float64(p.BytesTotal)
	}
	el := time.Since(b.start).Seconds()
	rate := float64(p.BytesDone) / max(el, 1e-9)
	eta := "?"
	if rate > 0 && p.BytesDone > 0 {
		eta = time.Duration(float64(p.BytesTotal-p.BytesDone) / rate * float64(time.Second)).Round(time.Second).String()
	}
	const width = 30
	filled := int(frac * width)
	name := p.Tensor
	if len(name) > 40 {
		name = "…" + name[len(name)-39:]
	}
	fmt.Fprintf(b.w, "\r[%s%s] %5.1f%% %s/%s %s/s ETA %s %-40s", strings.Repeat("#", filled), strings.Repeat(" ", width-filled),
		100*frac, humanBytes(p.BytesDone), humanBytes(p.BytesTotal), humanBytes(int64(rate)), eta, name)
}

func (b *progressBar) finish() { fmt.Fprintln(b.w) }
