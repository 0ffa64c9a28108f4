package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
)

// openVLAResult has the tensor list and array sizes of an OpenVLA-7B analysis:
// Llama-2 (32 layers), DINOv2 ViT-L (24 blocks), SigLIP so400m (27 blocks), the
// projector. About 950 tensors and 6.7 M floats of row/column norms.
func openVLAResult() *analysis.Result {
	res := &analysis.Result{
		EngineVersion: analysis.EngineVersion,
		BaseOnly:      []string{}, VLAOnly: []string{}, Mismatched: []analysis.Mismatch{}, Ambiguous: []analysis.Ambiguity{},
		Warnings: []string{},
		Geometry: map[string]arch.Geometry{"llm": {Heads: 32, KVHeads: 32, HeadDim: 128}},
	}
	add := func(component string, layer int, kind, name string, shape ...int64) {
		t := analysis.TensorStats{Base: name, VLA: name, Component: component, Layer: layer, Kind: kind, Rule: "identity",
			DTypeBase: "BF16", DTypeVLA: "BF16", ShapeBase: shape, ShapeVLA: shape,
			FroBase: 100, FroVLA: 101, FroDelta: 1.5, RelDelta: 0.015, Cosine: 0.9999, MaxAbsDelta: 0.01,
			MeanAbsDelta: 0.001, ChangedFraction: 0.9, Compared: 1, Numeric: true}
		for _, d := range shape {
			t.Compared *= d
		}
		if len(shape) >= 2 {
			rows, cols := int(shape[0]), int(t.Compared/shape[0])
			t.RowDelta, t.RowBase, t.ColDelta, t.ColBase = f32s(rows, 1), f32s(rows, 2), f32s(cols, 3), f32s(cols, 4)
		}
		res.Tensors = append(res.Tensors, t)
	}
	for l := range 32 {
		p := fmt.Sprintf("language_model.model.layers.%d.", l)
		for _, k := range []string{"q", "k", "v", "o"} {
			add("llm", l, "attn_"+k, p+"self_attn."+k+"_proj.weight", 4096, 4096)
		}
		add("llm", l, "ffn_gate", p+"mlp.gate_proj.weight", 11008, 4096)
		add("llm", l, "ffn_up", p+"mlp.up_proj.weight", 11008, 4096)
		add("llm", l, "ffn_down", p+"mlp.down_proj.weight", 4096, 11008)
		add("llm", l, "norm", p+"input_layernorm.weight", 4096)
		add("llm", l, "norm", p+"post_attention_layernorm.weight", 4096)
	}
	vision := func(component, prefix string, blocks int, width, hidden int64) {
		for l := range blocks {
			p := fmt.Sprintf("%s.blocks.%d.", prefix, l)
			add(component, l, "attn_qkv", p+"attn.qkv.weight", 3*width, width)
			add(component, l, "bias", p+"attn.qkv.bias", 3*width)
			add(component, l, "attn_o", p+"attn.proj.weight", width, width)
			add(component, l, "bias", p+"attn.proj.bias", width)
			add(component, l, "ffn_fc1", p+"mlp.fc1.weight", hidden, width)
			add(component, l, "bias", p+"mlp.fc1.bias", hidden)
			add(component, l, "ffn_fc2", p+"mlp.fc2.weight", width, hidden)
			add(component, l, "bias", p+"mlp.fc2.bias", width)
			for _, n := range []string{"norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"} {
				add(component, l, "norm", p+n, width)
			}
		}
	}
	vision("vision.dino", "vision_backbone.featurizer", 24, 1024, 4096)
	vision("vision.siglip", "vision_backbone.fused_featurizer", 27, 1152, 4304)
	add("projector", -1, "proj_fc1", "projector.fc1.weight", 8704, 2176)
	add("projector", -1, "proj_fc2", "projector.fc2.weight", 4096, 8704)
	add("projector", -1, "proj_fc3", "projector.fc3.weight", 4096, 4096)
	add("llm", -1, "embed", "language_model.model.embed_tokens.weight", 32064, 4096)
	add("llm", -1, "lm_head", "language_model.lm_head.weight", 32064, 4096)
	units, _ := analysis.BuildUnits(res, analysis.ScoreDefault)
	res.Units = units
	return res
}

func floatsIn(res *analysis.Result) int {
	n := 0
	for _, t := range res.Tensors {
		n += len(t.RowDelta) + len(t.ColDelta) + len(t.RowBase) + len(t.ColBase)
	}
	for _, u := range res.Units {
		n += len(u.Scores)
	}
	return n
}

// benchDB stores one OpenVLA-sized result.
func benchDB(b *testing.B) (*DB, string, *analysis.Result) {
	b.Helper()
	db := mustOpen(b)
	a := startAnalysis(b, db, sampleRequest)
	res := openVLAResult()
	if err := db.Finish(context.Background(), a.ID, record("fp-b", "/b", 1, 1), record("fp-v", "/v", 1, 1), res); err != nil {
		b.Fatal(err)
	}
	return db, a.ID, res
}

func BenchmarkResult(b *testing.B) {
	db, id, res := benchDB(b)
	b.SetBytes(int64(4 * floatsIn(res)))
	for b.Loop() {
		got, err := db.Result(context.Background(), id)
		if err != nil || len(got.Tensors) != len(res.Tensors) {
			b.Fatal(len(got.Tensors), err)
		}
	}
	b.ReportMetric(float64(len(res.Tensors)), "tensors")
	b.ReportMetric(float64(floatsIn(res)), "floats")
}

func BenchmarkTensors(b *testing.B) {
	db, id, _ := benchDB(b)
	tests := []struct {
		name   string
		filter TensorFilter
	}{
		{"all_stats", TensorFilter{}},
		{"llm_ffn_gate_by_layer", TensorFilter{Component: "llm", Kind: "ffn_gate"}},
		{"llm_ffn_gate_by_layer_arrays", TensorFilter{Component: "llm", Kind: "ffn_gate", WithArrays: true}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := db.Tensors(context.Background(), id, tt.filter); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkFinish(b *testing.B) {
	db := mustOpen(b)
	res := openVLAResult()
	b.SetBytes(int64(4 * floatsIn(res)))
	i := 0
	for b.Loop() {
		i++
		a := startAnalysis(b, db, sampleRequest)
		fp := fmt.Sprint(i)
		if err := db.Finish(context.Background(), a.ID, record("b"+fp, "/b"+fp, 1, 1), record("v"+fp, "/v"+fp, 1, 1), res); err != nil {
			b.Fatal(err)
		}
	}
}
