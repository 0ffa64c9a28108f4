package handlers

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
	"github.com/deltascope/deltascope/jobs"
	"github.com/deltascope/deltascope/store"
)

// syntheticOpenVLA is a Result with the tensor list, shapes and array sizes of
// an OpenVLA-7B analysis (Llama-2 32 layers, DINOv2 ViT-L 24 blocks, SigLIP
// so400m 27 blocks, the projector): ~0.57 M units, 6.7 M row/column norms,
// random so that rankings are real work.
func syntheticOpenVLA() *analysis.Result {
	rng := rand.New(rand.NewPCG(1, 2))
	floats := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = 0.5 + rng.Float32()
		}
		return v
	}
	res := &analysis.Result{
		EngineVersion: analysis.EngineVersion,
		BaseOnly:      []string{}, VLAOnly: []string{}, Mismatched: []analysis.Mismatch{}, Ambiguous: []analysis.Ambiguity{},
		Warnings: []string{},
		Geometry: map[string]arch.Geometry{
			arch.CompLLM:    {Heads: 32, KVHeads: 32, HeadDim: 128},
			arch.CompDINOv2: {Heads: 16, KVHeads: 16, HeadDim: 64},
			arch.CompSigLIP: {Heads: 16, KVHeads: 16, HeadDim: 72},
		},
	}
	add := func(component string, layer int, kind, of, name string, shape ...int64) {
		t := analysis.TensorStats{Base: name, VLA: name, Component: component, Layer: layer, Kind: kind, Of: of, Rule: "identity",
			DTypeBase: "BF16", DTypeVLA: "BF16", ShapeBase: shape, ShapeVLA: shape,
			FroBase: 100, FroVLA: 101, FroDelta: 1.5, RelDelta: 0.015, Cosine: 0.9999, MaxAbsDelta: 0.01,
			MeanAbsDelta: 0.001, ChangedFraction: 0.9, Compared: 1, Numeric: true}
		for _, d := range shape {
			t.Compared *= d
		}
		if len(shape) >= 2 {
			rows, cols := int(shape[0]), int(t.Compared/shape[0])
			t.RowDelta, t.RowBase, t.ColDelta, t.ColBase = floats(rows), floats(rows), floats(cols), floats(cols)
		}
		res.Tensors = append(res.Tensors, t)
		res.VLAParams += t.Compared
	}
	for l := range 32 {
		p := fmt.Sprintf("language_model.model.layers.%d.", l)
		for _, k := range []string{"q", "k", "v", "o"} {
			add(arch.CompLLM, l, "attn_"+k, "", p+"self_attn."+k+"_proj.weight", 4096, 4096)
		}
		add(arch.CompLLM, l, arch.KindFFNGate, "", p+"mlp.gate_proj.weight", 11008, 4096)
		add(arch.CompLLM, l, arch.KindFFNUp, "", p+"mlp.up_proj.weight", 11008, 4096)
		add(arch.CompLLM, l, arch.KindFFNDown, "", p+"mlp.down_proj.weight", 4096, 11008)
		add(arch.CompLLM, l, arch.KindNorm, "", p+"input_layernorm.weight", 4096)
		add(arch.CompLLM, l, arch.KindNorm, "", p+"post_attention_layernorm.weight", 4096)
	}
	vision := func(component, prefix string, blocks int, width, hidden int64) {
		for l := range blocks {
			p := fmt.Sprintf("%s.blocks.%d.", prefix, l)
			add(component, l, arch.KindAttnQKV, "", p+"attn.qkv.weight", 3*width, width)
			add(component, l, arch.KindBias, arch.KindAttnQKV, p+"attn.qkv.bias", 3*width)
			add(component, l, arch.KindAttnO, "", p+"attn.proj.weight", width, width)
			add(component, l, arch.KindBias, arch.KindAttnO, p+"attn.proj.bias", width)
			add(component, l, arch.KindFFNFc1, "", p+"mlp.fc1.weight", hidden, width)
			add(component, l, arch.KindBias, arch.KindFFNFc1, p+"mlp.fc1.bias", hidden)
			add(component, l, arch.KindFFNFc2, "", p+"mlp.fc2.weight", width, hidden)
			add(component, l, arch.KindBias, arch.KindFFNFc2, p+"mlp.fc2.bias", width)
			for _, n := range []string{"norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"} {
				add(component, l, arch.KindNorm, "", p+n, width)
			}
		}
	}
	vision(arch.CompDINOv2, "vision_backbone.featurizer", 24, 1024, 4096)
	vision(arch.CompSigLIP, "vision_backbone.fused_featurizer", 27, 1152, 4304)
	add(arch.CompProjector, -1, arch.KindProjFc1, "", "projector.fc1.weight", 8704, 2176)
	add(arch.CompProjector, -1, arch.KindProjFc2, "", "projector.fc2.weight", 4096, 8704)
	add(arch.CompProjector, -1, arch.KindProjFc3, "", "projector.fc3.weight", 4096, 4096)
	add(arch.CompEmbed, -1, arch.KindEmbed, "", "language_model.model.embed_tokens.weight", 32064, 4096)
	add(arch.CompLMHead, -1, arch.KindEmbed, "", "language_model.lm_head.weight", 32064, 4096)
	res.BaseParams, res.Compared = res.VLAParams, res.VLAParams
	res.Units, _ = analysis.BuildUnits(res, analysis.ScoreDefault)
	return res
}

// storeSynthetic stores res as a done analysis whose files do not exist (the
// composer works from the stored result alone).
func storeSynthetic(tb testing.TB, db *store.DB, res *analysis.Result) string {
	tb.Helper()
	ctx := context.Background()
	a, err := db.CreateAnalysis(ctx, store.AnalysisRequest{Base: []string{"/nonexistent/base"}, VLA: []string{"/nonexistent/vla"}})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := db.ClaimNext(ctx); err != nil {
		tb.Fatal(err)
	}
	rec := func(fp string) store.CheckpointRecord {
		return store.CheckpointRecord{Fingerprint: fp, Params: res.VLAParams, Bytes: 2 * res.VLAParams,
			Sources: []store.SourceRecord{{Spec: "/nonexistent/" + fp, Path: "/nonexistent/" + fp, Format: "safetensors",
				Files: []store.FileIdentity{{Path: "/nonexistent/" + fp + "/model.safetensors", Size: 1, HeaderSHA: fp}}}}}
	}
	if err := db.Finish(ctx, a.ID, rec("base"), rec("vla"), res); err != nil {
		tb.Fatal(err)
	}
	return a.ID
}

// BenchmarkComposerUpdate is one composer update at OpenVLA-7B scale, the
// server side of the HTTP handler path (routing, decoding, cached Result,
// prune.Resolve, encoding the answer with the pruned units), after the first
// call has loaded the Result into the cache; "cold" is a first call, with the
// Result read from the store.
func BenchmarkComposerUpdate(b *testing.B) {
	db, err := store.Open(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	id := storeSynthetic(b, db, syntheticOpenVLA())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := New(db, jobs.New(db, jobs.Options{Log: log}), Config{Log: log})
	h := srv.Routes()

	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			fresh := New(db, jobs.New(db, jobs.Options{Log: log}), Config{Log: log}).Routes()
			rec := httptest.NewRecorder()
			fresh.ServeHTTP(rec, httptest.NewRequest("POST", "/api/analyses/"+id+"/resolve", strings.NewReader(`{"preset": "openvla-moderate"}`)))
			if rec.Code != http.StatusOK {
				b.Fatalf("%d %.300s", rec.Code, rec.Body.String())
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/update")
	})
	for _, c := range []struct{ name, body string }{
		{"moderate", `{"preset": "openvla-moderate"}`},
		{"per-layer-random", `{"name": "x", "rules": [
			{"module": "llm.ffn_channel", "ratio": 0.3, "direction": "random", "seed": 3, "scope": "layer", "round_to": 64},
			{"module": "llm.attn_head", "ratio": 0.125, "direction": "magnitude"},
			{"module": "vision.siglip.ffn_channel", "ratio": 0.5, "direction": "lowest", "metric": "absolute"},
			{"module": "vision.dinov2.ffn_channel", "ratio": 0.5, "direction": "highest", "variant": "mean"}]}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			update := func() int {
				req := httptest.NewRequest("POST", "/api/analyses/"+id+"/resolve", strings.NewReader(c.body))
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%d %.300s", rec.Code, rec.Body.String())
				}
				return rec.Body.Len()
			}
			size := update() // loads the Result into the cache
			b.ResetTimer()   // (which also clears reported metrics: report after)
			for b.Loop() {
				update()
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/update")
			b.ReportMetric(float64(size)/1024, "KiB/answer")
		})
	}
}

// TestSyntheticOpenVLAUnits keeps the benchmark honest: it must resolve as
// many units as OpenVLA-7B has.
func TestSyntheticOpenVLAUnits(t *testing.T) {
	res := syntheticOpenVLA()
	n := 0
	for _, u := range res.Units {
		n += len(u.Scores)
	}
	if n < 550_000 || n > 650_000 {
		t.Fatalf("%d units, want OpenVLA-7B's ~0.57 M", n)
	}
}
