package handlers

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/store"
)

// reviewFixture is the auth fixture (a user of each role) with an analysis and
// one saved recipe.
type reviewFixture struct {
	*authFixture
	analysis string
	recipe   int64
}

func newReviewFixture(t *testing.T) *reviewFixture {
	t.Helper()
	f := newAuthFixture(t, Config{Auth: AuthAccounts})
	ctx := context.Background()
	a, err := f.db.CreateAnalysis(ctx, store.AnalysisRequest{Base: []string{"/m/base"}, VLA: []string{"/m/vla"}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.db.CreateRecipe(ctx, a.ID, store.NewRecipe{Name: "light", Recipe: json.RawMessage(`{"rules":[]}`)})
	if err != nil {
		t.Fatal(err)
	}
	return &reviewFixture{authFixture: f, analysis: a.ID, recipe: r.ID}
}

// step is one request of a scenario; steps run in order and share state.
type step struct {
	name, method, target, body string
	who                        as
	status                     int
	contains                   []string // substrings the response body must hold
	lacks                      []string // and must not
}

func (f *reviewFixture) run(t *testing.T, steps []step) {
	t.Helper()
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			rec := f.do(st.method, st.target, st.body, st.who)
			if rec.Code != st.status {
				t.Fatalf("%s %s as %s: %d %s, want %d", st.method, st.target, roleName(st.who), rec.Code, rec.Body, st.status)
			}
			for _, s := range st.contains {
				if !strings.Contains(rec.Body.String(), s) {
					t.Errorf("body lacks %q: %s", s, rec.Body)
				}
			}
			for _, s := range st.lacks {
				if strings.Contains(rec.Body.String(), s) {
					t.Errorf("body holds %q: %s", s, rec.Body)
				}
			}
		})
	}
}

func TestCommentScenarios(t *testing.T) {
	f := newReviewFixture(t)
	comments := "/api/analyses/" + f.analysis + "/comments"
	cell := `"target":"cell","key":"llm/3/attn_q","view":"/analyses/` + f.analysis + `?sel=x.weight"`
	f.run(t, []step{
		{name: "anonymous cannot comment", method: "POST", target: comments, body: `{"body":"hi"}`, who: anonymous, status: 401},
		{name: "a viewer comments on a cell", method: "POST", target: comments, body: `{` + cell + `,"body":"**look** here"}`, who: store.RoleViewer, status: 201,
			contains: []string{`"author":"vi"`, `"html":"\u003cp\u003e\u003cstrong\u003elook\u003c/strong\u003e here\u003c/p\u003e"`, `"can_edit":true`}},
		{name: "a view must be a local path", method: "POST", target: comments, body: `{"body":"x","view":"https://evil.example/"}`, who: store.RoleViewer, status: 400, contains: []string{"local path"}},
		{name: "an empty comment", method: "POST", target: comments, body: `{"body":"  "}`, who: store.RoleViewer, status: 400},
		{name: "an unknown target", method: "POST", target: comments, body: `{"target":"planet","key":"x","body":"x"}`, who: store.RoleViewer, status: 400},
		{name: "a recipe of no one", method: "POST", target: comments, body: `{"target":"recipe","key":"777","body":"x"}`, who: store.RoleViewer, status: 404},
		{name: "an unknown analysis", method: "POST", target: "/api/analyses/nope/comments", body: `{"body":"x"}`, who: store.RoleViewer, status: 404},
		{name: "the cell's thread", method: "GET", target: comments + "?target=cell&key=llm/3/attn_q", who: store.RoleEditor, status: 200,
			contains: []string{`"body":"**look** here"`, `"can_edit":false`, `"can_delete":false`}},
		{name: "the admin may delete but not edit it", method: "GET", target: comments, who: store.RoleAdmin, status: 200,
			contains: []string{`"can_edit":false`, `"can_delete":true`}},
		{name: "an editor cannot edit someone else's comment", method: "PATCH", target: "/api/comments/1", body: `{"body":"mine now"}`, who: store.RoleEditor, status: 403, contains: []string{"only the author"}},
		{name: "nor can an admin", method: "PATCH", target: "/api/comments/1", body: `{"body":"mine now"}`, who: store.RoleAdmin, status: 403},
		{name: "an editor cannot delete it", method: "DELETE", target: "/api/comments/1", who: store.RoleEditor, status: 403},
		{name: "its author edits it", method: "PATCH", target: "/api/comments/1", body: `{"body":"*edited*"}`, who: store.RoleViewer, status: 200, contains: []string{`"edited_at"`, `\u003cem\u003eedited`}},
		{name: "an unknown comment", method: "PATCH", target: "/api/comments/99", body: `{"body":"x"}`, who: store.RoleViewer, status: 404},
		{name: "a malformed id", method: "DELETE", target: "/api/comments/abc", who: store.RoleViewer, status: 404},
		{name: "an editor comments on the analysis", method: "POST", target: comments, body: `{"body":"overall fine"}`, who: store.RoleEditor, status: 201},
		{name: "an admin deletes the viewer's comment", method: "DELETE", target: "/api/comments/1", who: store.RoleAdmin, status: 204},
		{name: "deleted is gone", method: "PATCH", target: "/api/comments/1", body: `{"body":"back"}`, who: store.RoleViewer, status: 404},
		{name: "the thread is empty", method: "GET", target: comments + "?target=cell&key=llm/3/attn_q", who: store.RoleViewer, status: 200, contains: []string{`"comments":[]`}},
		{name: "its author deletes their own", method: "DELETE", target: "/api/comments/2", who: store.RoleEditor, status: 204},
	})
}

// Comments are rendered by mdlite before they reach a page or the API: no
// input becomes markup.
func TestCommentMarkdownInjection(t *testing.T) {
	f := newReviewFixture(t)
	comments := "/api/analyses/" + f.analysis + "/comments"
	cases := []struct{ name, body, lacks string }{
		{"script tag", `<script>alert(1)</script>`, "<script"},
		{"image with a handler", `<img src=x onerror=alert(1)>`, "<img"},
		{"javascript link", `[click](javascript:alert(1))`, `href="javascript`},
		{"attribute break-out", `[x](https://a.example/"onmouseover="alert(1))`, `"onmouseover="`},
		{"link text with a tag", `[<b>x</b>](https://a.example)`, "<b>"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, _ := json.Marshal(map[string]string{"body": tc.body})
			rec := f.do("POST", comments, string(body), store.RoleViewer)
			if rec.Code != http.StatusCreated {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			var c struct{ Body, HTML string }
			if err := json.Unmarshal(rec.Body.Bytes(), &c); err != nil {
				t.Fatal(err)
			}
			if c.Body != tc.body || strings.Contains(c.HTML, tc.lacks) {
				t.Fatalf("body %q rendered %q (must not contain %q)", c.Body, c.HTML, tc.lacks)
			}
		})
	}
}

func TestCommentCrossOriginRefused(t *testing.T) {
	f := newReviewFixture(t)
	req := f.request("POST", "/api/analyses/"+f.analysis+"/comments", `{"body":"from elsewhere"}`, store.RoleViewer)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if rec := f.serve(req); rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "cross-origin") {
		t.Fatalf("cross-site comment: %d %s", rec.Code, rec.Body)
	}
}

func TestReviewScenarios(t *testing.T) {
	f := newReviewFixture(t)
	review := "/api/recipes/" + strconv.FormatInt(f.recipe, 10) + "/review"
	f.run(t, []step{
		{name: "a viewer reads the review", method: "GET", target: review, who: store.RoleViewer, status: 200, contains: []string{`"status":"draft"`, `"next":["in_review"]`}},
		{name: "a viewer may not change it", method: "POST", target: review, body: `{"status":"in_review"}`, who: store.RoleViewer, status: 403, contains: []string{"this needs the editor role"}},
		{name: "anonymous neither", method: "POST", target: review, body: `{"status":"in_review"}`, who: anonymous, status: 401},
		{name: "a draft cannot be approved unreviewed", method: "POST", target: review, body: `{"status":"approved"}`, who: store.RoleEditor, status: 409, contains: []string{"in_review"}},
		{name: "an unknown status", method: "POST", target: review, body: `{"status":"shipped"}`, who: store.RoleEditor, status: 400},
		{name: "an unknown field", method: "POST", target: review, body: `{"status":"in_review","by":"me"}`, who: store.RoleEditor, status: 400},
		{name: "an editor sends it for review", method: "POST", target: review, body: `{"status":"in_review","note":"please look"}`, who: store.RoleEditor, status: 200,
			contains: []string{`"status":"in_review"`, `"author":"ed"`, `"note":"please look"`}},
		{name: "an admin approves it", method: "POST", target: review, body: `{"status":"approved"}`, who: store.RoleAdmin, status: 200,
			contains: []string{`"status":"approved"`, `"next":["draft"]`, `"from":"in_review","to":"approved"`}},
		{name: "an unknown recipe", method: "POST", target: "/api/recipes/999/review", body: `{"status":"in_review"}`, who: store.RoleEditor, status: 404},
		{name: "the feed tells it", method: "GET", target: "/api/analyses/" + f.analysis + "/activity", who: store.RoleViewer, status: 200,
			contains: []string{`"kind":"review"`, `"recipe_name":"light"`, `"to":"approved"`}},
		{name: "a bad feed limit", method: "GET", target: "/api/analyses/" + f.analysis + "/activity?limit=0", who: store.RoleViewer, status: 400},
	})
}

func TestEvalScenarios(t *testing.T) {
	f := newReviewFixture(t)
	rid := strconv.FormatInt(f.recipe, 10)
	recipeEvals := "/api/recipes/" + rid + "/evals"
	evals := "/api/analyses/" + f.analysis + "/evals"
	goodCSV := "recipe,benchmark,success_rate,episodes,notes\n" +
		"light,LIBERO-Spatial,0.91,50,first run\n" +
		rid + ",LIBERO-Object,88%,50,\n" +
		"baseline,LIBERO-Spatial,96.9,50,\"the unpruned VLA, as published\"\n"
	badCSV := "benchmark,recipe,success_rate\n" +
		"LIBERO-Goal,light,0.5\n" +
		"LIBERO-Goal,heavy,0.5\n" + // no such recipe
		"LIBERO-Goal,light,1.5%x\n" + // not a number
		",light,0.5\n" + // no benchmark
		"LIBERO-Goal,light\n" // a field short
	f.run(t, []step{
		{name: "a viewer reads results", method: "GET", target: recipeEvals, who: store.RoleViewer, status: 200, contains: []string{`"results":[]`}},
		{name: "a viewer may not add one", method: "POST", target: recipeEvals, body: `{"benchmark":"LIBERO-Goal","success_rate":0.9}`, who: store.RoleViewer, status: 403},
		{name: "an editor adds one, as a percentage", method: "POST", target: recipeEvals, body: `{"benchmark":"LIBERO-Goal","success_rate":"93.3%","episodes":50}`, who: store.RoleEditor, status: 201,
			contains: []string{`"success_rate":0.933`, `"recipe_name":"light"`}},
		{name: "a rate above 100 %", method: "POST", target: recipeEvals, body: `{"benchmark":"LIBERO-Goal","success_rate":130}`, who: store.RoleEditor, status: 400, contains: []string{"success_rate"}},
		{name: "no rate", method: "POST", target: recipeEvals, body: `{"benchmark":"LIBERO-Goal"}`, who: store.RoleEditor, status: 400},
		{name: "negative episodes", method: "POST", target: recipeEvals, body: `{"benchmark":"b","success_rate":0.5,"episodes":-3}`, who: store.RoleEditor, status: 400, contains: []string{"episodes"}},
		{name: "the recipe endpoint names its recipe", method: "POST", target: recipeEvals, body: `{"recipe":"x","benchmark":"b","success_rate":0.5}`, who: store.RoleEditor, status: 400},
		{name: "the unpruned model's result", method: "POST", target: evals, body: `{"recipe":"baseline","benchmark":"LIBERO-Goal","success_rate":0.969,"episodes":50}`, who: store.RoleEditor, status: 201,
			contains: []string{`"recipe_id":null`}},
		{name: "a result by recipe name", method: "POST", target: evals, body: `{"recipe":"light","benchmark":"LIBERO-Long","success_rate":0.5}`, who: store.RoleEditor, status: 201},
		{name: "an unknown recipe name", method: "POST", target: evals, body: `{"recipe":"heavy","benchmark":"b","success_rate":0.5}`, who: store.RoleEditor, status: 400, contains: []string{"heavy"}},
		{name: "a viewer may not import", method: "POST", target: evals + ".csv", body: goodCSV, who: store.RoleViewer, status: 403},
		{name: "a bad file is refused whole, with line numbers", method: "POST", target: evals + ".csv", body: badCSV, who: store.RoleEditor, status: 400,
			contains: []string{"nothing imported", "4 problem(s)", "line 3: recipe \\\"heavy\\\"", "line 4: success_rate", "line 5: benchmark", "line 6: 2 fields"}},
		{name: "an unknown column", method: "POST", target: evals + ".csv", body: "recipe,benchmark,success_rate,seed\nlight,b,0.5,1\n", who: store.RoleEditor, status: 400, contains: []string{"line 1: unknown column", "seed"}},
		{name: "a missing column", method: "POST", target: evals + ".csv", body: "recipe,benchmark\nlight,b\n", who: store.RoleEditor, status: 400, contains: []string{`no \"success_rate\" column`}},
		{name: "an empty file", method: "POST", target: evals + ".csv", body: " ", who: store.RoleEditor, status: 400},
		{name: "nothing of the bad files stayed", method: "GET", target: evals, who: store.RoleViewer, status: 200, lacks: []string{"LIBERO-Object"}},
		{name: "a good file is imported", method: "POST", target: evals + ".csv", body: goodCSV, who: store.RoleEditor, status: 201,
			contains: []string{`"imported":3`, `"notes":"the unpruned VLA, as published"`, `"success_rate":0.88`}},
		{name: "the analysis lists them all", method: "GET", target: evals, who: store.RoleViewer, status: 200, contains: []string{"LIBERO-Object", "LIBERO-Long", `"success_rate":0.969`}},
		{name: "the recipe lists its own", method: "GET", target: recipeEvals, who: store.RoleViewer, status: 200, contains: []string{"LIBERO-Object"}, lacks: []string{"0.969"}},
	})
	var got struct{ Results []store.EvalResult }
	rec := f.do("GET", evals, "", store.RoleViewer)
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || len(got.Results) != 6 {
		t.Fatalf("want 6 results (3 by hand, 3 imported), got %d: %v", len(got.Results), err)
	}
}

func TestParseSuccessRate(t *testing.T) {
	for in, want := range map[string]float64{"0.933": 0.933, "93.3%": 0.933, "93.3": 0.933, " 1 ": 1, "0": 0, "100%": 1, "0.5 %": 0.005} {
		if got, err := parseSuccessRate(in); err != nil || got != want {
			t.Errorf("parseSuccessRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "abc", "-0.1", "101", "150%", "NaN", "Inf", "1e400"} {
		if got, err := parseSuccessRate(in); err == nil {
			t.Errorf("parseSuccessRate(%q) = %v, want an error", in, got)
		}
	}
}
