package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func (s *testServer) createUpload(t *testing.T, session, side, path string, size int64) map[string]any {
	t.Helper()
	code, u := s.do(t, "POST", "/api/uploads", fmt.Sprintf(`{"session": %q, "side": %q, "path": %q, "size": %d}`, session, side, path, size))
	if code != 201 {
		t.Fatalf("create upload %s: %d %v", path, code, u)
	}
	return u
}

func (s *testServer) patch(t *testing.T, id string, offset int64, body io.Reader) (*http.Response, error) {
	req, _ := http.NewRequest("PATCH", s.URL+"/api/uploads/"+id, body)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	return http.DefaultClient.Do(req)
}

// failingReader sends n bytes, then breaks like a dropped connection.
type failingReader struct {
	data []byte
	n    int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection dropped")
	}
	k := copy(p, f.data[:min(len(f.data), f.n, len(p))])
	f.data, f.n = f.data[k:], f.n-k
	return k, nil
}

func (s *testServer) headOffset(t *testing.T, id string) int64 {
	t.Helper()
	req, _ := http.NewRequest("HEAD", s.URL+"/api/uploads/"+id, nil)
	req.Header.Set("Tus-Resumable", "1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	n, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if err != nil {
		t.Fatalf("HEAD: %d, Upload-Offset %q %v", resp.StatusCode, resp.Header.Get("Upload-Offset"), resp.Header)
	}
	return n
}

// uploadFile sends a file in chunks, with one dropped connection midway, and
// resumes from the offset the server confirms.
func (s *testServer) uploadFile(t *testing.T, session, side, rel, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := s.createUpload(t, session, side, rel, int64(len(data)))
	id := u["id"].(string)
	// Half the file, then the connection drops.
	s.patch(t, id, 0, &failingReader{data: data, n: len(data) / 2})
	const chunk = 100_000
	retries := 0
	for off := s.headOffset(t, id); off < int64(len(data)); off = s.headOffset(t, id) {
		end := min(int64(len(data)), off+chunk)
		resp, err := s.patch(t, id, off, strings.NewReader(string(data[off:end])))
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if (resp.StatusCode == 409 || strings.Contains(string(msg), "ERR_UPLOAD_INTERRUPTED")) && retries < 5 {
			// The server was still saving the dropped chunk's bytes when we
			// asked (tusd stops it when we come back): ask again, as tus
			// clients do.
			retries++
			continue
		}
		if resp.StatusCode != 204 || resp.Header.Get("Upload-Offset") != strconv.FormatInt(end, 10) {
			t.Fatalf("PATCH at %d: %d, offset %s: %s", off, resp.StatusCode, resp.Header.Get("Upload-Offset"), msg)
		}
	}
	_, got := s.do(t, "GET", "/api/uploads/"+id, "")
	if got["complete"] != true {
		t.Fatalf("upload not complete: %v", got)
	}
	stored, _ := os.ReadFile(got["spec_path"].(string))
	if string(stored) != string(data) {
		t.Fatalf("%s: stored bytes differ from the original", rel)
	}
	return got
}

func TestUploadPairAndAnalyse(t *testing.T) {
	s := newTestServer(t)
	base := filepath.Join(fixtures, "pi05", "base")
	entries, _ := os.ReadDir(base)
	session := ""
	var baseDir string
	for _, e := range entries {
		u := s.uploadFile(t, session, "base", e.Name(), filepath.Join(base, e.Name()))
		session, baseDir = u["session"].(string), u["side_dir"].(string)
	}
	v := s.uploadFile(t, session, "vla", "model.safetensors", filepath.Join(fixtures, "pi05", "vla", "model.safetensors"))
	body, _ := json.Marshal(map[string][]string{"base": {baseDir}, "vla": {v["spec_path"].(string)}})
	code, created := s.do(t, "POST", "/api/analyses", string(body))
	if code != 202 {
		t.Fatalf("analyse uploads: %d %v", code, created)
	}
	if a := s.waitDone(t, created["id"].(string)); a["status"] != "done" {
		t.Fatalf("analysis of uploads: %v", a)
	}
}

func TestUploadRefusals(t *testing.T) {
	s := newTestServer(t)
	for _, c := range []struct {
		name, body string
		status     int
	}{
		{"dotdot", `{"side": "base", "path": "../x.safetensors", "size": 1}`, 400},
		{"absolute", `{"side": "base", "path": "/etc/x", "size": 1}`, 400},
		{"bad side", `{"side": "other", "path": "x", "size": 1}`, 400},
		{"negative", `{"side": "base", "path": "x", "size": -1}`, 400},
		{"too large", `{"side": "base", "path": "x", "size": 99999999999999}`, 413},
		{"bad session", `{"session": "../../etc", "side": "base", "path": "x", "size": 1}`, 400},
	} {
		if code, body := s.do(t, "POST", "/api/uploads", c.body); code != c.status {
			t.Errorf("%s: %d %v, want %d", c.name, code, body, c.status)
		}
	}
	u := s.createUpload(t, "", "vla", "a.bin", 10)
	id := u["id"].(string)
	if code, _ := s.do(t, "POST", "/api/uploads", fmt.Sprintf(`{"session": %q, "side": "vla", "path": "a.bin", "size": 10}`, u["session"])); code != 409 {
		t.Errorf("same path twice: %d", code)
	}
	resp, _ := s.patch(t, id, 5, strings.NewReader("abc"))
	if resp.StatusCode != 409 {
		t.Errorf("wrong offset: %d", resp.StatusCode)
	}
	resp, _ = s.patch(t, id, 0, strings.NewReader("0123456789abc"))
	if resp.StatusCode != 413 || s.headOffset(t, id) != 0 {
		t.Errorf("past the declared size: %d, offset %d", resp.StatusCode, s.headOffset(t, id))
	}
	req, _ := http.NewRequest("PATCH", s.URL+"/api/uploads/"+id, strings.NewReader("x"))
	req.Header.Set("Upload-Offset", "0")
	req.Header.Set("Tus-Resumable", "1.0.0")
	if resp, _ := http.DefaultClient.Do(req); resp.StatusCode != 400 { // tusd: ERR_INVALID_CONTENT_TYPE
		t.Errorf("no content type: %d", resp.StatusCode)
	}
	if code, _ := s.do(t, "DELETE", "/api/uploads/"+id, ""); code != 204 {
		t.Errorf("delete: %d", code)
	}
	if _, err := os.Stat(u["spec_path"].(string)); !os.IsNotExist(err) {
		t.Error("deleted upload left its file")
	}
}

func TestFilesBrowser(t *testing.T) {
	s := newTestServer(t)
	many := filepath.Join(s.root, "many")
	os.Mkdir(many, 0o755)
	for i := range 450 {
		os.WriteFile(filepath.Join(many, fmt.Sprintf("f%03d.safetensors", i)), nil, 0o644)
	}
	outside := t.TempDir()
	os.Symlink(outside, filepath.Join(s.root, "link-out"))

	_, top := s.do(t, "GET", "/api/files?root=1", "")
	kinds := map[string]string{}
	for _, e := range top["entries"].([]any) {
		m := e.(map[string]any)
		kinds[m["name"].(string)] = m["kind"].(string)
	}
	if kinds["pi05"] != "dir" || kinds["truncated.safetensors"] != "safetensors" || kinds["link-out"] != "outside" {
		t.Errorf("top-level kinds %v", kinds)
	}
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		_, page := s.do(t, "GET", "/api/files?root=1&path=many&limit=200&cursor="+cursor, "")
		for _, e := range page["entries"].([]any) {
			seen[e.(map[string]any)["name"].(string)] = true
		}
		cursor = page["next"].(string)
		if cursor == "" {
			if pages != 2 {
				t.Errorf("%d pages for 450 files at 200 a page", pages+1)
			}
			break
		}
	}
	if len(seen) != 450 {
		t.Errorf("paging saw %d of 450 files", len(seen))
	}
	// ".." is clamped to the root; a symlink out cannot be listed.
	if _, up := s.do(t, "GET", "/api/files?root=1&path=../..", ""); up["path"] != "." {
		t.Errorf("../.. resolved to %v", up["path"])
	}
	if code, _ := s.do(t, "GET", "/api/files?root=1&path=link-out", ""); code != 403 {
		t.Errorf("listing through a symlink out: %d", code)
	}
	if code, _ := s.do(t, "GET", "/api/files?root=9", ""); code != 400 {
		t.Errorf("unknown root: %d", code)
	}
}

func TestPreviewAndEvents(t *testing.T) {
	s := newTestServer(t)
	code, p := s.do(t, "POST", "/api/preview", fixturePair)
	if code != 200 || p["aligned"] != 68.0 || len(p["vla_only"].([]any)) != 44 || len(p["mismatched"].([]any)) != 1 {
		t.Fatalf("preview: %d aligned %v, vla_only %d, mismatched %v", code, p["aligned"], len(p["vla_only"].([]any)), p["mismatched"])
	}
	if code, _ := s.do(t, "POST", "/api/preview", `{"base": ["/etc/hostname"], "vla": ["pi05/vla"]}`); code != 403 {
		t.Errorf("preview outside the roots: %d", code)
	}
	_, c := s.do(t, "POST", "/api/analyses", fixturePair)
	id := c["id"].(string)
	resp, err := http.Get(s.URL + "/api/analyses/" + id + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	// The stream ends by itself after the terminal event.
	all, _ := io.ReadAll(resp.Body)
	events := strings.Split(strings.TrimSpace(string(all)), "\n\n")
	last := events[len(events)-1]
	if !strings.HasPrefix(last, "event: progress\ndata: ") || !strings.Contains(last, `"status":"done"`) {
		t.Errorf("last event %q", last)
	}
}

// A broken checkpoint is refused when its last byte arrives, with the reason,
// and leaves no file and no row behind.
func TestUploadMalformedIsRefused(t *testing.T) {
	s := newTestServer(t)
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"short.safetensors", []byte{1, 2, 3}, "base/short.safetensors: file is 3 bytes, too short"},
		{"huge-header.safetensors", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'}, "base/huge-header.safetensors"},
		{"not-a-zip.bin", []byte("definitely not a torch file"), "base/not-a-zip.bin"},
	} {
		u := s.createUpload(t, "", "base", c.name, int64(len(c.data)))
		resp, err := s.patch(t, u["id"].(string), 0, strings.NewReader(string(c.data)))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(body), c.want) {
			t.Errorf("%s: %d %s, want 400 naming %q", c.name, resp.StatusCode, body, c.want)
		}
		if _, err := os.Stat(u["spec_path"].(string)); !os.IsNotExist(err) {
			t.Errorf("%s: the refused file is still on disk", c.name)
		}
		if code, _ := s.do(t, "GET", "/api/uploads/"+u["id"].(string), ""); code != 404 {
			t.Errorf("%s: the refused upload is still recorded (%d)", c.name, code)
		}
	}
}
