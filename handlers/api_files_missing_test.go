package handlers

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// A root folder that does not exist (the demo folder under --no-demo, a
// --root deleted since) is a 404 naming it, not an empty listing; the
// uploads folder of a fresh data folder, made at the first upload, still
// lists as empty (TestAPIFilesFreshDataFolder, and the browser tests' "Pick
// files on the server" on a fresh data folder). Issue 14 follow-up.
func TestAPIFilesMissingRoot(t *testing.T) {
	demo := filepath.Join(t.TempDir(), "demo")
	l := startLiveServer(t, testServerOptions{config: func(c *Config) {
		c.Roots = []string{c.Roots[0], demo, c.Roots[1]}
	}})
	get := func(q string) (int, string, []any) {
		resp, err := http.Get(l.URL + "/api/files?" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		var out struct {
			Error   string `json:"error"`
			Entries []any  `json:"entries"`
		}
		json.Unmarshal(data, &out)
		return resp.StatusCode, out.Error, out.Entries
	}
	for _, tc := range []struct {
		q, msg string
		code   int
	}{
		{"root=1", "the server root " + demo + " does not exist", 404},
		{"root=1&path=pi05", "no such folder", 404},
		{"root=0&path=pi05", "no such folder", 404},
	} {
		if code, msg, _ := get(tc.q); code != tc.code || !strings.Contains(msg, tc.msg) {
			t.Errorf("GET /api/files?%s: %d %q, want %d %q", tc.q, code, msg, tc.code, tc.msg)
		}
	}
	if code, msg, entries := get("root=0"); code != 200 || entries == nil || len(entries) != 0 {
		t.Errorf("the uploads root of a fresh data folder: %d %q %v, want 200 and no entries", code, msg, entries)
	}
	if code, msg, entries := get("root=2"); code != 200 || len(entries) == 0 {
		t.Errorf("an existing root: %d %q %v", code, msg, entries)
	}
}
