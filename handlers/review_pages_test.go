package handlers

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis/synth"
	"github.com/deltascope/deltascope/web"
)

// send makes a request to a test server and returns the status and body.
func send(tb testing.TB, method, target, contentType, body string) (int, string) {
	tb.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// saveRecipe saves a preset as a recipe of analysis id and returns its id.
func (s *pageServer) saveRecipe(tb testing.TB, id, name, preset string) int64 {
	tb.Helper()
	code, body := send(tb, "POST", s.URL+"/api/analyses/"+id+"/recipes", "application/json",
		`{"name": `+strconv.Quote(name)+`, "recipe": {"preset": `+strconv.Quote(preset)+`}}`)
	var rec struct{ ID int64 }
	if err := json.Unmarshal([]byte(body), &rec); code != http.StatusCreated || err != nil {
		tb.Fatalf("save recipe: %d %s", code, body)
	}
	return rec.ID
}

// analyzeSynth generates a small π0.5-shaped pair under the server's root
// and analyses it: a second analysis of the fixture's architecture.
func (s *pageServer) analyzeSynth(tb testing.TB) string {
	tb.Helper()
	out := filepath.Join(s.root, "synth")
	pair, err := synth.Generate(context.Background(), synth.Options{Preset: "pi05", Scale: 0.02, Out: out, Seed: 7})
	if err != nil {
		tb.Fatal(err)
	}
	specs := func(ss []string) string {
		q := make([]string, len(ss))
		for i, p := range ss {
			prefix, path, ok := strings.Cut(p, "=")
			if !ok {
				prefix, path = "", p
			} else {
				prefix += "="
			}
			q[i] = strconv.Quote(prefix + filepath.Join("synth", path))
		}
		return "[" + strings.Join(q, ",") + "]"
	}
	code, body := send(tb, "POST", s.URL+"/api/analyses", "application/json", `{"base": `+specs(pair.Base)+`, "vla": `+specs(pair.VLA)+`}`)
	var created struct{ ID string }
	if err := json.Unmarshal([]byte(body), &created); code != http.StatusAccepted || err != nil {
		tb.Fatalf("analyse the synthetic pair: %d %s", code, body)
	}
	s.waitStatus(tb, created.ID, "done")
	return created.ID
}

var hiddenView = regexp.MustCompile(`name="view" value="([^"]*)"`)

func TestReviewPagesWithoutAuth(t *testing.T) {
	s := newPageServer(t, true)
	id := s.analyzeFixture(t)

	// The overview's thread is the analysis's, or the selected cell's.
	code, page := send(t, "GET", s.URL+"/analyses/"+id, "", "")
	if code != 200 || !strings.Contains(page, "Comments on this analysis") || !strings.Contains(page, `data-testid="review-links"`) {
		t.Fatalf("overview: %d, no analysis thread", code)
	}
	sel := "paligemma_with_expert.paligemma.model.language_model.layers.0.mlp.gate_proj.weight"
	viewPath := web.AnalysisViewURL(id, url.Values{"sel": {sel}, "metric": {"cos"}})
	code, page = send(t, "GET", s.URL+viewPath, "", "")
	m := hiddenView.FindStringSubmatch(page)
	if code != 200 || !strings.Contains(page, "Comments on the cell llm · layer 0 · ffn_gate") || m == nil {
		t.Fatalf("overview with a selection: %d, no cell thread", code)
	}
	view := strings.ReplaceAll(m[1], "&amp;", "&")
	if view != viewPath {
		t.Errorf("the thread records the view %q, want the page's own URL %q", view, viewPath)
	}
	body, _ := json.Marshal(map[string]string{"target": "cell", "key": "llm/0/ffn_gate", "body": "gate of layer 0 <b>moved</b>", "view": view})
	if code, resp := send(t, "POST", s.URL+"/api/analyses/"+id+"/comments", "application/json", string(body)); code != 201 {
		t.Fatalf("comment: %d %s", code, resp)
	}
	_, page = send(t, "GET", s.URL+viewPath, "", "")
	if !strings.Contains(page, "gate of layer 0 &lt;b&gt;moved&lt;/b&gt;") || !strings.Contains(page, `data-testid="comment-view"`) {
		t.Fatalf("the cell's thread does not show the comment, escaped, with its view link")
	}
	if !strings.Contains(page, `data-api="PATCH /api/comments/1"`) {
		t.Errorf("without accounts the local user may edit their comments")
	}

	// The tensor page has the tensor's thread.
	if _, page = send(t, "GET", s.URL+web.TensorURL(id, sel, nil), "", ""); !strings.Contains(page, "Comments on this tensor") {
		t.Errorf("tensor page without its thread")
	}

	// A recipe's review page, its decisions and results.
	rid := s.saveRecipe(t, id, "pi05 light", "pi05-light")
	recipePage := s.URL + web.RecipeURL(id, rid)
	_, page = send(t, "GET", recipePage, "", "")
	for _, want := range []string{`data-testid="review-in_review"`, "Comments on this recipe", `data-testid="eval-form"`, "→", "/analyses/" + id + "/compose?recipe="} {
		if !strings.Contains(page, want) {
			t.Errorf("recipe page lacks %q", want)
		}
	}
	if code, _ := send(t, "GET", s.URL+web.RecipeURL("nope", rid), "", ""); code != 404 {
		t.Errorf("a recipe under another analysis's URL: %d, want 404", code)
	}
	for _, st := range []string{"in_review", "approved"} {
		if code, resp := send(t, "POST", s.URL+web.ReviewAPIURL(rid), "application/json", `{"status":"`+st+`"}`); code != 200 {
			t.Fatalf("review %s: %d %s", st, code, resp)
		}
	}
	if _, page = send(t, "GET", recipePage, "", ""); !strings.Contains(page, `data-testid="review-history"`) || !strings.Contains(page, "in_review → approved") {
		t.Errorf("recipe page without its history")
	}

	// Evaluation results: the chart needs a point.
	if _, page = send(t, "GET", s.URL+web.EvalsURL(id), "", ""); !strings.Contains(page, `data-testid="no-chart"`) {
		t.Errorf("evals page draws a chart with no results")
	}
	csv := "recipe,benchmark,success_rate,episodes\nbaseline,LIBERO-Spatial,96.9,50\npi05 light,LIBERO-Spatial,93.3%,50\npi05 light,LIBERO-Goal,0.9,50\nbaseline,LIBERO-Goal,0.95,50\n"
	if code, resp := send(t, "POST", s.URL+"/api/analyses/"+id+"/evals.csv", "text/csv", csv); code != 201 {
		t.Fatalf("import: %d %s", code, resp)
	}
	_, page = send(t, "GET", s.URL+web.EvalsURL(id), "", "")
	spec := chartSpec(t, page, "chart-evals-data")
	series := spec["option"].(map[string]any)["series"].([]any)
	if len(series) != 3 { // two benchmarks and their average
		t.Fatalf("chart series %v", series)
	}
	first := series[0].(map[string]any)["data"].([]any)
	if len(first) != 2 {
		t.Fatalf("LIBERO-Goal points %v, want the recipe and the unpruned model", first)
	}
	// Ordered by parameters: the pruned recipe, then the unpruned model.
	pruned, unpruned := first[0].(map[string]any)["value"].([]any), first[1].(map[string]any)["value"].([]any)
	if pruned[2] != "pi05 light" || unpruned[2] != "unpruned" || !(pruned[0].(float64) < unpruned[0].(float64)) || unpruned[1].(float64) != 0.95 {
		t.Errorf("points %v, %v", pruned, unpruned)
	}

	// The activity feed has all three kinds.
	_, page = send(t, "GET", s.URL+web.ActivityURL(id), "", "")
	for _, kind := range []string{`data-kind="comment"`, `data-kind="review"`, `data-kind="eval"`} {
		if !strings.Contains(page, kind) {
			t.Errorf("activity page lacks %s", kind)
		}
	}
}

// chartSpec reads the JSON a page embeds for a chart.
func chartSpec(tb testing.TB, page, id string) map[string]any {
	tb.Helper()
	start := strings.Index(page, `<script id="`+id+`" type="application/json">`)
	if start < 0 {
		tb.Fatalf("no chart data %s on the page", id)
	}
	rest := page[start:]
	rest = rest[strings.Index(rest, ">")+1:]
	var spec map[string]any
	if err := json.Unmarshal([]byte(rest[:strings.Index(rest, "</script>")]), &spec); err != nil {
		tb.Fatal(err)
	}
	return spec
}

func TestComparePage(t *testing.T) {
	s := newPageServer(t, true)
	a := s.analyzeFixture(t)
	b := s.analyzeSynth(t)

	_, page := send(t, "GET", s.URL+"/", "", "")
	if !strings.Contains(page, `data-testid="compare-picker"`) {
		t.Errorf("home page without the compare picker")
	}
	if code, page := send(t, "GET", s.URL+"/compare", "", ""); code != 200 || !strings.Contains(page, "Pick two done analyses") {
		t.Errorf("compare without a pair: %d", code)
	}
	if _, page := send(t, "GET", s.URL+web.AnalysesCompareURL(a, "nope"), "", ""); !strings.Contains(page, "There is no analysis nope") {
		t.Errorf("compare with an unknown analysis should say so")
	}

	code, page := send(t, "GET", s.URL+web.AnalysesCompareURL(a, b)+"&k=20", "", "")
	if code != 200 {
		t.Fatalf("compare: %d", code)
	}
	sa, sb := chartSpec(t, page, "cmp-a-llm-data"), chartSpec(t, page, "cmp-b-llm-data")
	diff := chartSpec(t, page, "cmp-diff-llm-data")
	vm := func(spec map[string]any) [2]any {
		v := spec["option"].(map[string]any)["visualMap"].([]any)[0].(map[string]any)
		return [2]any{v["min"], v["max"]}
	}
	if vm(sa) != vm(sb) {
		t.Errorf("the two heatmaps have different colour ranges: %v vs %v", vm(sa), vm(sb))
	}
	if r := vm(diff); r[0].(float64) != -r[1].(float64) {
		t.Errorf("the difference's range %v is not symmetric", r)
	}
	cells := func(spec map[string]any) int {
		return len(spec["option"].(map[string]any)["series"].([]any)[0].(map[string]any)["data"].([]any))
	}
	if cells(sa) == 0 || cells(sb) == 0 || cells(diff) == 0 {
		t.Fatalf("empty heatmaps: a %d, b %d, diff %d cells", cells(sa), cells(sb), cells(diff))
	}
	if !strings.Contains(page, `data-testid="table-modules"`) || !strings.Contains(page, "ffn_channel") {
		t.Fatalf("no Spearman table")
	}
	// The same analysis against itself: ρ = 1 and full overlap everywhere.
	_, page = send(t, "GET", s.URL+"/compare?a="+a+"&b="+a+"&format=csv&table=modules", "", "")
	lines := strings.Split(strings.TrimSpace(page), "\n")
	if len(lines) < 2 || lines[0] != "component,kind,layers,units,spearman,k,top_k_common,top_k_jaccard,only_a,only_b" {
		t.Fatalf("modules CSV:\n%s", page)
	}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if f[4] != "1" || f[7] != "1" || f[5] != f[6] {
			t.Errorf("self-comparison row %q: want ρ 1 and every top-k unit in common", l)
		}
	}
}
