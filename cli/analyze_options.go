package cli

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
)

// pairOptions are the analysis options `analyze` and `mask` share, beyond the
// sources and --map rules.
type pairOptions struct {
	exact    bool
	geometry map[string]arch.Geometry
}

// pairFlags registers --heads and --exact on fs; options() parses them once
// fs.Parse has run.
type pairFlags struct {
	heads *[]string
	exact *bool
}

func addPairFlags(fs *flagSet) pairFlags {
	return pairFlags{
		heads: fs.List("heads", "attention geometry of a component, COMPONENT=HEADS[:KV_HEADS] (repeatable), e.g. vision.siglip=16"),
		exact: fs.Bool("exact", "subtract at full precision (default: at the VLA's precision, base rounded to the VLA dtype)"),
	}
}

func (f pairFlags) options() (pairOptions, error) {
	geo, err := parseHeads(*f.heads)
	return pairOptions{exact: *f.exact, geometry: geo}, err
}

// analysisOptions is the engine's view of them.
func (po pairOptions) analysisOptions(maps []string, fingerprint bool) analysis.Options {
	return analysis.Options{Map: maps, Fingerprint: fingerprint, Exact: po.exact, Geometry: po.geometry}
}

// parseHeads reads COMPONENT=HEADS[:KV_HEADS] values. KV heads default to the
// heads (no GQA); the head size comes from the shapes.
func parseHeads(values []string) (map[string]arch.Geometry, error) {
	if len(values) == 0 {
		return nil, nil
	}
	out := map[string]arch.Geometry{}
	for _, v := range values {
		comp, spec, ok := strings.Cut(v, "=")
		comp = strings.TrimSpace(comp)
		if !ok || comp == "" {
			return nil, fmt.Errorf("--heads %q: want COMPONENT=HEADS[:KV_HEADS], e.g. vision.siglip=16 or llm=8:1", v)
		}
		hs, kvs, hasKV := strings.Cut(spec, ":")
		heads, err := strconv.Atoi(hs)
		if err != nil || heads < 1 {
			return nil, fmt.Errorf("--heads %q: HEADS %q must be a whole number ≥ 1", v, hs)
		}
		kv := heads
		if hasKV {
			if kv, err = strconv.Atoi(kvs); err != nil || kv < 1 || heads%kv != 0 {
				return nil, fmt.Errorf("--heads %q: KV_HEADS %q must be a whole number ≥ 1 that divides %d", v, kvs, heads)
			}
		}
		if _, dup := out[comp]; dup {
			return nil, fmt.Errorf("--heads %q: component %s given twice", v, comp)
		}
		out[comp] = arch.Geometry{Heads: heads, KVHeads: kv}
	}
	return out, nil
}

// precisionLabel says how pairs were subtracted.
func precisionLabel(exact bool) string {
	if exact {
		return "exact: full-precision subtraction"
	}
	return "at the VLA's precision: base rounded to each VLA tensor's dtype"
}

// reportUnmatched tells, on stderr, how much of the pair stayed unmatched and
// what --map rules would pair it. Silent when everything aligned.
func reportUnmatched(w io.Writer, res *analysis.Result) {
	n := len(res.BaseOnly) + len(res.VLAOnly) + len(res.Ambiguous)
	for _, m := range res.Mismatched {
		if !m.Compared {
			n++
		}
	}
	if n == 0 {
		return
	}
	fmt.Fprintf(w, "unmatched: %d base-only, %d VLA-only, %d shape mismatches, %d ambiguous (aligned %d)\n",
		len(res.BaseOnly), len(res.VLAOnly), n-len(res.BaseOnly)-len(res.VLAOnly)-len(res.Ambiguous), len(res.Ambiguous), len(res.Tensors))
	// What likely happened, per component (the overview's banner says the same).
	for _, r := range arch.UnmatchedReasons(analysis.ExplainUnmatched(res)) {
		fmt.Fprintf(w, "  %s\n", r)
	}
	for _, s := range res.Suggestions {
		fmt.Fprintf(w, "  try --map '%s'   (pairs %d, e.g. %s → %s)\n", s.Rule, s.Pairs, s.ExampleBase, s.ExampleVLA)
	}
}

// unmatchedError is --strict's verdict.
func unmatchedError(res *analysis.Result) error {
	n := len(res.BaseOnly) + len(res.VLAOnly) + len(res.Ambiguous)
	for _, m := range res.Mismatched {
		if !m.Compared {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	msg := fmt.Sprintf("analyze --strict: %d tensors unmatched (%d base-only, %d VLA-only, %d ambiguous, %d shape mismatches)",
		n, len(res.BaseOnly), len(res.VLAOnly), len(res.Ambiguous), n-len(res.BaseOnly)-len(res.VLAOnly)-len(res.Ambiguous))
	for _, r := range arch.UnmatchedReasons(analysis.ExplainUnmatched(res)) {
		msg += "; " + r
	}
	for i, s := range res.Suggestions {
		sep := "; try"
		if i > 0 {
			sep = " or"
		}
		msg += fmt.Sprintf("%s --map '%s' (pairs %d)", sep, s.Rule, s.Pairs)
	}
	return errors.New(msg)
}
