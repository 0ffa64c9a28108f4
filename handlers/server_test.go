package handlers

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deltascope/deltascope/internal/testfixtures"
	"github.com/deltascope/deltascope/store"
)

var fixtures = testfixtures.Dir()

// testServer is a real server: a database file in a temp folder, the job runner
// and the routes, with one --root holding a copy of the fixtures and a few
// broken files.
type testServer struct {
	*httptest.Server
	db    *store.DB
	root  string // the fixtures root; the upload folder is the other root
	start func() // starts the job runner
}

func newTestServer(t *testing.T) *testServer {
	s := newIdleTestServer(t)
	s.start()
	return s
}

// newIdleTestServer serves requests but runs no job until start is called. Its
// root also holds a truncated checkpoint, for the refusal scenarios.
func newIdleTestServer(t *testing.T) *testServer {
	t.Helper()
	p, start := newRealServer(t)
	os.WriteFile(filepath.Join(p.root, "truncated.safetensors"), []byte{0xff, 0, 0, 0, 0, 0, 0, 0, '{'}, 0o644)
	return &testServer{Server: p.Server, db: p.db, root: p.root, start: start}
}

func (s *testServer) do(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	if len(data) > 0 && json.Unmarshal(data, &out) != nil {
		t.Fatalf("%s %s: body is not a JSON object: %s", method, path, data)
	}
	return resp.StatusCode, out
}

// waitDone polls an analysis until it ends.
func (s *testServer) waitDone(t *testing.T, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		_, a := s.do(t, "GET", "/api/analyses/"+id, "")
		switch a["status"] {
		case "done", "failed", "cancelled":
			return a
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("analysis %s did not finish", id)
	return nil
}

const fixturePair = `{"base": ["pi05/base"], "vla": ["pi05/vla/model.safetensors"]}`

func TestAPIScenarios(t *testing.T) {
	s := newTestServer(t)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "x.safetensors"), []byte("x"), 0o644)
	os.Symlink(outside, filepath.Join(s.root, "escape"))
	runScenarios(t, s.URL, []scenario{
		{"health", "GET", "/healthz", "", 200, `"ok"`},
		{"ready", "GET", "/readyz", "", 200, `"ready"`},
		{"list empty", "GET", "/api/analyses", "", 200, `"analyses"`},
		{"unknown analysis", "GET", "/api/analyses/nope", "", 404, `"error"`},
		{"unknown route", "GET", "/api/nothing", "", 404, `"error"`},
		{"not json", "POST", "/api/analyses", "{", 400, "request body"},
		{"unknown field", "POST", "/api/analyses", `{"base": ["a"], "vla": ["b"], "x": 1}`, 400, "unknown field"},
		{"missing side", "POST", "/api/analyses", `{"base": ["pi05/base"]}`, 400, "at least one source"},
		{"bad rule", "POST", "/api/analyses", `{"base": ["pi05/base"], "vla": ["pi05/vla"], "map": ["(=>x"]}`, 400, "map rule"},
		{"outside root", "POST", "/api/analyses", `{"base": ["/etc/hostname"], "vla": ["pi05/vla"]}`, 403, "outside the allowed folders"},
		{"dotdot", "POST", "/api/analyses", `{"base": ["../../etc/hostname"], "vla": ["pi05/vla"]}`, 403, "outside the allowed folders"},
		{"symlink out", "POST", "/api/analyses", `{"base": ["escape/x.safetensors"], "vla": ["pi05/vla"]}`, 403, "outside the allowed folders"},
		{"missing file", "POST", "/api/analyses", `{"base": ["nothing.safetensors"], "vla": ["pi05/vla"]}`, 400, "no such file"},
		{"malformed file", "POST", "/api/analyses", `{"base": ["truncated.safetensors"], "vla": ["pi05/vla"]}`, 400, "truncated.safetensors"},
		{"body too large", "POST", "/api/analyses", `{"base": ["` + strings.Repeat("a", 2<<20) + `"]}`, 413, "larger than"},
	})
	if list, _ := s.db.List(context.Background(), 10); len(list) != 0 {
		t.Errorf("refused requests left %d analyses behind", len(list))
	}
}

func TestAPIAnalysisLifecycle(t *testing.T) {
	s := newTestServer(t)
	code, created := s.do(t, "POST", "/api/analyses", fixturePair)
	if code != 202 || created["id"] == "" || created["cached"] != false {
		t.Fatalf("create: %d %v", code, created)
	}
	id := created["id"].(string)
	a := s.waitDone(t, id)
	if a["status"] != "done" || a["progress"] != 1.0 || a["error"] != nil {
		t.Fatalf("analysis ended as %v", a)
	}

	_, all := s.do(t, "GET", "/api/analyses/"+id+"/tensors", "")
	if n := len(all["tensors"].([]any)); n != 68 {
		t.Errorf("%d tensors, want 68", n)
	}
	if n := len(all["vla_only"].([]any)); n == 0 {
		t.Error("vla_only missing from the unfiltered listing")
	}
	_, gates := s.do(t, "GET", "/api/analyses/"+id+"/tensors?component=llm&kind=ffn_gate&rows=1", "")
	ts := gates["tensors"].([]any)
	if len(ts) != 3 {
		t.Fatalf("%d llm ffn_gate tensors, want 3", len(ts))
	}
	for i, x := range ts {
		tm := x.(map[string]any)
		if tm["layer"] != float64(i) || len(tm["row_delta_norm"].([]any)) != 512 {
			t.Errorf("gate %d: layer %v, %d rows", i, tm["layer"], len(tm["row_delta_norm"].([]any)))
		}
	}
	if code, _ := s.do(t, "GET", "/api/analyses/"+id+"/tensors?layer=x", ""); code != 400 {
		t.Errorf("bad layer filter: %d", code)
	}
	_, units := s.do(t, "GET", "/api/analyses/"+id+"/units?component=llm&kind=attn_head", "")
	if n := len(units["units"].([]any)); n != 3 {
		t.Errorf("%d llm head unit lists, want 3", n)
	}

	// The same files again: the cached result, at once.
	code, again := s.do(t, "POST", "/api/analyses", fixturePair)
	if code != 202 || again["id"] != id || again["cached"] != true || again["status"] != "done" {
		t.Errorf("second request: %d %v", code, again)
	}
	// The same content under another path is computed, then recognised: it
	// shares the first result's rows.
	copyTree(t, filepath.Join(s.root, "pi05"), filepath.Join(s.root, "copy"))
	_, other := s.do(t, "POST", "/api/analyses", `{"base": ["copy/base"], "vla": ["copy/vla/model.safetensors"]}`)
	if other["cached"] != false {
		t.Fatalf("a copy under another path cannot be known before it is read: %v", other)
	}
	b := s.waitDone(t, other["id"].(string))
	if b["cache_key"] != a["cache_key"] || b["result_of"] != id {
		t.Errorf("copy: cache_key %v result_of %v; want %v and %s", b["cache_key"], b["result_of"], a["cache_key"], id)
	}

	_, m := s.do(t, "GET", "/metrics", "")
	jobs := m["jobs"].(map[string]any)
	if m["cache_hits"] != 1.0 || m["cache_misses"] != 2.0 || jobs["done"] != 2.0 || m["analyses"].(map[string]any)["done"] != 2.0 || m["queue_length"] != 0.0 {
		t.Errorf("metrics %v", m)
	}
}

func TestAPICancel(t *testing.T) {
	s := newIdleTestServer(t)
	_, first := s.do(t, "POST", "/api/analyses", fixturePair)
	_, second := s.do(t, "POST", "/api/analyses", `{"base": ["pi05/base_pickle/pytorch_model.bin"], "vla": ["pi05/vla"]}`)
	id := second["id"].(string)
	code, a := s.do(t, "POST", "/api/analyses/"+id+"/cancel", "")
	if code != 200 || a["status"] != "cancelled" {
		t.Fatalf("cancel: %d %v", code, a)
	}
	s.start()
	if b := s.waitDone(t, first["id"].(string)); b["status"] != "done" {
		t.Errorf("the other analysis: %v", b)
	}
	if _, a := s.do(t, "GET", "/api/analyses/"+id, ""); a["status"] != "cancelled" {
		t.Errorf("a cancelled analysis ran: %v", a)
	}
	if code, _ := s.do(t, "GET", "/api/analyses/"+id+"/tensors", ""); code != 409 {
		t.Errorf("tensors of a cancelled analysis: %d, want 409", code)
	}
	if code, _ := s.do(t, "DELETE", "/api/analyses/nope", ""); code != 404 {
		t.Errorf("cancel unknown: %d", code)
	}
}

// A job whose files broke after it was queued fails with the reason, and the
// server goes on serving.
func TestAPIJobFailureIsReported(t *testing.T) {
	s := newIdleTestServer(t)
	copyTree(t, filepath.Join(s.root, "pi05", "vla"), filepath.Join(s.root, "vla2"))
	_, c := s.do(t, "POST", "/api/analyses", `{"base": ["pi05/base"], "vla": ["vla2"]}`)
	// Cut the file after it was accepted, before the job runs: it must fail cleanly.
	os.Truncate(filepath.Join(s.root, "vla2", "model.safetensors"), 100)
	s.start()
	a := s.waitDone(t, c["id"].(string))
	if a["status"] != "failed" || !strings.Contains(a["error"].(string), "vla2") {
		t.Errorf("analysis of a truncated file: %v", a)
	}
	if code, _ := s.do(t, "GET", "/healthz", ""); code != 200 {
		t.Error("server stopped serving after a failed job")
	}
}
