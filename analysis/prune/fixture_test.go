package prune

import (
	"cmp"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/internal/testfixtures"
)

var fixtures = testfixtures.Path("pi05")

var (
	fixtureOnce sync.Once
	fixtureRes  *analysis.Result
	fixtureErr  error
)

// fixtureResult analyzes the real π0.5 fixture pair once per test binary.
func fixtureResult(t *testing.T) *analysis.Result {
	t.Helper()
	fixtureOnce.Do(func() {
		base, err := checkpoint.OpenSide([]string{fixtures + "/base"}, checkpoint.Options{})
		if err != nil {
			fixtureErr = err
			return
		}
		defer base.Close()
		vla := openFixtureVLA(t)
		defer vla.Close()
		// Exact: the recomputations below read reference.json, whose norms are
		// taken at full precision.
		fixtureRes, fixtureErr = analysis.Analyze(context.Background(), base, vla, analysis.Options{Exact: true})
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixtureRes
}

func openFixtureVLA(t *testing.T) *checkpoint.Side {
	t.Helper()
	vla, err := checkpoint.OpenSide([]string{fixtures + "/vla/model.safetensors"}, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return vla
}

// reference holds the float64 per-row norms of reference.json, by VLA name.
type refPair struct {
	VLA      string    `json:"vla"`
	RowDelta []float64 `json:"row_delta_norm"`
	RowBase  []float64 `json:"row_base_norm"`
}

func loadReference(t *testing.T) map[string]refPair {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtures, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Pairs []refPair `json:"pairs"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	out := map[string]refPair{}
	for _, p := range ref.Pairs {
		out[p.VLA] = p
	}
	return out
}

const (
	llmPrefix = "paligemma_with_expert.paligemma.model.language_model.layers."
	sigPrefix = "paligemma_with_expert.paligemma.model.vision_tower.vision_model.encoder.layers."
)

func layerName(prefix string, layer int, rest string) string {
	return prefix + string(rune('0'+layer)) + "." + rest
}

// scored is one unit of the independent recomputation.
type scored struct {
	score        float32
	layer, index int
}

// expectPruned ranks units by the stated rule: highest (or lowest) score first,
// ties by (layer, index), and keeps the first int(N·ratio).
func expectPruned(units []scored, ratio float64, highest bool) map[[2]int]bool {
	slices.SortFunc(units, func(a, b scored) int {
		c := cmp.Compare(a.score, b.score)
		if highest {
			c = -c
		}
		return cmp.Or(c, cmp.Compare(a.layer, b.layer), cmp.Compare(a.index, b.index))
	})
	out := map[[2]int]bool{}
	for _, u := range units[:int(float64(len(units))*ratio)] {
		out[[2]int{u.layer, u.index}] = true
	}
	return out
}

func rowsOf(m *Mask, name string) []int32 {
	if t := m.Tensor(name); t != nil {
		return t.Rows
	}
	return nil
}

func colsOf(m *Mask, name string) []int32 {
	if t := m.Tensor(name); t != nil {
		return t.Cols
	}
	return nil
}

func TestMaskMatchesReference(t *testing.T) {
	res := fixtureResult(t)
	ref := loadReference(t)
	// f32 rounds a reference norm as the engine stores it.
	f32 := func(name string, i int, base bool) float64 {
		p, ok := ref[name]
		if !ok {
			t.Fatalf("reference.json has no %s", name)
		}
		if base {
			return float64(float32(p.RowBase[i]))
		}
		return float64(float32(p.RowDelta[i]))
	}

	t.Run("llm FFN 0.3 highest, π0.5 rule absolute: gate row ΔW", func(t *testing.T) {
		r := Recipe{Name: "t", Rules: []Rule{{Module: ModLLMFFN, Ratio: 0.3, Direction: DirHighest, Metric: "absolute", Variant: "pi05"}}}
		m, err := Resolve(res, r)
		if err != nil {
			t.Fatal(err)
		}
		var units []scored
		for l := range 3 {
			for j := range 512 {
				units = append(units, scored{float32(f32(layerName(llmPrefix, l, "mlp.gate_proj.weight"), j, false)), l, j})
			}
		}
		want := expectPruned(units, 0.3, true)
		got := 0
		for l := range 3 {
			gate := rowsOf(m, layerName(llmPrefix, l, "mlp.gate_proj.weight"))
			if up := rowsOf(m, layerName(llmPrefix, l, "mlp.up_proj.weight")); !slices.Equal(gate, up) {
				t.Errorf("layer %d: up rows differ from gate rows", l)
			}
			if down := colsOf(m, layerName(llmPrefix, l, "mlp.down_proj.weight")); !slices.Equal(gate, down) {
				t.Errorf("layer %d: down columns differ from gate rows", l)
			}
			for _, j := range gate {
				if !want[[2]int{l, int(j)}] {
					t.Errorf("layer %d channel %d pruned, not in the recomputed selection", l, j)
				}
			}
			got += len(gate)
		}
		if got != len(want) || got != 460 {
			t.Errorf("pruned %d channels, want %d", got, len(want))
		}
	})

	t.Run("llm heads 0.5 highest, π0.5 rule: (q mean + k mean)/2", func(t *testing.T) {
		r := Recipe{Rules: []Rule{{Module: ModLLMHead, Ratio: 0.5, Direction: DirHighest, Metric: "absolute", Variant: "pi05", AllowEmptyLayer: true}}}
		m, err := Resolve(res, r)
		if err != nil {
			t.Fatal(err)
		}
		const d = 32
		var units []scored
		for l := range 3 {
			var kMean float64
			for i := range d {
				kMean += f32(layerName(llmPrefix, l, "self_attn.k_proj.weight"), i, false)
			}
			kMean /= d
			for h := range 4 {
				var q float64
				for i := h * d; i < (h+1)*d; i++ {
					q += f32(layerName(llmPrefix, l, "self_attn.q_proj.weight"), i, false)
				}
				units = append(units, scored{float32((q/d + kMean) / 2), l, h})
			}
		}
		want := expectPruned(units, 0.5, true)
		var wantRows [3][]int32
		for l := range 3 {
			for h := range 4 {
				if want[[2]int{l, h}] {
					for i := range d {
						wantRows[l] = append(wantRows[l], int32(h*d+i))
					}
				}
			}
			if got := rowsOf(m, layerName(llmPrefix, l, "self_attn.q_proj.weight")); !slices.Equal(got, wantRows[l]) {
				t.Errorf("layer %d: q rows %v, want %v", l, got, wantRows[l])
			}
			if got := colsOf(m, layerName(llmPrefix, l, "self_attn.o_proj.weight")); !slices.Equal(got, wantRows[l]) {
				t.Errorf("layer %d: o columns %v, want %v", l, got, wantRows[l])
			}
			// The authors' π0.5 code never cuts the shared k/v, even when all
			// four query heads of a layer go.
			for _, kv := range []string{"k_proj", "v_proj"} {
				if got := rowsOf(m, layerName(llmPrefix, l, "self_attn."+kv+".weight")); len(got) != 0 {
					t.Errorf("layer %d: %d %s rows pruned with %d of 4 query heads; the pi05 rule keeps k/v", l, len(got), kv, len(wantRows[l])/d)
				}
			}
		}
	})

	t.Run("SigLIP FFN 0.25 lowest, relative: fc1 row ΔW / base, with fc1 bias and fc2 columns", func(t *testing.T) {
		r := Recipe{Rules: []Rule{{Module: ModSigLIPFFN, Ratio: 0.25, Direction: DirLowest, Metric: "relative", Variant: "openvla"}}}
		m, err := Resolve(res, r)
		if err != nil {
			t.Fatal(err)
		}
		var units []scored
		for l := range 2 {
			name := layerName(sigPrefix, l, "mlp.fc1.weight")
			for j := range 192 {
				units = append(units, scored{float32(f32(name, j, false) / (f32(name, j, true) + 1e-8)), l, j})
			}
		}
		want := expectPruned(units, 0.25, false)
		total := 0
		for l := range 2 {
			fc1 := rowsOf(m, layerName(sigPrefix, l, "mlp.fc1.weight"))
			for _, j := range fc1 {
				if !want[[2]int{l, int(j)}] {
					t.Errorf("layer %d channel %d pruned, not in the recomputed selection", l, j)
				}
			}
			total += len(fc1)
			if b := rowsOf(m, layerName(sigPrefix, l, "mlp.fc1.bias")); !slices.Equal(b, fc1) {
				t.Errorf("layer %d: fc1 bias entries %v differ from fc1 rows", l, b)
			}
			if c := colsOf(m, layerName(sigPrefix, l, "mlp.fc2.weight")); !slices.Equal(c, fc1) {
				t.Errorf("layer %d: fc2 columns differ from fc1 rows", l)
			}
			if m.Tensor(layerName(sigPrefix, l, "mlp.fc2.bias")) != nil {
				t.Errorf("layer %d: fc2 bias (the residual width) must not be pruned", l)
			}
		}
		if total != len(want) {
			t.Errorf("pruned %d, want %d", total, len(want))
		}
	})
}

func TestMQAConstraints(t *testing.T) {
	res := fixtureResult(t)
	kvRows := func(m *Mask, l int) (k, v []int32) {
		return rowsOf(m, layerName(llmPrefix, l, "self_attn.k_proj.weight")), rowsOf(m, layerName(llmPrefix, l, "self_attn.v_proj.weight"))
	}
	t.Run("three of four heads per layer: k/v kept", func(t *testing.T) {
		m, err := Resolve(res, Recipe{Rules: []Rule{{Module: ModLLMHead, Ratio: 0.75, Direction: DirHighest, Scope: ScopeLayer, Variant: "openvla"}}})
		if err != nil {
			t.Fatal(err)
		}
		for l := range 3 {
			if q := rowsOf(m, layerName(llmPrefix, l, "self_attn.q_proj.weight")); len(q) != 3*32 {
				t.Errorf("layer %d: %d q rows pruned, want 96", l, len(q))
			}
			if k, v := kvRows(m, l); len(k)+len(v) != 0 {
				t.Errorf("layer %d: k/v rows pruned under MQA with a query head left", l)
			}
			if w := m.Widths["llm"]; w.Heads[l] != 1 || w.KVHeads[l] != 1 || w.HeadDim != 32 {
				t.Errorf("layer %d widths %+v", l, w)
			}
		}
		if len(m.Warnings) == 0 {
			t.Error("no warning about the KV groups kept")
		}
	})
	t.Run("emptying a layer is allowed, with a warning", func(t *testing.T) {
		m, err := Resolve(res, Recipe{Rules: []Rule{{Module: ModLLMHead, Ratio: 0.99, Direction: DirHighest}}})
		if err != nil {
			t.Fatalf("11 of 12 heads empty two layers, as the authors' code allows: %v", err)
		}
		var emptied []string
		for _, w := range m.Warnings {
			if strings.Contains(w, "emptied") {
				emptied = append(emptied, w)
			}
		}
		if len(emptied) != 1 || strings.Count(emptied[0], ", ") != 1 {
			t.Errorf("want one warning naming the two emptied layers: %q", m.Warnings)
		}
	})
	for _, c := range []struct {
		variant string
		kvGoes  bool
	}{{"openvla", true}, {"pi05", false}} {
		t.Run(c.variant+" rule: an emptied layer's k/v", func(t *testing.T) {
			m, err := Resolve(res, Recipe{Rules: []Rule{{Module: ModLLMHead, Ratio: 0.99, Direction: DirHighest, Variant: c.variant}}})
			if err != nil {
				t.Fatal(err)
			}
			empty := 0
			for l := range 3 {
				q := rowsOf(m, layerName(llmPrefix, l, "self_attn.q_proj.weight"))
				k, v := kvRows(m, l)
				full := len(q) == 128
				if full {
					empty++
				}
				// openvla: k/v go with the last query head of their group; pi05
				// (the authors' π0.5 code): never.
				wantKV := full && c.kvGoes
				if wantKV != (len(k) == 32 && len(v) == 32) || (!wantKV && len(k)+len(v) != 0) {
					t.Errorf("layer %d: q rows %d, k rows %d, v rows %d", l, len(q), len(k), len(v))
				}
				if w := m.Widths["llm"]; full && w.Heads[l] != 0 {
					t.Errorf("layer %d: widths say %d heads left", l, w.Heads[l])
				} else if full && (w.KVHeads[l] == 1) == c.kvGoes {
					t.Errorf("layer %d: widths say %d KV heads left", l, w.KVHeads[l])
				}
			}
			if empty != 2 {
				t.Errorf("%d empty layers, want 2 (11 of 12 heads)", empty)
			}
		})
	}
}

func TestRulesAndScopes(t *testing.T) {
	res := fixtureResult(t)
	gate := func(m *Mask, l int) []int32 { return rowsOf(m, layerName(llmPrefix, l, "mlp.gate_proj.weight")) }
	t.Run("protected layer is never pruned and leaves N", func(t *testing.T) {
		m, err := Resolve(res, Recipe{Rules: []Rule{{Module: ModLLMFFN, Ratio: 0.4, Direction: DirHighest, Protected: []int{1}}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(gate(m, 1)) != 0 {
			t.Error("protected layer 1 pruned")
		}
		if st := m.Rules[0]; st.Units != 1024 || st.Protected != 512 || st.Pruned != 409 || len(gate(m, 0))+len(gate(m, 2)) != 409 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("layer scope prunes int(n·ratio) in every layer", func(t *testing.T) {
		m, err := Resolve(res, Recipe{Rules: []Rule{{Module: ModLLMFFN, Ratio: 0.33, Direction: DirLowest, Scope: ScopeLayer}}})
		if err != nil {
			t.Fatal(err)
		}
		for l := range 3 {
			if n := len(gate(m, l)); n != 168 {
				t.Errorf("layer %d: %d pruned, want %d", l, n, 168)
			}
		}
	})
	t.Run("round_to keeps a multiple per layer", func(t *testing.T) {
		m, err := Resolve(res, Recipe{Rules: []Rule{{Module: ModLLMFFN, Ratio: 0.3, Direction: DirHighest, RoundTo: 64}}})
		if err != nil {
			t.Fatal(err)
		}
		plain, _ := Resolve(res, Recipe{Rules: []Rule{{Module: ModLLMFFN, Ratio: 0.3, Direction: DirHighest}}})
		for l := range 3 {
			kept := 512 - len(gate(m, l))
			if kept%64 != 0 || kept != roundKept(512-len(gate(plain, l)), 512, 64) {
				t.Errorf("layer %d keeps %d, want the rounding of %d to 64", l, kept, 512-len(gate(plain, l)))
			}
			// Rounded selections still follow the ranking: the shorter list is inside the longer.
			a, b := gate(m, l), gate(plain, l)
			if len(a) > len(b) {
				a, b = b, a
			}
			for _, x := range a {
				if !slices.Contains(b, x) {
					t.Errorf("layer %d: rounded selection is not nested in the plain one", l)
					break
				}
			}
		}
	})
	t.Run("random is seeded", func(t *testing.T) {
		r := Recipe{Rules: []Rule{{Module: ModLLMFFN, Ratio: 0.2, Direction: DirRandom, Seed: 1}}}
		a, _ := Resolve(res, r)
		b, _ := Resolve(res, r)
		r.Rules[0].Seed = 2
		c, _ := Resolve(res, r)
		if !slices.Equal(gate(a, 0), gate(b, 0)) {
			t.Error("same seed, different masks")
		}
		if slices.Equal(gate(a, 0), gate(c, 0)) {
			t.Error("different seeds, same mask")
		}
	})
	t.Run("magnitude prunes the lowest base norm of the unit's slices", func(t *testing.T) {
		m, err := Resolve(res, Recipe{Rules: []Rule{{Module: ModSigLIPFFN, Ratio: 0.1, Direction: DirMagnitude}}})
		if err != nil {
			t.Fatal(err)
		}
		var units []scored
		for i := range res.Tensors {
			ts := &res.Tensors[i]
			if ts.Component == "vision.siglip" && ts.Kind == "ffn_fc1" {
				var fc2 *analysis.TensorStats
				for j := range res.Tensors {
					if o := &res.Tensors[j]; o.Component == ts.Component && o.Layer == ts.Layer && o.Kind == "ffn_fc2" {
						fc2 = o
					}
				}
				for c := range ts.RowBase {
					sq := float64(ts.RowBase[c])*float64(ts.RowBase[c]) + float64(fc2.ColBase[c])*float64(fc2.ColBase[c])
					units = append(units, scored{sqrt32(sq), ts.Layer, c})
				}
			}
		}
		want := expectPruned(units, 0.1, false)
		n := 0
		for l := range 2 {
			for _, j := range rowsOf(m, layerName(sigPrefix, l, "mlp.fc1.weight")) {
				n++
				if !want[[2]int{l, int(j)}] {
					t.Errorf("layer %d channel %d is not among the lowest-magnitude", l, j)
				}
			}
		}
		if n != len(want) {
			t.Errorf("pruned %d, want %d", n, len(want))
		}
	})
	t.Run("projector rule needs two layers", func(t *testing.T) {
		if _, err := Resolve(res, Recipe{Rules: []Rule{{Module: ModProjectorFFN, Ratio: 0.1, Direction: DirHighest}}}); err == nil {
			t.Error("PaliGemma's single projector layer accepted a projector rule")
		}
	})
	t.Run("action expert without a base is refused", func(t *testing.T) {
		if _, err := Resolve(res, Recipe{Rules: []Rule{{Module: ModActionExpertFFN, Ratio: 0.1, Direction: DirHighest}}}); err == nil {
			t.Error("want an error: the expert has no ΔW")
		}
	})
}

func TestParamsAccounting(t *testing.T) {
	res := fixtureResult(t)
	vla := openFixtureVLA(t)
	defer vla.Close()
	var named []arch.Named
	for _, ts := range vla.Tensors {
		named = append(named, arch.Named{Name: ts.Name, Shape: ts.Shape})
	}
	r := Recipe{Rules: []Rule{{Module: ModLLMFFN, Ratio: 0.3, Direction: DirHighest}, {Module: ModLLMHead, Ratio: 0.25, Direction: DirHighest},
		{Module: ModSigLIPFFN, Ratio: 0.25, Direction: DirLowest}}}
	m, err := Resolve(res, r)
	if err != nil {
		t.Fatal(err)
	}
	mv, err := ResolveWith(res, r, Options{VLATensors: named})
	if err != nil {
		t.Fatal(err)
	}
	// 460 FFN channels × 3×128; 3 heads × (32 q rows + 32 o columns) × 128;
	// 96 SigLIP channels × (48 + 1 + 48).
	removed := int64(460*3*128 + 3*2*32*128 + 96*(48+1+48))
	for _, p := range []Params{m.Params, mv.Params} {
		if p.Before != res.VLAParams || p.Before-p.After != removed {
			t.Errorf("before %d after %d; want before %d, removed %d", p.Before, p.After, res.VLAParams, removed)
		}
		var sum int64
		for _, c := range p.ByComponent {
			sum += c.After
		}
		if sum != p.After {
			t.Errorf("components sum to %d, want %d", sum, p.After)
		}
	}
	if _, ok := m.Params.ByComponent[VLAOnlyComponent]; !ok {
		t.Error("without VLA shapes the action expert should be under vla_only")
	}
	if c := mv.Params.ByComponent["action_expert"]; c.Before == 0 || c.Before != c.After {
		t.Errorf("action expert %+v", c)
	}
	if ls := mv.Params.ByLayer["llm"]; len(ls) != 3 || ls[0].Before <= ls[0].After {
		t.Errorf("llm by layer %+v", ls)
	}
}

func sqrt32(x float64) float32 { return float32(math.Sqrt(x)) }

func readAll(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
