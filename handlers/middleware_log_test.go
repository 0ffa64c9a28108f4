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

// truncate, which the access log (logPath) and the login log share, keeps
// at most n bytes and never ends in half a character.
func TestTruncate(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"short", 64, "short"},
		{"abcdef", 3, "abc"},
		{"abé", 3, "ab"}, // é is two bytes: the one that fits is not kept alone
		{"abé", 4, "abé"},
		{"日本", 2, ""},
	} {
		if got := truncate(c.s, c.n); got != c.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}
