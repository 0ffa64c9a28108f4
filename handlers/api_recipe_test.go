package handlers

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/deltascope/deltascope/analysis/prune"
	"github.com/deltascope/deltascope/store"
)

const customRecipe = `{"name": "custom", "rules": [
	{"module": "llm.ffn_channel", "ratio": 0.25, "direction": "highest"},
	{"module": "llm.attn_head", "ratio": 0.25, "direction": "lowest", "scope": "global"},
	{"module": "vision.siglip.ffn_channel", "ratio": 0.3, "direction": "random", "seed": 7}]}`

func TestRecipeAPIScenarios(t *testing.T) {
	s := newRecipeServer(t)
	other := analyzeInto(t, s.db, s.root, []string{"pi05/base"}, []string{"pi05/vla/model.safetensors"})
	queued, err := s.db.CreateAnalysis(context.Background(), store.AnalysisRequest{Base: []string{"pi05/base"}, VLA: []string{"pi05/vla"}})
	if err != nil {
		t.Fatal(err)
	}
	var saved store.Recipe
	if code, _, body := s.call(t, "POST", "/api/analyses/"+other+"/recipes", `{"name": "elsewhere", "recipe": {"preset": "pi05-light"}}`, &saved); code != 201 {
		t.Fatalf("save: %d %s", code, body)
	}
	resolve := "/api/analyses/" + s.id + "/resolve"
	runScenarios(t, s.URL, []scenario{
		{"presets", "GET", "/api/presets", "", 200, `"openvla-aggressive"`},
		{"resolve preset", "POST", resolve, `{"preset": "pi05-light"}`, 200, `"units_pruned"`},
		{"resolve custom", "POST", resolve, customRecipe, 200, `"by_layer"`},
		{"resolve without units", "POST", resolve + "?units=0", customRecipe, 200, `"rules"`},
		{"not JSON", "POST", resolve, `{"rules": [`, 400, "not a JSON object"},
		{"empty body", "POST", resolve, ``, 400, "empty"},
		{"misspelt field", "POST", resolve, `{"rules": [{"module": "llm.ffn_channel", "ratoi": 0.2, "direction": "highest"}]}`, 400, "ratoi"},
		{"ratio out of range", "POST", resolve, `{"rules": [{"module": "llm.ffn_channel", "ratio": 1.5, "direction": "highest"}]}`, 400, "ratio"},
		{"unknown module", "POST", resolve, `{"rules": [{"module": "llm.nothing", "ratio": 0.2, "direction": "highest"}]}`, 400, "llm.nothing"},
		{"unknown preset", "POST", resolve, `{"preset": "nope"}`, 400, "unknown preset"},
		// As the authors' code does: a layer may lose every unit, with a warning.
		{"empties a layer", "POST", resolve, `{"rules": [{"module": "llm.attn_head", "ratio": 0.9, "direction": "highest"}]}`, 200, "emptied"},
		{"unknown analysis", "POST", "/api/analyses/nope/resolve", customRecipe, 404, "not found"},
		{"analysis not done", "POST", "/api/analyses/" + queued.ID + "/resolve", customRecipe, 409, "no result yet"},
		{"list of unknown analysis", "GET", "/api/analyses/nope/recipes", "", 404, "not found"},
		{"save without name", "POST", "/api/analyses/" + s.id + "/recipes", `{"recipe": {"preset": "pi05-light"}}`, 400, "name"},
		{"save invalid recipe", "POST", "/api/analyses/" + s.id + "/recipes", `{"name": "x", "recipe": {"rules": 3}}`, 400, "recipe"},
		{"save unknown field", "POST", "/api/analyses/" + s.id + "/recipes", `{"name": "x", "rules": []}`, 400, "unknown field"},
		{"recipe of another analysis", "GET", fmt.Sprintf("/api/analyses/%s/recipes/%d", s.id, saved.ID), "", 404, "not found"},
		{"recipe id not a number", "GET", "/api/analyses/" + s.id + "/recipes/x", "", 404, "no such recipe"},
		{"export unknown kind", "GET", fmt.Sprintf("/api/analyses/%s/recipes/%d/export?kind=zip", other, saved.ID), "", 400, "masked"},
		{"export of unknown analysis", "POST", "/api/analyses/nope/export?kind=recipe", customRecipe, 404, "not found"},
		{"export of invalid recipe", "POST", "/api/analyses/" + s.id + "/export?kind=indices", `{"rules": 1}`, 400, "recipe"},
		{"compare without ids", "GET", "/api/recipes/compare?a=1", "", 400, "two saved recipe ids"},
		{"compare unknown", "GET", fmt.Sprintf("/api/recipes/compare?a=%d&b=999", saved.ID), "", 404, "not found"},
	})
}

// TestResolveMatchesPrune checks the API against prune.Resolve run directly on
// the fixture pair (no store, no server).
func TestResolveMatchesPrune(t *testing.T) {
	s := newRecipeServer(t)
	res, named := directFixture(t)
	for _, body := range []string{customRecipe, `{"preset": "pi05-light"}`, `{"preset": "pi05-aggressive"}`} {
		t.Run(body[:min(len(body), 30)], func(t *testing.T) {
			var got resolveResponse
			if code, _, data := s.call(t, "POST", "/api/analyses/"+s.id+"/resolve", body, &got); code != 200 {
				t.Fatalf("%d %s", code, data)
			}
			rc, err := parseRecipe([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			plain, err := prune.Resolve(res, rc)
			if err != nil {
				t.Fatal(err)
			}
			if got.Params.Before != plain.Params.Before || got.Params.After != plain.Params.After {
				t.Errorf("params %d → %d, prune.Resolve says %d → %d", got.Params.Before, got.Params.After, plain.Params.Before, plain.Params.After)
			}
			if want := float64(plain.Params.Before-plain.Params.After) / float64(plain.Params.Before); got.Params.Fraction != want || want == 0 {
				t.Errorf("fraction %v, want %v (> 0)", got.Params.Fraction, want)
			}
			// Per component: the server knows the VLA's tensor list, as ResolveWith does.
			with, err := prune.ResolveWith(res, rc, prune.Options{VLATensors: named})
			if err != nil {
				t.Fatal(err)
			}
			for comp, c := range with.Params.ByComponent {
				if g := got.ByComponent[comp]; g.Before != c.Before || g.After != c.After {
					t.Errorf("component %s: %+v, want %+v", comp, g, c)
				}
			}
			if len(got.ByComponent) != len(with.Params.ByComponent) {
				t.Errorf("%d components, want %d", len(got.ByComponent), len(with.Params.ByComponent))
			}
			if !reflect.DeepEqual(got.Rules, plain.Rules) {
				t.Errorf("rules differ:\n got %+v\nwant %+v", got.Rules, plain.Rules)
			}
			// The pruned units agree with the per-layer counts of the rules.
			for _, rule := range plain.Rules {
				comp, kind := rule.Module[:strings.LastIndex(rule.Module, ".")], rule.Module[strings.LastIndex(rule.Module, ".")+1:]
				for _, l := range rule.Layers {
					if n := len(got.UnitsPruned[comp][kind][l.Layer]); n != l.Pruned {
						t.Errorf("%s layer %d: %d units listed, rule says %d pruned", rule.Module, l.Layer, n, l.Pruned)
					}
				}
			}
		})
	}
}

func TestRecipeCRUDAndCompare(t *testing.T) {
	s := newRecipeServer(t)
	base := "/api/analyses/" + s.id + "/recipes"
	var a, b, dup store.Recipe
	if code, h, body := s.call(t, "POST", base, `{"name": "light", "note": "from the paper", "recipe": {"preset": "pi05-light"}}`, &a); code != 201 || h.Get("Location") == "" {
		t.Fatalf("create: %d %s", code, body)
	}
	var stored prune.Recipe
	if err := json.Unmarshal(a.Recipe, &stored); err != nil || len(stored.Rules) != 4 || stored.Name != "light" {
		t.Fatalf("stored recipe %s (%v): want the preset's 4 rules under the saved name", a.Recipe, err)
	}
	if code, _, body := s.call(t, "POST", base, `{"name": "custom", "recipe": `+customRecipe+`}`, &b); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	if code, _, body := s.call(t, "POST", fmt.Sprintf("%s/%d/duplicate", base, a.ID), ``, &dup); code != 201 || dup.Name != "light (copy)" {
		t.Fatalf("duplicate: %d %s", code, body)
	}
	var edited store.Recipe
	if code, _, body := s.call(t, "PATCH", fmt.Sprintf("%s/%d", base, dup.ID), `{"note": "tweaked", "recipe": {"preset": "pi05-aggressive"}}`, &edited); code != 200 ||
		edited.Note != "tweaked" || edited.Name != "light (copy)" || !bytes.Contains(edited.Recipe, []byte(`"ratio":0.5`)) {
		t.Fatalf("update: %d %s", code, body)
	}
	var list struct{ Recipes []store.Recipe }
	if s.call(t, "GET", base, "", &list); len(list.Recipes) != 3 || list.Recipes[0].ID != dup.ID {
		t.Fatalf("list: %+v", list)
	}

	var same, diff compareResponse
	if code, _, body := s.call(t, "GET", fmt.Sprintf("/api/recipes/compare?a=%d&b=%d", a.ID, a.ID), "", &same); code != 200 {
		t.Fatalf("compare: %d %s", code, body)
	}
	if same.Delta != 0 || len(same.Modules) == 0 {
		t.Errorf("a recipe against itself: %+v", same)
	}
	for m, o := range same.Modules {
		if o.Jaccard != 1 || o.Both != o.PrunedA {
			t.Errorf("%s against itself: %+v", m, o)
		}
	}
	s.call(t, "GET", fmt.Sprintf("/api/recipes/compare?a=%d&b=%d", a.ID, dup.ID), "", &diff)
	if diff.Delta >= 0 || diff.B.Params.After >= diff.A.Params.After {
		t.Errorf("aggressive vs light: delta %d, want < 0", diff.Delta)
	}
	ffn := diff.Modules["llm.ffn_channel"]
	if ffn.PrunedB <= ffn.PrunedA || ffn.Both != ffn.PrunedA || ffn.Jaccard != float64(ffn.PrunedA)/float64(ffn.PrunedB) {
		t.Errorf("llm ffn overlap %+v: the light selection should lie inside the aggressive one (same ranking)", ffn)
	}
	if d := diff.ByComponent["llm"]; d.Delta != d.AfterB-d.AfterA || d.Delta >= 0 {
		t.Errorf("llm delta %+v", d)
	}

	if code, _, _ := s.call(t, "DELETE", fmt.Sprintf("%s/%d", base, b.ID), "", nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if code, _, _ := s.call(t, "GET", fmt.Sprintf("%s/%d", base, b.ID), "", nil); code != 404 {
		t.Fatalf("get after delete: %d", code)
	}
}

// download fetches an export and checks its headers.
func download(t *testing.T, s *recipeServer, req *http.Request, wantName string) ([]byte, http.Header) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: %v", req.URL, err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %.300s", req.URL, resp.StatusCode, data)
	}
	if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename=`+wantName {
		t.Errorf("Content-Disposition %q, want filename %s", cd, wantName)
	}
	return data, resp.Header
}

func TestRecipeExports(t *testing.T) {
	s := newRecipeServer(t)
	var saved store.Recipe
	if code, _, body := s.call(t, "POST", "/api/analyses/"+s.id+"/recipes", `{"name": "my light", "recipe": {"preset": "pi05-light"}}`, &saved); code != 201 {
		t.Fatalf("save: %d %s", code, body)
	}
	var resolved resolveResponse
	s.call(t, "POST", "/api/analyses/"+s.id+"/resolve", `{"preset": "pi05-light"}`, &resolved)
	a, _ := s.db.Get(context.Background(), s.id)
	get := func(kind string) *http.Request {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/analyses/%s/recipes/%d/export?kind=%s", s.URL, s.id, saved.ID, kind), nil)
		return req
	}

	t.Run("recipe", func(t *testing.T) {
		data, _ := download(t, s, get("recipe"), "my_light.recipe.json")
		rc, err := prune.ReadRecipe(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if rc.Name != "my light" || rc.Analysis != s.id || rc.VLAFingerprint != a.VLAFingerprint || rc.BaseFingerprint == "" || rc.EngineVersion == "" || len(rc.Rules) != 4 {
			t.Errorf("exported recipe %+v", rc)
		}
	})
	t.Run("indices", func(t *testing.T) {
		data, h := download(t, s, get("indices"), "my_light.indices.json")
		var idx struct {
			Params  prune.Params `json:"params"`
			Tensors map[string]struct {
				Shape []int64 `json:"shape"`
				Rows  []int32 `json:"rows"`
				Cols  []int32 `json:"cols"`
			} `json:"tensors"`
		}
		if err := json.Unmarshal(data, &idx); err != nil {
			t.Fatal(err)
		}
		if len(idx.Tensors) == 0 || idx.Params.After != resolved.Params.After || h.Get("X-Params-After") != strconv.FormatInt(resolved.Params.After, 10) {
			t.Errorf("%d tensors, params after %d (header %s), want %d", len(idx.Tensors), idx.Params.After, h.Get("X-Params-After"), resolved.Params.After)
		}
	})
	t.Run("masks", func(t *testing.T) {
		data, _ := download(t, s, get("masks"), "my_light.masks.safetensors")
		header := safetensorsHeader(t, data)
		rows := 0
		for name, v := range header {
			if name == "__metadata__" {
				continue
			}
			var info struct {
				DType string  `json:"dtype"`
				Shape []int64 `json:"shape"`
			}
			json.Unmarshal(v, &info)
			if info.DType != "U8" || len(info.Shape) != 1 || !(strings.HasSuffix(name, prune.RowsSuffix) || strings.HasSuffix(name, prune.ColsSuffix)) {
				t.Errorf("mask %s: %+v", name, info)
			}
			if strings.HasSuffix(name, prune.RowsSuffix) {
				rows++
			}
		}
		if rows == 0 || !bytes.Contains(header["__metadata__"], []byte("deltascope_recipe")) {
			t.Errorf("%d row masks; metadata %s", rows, header["__metadata__"])
		}
		snippet, h := download(t, s, get("masks-snippet"), "my_light.apply_masks.py")
		if !bytes.Contains(snippet, []byte("my_light.masks.safetensors")) || !strings.HasPrefix(h.Get("Content-Type"), "text/x-python") {
			t.Errorf("snippet does not name the masks file:\n%s", snippet)
		}
	})
	for _, kind := range []string{"masked", "sliced"} {
		t.Run(kind, func(t *testing.T) {
			data, h := download(t, s, get(kind), "my_light."+kind+".tar")
			if h.Get("Content-Length") != strconv.Itoa(len(data)) {
				t.Errorf("Content-Length %s, body %d bytes", h.Get("Content-Length"), len(data))
			}
			files := untar(t, data)
			names := slices.Sorted(maps.Keys(files))
			want := []string{"my_light." + kind + "/" + prune.RecipeFile, "my_light." + kind + "/model.safetensors"}
			if kind == "sliced" {
				want = append(want, "my_light.sliced/"+prune.WidthsFile)
				slices.Sort(want)
			}
			if !slices.Equal(names, want) {
				t.Fatalf("tar holds %v, want %v", names, want)
			}
			var params int64
			for name, v := range safetensorsHeader(t, files["my_light."+kind+"/model.safetensors"]) {
				if name == "__metadata__" {
					continue
				}
				var info struct{ Shape []int64 }
				json.Unmarshal(v, &info)
				n := int64(1)
				for _, d := range info.Shape {
					n *= d
				}
				params += n
			}
			want64 := resolved.Params.After
			if kind == "masked" {
				want64 = resolved.Params.Before // zeroed, not removed
			}
			if params != want64 {
				t.Errorf("%s checkpoint holds %d parameters, resolve says %d", kind, params, want64)
			}
		})
	}
	t.Run("inline", func(t *testing.T) {
		req, _ := http.NewRequest("POST", s.URL+"/api/analyses/"+s.id+"/export?kind=indices", strings.NewReader(customRecipe))
		req.Header.Set("Content-Type", "application/json")
		data, _ := download(t, s, req, "custom.indices.json")
		if !json.Valid(data) {
			t.Error("inline indices are not JSON")
		}
		form := url.Values{"recipe": {`{"preset": "pi05-moderate"}`}}
		req, _ = http.NewRequest("POST", s.URL+"/api/analyses/"+s.id+"/export?kind=recipe", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		data, _ = download(t, s, req, "pi05-moderate.recipe.json")
		if rc, err := prune.ReadRecipe(bytes.NewReader(data)); err != nil || rc.Name != "pi05-moderate" {
			t.Errorf("form export: %v %+v", err, rc)
		}
	})
	if entries, _ := readDirNames(s.srv); len(entries) != 0 {
		t.Errorf("temporary export folders left behind: %v", entries)
	}
}

func safetensorsHeader(t *testing.T, data []byte) map[string]json.RawMessage {
	t.Helper()
	if len(data) < 8 {
		t.Fatalf("safetensors file of %d bytes", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n > uint64(len(data)-8) {
		t.Fatalf("header length %d beyond the file (%d bytes)", n, len(data))
	}
	var h map[string]json.RawMessage
	if err := json.Unmarshal(data[8:8+n], &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func untar(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[path.Clean(h.Name)] = b
	}
}

// TestExportAbortsMidway: a download that fails after its first byte must not
// look complete to the client.
func TestExportAbortsMidway(t *testing.T) {
	s := newRecipeServer(t)
	h := s.srv.recoverPanics(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.srv.streamFile(w, r, "x.json", "application/json", func(w io.Writer) error {
			w.Write(bytes.Repeat([]byte("x"), 100))
			w.(*lazyDownload).w.(http.Flusher).Flush()
			return errors.New("disk on fire")
		})
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("the client read a failed download to a clean end")
	}

	// Before the first byte, the same failure is a JSON error.
	rec := httptest.NewRecorder()
	s.srv.streamFile(rec, httptest.NewRequest("GET", "/", nil), "x.json", "application/json", func(io.Writer) error { return store.ErrInvalid })
	if rec.Code != 400 || rec.Header().Get("Content-Disposition") != "" {
		t.Errorf("%d %v", rec.Code, rec.Header())
	}
}

func TestResultCache(t *testing.T) {
	var loads atomic.Int32
	release := make(chan struct{})
	c := newResultCache(2, func(ctx context.Context, id string) (*resolveBase, error) {
		loads.Add(1)
		if id == "slow" {
			<-release
		}
		if id == "bad" {
			return nil, store.ErrConflict
		}
		return &resolveBase{analysis: &store.Analysis{ID: id}}, nil
	})
	ctx := context.Background()

	// Concurrent requests for one id share one load.
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if b, err := c.get(ctx, "slow"); err != nil || b.analysis.ID != "slow" {
				t.Errorf("got %v, %v", b, err)
			}
		})
	}
	for loads.Load() == 0 {
		runtime.Gosched() // wait for the first loader
	}
	close(release)
	wg.Wait()
	if n := loads.Load(); n != 1 {
		t.Fatalf("%d loads for one id", n)
	}

	c.get(ctx, "a") // slow, a
	c.get(ctx, "b") // a, b: slow evicted
	c.get(ctx, "a") // hit; b, a
	c.get(ctx, "c") // a, c: b evicted
	if n := loads.Load(); n != 4 {
		t.Fatalf("%d loads, want 4", n)
	}
	c.get(ctx, "a")
	c.get(ctx, "slow")
	if n := loads.Load(); n != 5 {
		t.Fatalf("%d loads after a hit and a reload, want 5", n)
	}
	if _, err := c.get(ctx, "bad"); !errors.Is(err, store.ErrConflict) {
		t.Fatal(err)
	}
	c.get(ctx, "bad")
	if n := loads.Load(); n != 7 || c.len() != 2 {
		t.Fatalf("a failed load must not be cached: %d loads, %d entries", n, c.len())
	}
}

// TestVLAFilesGone: the composer keeps working from the stored result when
// the VLA's files are gone, says so, and refuses only the exports that need
// the files, before sending a byte.
func TestVLAFilesGone(t *testing.T) {
	s := newRecipeServer(t)
	if err := os.Remove(filepath.Join(s.root, "pi05/vla/model.safetensors")); err != nil {
		t.Fatal(err)
	}
	var got resolveResponse
	if code, _, body := s.call(t, "POST", "/api/analyses/"+s.id+"/resolve", `{"preset": "pi05-light"}`, &got); code != 200 {
		t.Fatalf("resolve: %d %s", code, body)
	}
	if !slices.ContainsFunc(got.Warnings, func(w string) bool { return strings.Contains(w, "cannot be opened") }) {
		t.Errorf("no warning about the missing VLA files: %q", got.Warnings)
	}
	for kind, status := range map[string]int{"recipe": 200, "indices": 200, "masks": 400, "masked": 400, "sliced": 400} {
		code, h, body := s.call(t, "POST", "/api/analyses/"+s.id+"/export?kind="+kind, `{"preset": "pi05-light"}`, nil)
		if code != status || (status != 200 && (h.Get("Content-Type") != "application/json" || !bytes.Contains(body, []byte("model.safetensors")))) {
			t.Errorf("%s: %d %s %.200s", kind, code, h.Get("Content-Type"), body)
		}
	}
}
