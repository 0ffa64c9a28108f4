package prune

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/synth"
	"github.com/deltascope/deltascope/analysis/tensor"
)

// This file runs every paper preset end to end — generate a pair with every
// layer of the real model (widths shrunk), analyse it, resolve the preset,
// write every export — and checks the masks against an independent
// recomputation of the authors' rules: plain float64 code written from
// DESIGN.md's "Units and scores" and the authors' scripts
// (prismatic_openvla/vlm_vla_parameter_diff_compute.py and
// paligemma_pi05/compute_diffs_and_generate_masks.py), reading the
// checkpoints' bytes itself and sharing nothing with the production scorer.

// paperTable is Table 12 of the paper, written out here independently of
// presets.go: per preset, module → (ratio, prune-highest).
var paperTable = map[string]map[string]struct {
	ratio   float64
	highest bool
}{
	"openvla-light":      {ModLLMHead: {0.125, true}, ModLLMFFN: {0.1, true}, ModSigLIPHead: {0.125, true}, ModSigLIPFFN: {0.1, false}, ModDINOv2Head: {0.0625, false}, ModDINOv2FFN: {0.1, true}},
	"openvla-moderate":   {ModLLMHead: {0.125, true}, ModLLMFFN: {0.2, true}, ModSigLIPHead: {0.125, true}, ModSigLIPFFN: {0.1, false}, ModDINOv2Head: {0.0625, false}, ModDINOv2FFN: {0.1, true}},
	"openvla-aggressive": {ModLLMHead: {0.125, true}, ModLLMFFN: {0.3, true}, ModSigLIPHead: {0.125, true}, ModSigLIPFFN: {0.1, false}, ModDINOv2Head: {0.0625, false}, ModDINOv2FFN: {0.1, true}},
	"pi05-light":         {ModLLMHead: {0.2, true}, ModLLMFFN: {0.2, true}, ModSigLIPHead: {0.2, true}, ModSigLIPFFN: {0.4, true}},
	"pi05-moderate":      {ModLLMHead: {0.2, true}, ModLLMFFN: {0.3, true}, ModSigLIPHead: {0.2, true}, ModSigLIPFFN: {0.2, true}},
	"pi05-aggressive":    {ModLLMHead: {0.2, true}, ModLLMFFN: {0.5, true}, ModSigLIPHead: {0.2, true}, ModSigLIPFFN: {0.2, true}},
}

// paperScale shrinks widths (head dims, FFN widths, vocabularies) but keeps
// every layer and head count of the real models.
const paperScale = 0.03

// cut is what one unit removes from one tensor.
type cut struct {
	tensor     string
	rows, cols []int
}

// paperUnit is one unit of the recomputation.
type paperUnit struct {
	layer, index int
	score        float64
	cuts         []cut
}

// values decodes a tensor the generator wrote (BF16 or F32) as float64; with
// roundBF16, each value is first rounded to bfloat16 (nearest, ties to even),
// as the analysis compares a base at the VLA's BF16 precision by default.
func values(t *testing.T, ct *checkpoint.Tensor, roundBF16 bool) []float64 {
	t.Helper()
	raw := make([]byte, ct.Size)
	if err := ct.ReadAt(raw, 0); err != nil {
		t.Fatal(err)
	}
	out := make([]float64, ct.Elements())
	for i := range out {
		var f float32
		switch ct.DType {
		case tensor.BF16:
			f = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
		case tensor.F32:
			f = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			if roundBF16 {
				b := math.Float32bits(f)
				b += 0x7fff + (b>>16)&1
				f = math.Float32frombits(b &^ 0xffff)
			}
		default:
			t.Fatalf("%s: unexpected dtype %v", ct.Name, ct.DType)
		}
		out[i] = float64(f)
	}
	return out
}

// norms are the per-row and per-column L2 norms of ΔW and of the base.
type norms struct {
	rows, cols        int
	rowDelta, rowBase []float64
	colDelta, colBase []float64
}

// paperPair is a generated pair, analysed, with the recomputation's inputs.
type paperPair struct {
	dir       string
	base, vla *checkpoint.Side
	res       *analysis.Result
	byName    map[string]*checkpoint.Tensor
	norms     map[string]*norms // by VLA name, for every aligned matrix
	vlaParams int64
}

func openPaperPair(t *testing.T, preset string) *paperPair {
	t.Helper()
	dir := t.TempDir()
	if _, err := synth.Generate(context.Background(), synth.Options{Preset: preset, Scale: paperScale, Out: dir, Seed: 11}); err != nil {
		t.Fatal(err)
	}
	pair, err := synth.ReadPair(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := &paperPair{dir: dir, byName: map[string]*checkpoint.Tensor{}, norms: map[string]*norms{}}
	if p.base, err = checkpoint.OpenSide(pair.Base, checkpoint.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.base.Close() })
	if p.vla, err = checkpoint.OpenSide(pair.VLA, checkpoint.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.vla.Close() })
	if p.res, err = analysis.Analyze(context.Background(), p.base, p.vla, analysis.Options{}); err != nil {
		t.Fatal(err)
	}
	baseByName := map[string]*checkpoint.Tensor{}
	for _, ct := range p.base.Tensors {
		baseByName[ct.Name] = ct
	}
	for _, ct := range p.vla.Tensors {
		p.byName[ct.Name] = ct
		p.vlaParams += ct.Elements()
	}
	// The alignment (which base tensor pairs with which VLA tensor) is taken
	// from the analysis; everything numeric is recomputed here.
	for _, ts := range p.res.Tensors {
		v, b := p.byName[ts.VLA], baseByName[ts.Base]
		if len(v.Shape) != 2 || len(b.Shape) != 2 || !slices.Equal(v.Shape, b.Shape) {
			continue
		}
		vv := values(t, v, false)
		bv := values(t, b, v.DType == tensor.BF16 && b.DType == tensor.F32)
		R, C := int(v.Shape[0]), int(v.Shape[1])
		n := &norms{rows: R, cols: C, rowDelta: make([]float64, R), rowBase: make([]float64, R),
			colDelta: make([]float64, C), colBase: make([]float64, C)}
		for r := range R {
			for c := range C {
				d, w := vv[r*C+c]-bv[r*C+c], bv[r*C+c]
				n.rowDelta[r] += d * d
				n.rowBase[r] += w * w
				n.colDelta[c] += d * d
				n.colBase[c] += w * w
			}
		}
		for _, s := range [][]float64{n.rowDelta, n.rowBase, n.colDelta, n.colBase} {
			for i := range s {
				s[i] = math.Sqrt(s[i])
			}
		}
		p.norms[ts.VLA] = n
	}
	return p
}

func (p *paperPair) n(t *testing.T, name string) *norms {
	t.Helper()
	n := p.norms[name]
	if n == nil {
		t.Fatalf("%s: not an aligned matrix of the pair", name)
	}
	return n
}

func divergence(delta, base float64, relative bool) float64 {
	if relative {
		return delta / (base + 1e-8)
	}
	return delta
}

func span(lo, hi int) []int {
	out := make([]int, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

// model describes where the units of one layout live: names with %d for the
// layer, layer and head counts of the real model.
type paperModel struct {
	openvla               bool
	llm                   string
	llmLayers, llmHeads   int
	siglip                string
	sigLayers, sigHeads   int
	dino                  string
	dinoLayers, dinoHeads int
	frozenFamilies        map[string]int // module → the layer that is frozen (OpenVLA: last vision blocks)
	relative              bool
}

var paperModels = map[string]paperModel{
	"openvla-7b": {openvla: true, relative: true,
		llm: "language_model.model.layers.%d.", llmLayers: 32, llmHeads: 32,
		siglip: "vision_backbone.fused_featurizer.blocks.%d.", sigLayers: 27, sigHeads: 16,
		dino: "vision_backbone.featurizer.blocks.%d.", dinoLayers: 24, dinoHeads: 16,
		frozenFamilies: map[string]int{ModSigLIPFFN: 26, ModDINOv2Head: 23}},
	"pi05": {
		llm: "paligemma_with_expert.paligemma.model.language_model.layers.%d.", llmLayers: 18, llmHeads: 8,
		siglip: "paligemma_with_expert.paligemma.model.vision_tower.vision_model.encoder.layers.%d.", sigLayers: 27, sigHeads: 16},
}

// units lays out and scores one module family by the authors' rules.
func (p *paperPair) units(t *testing.T, pm paperModel, module string) []paperUnit {
	t.Helper()
	var out []paperUnit
	rel := pm.relative
	switch module {
	case ModLLMFFN:
		for l := range pm.llmLayers {
			pre := fmt.Sprintf(pm.llm, l)
			gate, up, down := p.n(t, pre+"mlp.gate_proj.weight"), p.n(t, pre+"mlp.up_proj.weight"), p.n(t, pre+"mlp.down_proj.weight")
			for j := range gate.rows {
				// OpenVLA: gate + up + down-column (relative); π0.5: gate row (absolute).
				s := divergence(gate.rowDelta[j], gate.rowBase[j], rel)
				if pm.openvla {
					s += divergence(up.rowDelta[j], up.rowBase[j], rel) + divergence(down.colDelta[j], down.colBase[j], rel)
				}
				out = append(out, paperUnit{l, j, s, []cut{
					{tensor: pre + "mlp.gate_proj.weight", rows: []int{j}},
					{tensor: pre + "mlp.up_proj.weight", rows: []int{j}},
					{tensor: pre + "mlp.down_proj.weight", cols: []int{j}}}})
			}
		}
	case ModLLMHead:
		for l := range pm.llmLayers {
			pre := fmt.Sprintf(pm.llm, l) + "self_attn."
			q, k := p.n(t, pre+"q_proj.weight"), p.n(t, pre+"k_proj.weight")
			d := q.rows / pm.llmHeads
			var kMean float64 // π0.5: the mean over every k row of the layer
			for _, x := range k.rowDelta {
				kMean += x
			}
			kMean /= float64(k.rows)
			for h := range pm.llmHeads {
				var qMean float64
				for r := h * d; r < (h+1)*d; r++ {
					qMean += divergence(q.rowDelta[r], q.rowBase[r], rel)
				}
				qMean /= float64(d)
				u := paperUnit{layer: l, index: h, cuts: []cut{
					{tensor: pre + "q_proj.weight", rows: span(h*d, (h+1)*d)},
					{tensor: pre + "o_proj.weight", cols: span(h*d, (h+1)*d)}}}
				if pm.openvla {
					// No GQA: the head owns its k and v rows.
					u.score = qMean
					u.cuts = append(u.cuts, cut{tensor: pre + "k_proj.weight", rows: span(h*d, (h+1)*d)},
						cut{tensor: pre + "v_proj.weight", rows: span(h*d, (h+1)*d)})
				} else {
					// The authors' π0.5 code never zeroes k/v.
					u.score = (qMean + kMean) / 2
				}
				out = append(out, u)
			}
		}
	case ModSigLIPFFN, ModDINOv2FFN:
		pat, layers := pm.siglip, pm.sigLayers
		if module == ModDINOv2FFN {
			pat, layers = pm.dino, pm.dinoLayers
		}
		for l := range layers {
			pre := fmt.Sprintf(pat, l)
			fc1 := p.n(t, pre+"mlp.fc1.weight")
			for j := range fc1.rows {
				out = append(out, paperUnit{l, j, divergence(fc1.rowDelta[j], fc1.rowBase[j], rel), []cut{
					{tensor: pre + "mlp.fc1.weight", rows: []int{j}},
					{tensor: pre + "mlp.fc1.bias", rows: []int{j}},
					{tensor: pre + "mlp.fc2.weight", cols: []int{j}}}})
			}
		}
	case ModSigLIPHead, ModDINOv2Head:
		pat, layers, heads := pm.siglip, pm.sigLayers, pm.sigHeads
		if module == ModDINOv2Head {
			pat, layers, heads = pm.dino, pm.dinoLayers, pm.dinoHeads
		}
		for l := range layers {
			pre := fmt.Sprintf(pat, l)
			if pm.openvla {
				// timm fused qkv: the mean over the head's rows of the q, k and v blocks.
				qkv := p.n(t, pre+"attn.qkv.weight")
				D := qkv.rows / 3
				d := D / heads
				for h := range heads {
					var s float64
					var rows []int
					for b := range 3 {
						for r := b*D + h*d; r < b*D+(h+1)*d; r++ {
							s += divergence(qkv.rowDelta[r], qkv.rowBase[r], rel)
							rows = append(rows, r)
						}
					}
					out = append(out, paperUnit{l, h, s / float64(3*d), []cut{
						{tensor: pre + "attn.qkv.weight", rows: rows},
						{tensor: pre + "attn.qkv.bias", rows: rows},
						{tensor: pre + "attn.proj.weight", cols: span(h*d, (h+1)*d)}}})
				}
				continue
			}
			// HF SigLIP (π0.5): the mean over the head's q_proj rows only.
			q := p.n(t, pre+"self_attn.q_proj.weight")
			d := q.rows / heads
			for h := range heads {
				var s float64
				for r := h * d; r < (h+1)*d; r++ {
					s += divergence(q.rowDelta[r], q.rowBase[r], rel)
				}
				rows := span(h*d, (h+1)*d)
				u := paperUnit{layer: l, index: h, score: s / float64(d)}
				for _, m := range []string{"q_proj", "k_proj", "v_proj"} {
					u.cuts = append(u.cuts, cut{tensor: pre + "self_attn." + m + ".weight", rows: rows},
						cut{tensor: pre + "self_attn." + m + ".bias", rows: rows})
				}
				u.cuts = append(u.cuts, cut{tensor: pre + "self_attn.out_proj.weight", cols: rows})
				out = append(out, u)
			}
		}
	case ModProjectorFFN:
		// OpenVLA's projector: fc1 and fc2 output rows ranked together; an fc1 row
		// takes fc2's column, an fc2 row fc3's (the LLM's input width stays).
		for l, fc := range []string{"projector.fc1.", "projector.fc2."} {
			next := []string{"projector.fc2.", "projector.fc3."}[l]
			n := p.n(t, fc+"weight")
			for j := range n.rows {
				out = append(out, paperUnit{l, j, divergence(n.rowDelta[j], n.rowBase[j], rel), []cut{
					{tensor: fc + "weight", rows: []int{j}},
					{tensor: fc + "bias", rows: []int{j}},
					{tensor: next + "weight", cols: []int{j}}}})
			}
		}
	default:
		t.Fatalf("no recomputation for %s", module)
	}
	return out
}

// pickPaper ranks all units of a family together (the authors' global
// ranking), ties by (layer, index), and keeps the first int(N·ratio). Units
// whose score is within float32 rounding of the cut-off are "close": the
// production ranks float32 scores, so the test accepts its choice there.
func pickPaper(units []paperUnit, ratio float64, highest bool) (chosen, close map[[2]int]bool) {
	sorted := slices.Clone(units)
	slices.SortFunc(sorted, func(a, b paperUnit) int {
		c := cmp.Compare(a.score, b.score)
		if highest {
			c = -c
		}
		return cmp.Or(c, cmp.Compare(a.layer, b.layer), cmp.Compare(a.index, b.index))
	})
	k := int(float64(len(units)) * ratio)
	chosen, close = map[[2]int]bool{}, map[[2]int]bool{}
	for _, u := range sorted[:k] {
		chosen[[2]int{u.layer, u.index}] = true
	}
	if k == 0 || k == len(sorted) {
		return chosen, close
	}
	edge := (sorted[k-1].score + sorted[k].score) / 2
	for _, u := range sorted {
		if math.Abs(u.score-edge) <= 1e-6*math.Abs(edge) {
			close[[2]int{u.layer, u.index}] = true
		}
	}
	return chosen, close
}

func TestPaperPresetsEndToEnd(t *testing.T) {
	for _, layout := range []string{"openvla-7b", "pi05"} {
		t.Run(layout, func(t *testing.T) {
			p := openPaperPair(t, layout)
			pm := paperModels[layout]
			for _, name := range Presets() {
				if !strings.HasPrefix(name, strings.TrimSuffix(layout, "-7b")+"-") {
					continue
				}
				t.Run(name, func(t *testing.T) { checkPaperPreset(t, p, pm, name) })
			}
		})
	}
}

// TestPaperProjectorPooled prunes OpenVLA's projector (the presets protect
// it): fc1's and fc2's rows form one ranking of 8,704 + 4,096 units at scale 1.
func TestPaperProjectorPooled(t *testing.T) {
	p := openPaperPair(t, "openvla-7b")
	r := Recipe{Name: "projector", Rules: []Rule{{Module: ModProjectorFFN, Ratio: 0.3, Direction: DirHighest}}}
	m := checkPaperRecipe(t, p, paperModels["openvla-7b"], r)
	st := m.Rules[0]
	fc1, fc2 := p.n(t, "projector.fc1.weight"), p.n(t, "projector.fc2.weight")
	if len(st.Layers) != 2 || st.Layers[0].Units != fc1.rows || st.Layers[1].Units != fc2.rows || st.Units != fc1.rows+fc2.rows {
		t.Fatalf("projector family %+v, want fc1's %d and fc2's %d rows", st, fc1.rows, fc2.rows)
	}
	if st.Layers[0].Pruned == 0 || st.Layers[1].Pruned == 0 {
		t.Errorf("one ranking over both layers should cut into each here: %+v", st.Layers)
	}
}

func checkPaperPreset(t *testing.T, p *paperPair, pm paperModel, name string) {
	r, err := Preset(name)
	if err != nil {
		t.Fatal(err)
	}
	table := paperTable[name]
	if len(r.Rules) != len(table) {
		t.Fatalf("preset has %d rules, Table 12 has %d modules", len(r.Rules), len(table))
	}
	for _, rule := range r.Rules {
		if row, ok := table[rule.Module]; !ok || row.ratio != rule.Ratio || row.highest != (rule.Direction == DirHighest) {
			t.Errorf("preset rule %+v differs from Table 12 %+v", rule, row)
		}
	}
	checkPaperRecipe(t, p, pm, r)
}

// checkPaperRecipe resolves r, compares the mask with the recomputation and
// checks every export.
func checkPaperRecipe(t *testing.T, p *paperPair, pm paperModel, r Recipe) *Mask {
	t.Helper()
	m, err := ResolveWith(p.res, r, Options{VLATensors: VLATensors(p.vla)})
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}

	// Recompute every rule's selection and the cells it cuts.
	want := map[string]*cellSet{}
	add := func(c cut) {
		s := want[c.tensor]
		if s == nil {
			s = &cellSet{map[int64]bool{}, map[int64]bool{}}
			want[c.tensor] = s
		}
		for _, r := range c.rows {
			s.rows[int64(r)] = true
		}
		for _, c := range c.cols {
			s.cols[int64(c)] = true
		}
	}
	for _, rule := range r.Rules {
		units := p.units(t, pm, rule.Module)
		chosen, close := pickPaper(units, rule.Ratio, rule.Direction == DirHighest)
		if len(close) > 4 {
			t.Errorf("%s: %d units tie at the cut-off within float32 rounding; the check is too loose", rule.Module, len(close))
		}
		perLayer := map[int]int{}
		total := map[int]int{}
		for _, u := range units {
			key := [2]int{u.layer, u.index}
			total[u.layer]++
			pick := chosen[key]
			if close[key] {
				// Accept the production's side of a float32 tie: its first cut.
				c := u.cuts[0]
				got := m.Tensor(c.tensor)
				pick = got != nil && (len(c.rows) > 0 && slices.Contains(got.Rows, int32(c.rows[0])) ||
					len(c.cols) > 0 && slices.Contains(got.Cols, int32(c.cols[0])))
			}
			if !pick {
				continue
			}
			perLayer[u.layer]++
			for _, c := range u.cuts {
				add(c)
			}
		}
		got := 0
		for l := range perLayer {
			got += perLayer[l]
		}
		if wantK := int(float64(len(units)) * rule.Ratio); got != wantK {
			t.Errorf("%s: recomputation picks %d units, int(%d·%g) = %d", rule.Module, got, len(units), rule.Ratio, wantK)
		}
		// The real OpenVLA's last vision blocks are frozen (ΔW = 0), and the
		// "lowest" rules take them whole, as the authors' code does.
		if l, ok := pm.frozenFamilies[rule.Module]; ok {
			if perLayer[l] != total[l] {
				t.Errorf("%s: frozen layer %d loses %d of %d units in the recomputation", rule.Module, l, perLayer[l], total[l])
			}
			if !slices.ContainsFunc(m.Warnings, func(w string) bool {
				return strings.HasPrefix(w, "rule "+rule.Module+": prunes every unit of layer ") && strings.Contains(w, fmt.Sprintf(" %d: emptied", l))
			}) {
				t.Errorf("%s: no warning that layer %d is emptied: %q", rule.Module, l, m.Warnings)
			}
		}
	}

	// The mask is exactly the recomputation, tensor by tensor.
	var removed int64
	for name, s := range want {
		got := m.Tensor(name)
		if got == nil {
			t.Errorf("%s: not in the mask, the recomputation cuts %d rows and %d columns", name, len(s.rows), len(s.cols))
			continue
		}
		if g := cells(got); !equalSet(g.rows, s.rows) || !equalSet(g.cols, s.cols) {
			t.Errorf("%s: mask cuts %d rows and %d columns, the recomputation %d and %d", name, len(g.rows), len(g.cols), len(s.rows), len(s.cols))
		}
		rows, cols := got.Shape[0], int64(1)
		if len(got.Shape) == 2 {
			cols = got.Shape[1]
		}
		keptCols := cols - int64(len(s.cols))
		if len(got.Shape) < 2 {
			keptCols = cols
		}
		removed += rows*cols - (rows-int64(len(s.rows)))*keptCols
	}
	for _, tm := range m.Tensors {
		if want[tm.Name] == nil {
			t.Errorf("%s: in the mask, not in the recomputation", tm.Name)
		}
	}
	if m.Params.Before != p.vlaParams || m.Params.After != p.vlaParams-removed {
		t.Errorf("params %d → %d, recomputed %d → %d", m.Params.Before, m.Params.After, p.vlaParams, p.vlaParams-removed)
	}

	checkPaperExports(t, p, m)
	return m
}

func equalSet(a, b map[int64]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// checkPaperExports writes every export kind of m and checks what each says
// against the mask: recipe, indices, keep-masks, a masked and a sliced copy.
func checkPaperExports(t *testing.T, p *paperPair, m *Mask) {
	ctx := context.Background()
	dir := t.TempDir()

	var buf bytes.Buffer
	if err := WriteRecipe(&buf, m.Recipe); err != nil {
		t.Fatal(err)
	}
	back, err := ReadRecipe(&buf)
	if err != nil {
		t.Fatalf("recipe export does not read back: %v", err)
	}
	again, err := ResolveWith(p.res, back, Options{VLATensors: VLATensors(p.vla)})
	if err != nil || !slices.EqualFunc(again.Tensors, m.Tensors, func(a, b TensorMask) bool {
		return a.Name == b.Name && slices.Equal(a.Rows, b.Rows) && slices.Equal(a.Cols, b.Cols)
	}) {
		t.Errorf("the recipe export does not replay to the same mask (%v)", err)
	}

	buf.Reset()
	if err := WriteIndices(ctx, &buf, m); err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Tensors map[string]struct {
			Shape []int64 `json:"shape"`
			Rows  []int32 `json:"rows"`
			Cols  []int32 `json:"cols"`
		} `json:"tensors"`
	}
	if err := json.Unmarshal(buf.Bytes(), &idx); err != nil {
		t.Fatalf("indices export: %v", err)
	}
	if len(idx.Tensors) != len(m.Tensors) {
		t.Errorf("indices list %d tensors, the mask %d", len(idx.Tensors), len(m.Tensors))
	}
	for _, tm := range m.Tensors {
		e := idx.Tensors[tm.Name]
		if !slices.Equal(e.Shape, tm.Shape) || !slices.Equal(e.Rows, tm.Rows) || !slices.Equal(e.Cols, tm.Cols) {
			t.Errorf("indices of %s differ from the mask", tm.Name)
		}
	}

	masksPath := filepath.Join(dir, "masks.safetensors")
	f, err := os.Create(masksPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteMasks(ctx, f, m, p.vla); err != nil {
		t.Fatal(err)
	}
	f.Close()
	keep, err := checkpoint.OpenSide([]string{masksPath}, checkpoint.Options{})
	if err != nil {
		t.Fatalf("masks export: %v", err)
	}
	defer keep.Close()
	keepBy := map[string]*checkpoint.Tensor{}
	for _, ct := range keep.Tensors {
		keepBy[ct.Name] = ct
	}
	for _, tm := range m.Tensors {
		for _, axis := range []struct {
			suffix string
			pruned []int32
			n      int
		}{{RowsSuffix, tm.Rows, 0}, {ColsSuffix, tm.Cols, 1}} {
			if len(axis.pruned) == 0 {
				continue
			}
			ct := keepBy[tm.Name+axis.suffix]
			if ct == nil || ct.Elements() != tm.Shape[axis.n] {
				t.Errorf("masks export: %s%s missing or of the wrong length", tm.Name, axis.suffix)
				continue
			}
			raw := make([]byte, ct.Size)
			if err := ct.ReadAt(raw, 0); err != nil {
				t.Fatal(err)
			}
			zeros := 0
			for i, b := range raw {
				if (b == 0) != slices.Contains(axis.pruned, int32(i)) {
					t.Errorf("masks export: %s%s[%d] = %d", tm.Name, axis.suffix, i, b)
					break
				}
				if b == 0 {
					zeros++
				}
			}
			if zeros != len(axis.pruned) {
				t.Errorf("masks export: %s%s has %d zeros, the mask prunes %d", tm.Name, axis.suffix, zeros, len(axis.pruned))
			}
		}
	}

	for _, sliced := range []bool{false, true} {
		out := filepath.Join(dir, map[bool]string{false: "masked", true: "sliced"}[sliced])
		write := WriteMasked
		if sliced {
			write = WriteSliced
		}
		if err := write(ctx, out, m, p.vla); err != nil {
			t.Fatalf("sliced=%v: %v", sliced, err)
		}
		checkCopy(t, p, m, out, sliced)
	}
}

// checkCopy opens a masked or sliced export as a checkpoint and compares every
// tensor with the VLA: masked cells zero and every other value equal; sliced
// tensors the VLA's with the pruned rows and columns removed (zero-width for an
// emptied layer), adding up to Params.After.
func checkCopy(t *testing.T, p *paperPair, m *Mask, dir string, sliced bool) {
	t.Helper()
	var specs []string
	for _, src := range p.vla.Sources {
		rel, err := filepath.Rel(filepath.Join(p.dir, "vla"), src.Path)
		if err != nil {
			t.Fatal(err)
		}
		if rel == "." {
			specs = append(specs, dir)
		} else {
			specs = append(specs, filepath.Join(dir, rel))
		}
	}
	out, err := checkpoint.OpenSide(specs, checkpoint.Options{})
	if err != nil {
		t.Fatalf("sliced=%v: the export does not open: %v", sliced, err)
	}
	defer out.Close()
	if len(out.Tensors) != len(p.vla.Tensors) {
		t.Fatalf("sliced=%v: %d tensors, the VLA has %d", sliced, len(out.Tensors), len(p.vla.Tensors))
	}
	var params int64
	zeroWidth := 0
	for _, ct := range out.Tensors {
		orig := p.byName[ct.Name]
		if orig == nil {
			t.Fatalf("%s: not in the VLA", ct.Name)
		}
		params += ct.Elements()
		tm := m.Tensor(ct.Name)
		wantShape := orig.Shape
		if sliced && tm != nil {
			wantShape = tm.KeptShape()
		}
		if !slices.Equal(ct.Shape, wantShape) || ct.DType != orig.DType {
			t.Errorf("sliced=%v: %s is %v %v, want %v %v", sliced, ct.Name, ct.DType, ct.Shape, orig.DType, wantShape)
			continue
		}
		if slices.Contains(ct.Shape, 0) {
			zeroWidth++
		}
		if tm == nil {
			continue
		}
		ov, gv := values(t, orig, false), values(t, ct, false)
		set := cells(tm)
		cols := int64(1)
		if len(orig.Shape) == 2 {
			cols = orig.Shape[1]
		}
		at := 0
		for i := range ov {
			r, c := int64(i)/cols, int64(i)%cols
			cut := set.rows[r] || len(orig.Shape) == 2 && set.cols[c]
			switch {
			case sliced && cut:
			case sliced:
				if gv[at] != ov[i] {
					t.Fatalf("sliced: %s kept cell (%d, %d) = %g, the VLA has %g", ct.Name, r, c, gv[at], ov[i])
				}
				at++
			case cut && gv[i] != 0:
				t.Fatalf("masked: %s pruned cell (%d, %d) = %g", ct.Name, r, c, gv[i])
			case !cut && gv[i] != ov[i]:
				t.Fatalf("masked: %s kept cell (%d, %d) = %g, the VLA has %g", ct.Name, r, c, gv[i], ov[i])
			}
		}
	}
	want := p.vlaParams
	if sliced {
		want = m.Params.After
	}
	if params != want {
		t.Errorf("sliced=%v: %d parameters, want %d", sliced, params, want)
	}
	emptied := 0
	for _, st := range m.Rules {
		for _, l := range st.Layers {
			if l.Units > 0 && l.Pruned == l.Units {
				emptied++
			}
		}
	}
	if sliced && emptied > 0 && zeroWidth == 0 {
		t.Errorf("sliced: %d layers emptied but no zero-width tensor", emptied)
	}
	if sliced {
		checkSlicedConfig(t, m, out, specs[0])
	}
}

// checkSlicedConfig reads the sliced export's config.json (beside the VLA's
// weights) and checks that it says what the tensors are: every component's
// per-layer widths, zero for an emptied layer, matching the stored shapes.
func checkSlicedConfig(t *testing.T, m *Mask, out *checkpoint.Side, weights string) {
	t.Helper()
	dir := weights
	if strings.HasSuffix(weights, ".safetensors") {
		dir = filepath.Dir(weights)
	}
	data, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatalf("sliced: %v", err)
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("sliced config: %v", err)
	}
	var block struct {
		WidthsFile  string `json:"widths_file"`
		ParamsAfter int64  `json:"params_after"`
		Loader      string `json:"loader"`
		Layers      map[string]struct {
			IntermediateSize []int `json:"intermediate_size"`
			Heads            []int `json:"num_attention_heads"`
			KVHeads          []int `json:"num_key_value_heads"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(cfg[SlicedConfigKey], &block); err != nil {
		t.Fatalf("sliced config has no %s: %v", SlicedConfigKey, err)
	}
	if block.WidthsFile != WidthsFile || block.ParamsAfter != m.Params.After || block.Loader == "" || len(block.Layers) != len(m.Widths) {
		t.Errorf("sliced config block %+v", block)
	}
	shapes := map[string][]int64{}
	for _, ct := range out.Tensors {
		shapes[ct.Name] = ct.Shape
	}
	for comp, w := range m.Widths {
		got := block.Layers[comp]
		if !slices.Equal(got.IntermediateSize, w.IntermediateSize) || !slices.Equal(got.Heads, w.Heads) || !slices.Equal(got.KVHeads, w.KVHeads) {
			t.Errorf("sliced config: %s widths %+v, the mask says %+v", comp, got, w)
		}
	}
	// The stored shapes agree with the config, layer by layer, where the
	// names say which tensor holds a component's FFN width or heads.
	for name, shape := range shapes {
		var comp, kind string
		var layer int
		for _, c := range []struct{ pat, comp, kind string }{
			{"language_model.model.layers.%d.mlp.gate_proj.weight", "llm", "ffn"},
			{"paligemma_with_expert.paligemma.model.language_model.layers.%d.mlp.gate_proj.weight", "llm", "ffn"},
			{"vision_backbone.featurizer.blocks.%d.mlp.fc1.weight", "vision.dinov2", "ffn"},
			{"vision_backbone.fused_featurizer.blocks.%d.mlp.fc1.weight", "vision.siglip", "ffn"},
			{"paligemma_with_expert.paligemma.model.vision_tower.vision_model.encoder.layers.%d.mlp.fc1.weight", "vision.siglip", "ffn"},
			{"vision_backbone.featurizer.blocks.%d.attn.proj.weight", "vision.dinov2", "heads"},
			{"vision_backbone.fused_featurizer.blocks.%d.attn.proj.weight", "vision.siglip", "heads"},
		} {
			if n, err := fmt.Sscanf(name, c.pat, &layer); err == nil && n == 1 && fmt.Sprintf(c.pat, layer) == name {
				comp, kind = c.comp, c.kind
			}
		}
		w := m.Widths[comp]
		switch {
		case w == nil:
		case kind == "ffn" && w.IntermediateSize != nil && int64(block.Layers[comp].IntermediateSize[layer]) != shape[0]:
			t.Errorf("sliced: %s has %d rows, the config says intermediate_size %d", name, shape[0], block.Layers[comp].IntermediateSize[layer])
		case kind == "heads" && w.Heads != nil && int64(block.Layers[comp].Heads[layer]*w.HeadDim) != shape[1]:
			t.Errorf("sliced: %s has %d columns, the config says %d heads of %d", name, shape[1], block.Layers[comp].Heads[layer], w.HeadDim)
		}
	}
}
