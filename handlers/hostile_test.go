package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/internal/hostile"
)

// hostileBudget is what one hostile request may allocate in the server, in
// all: the bound the review asked for the pickle bomb.
const hostileBudget = 300 << 20

// TestHostileCheckpointsPreview replays the review's checkpoint attacks
// through POST /api/preview on a real server: each is refused with 400 and a
// message naming the file and the problem, allocating less than 300 MB. Before,
// the 64 KB pickle bomb took the server to 3.55 GB and a 1 M-tensor header
// preview to 1.5 GB.
func TestHostileCheckpointsPreview(t *testing.T) {
	s := newTestServer(t)
	hostile.WriteFile(t, filepath.Join(s.root, "bomb.pt"), hostile.PickleBomb(8, 1<<20, false))
	hostile.WriteFile(t, filepath.Join(s.root, "bomb-deflated.pt"), hostile.PickleBomb(60, 1<<20, true))
	hostile.WriteFile(t, filepath.Join(s.root, "many.safetensors"), hostile.ManyTensorsSafetensors(checkpoint.DefaultLimits.MaxTensors+1, 38))
	// Long names (issue 14 follow-up): one name over the 1 KB cap, and the
	// review's 65,536 names of 1,400 bytes, a 91 MB header, over the 16 MiB
	// default header limit.
	hostile.WriteFile(t, filepath.Join(s.root, "long-name.safetensors"), hostile.ManyTensorsSafetensors(2, 1025))
	hostile.WriteFile(t, filepath.Join(s.root, "long-names.safetensors"), hostile.ManyTensorsSafetensors(65_536, 1400))
	for file, want := range map[string]string{
		"bomb.pt":                "refusing a pickle bomb",
		"bomb-deflated.pt":       "looks like a zip bomb",
		"many.safetensors":       "more than 65536 tensors",
		"long-name.safetensors":  "tensor 1 of the header has a name of 1025 bytes",
		"long-names.safetensors": "exceeds the limit of 16777216 bytes",
	} {
		body := fmt.Sprintf(`{"base": [%q], "vla": ["pi05/vla/model.safetensors"]}`, file)
		var code int
		var resp map[string]any
		use := hostile.Measure(func() { code, resp = s.do(t, "POST", "/api/preview", body) })
		t.Logf("%s: %d %v; %v", file, code, resp["error"], use)
		msg, _ := resp["error"].(string)
		if code != http.StatusBadRequest || !strings.Contains(msg, file+": ") || !strings.Contains(msg, want) {
			t.Errorf("%s: %d %q, want 400 naming the file and saying %q", file, code, msg, want)
		}
		if use.Alloc > hostileBudget {
			t.Errorf("%s: the preview allocated %d MB", file, use.Alloc>>20)
		}
	}
}

// TestFilesFIFO: a FIFO under a root is listed as "special" (never a
// checkpoint, whatever its name) without being opened, and asking to list it
// as a folder answers at once instead of hanging the request forever.
func TestFilesFIFO(t *testing.T) {
	s := newTestServer(t)
	if err := syscall.Mkfifo(filepath.Join(s.root, "pipe.safetensors"), 0o644); err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, map[string]any) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v (the server did not answer)", path, err)
		}
		defer resp.Body.Close()
		var out map[string]any
		data, _ := io.ReadAll(resp.Body)
		json.Unmarshal(data, &out)
		return resp.StatusCode, out
	}
	code, top := get("/api/files?root=1")
	if code != 200 {
		t.Fatalf("listing the root: %d %v", code, top)
	}
	kind := ""
	for _, e := range top["entries"].([]any) {
		if m := e.(map[string]any); m["name"] == "pipe.safetensors" {
			kind, _ = m["kind"].(string)
		}
	}
	if kind != "special" {
		t.Errorf("the FIFO is listed as kind %q, want \"special\"", kind)
	}
	if code, body := get("/api/files?root=1&path=pipe.safetensors"); code != http.StatusBadRequest {
		t.Errorf("listing the FIFO as a folder: %d %v, want 400", code, body)
	}
	body := `{"base": ["pipe.safetensors"], "vla": ["pi05/vla/model.safetensors"]}`
	if code, resp := s.do(t, "POST", "/api/preview", body); code != 400 || !strings.Contains(fmt.Sprint(resp["error"]), "not a regular file") {
		t.Errorf("previewing the FIFO: %d %v", code, resp)
	}
}

// TestHeaderBusyIs429: when every header slot stays taken, the checkpoint
// error becomes 429 with Retry-After, so clients know to come back.
func TestHeaderBusyIs429(t *testing.T) {
	srv := New(nil, nil, Config{})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/api/preview", nil)
	srv.apiError(rec, req, fmt.Errorf("big.safetensors: %w", checkpoint.ErrBusy))
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" ||
		!strings.Contains(rec.Body.String(), "big.safetensors") {
		t.Fatalf("%d %v %s", rec.Code, rec.Header(), rec.Body)
	}
}
