package web

import (
	"bytes"
	"context"
	"flag"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/a-h/templ"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
	"github.com/deltascope/deltascope/store"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.html from the current output")

// assetHash hides the asset checksums, so editing a script does not churn every
// golden file; the checksum URLs themselves are tested in package assets.
var assetHash = regexp.MustCompile(`\.[0-9a-f]{8}\.(js|css)`)

var (
	created  = time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	started  = created.Add(time.Minute)
	finished = created.Add(3 * time.Minute)
)

func goldenAnalysis(status store.Status) *store.Analysis {
	a := &store.Analysis{ID: "a1b2c3d4e5f6", Status: status, CreatedAt: created,
		Request: store.AnalysisRequest{Base: []string{"/data/pi05/base"}, VLA: []string{"/data/pi05/vla/model.safetensors"}, Map: []string{`^x\.=>y.`}}}
	switch status {
	case store.StatusRunning:
		a.StartedAt, a.BytesDone, a.BytesTotal, a.CurrentTensor = &started, 3<<30, 12<<30, "model.layers.7.mlp.up_proj.weight"
	case store.StatusFailed:
		a.StartedAt, a.FinishedAt, a.Error = &started, &finished, "/data/pi05/vla/model.safetensors: truncated: header says 1024 bytes, file has 100"
		a.Advice = &store.Advice{Suggestions: []arch.Suggestion{{Rule: `^dinov2\.=>vision_backbone.featurizer.`, From: "dinov2.",
			To: "vision_backbone.featurizer.", Pairs: 343, ExampleBase: "dinov2.blocks.0.attn.qkv.weight", ExampleVLA: "vision_backbone.featurizer.blocks.0.attn.qkv.weight"}}}
	case store.StatusDone:
		a.StartedAt, a.FinishedAt = &started, &finished
		a.Summary = &store.Summary{ParamsCompared: 7_500_000_000, BaseParams: 7_541_237_184, VLAParams: 7_541_237_184,
			GlobalRelDelta: 0.0123, Geometry: map[string]arch.Geometry{"llm": {Heads: 2, KVHeads: 1, HeadDim: 2}},
			Warnings: []string{"vision.siglip: no geometry; set its heads"}}
		a.Summary.Geometry["vision.siglip"] = arch.Geometry{Heads: 1, KVHeads: 1, HeadDim: 48}
		// A suggestion whose text would break out of HTML if not escaped.
		a.Advice = &store.Advice{GeometryGuessed: []string{"vision.siglip"}, Suggestions: []arch.Suggestion{{Rule: `^lm\.=>"<b>x</b>.`,
			From: "lm.", To: `"<b>x</b>.`, Pairs: 2, ExampleBase: "lm.head.weight", ExampleVLA: `"<b>x</b>.head.weight`}}}
	}
	return a
}

func goldenTensors() []analysis.TensorStats {
	t := func(name, comp, kind string, layer int, rel float64) analysis.TensorStats {
		return analysis.TensorStats{Base: name, VLA: name, Component: comp, Layer: layer, Kind: kind, Rule: "exact",
			DTypeBase: "BF16", DTypeVLA: "BF16", ShapeBase: []int64{4, 2}, ShapeVLA: []int64{4, 2}, Numeric: true,
			FroBase: 2, FroVLA: 2.1, FroDelta: analysis.Num(2 * rel), RelDelta: analysis.Num(rel), Cosine: analysis.Num(1 - rel/10),
			MaxAbsDelta: 0.1, MeanAbsDelta: 0.05, ChangedFraction: 0.9, Compared: 8,
			RowDelta: []float32{0.1, 0.4, 0.05, 0.2}, RowBase: []float32{1, 2, 1, 1}, ColDelta: []float32{0.3, 0.2}, ColBase: []float32{1, 1}}
	}
	return []analysis.TensorStats{
		t("model.layers.0.self_attn.q_proj.weight", "llm", "attn_q", 0, 0.02),
		t("model.layers.1.self_attn.q_proj.weight", "llm", "attn_q", 1, 0.04),
		t("model.layers.0.mlp.gate_proj.weight", "llm", "ffn_gate", 0, 0.01),
		t("model.layers.1.mlp.gate_proj.weight", "llm", "ffn_gate", 1, math.NaN()),
		t(`<script>alert(1)</script>`, "projector", "proj_fc1", -1, 0.3),
	}
}

func goldenOverviewInput() OverviewInput {
	return OverviewInput{
		Analysis: goldenAnalysis(store.StatusDone),
		Tensors:  goldenTensors(),
		Alignment: &analysis.Result{BaseOnly: []string{"lm_head.weight"}, VLAOnly: []string{"action_out_proj.weight", "=cmd|' /C calc'!A0"},
			Mismatched: []analysis.Mismatch{{Base: "embed.weight", VLA: "embed.weight", ShapeBase: []int64{32000, 8}, ShapeVLA: []int64{32064, 8}, Compared: true, Reason: "dim 0 differs"}}},
		Units: []analysis.UnitScores{
			{Component: "llm", Kind: "ffn_channel", Layer: 0, Metric: "relative", Variant: "openvla", Scores: []float32{0.1, 0.3, 0.2}},
			{Component: "llm", Kind: "ffn_channel", Layer: 1, Metric: "relative", Variant: "openvla", Scores: []float32{0.2, 0.1, 0.5}},
			{Component: "llm", Kind: "attn_head", Layer: 0, Metric: "relative", Variant: "openvla", Scores: []float32{1, 2}},
		},
	}
}

func TestGolden(t *testing.T) {
	rows := []store.Analysis{*goldenAnalysis(store.StatusDone), *goldenAnalysis(store.StatusRunning)}
	// One named and tagged (markup in a name stays text), one left to its default.
	rows[0].Name, rows[0].Named, rows[0].Tags = "π0.5 <i>LIBERO</i>.run-3", true, []string{"libero", "bf16"}
	tensors := goldenTensors()
	q, _ := url.ParseQuery("metric=abs&palette=magma&tab=overview")
	for _, c := range []struct {
		name string
		c    templ.Component
	}{
		{"home_empty", HomeView(BuildHome(nil, "", nil))},
		{"home_list", HomeView(BuildHome(rows, "", nil))},
		{"new", NewPage(true)},
		{"job_running", JobPage(goldenAnalysis(store.StatusRunning), NewJobView(goldenAnalysis(store.StatusRunning), started.Add(30*time.Second)))},
		{"job_failed", JobPage(goldenAnalysis(store.StatusFailed), NewJobView(goldenAnalysis(store.StatusFailed), finished))},
		{"overview", OverviewPage(BuildOverview(goldenOverviewInput(), ParseOverviewState(q)))},
		{"overview_units", OverviewPage(BuildOverview(goldenOverviewInput(), OverviewState{Tab: TabUnits, View: ParseOverviewState(nil).View}))},
		{"overview_unmatched", OverviewPage(BuildOverview(goldenOverviewInput(), OverviewState{Tab: TabUnmatched, View: ParseOverviewState(nil).View}))},
		{"tensor", TensorView(BuildTensor(goldenAnalysis(store.StatusDone), &tensors[0], q))},
		{"tensor_escaped", TensorView(BuildTensor(goldenAnalysis(store.StatusDone), &tensors[4], nil))},
		{"not_found", NotFoundPage("There is no such analysis or tensor.")},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := c.c.Render(context.Background(), &buf); err != nil {
				t.Fatal(err)
			}
			got := assetHash.ReplaceAll(buf.Bytes(), []byte(".HASH.$1"))
			path := filepath.Join("testdata", c.name+".golden.html")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./web -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the golden file; if the change is intended, run go test ./web -update\n got: %.2000s", path, got)
			}
		})
	}
}

// The tables behind the pages download as CSV with formulas defused and as
// JSON with numbers as numbers and NaN as null.
func TestTableDownloads(t *testing.T) {
	o := BuildOverview(goldenOverviewInput(), OverviewState{Tab: TabUnmatched, View: ParseOverviewState(nil).View})
	var vlaOnly, all Table
	for _, tb := range o.Tables() {
		switch tb.ID {
		case "vla_only":
			vlaOnly = tb
		case "tensors":
			all = tb
		}
	}
	var buf bytes.Buffer
	if err := vlaOnly.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	if want := "name\naction_out_proj.weight\n'=cmd|' /C calc'!A0\n"; buf.String() != want {
		t.Errorf("csv:\n%s\nwant:\n%s", buf.String(), want)
	}
	buf.Reset()
	if err := all.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"rel_delta": null`, `"rel_delta": 0.3`, `"layer": -1`, `"vla": "\u003cscript\u003ealert(1)\u003c/script\u003e"`} {
		if !bytes.Contains(buf.Bytes(), []byte(want)) {
			t.Errorf("json lacks %s:\n%s", want, buf.String())
		}
	}
	if got := vlaOnly.DownloadURL("csv"); got != "/analyses/a1b2c3d4e5f6?clip=98&format=csv&metric=rel&palette=viridis&scale=linear&tab=unmatched&table=vla_only" {
		t.Errorf("download URL %s", got)
	}
}

func TestTensorURLRoundTrip(t *testing.T) {
	for _, name := range []string{"model.layers.0.mlp.up_proj.weight", "a/b c?d#e%f", `<script>"x"</script>`} {
		u, err := url.Parse(TensorURL("id", name, nil))
		if err != nil {
			t.Fatal(err)
		}
		const prefix = "/analyses/id/tensors/"
		got, err := url.PathUnescape(u.EscapedPath()[len(prefix):])
		if err != nil || got != name {
			t.Errorf("%q came back as %q (%v)", name, got, err)
		}
	}
}
