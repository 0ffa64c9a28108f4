package handlers

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/synth"
	"github.com/deltascope/deltascope/store"
)

type spectrumJSON struct {
	Status     string  `json:"status"`
	Progress   float64 `json:"progress"`
	Rank       int     `json:"rank"`
	Error      string  `json:"error"`
	AnalysisID string  `json:"analysis_id"`
	Result     *struct {
		Rank    int `json:"rank"`
		Tensors []struct {
			VLA            string    `json:"vla"`
			Component      string    `json:"component"`
			SingularValues []float64 `json:"singular_values"`
			Energy         []float64 `json:"energy"`
			Rank90         *int      `json:"rank90"`
		} `json:"tensors"`
	} `json:"result"`
}

func doJSON(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (s *pageServer) waitSpectrum(t *testing.T, id string, rank int, want string) spectrumJSON {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		code, b := doJSON(t, "GET", s.URL+"/api/analyses/"+id+"/spectrum?rank="+itoa(rank), "")
		var sp spectrumJSON
		if code != http.StatusOK || json.Unmarshal(b, &sp) != nil {
			t.Fatalf("GET spectrum: %d %s", code, b)
		}
		if sp.Status == want {
			return sp
		}
		if sp.Status == "done" || sp.Status == "failed" || sp.Status == "cancelled" {
			t.Fatalf("spectrum ended %s (%s), want %s", sp.Status, sp.Error, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("spectrum of %s did not become %s", id, want)
	return spectrumJSON{}
}

// TestAPISpectrum starts a spectral job on the analysed π0.5 fixture through
// the API, follows it to the end and reads the spectra back.
func TestAPISpectrum(t *testing.T) {
	s := newPageServer(t, true)
	id := s.analyzeFixture(t)
	base := s.URL + "/api/analyses/" + id + "/spectrum"

	if code, b := doJSON(t, "GET", base, ""); code != http.StatusNotFound || !strings.Contains(string(b), "POST") {
		t.Errorf("before any job: %d %s", code, b)
	}
	for _, tc := range []struct {
		name, method, url, body string
		code                    int
	}{
		{"rank too big", "POST", base, `{"rank": 100000}`, http.StatusBadRequest},
		{"rank not a number", "GET", base + "?rank=x", "", http.StatusBadRequest},
		{"unknown field", "POST", base, `{"rank": 4, "colour": 1}`, http.StatusBadRequest},
		{"unknown analysis", "POST", s.URL + "/api/analyses/nope/spectrum", `{}`, http.StatusNotFound},
		{"unknown analysis GET", "GET", s.URL + "/api/analyses/nope/spectrum", "", http.StatusNotFound},
	} {
		if code, b := doJSON(t, tc.method, tc.url, tc.body); code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, code, b, tc.code)
		}
	}

	code, b := doJSON(t, "POST", base, `{"rank": 8}`)
	if code != http.StatusAccepted {
		t.Fatalf("POST: %d %s", code, b)
	}
	sp := s.waitSpectrum(t, id, 8, "done")
	if sp.Progress != 1 || sp.Result == nil || sp.Result.Rank != 8 || sp.AnalysisID != id {
		t.Fatalf("done spectrum: %+v", sp)
	}
	if len(sp.Result.Tensors) < 30 {
		t.Fatalf("%d spectra", len(sp.Result.Tensors))
	}
	for _, ts := range sp.Result.Tensors {
		if len(ts.SingularValues) == 0 || len(ts.SingularValues) > 8 || len(ts.Energy) != len(ts.SingularValues) {
			t.Errorf("%s: %d values, %d energies", ts.VLA, len(ts.SingularValues), len(ts.Energy))
		}
	}
	// Asking again answers from the store at once.
	if code, b := doJSON(t, "POST", base, `{"rank": 8}`); code != http.StatusOK || !strings.Contains(string(b), `"status":"done"`) {
		t.Errorf("second POST: %d %s", code, b)
	}
	// Without ?rank the latest finished job is shown.
	if code, b := doJSON(t, "GET", base, ""); code != http.StatusOK || !strings.Contains(string(b), `"rank":8`) {
		t.Errorf("GET without rank: %d %.200s", code, b)
	}
	if code, b := doJSON(t, "POST", base+"/cancel?rank=8", ""); code != http.StatusConflict {
		t.Errorf("cancel a done job: %d %s", code, b)
	}
}

// TestAPISpectrumCancelAndFail: a queued job can be cancelled and asked for
// again; a job whose files are gone fails with an error naming them.
func TestAPISpectrumCancelAndFail(t *testing.T) {
	s, start := newRealServer(t)
	id := s.storeResult(t, evilResult())
	base := s.URL + "/api/analyses/" + id + "/spectrum"
	if code, b := doJSON(t, "POST", base, ""); code != http.StatusAccepted || !strings.Contains(string(b), `"status":"queued"`) || !strings.Contains(string(b), `"rank":32`) {
		t.Fatalf("POST with no body: %d %s", code, b)
	}
	if code, b := doJSON(t, "POST", base+"/cancel?rank=32", ""); code != http.StatusOK || !strings.Contains(string(b), `"status":"cancelled"`) {
		t.Fatalf("cancel: %d %s", code, b)
	}
	if code, b := doJSON(t, "POST", base, `{"rank": 32}`); code != http.StatusAccepted || !strings.Contains(string(b), `"status":"queued"`) {
		t.Fatalf("POST after cancel: %d %s", code, b)
	}
	start()
	sp := s.waitSpectrum(t, id, 32, "failed")
	if !strings.Contains(sp.Error, "/made/up/base") {
		t.Errorf("failure does not name the missing base: %q", sp.Error)
	}
}

// TestBrowserSpectrum: from the overview's Spectrum tab, start the job, watch
// the heatmaps appear, click a cell, and read the tensor's spectrum curve.
func TestBrowserSpectrum(t *testing.T) {
	ctx := newBrowser(t)
	s := newPageServer(t, true)
	id := s.analyzeFixture(t)
	browserDo(t, ctx, "open the overview", 20*time.Second, chromedp.Navigate(s.URL+"/analyses/"+id),
		chromedp.WaitReady(chromedp.CSS(`[data-testid="tab-spectrum"]`)))
	browserDo(t, ctx, "open the spectrum tab", 20*time.Second, chromedp.Click(chromedp.CSS(`[data-testid="tab-spectrum"]`)),
		chromedp.WaitReady(chromedp.CSS(`[data-testid="spectrum-start"]`)))
	browserDo(t, ctx, "set K and start", 20*time.Second,
		chromedp.SetValue(chromedp.CSS(`[data-testid="spectrum-rank"]`), "8"),
		chromedp.Click(chromedp.CSS(`[data-testid="spectrum-start"]`)))
	// The page follows the job (htmx polls) and draws the heatmaps when done.
	browserWait(t, ctx, "the spectrum heatmap", heatmapDrawn("spectrum-llm"), 60*time.Second)
	if v := browserEval[string](t, ctx, `JSON.parse(document.getElementById('spectrum-llm-data').textContent).meta.value`); v != "rank for 90 % energy" {
		t.Errorf("heatmap colours %q", v)
	}
	rows := browserEval[int](t, ctx, `document.querySelectorAll('[data-testid="table-spectrum-summary"] tbody tr').length`)
	if rows < 2 {
		t.Errorf("summary has %d rows", rows)
	}
	if cost := browserEval[string](t, ctx, `document.querySelector('[data-testid="spectrum-cost"]')?.textContent || ''`); !strings.Contains(cost, "× the") {
		t.Errorf("cost note %q", cost)
	}
	clickLinkedCell(t, ctx, "spectrum-llm", "mlp.gate_proj")
	browserWait(t, ctx, "the tensor page", `!!document.querySelector('[data-testid="tensor-name"]')`, 20*time.Second)
	browserWait(t, ctx, "the spectrum curve", `document.getElementById('spectrum-curve')?.dataset.drawn === '1'`, 20*time.Second)
	n := browserEval[int](t, ctx, `echarts.getInstanceByDom(document.getElementById('spectrum-curve')).getOption().series[0].data.length`)
	if n != 8 {
		t.Errorf("curve has %d singular values, want 8", n)
	}
	// Beside the singular values, the energy curve: the fraction of ‖ΔW‖² the
	// top k hold, for k = 1..8, rising and at most 1.
	energy := browserEval[[]float64](t, ctx, `echarts.getInstanceByDom(document.getElementById('spectrum-curve')).getOption().series[1].data
		.map(d => d !== null && typeof d === 'object' ? d.value : d)`)
	if len(energy) != 8 || energy[0] <= 0 || energy[7] > 1 {
		t.Errorf("energy curve %v", energy)
	}
	for i := 1; i < len(energy); i++ {
		if energy[i] < energy[i-1] {
			t.Errorf("energy curve falls at k = %d: %v", i+1, energy)
		}
	}
}

// TestAPISpectrumCancelRunning cancels a spectral job while it computes (an
// OpenVLA-shaped pair takes seconds): it stops as cancelled, stays so, and the
// worker goes on to the next job.
func TestAPISpectrumCancelRunning(t *testing.T) {
	s := newPageServer(t, true)
	pair, err := synth.Generate(context.Background(), synth.Options{Preset: "openvla-7b", Scale: 0.05, Out: filepath.Join(s.root, "ov")})
	if err != nil {
		t.Fatal(err)
	}
	spec := func(specs []string) string {
		b, _ := json.Marshal(checkpoint.MapSpecPaths(specs, func(p string) string { return "ov/" + p }))
		return string(b)
	}
	code, b := doJSON(t, "POST", s.URL+"/api/analyses", `{"base": `+spec(pair.Base)+`, "vla": `+spec(pair.VLA)+`}`)
	var created struct{ ID string }
	if json.Unmarshal(b, &created); code != http.StatusAccepted {
		t.Fatalf("create: %d %s", code, b)
	}
	s.waitStatus(t, created.ID, store.StatusDone)
	base := s.URL + "/api/analyses/" + created.ID + "/spectrum"
	if code, b := doJSON(t, "POST", base, `{"rank": 32}`); code != http.StatusAccepted {
		t.Fatalf("start: %d %s", code, b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, b := doJSON(t, "GET", base+"?rank=32", "")
		var sp spectrumJSON
		json.Unmarshal(b, &sp)
		if sp.Status == "running" && sp.Progress > 0 {
			break
		}
		if sp.Status == "done" || time.Now().After(deadline) {
			t.Fatalf("never caught the job running: %s", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, b := doJSON(t, "POST", base+"/cancel?rank=32", ""); code != http.StatusOK || !strings.Contains(string(b), `"status":"cancelled"`) {
		t.Fatalf("cancel: %d %s", code, b)
	}
	// The worker is free again: a small job right after finishes.
	if code, b := doJSON(t, "POST", base, `{"rank": 1}`); code != http.StatusAccepted {
		t.Fatalf("next job: %d %s", code, b)
	}
	s.waitSpectrum(t, created.ID, 1, "done")
	if _, b := doJSON(t, "GET", base+"?rank=32", ""); !strings.Contains(string(b), `"status":"cancelled"`) || strings.Contains(string(b), `"result":{`) {
		t.Errorf("the cancelled job changed afterwards: %.300s", b)
	}
}
