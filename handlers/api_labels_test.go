package handlers

import (
	"os"
	"strings"
	"testing"
)

// Names and tags: given at creation, defaulted from the sources, changed with
// PATCH, never part of the cache key.
func TestAPIAnalysisNamesAndTags(t *testing.T) {
	s := newTestServer(t)
	code, created := s.do(t, "POST", "/api/analyses", `{"base": ["pi05/base"], "vla": ["pi05/vla/model.safetensors"], "name": "π0.5 LIBERO", "tags": ["libero", "bf16", "libero"]}`)
	if code != 202 {
		t.Fatalf("create: %d %v", code, created)
	}
	id := created["id"].(string)
	a := s.waitDone(t, id)
	if a["name"] != "π0.5 LIBERO" || a["named"] != true || strings.Join(anyStrings(a["tags"]), ",") != "libero,bf16" {
		t.Fatalf("created analysis: name %v named %v tags %v", a["name"], a["named"], a["tags"])
	}
	for _, c := range []struct {
		body   string
		status int
		want   string
	}{
		{`{"name": "renamed"}`, 200, `renamed|libero,bf16`},
		{`{"tags": ["x", " y "]}`, 200, `renamed|x,y`},
		{`{"name": ""}`, 200, `vla vs base|x,y`}, // back to the default: folder "vla" of model.safetensors vs folder "base"
		{`{}`, 400, ``},
		{`{"name": "` + strings.Repeat("n", 201) + `"}`, 400, ``},
		{`{"colour": "red"}`, 400, ``},
	} {
		code, got := s.do(t, "PATCH", "/api/analyses/"+id, c.body)
		if code != c.status {
			t.Errorf("PATCH %s: %d %v, want %d", c.body, code, got, c.status)
			continue
		}
		if c.status == 200 {
			if have := got["name"].(string) + "|" + strings.Join(anyStrings(got["tags"]), ","); have != c.want {
				t.Errorf("PATCH %s: %s, want %s", c.body, have, c.want)
			}
		} else if got["error"] == "" {
			t.Errorf("PATCH %s: no error message", c.body)
		}
	}
	if code, _ := s.do(t, "PATCH", "/api/analyses/nope", `{"name": "x"}`); code != 404 {
		t.Errorf("PATCH of a missing analysis: %d", code)
	}
	// The same files again: the cached analysis, whatever the new name says.
	if code, again := s.do(t, "POST", "/api/analyses", `{"base": ["pi05/base"], "vla": ["pi05/vla/model.safetensors"], "name": "other"}`); code != 202 || again["id"] != id || again["cached"] != true {
		t.Errorf("a renamed request for the same files: %d %v", code, again)
	}
}

// On a fresh data folder the uploads root does not exist yet; browsing it is
// an empty folder, not a server error. A path outside the roots names them
// and the flag that adds one.
func TestAPIFilesFreshDataFolder(t *testing.T) {
	s := newTestServer(t)
	p, _ := newRealServer(t)
	if _, err := os.Stat(p.uploads); !os.IsNotExist(err) {
		t.Fatalf("the test needs an uploads root that does not exist yet: %v", err)
	}
	code, body := s.do(t, "GET", "/api/files?root=0", "")
	if code != 200 || body["entries"] == nil || len(body["entries"].([]any)) != 0 {
		t.Fatalf("GET /api/files?root=0 on a fresh folder: %d %v", code, body)
	}
	code, body = s.do(t, "POST", "/api/analyses", `{"base": ["/etc/hostname"], "vla": ["pi05/vla"]}`)
	msg, _ := body["error"].(string)
	if code != 403 || !strings.Contains(msg, s.root) || !strings.Contains(msg, "--root") {
		t.Errorf("outside the roots: %d %q; want the allowed folders and --root named", code, msg)
	}
}

func anyStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
