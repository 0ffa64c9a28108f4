package handlers

import (
	"net/http"
	"strings"
	"testing"
)

// The access log bounds the path it writes: 1,200 HEADs with 48 KB upload
// ids wrote ~58 MB of log lines, each holding its id whole (issue 14
// follow-up). A long path is logged cut, with a marker and its length; a
// real one is logged as it is.
func TestAccessLogBoundsPaths(t *testing.T) {
	s := newGuardedServer(t, false, nil)
	id := strings.Repeat("a", 48<<10)
	const n = 20
	for range n {
		req, _ := http.NewRequest(http.MethodHead, s.URL+"/api/uploads/"+id, nil)
		resp, err := quickClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Fatalf("HEAD of a 48 KB id: %d, want 404", resp.StatusCode)
		}
	}
	resp, err := quickClient.Get(s.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	logs := s.logs.String()
	if got := strings.Count(logs, "…(cut, 49165 bytes)"); got != n {
		t.Errorf("%d access lines carry the cut marker with the path's length, want %d", got, n)
	}
	if len(logs) > n*1024 {
		t.Errorf("%d requests with 48 KB paths wrote %d KB of log; want under 1 KB each", n, len(logs)>>10)
	}
	if !strings.Contains(logs, `"path":"/healthz"`) {
		t.Errorf("a short path is not logged whole:\n%s", logs[max(0, len(logs)-2000):])
	}
}
