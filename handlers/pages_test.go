package handlers

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
	"github.com/deltascope/deltascope/assets"
	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web"
)

const evilName = `<script>alert("x")</script>.weight`

// evilResult is a tiny result whose tensor names carry HTML.
func evilResult() *analysis.Result {
	t := func(name, kind string, layer int) analysis.TensorStats {
		return analysis.TensorStats{Base: name, VLA: name, Component: "llm", Layer: layer, Kind: kind, Rule: "exact",
			DTypeBase: "F32", DTypeVLA: "F32", ShapeBase: []int64{4, 2}, ShapeVLA: []int64{4, 2}, Numeric: true,
			FroBase: 2, FroVLA: 2.1, FroDelta: 0.2, RelDelta: 0.1, Cosine: 0.99, MaxAbsDelta: 0.1, MeanAbsDelta: 0.05,
			ChangedFraction: 1, Compared: 8, RowDelta: []float32{0.1, 0.2, 0.05, 0.1}, RowBase: []float32{1, 1, 1, 1},
			ColDelta: []float32{0.1, 0.2}, ColBase: []float32{1, 1}}
	}
	return &analysis.Result{
		Tensors:        []analysis.TensorStats{t("model.layers.0.self_attn.q_proj.weight", "attn_q", 0), t(evilName, "ffn_up", 0)},
		BaseOnly:       []string{"<img src=x onerror=alert(1)>"},
		VLAOnly:        []string{},
		Mismatched:     []analysis.Mismatch{},
		Ambiguous:      []analysis.Ambiguity{},
		Geometry:       map[string]arch.Geometry{},
		Warnings:       []string{},
		GlobalRelDelta: analysis.Num(math.NaN()),
	}
}

func TestPageScenarios(t *testing.T) {
	s := newPageServer(t, true)
	done := s.analyzeFixture(t)
	evil := s.storeResult(t, evilResult())
	// A job whose files vanished fails when the runner claims it.
	failed, err := s.db.CreateAnalysis(context.Background(), store.AnalysisRequest{Base: []string{"/nowhere/base"}, VLA: []string{"/nowhere/vla"}})
	if err != nil {
		t.Fatal(err)
	}
	s.waitStatus(t, failed.ID, store.StatusFailed)
	gate := "paligemma_with_expert.paligemma.model.language_model.layers.0.mlp.gate_proj.weight"
	appJS := assets.URL(assets.CommonJS)

	for _, c := range []struct {
		name, method, path string
		status             int
		ctype              string
		expect, reject     []string
	}{
		{"home", "GET", "/", 200, "text/html; charset=utf-8", []string{"Analyses", done, appJS, `href="/new"`, `class="skip"`}, []string{"echarts"}},
		{"home csv", "GET", "/?format=csv&table=analyses", 200, "text/csv; charset=utf-8", []string{"id,name,tags,status,base,vla", done + ",vla vs base,,done"}, nil},
		{"home checkpoints", "GET", "/", 200, "text/html; charset=utf-8", []string{"Checkpoints", "vla/model.safetensors", "pi05/base"}, nil},
		{"checkpoints csv", "GET", "/?format=csv&table=checkpoints", 200, "text/csv; charset=utf-8", []string{"fingerprint,sources,params,bytes,locations,analyses,first_seen\n"}, nil},
		{"home unknown table", "GET", "/?format=csv&table=nope", 404, "application/json", []string{"analyses"}, nil},
		{"new", "GET", "/new", 200, "text/html; charset=utf-8", []string{"data-new", `data-testid="files-base"`, `data-testid="files-vla"`, "Preview alignment"}, []string{"echarts"}},
		{"unknown analysis", "GET", "/analyses/nope", 404, "text/html; charset=utf-8", []string{"Not found"}, nil},
		{"overview", "GET", "/analyses/" + done, 200, "text/html; charset=utf-8",
			[]string{`id="heatmap-llm"`, `id="heatmap-llm-data"`, "Global relative ΔW", `data-testid="tab-units"`, "echarts-5.6.0.min.", "Most changed modules"}, nil},
		{"overview permalink state", "GET", "/analyses/" + done + "?metric=cos&scale=log&palette=cividis&clip=90&component=llm", 200, "text/html; charset=utf-8",
			[]string{`<option value="cos" selected>`, `<option value="log" selected>`, `<option value="cividis" selected>`, `value="90"`, "#fee838"}, []string{`id="heatmap-vision-siglip"`}},
		{"heatmap cells as a table", "GET", "/analyses/" + done + "?component=llm&metric=abs", 200, "text/html; charset=utf-8",
			[]string{`<details class="cells">`, "llm heatmap cells, as a table", `href="/analyses/` + done + `/tensors/` + gate}, nil},
		{"heatmap cells csv", "GET", "/analyses/" + done + "?component=llm&format=csv&table=cells-llm", 200, "text/csv; charset=utf-8",
			[]string{"layer,kind,tensor,", "0,ffn_gate," + gate + ","}, nil},
		{"units tab", "GET", "/analyses/" + done + "?tab=units", 200, "text/html; charset=utf-8", []string{`id="units-llm-ffn-channel"`, `id="units-llm-attn-head"`}, nil},
		{"unmatched tab", "GET", "/analyses/" + done + "?tab=unmatched", 200, "text/html; charset=utf-8", []string{"Only in the VLA", "gemma_expert"}, nil},
		{"tensors csv", "GET", "/analyses/" + done + "?format=csv&table=tensors", 200, "text/csv; charset=utf-8", []string{"vla,base,component,layer,kind", gate}, nil},
		{"most json", "GET", "/analyses/" + done + "?format=json&table=most", 200, "application/json", []string{`"table": "most"`, `"rel_delta"`}, nil},
		{"vla-only csv", "GET", "/analyses/" + done + "?tab=unmatched&format=csv&table=vla_only", 200, "text/csv; charset=utf-8", []string{"name\n", "gemma_expert"}, nil},
		{"tensor page", "GET", "/analyses/" + done + "/tensors/" + gate, 200, "text/html; charset=utf-8",
			[]string{`id="chart-channels"`, `id="chart-histogram"`, `id="chart-scatter"`, "Most changed rows", `data-testid="back"`}, nil},
		{"tensor by query", "GET", "/analyses/" + done + "/tensors?name=" + url.QueryEscape(gate), 200, "text/html; charset=utf-8", []string{`data-testid="tensor-name">` + gate}, nil},
		{"q heads", "GET", "/analyses/" + done + "/tensors/paligemma_with_expert.paligemma.model.language_model.layers.1.self_attn.q_proj.weight", 200, "text/html; charset=utf-8", []string{`id="chart-heads"`}, nil},
		{"channels csv", "GET", "/analyses/" + done + "/tensors/" + gate + "?format=csv&table=channels", 200, "text/csv; charset=utf-8", []string{"row,delta_norm,base_norm,rel_delta\n0,"}, nil},
		{"unknown tensor", "GET", "/analyses/" + done + "/tensors/nope", 404, "text/html; charset=utf-8", []string{"no tensor named nope"}, nil},
		{"no tensor named", "GET", "/analyses/" + done + "/tensors", 404, "text/html; charset=utf-8", nil, nil},
		{"escaped names overview", "GET", "/analyses/" + evil, 200, "text/html; charset=utf-8", []string{`\u003cscript\u003ealert`}, []string{`<script>alert`}},
		{"escaped names unmatched", "GET", "/analyses/" + evil + "?tab=unmatched", 200, "text/html; charset=utf-8", []string{"&lt;img src=x onerror=alert(1)&gt;"}, []string{"<img src=x"}},
		{"escaped tensor page", "GET", "/analyses/" + evil + "/tensors/" + url.PathEscape(evilName), 200, "text/html; charset=utf-8",
			[]string{"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;.weight"}, []string{`<script>alert`}},
		{"csv defuses formulas", "GET", "/analyses/" + evil + "?tab=unmatched&format=csv&table=base_only", 200, "text/csv; charset=utf-8", []string{"<img src=x onerror=alert(1)>"}, nil},
		{"failed job page", "GET", "/analyses/" + failed.ID, 200, "text/html; charset=utf-8",
			[]string{`data-job="` + failed.ID + `"`, "The analysis failed.", "/nowhere/base", `role="alert"`}, []string{"echarts", `data-testid="cancel"`}},
		{"job tables", "GET", "/analyses/" + failed.ID + "?format=csv&table=tensors", 409, "application/json", []string{"no tables yet"}, nil},
		{"asset", "GET", appJS, 200, "text/javascript; charset=utf-8", []string{"echarts.init"}, nil},
		{"asset without checksum", "GET", "/assets/app.js", 404, "text/plain; charset=utf-8", nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, s.URL+c.path, nil)
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %.300s", resp.StatusCode, c.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != c.ctype {
				t.Errorf("Content-Type %q, want %q", ct, c.ctype)
			}
			for _, want := range c.expect {
				if !strings.Contains(string(body), want) {
					t.Errorf("body lacks %q", want)
				}
			}
			for _, bad := range c.reject {
				if strings.Contains(string(body), bad) {
					t.Errorf("body contains %q", bad)
				}
			}
		})
	}

	t.Run("assets cache for a year", func(t *testing.T) {
		resp, err := http.Get(s.URL + appJS)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") || !strings.Contains(cc, "max-age=31536000") {
			t.Errorf("Cache-Control %q", cc)
		}
	})
	t.Run("pages carry no inline script", func(t *testing.T) {
		for _, p := range []string{"/", "/new", "/analyses/" + done, "/analyses/" + done + "/tensors/" + gate, "/analyses/" + failed.ID} {
			resp, err := http.Get(s.URL + p)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, m := range inlineScript.FindAllStringSubmatch(string(body), -1) {
				if !strings.Contains(m[1], `type="application/json"`) {
					t.Errorf("%s: inline script %.80q", p, m[0])
				}
			}
			if m := inlineHandler.FindString(string(body)); m != "" {
				t.Errorf("%s: inline handler %q", p, m)
			}
			if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
				t.Errorf("%s: CSP %q", p, resp.Header.Get("Content-Security-Policy"))
			}
		}
	})
}

// A queued analysis shows the job page with a cancel form that works without
// JavaScript; its tensor pages lead back to the job page.
func TestPageQueuedJob(t *testing.T) {
	s := newPageServer(t, false)
	queued, err := s.db.CreateAnalysis(context.Background(), store.AnalysisRequest{Base: []string{"/nowhere/base"}, VLA: []string{"/nowhere/vla"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, method, path string
		status             int
		location, expect   string
	}{
		{"job page", "GET", "/analyses/" + queued.ID, 200, "", `data-testid="cancel"`},
		{"tensor of a job", "GET", "/analyses/" + queued.ID + "/tensors/x", 303, web.AnalysisURL(queued.ID), ""},
		{"cancel unknown", "POST", web.CancelURL("nope"), 404, "", "Not found"},
		{"cancel", "POST", web.CancelURL(queued.ID), 303, web.AnalysisURL(queued.ID), ""},
		{"cancelled page", "GET", "/analyses/" + queued.ID, 200, "", "This analysis was cancelled before it read any tensor."},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, s.URL+c.path, nil)
			if c.method == "POST" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status || resp.Header.Get("Location") != c.location || !strings.Contains(string(body), c.expect) {
				t.Errorf("%d to %q: %.300s", resp.StatusCode, resp.Header.Get("Location"), body)
			}
		})
	}
}

// inlineScript finds <script> elements with code in them (JSON data scripts
// are fine) and on* handler attributes.
var (
	inlineScript  = regexp.MustCompile(`<script([^>]*)>([^<]+)</script>`)
	inlineHandler = regexp.MustCompile(`<[^>]+\son[a-z]+=`)
)

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
