package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// quickClient bounds every request: a refusal that blocks (a FIFO opened for
// reading, /dev/zero read whole) fails the test instead of hanging it.
var quickClient = &http.Client{Timeout: 20 * time.Second}

func (s *testServer) quick(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	resp, err := quickClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func (s *testServer) sendUpload(t *testing.T, id string, offset int64, data []byte) (int, string) {
	t.Helper()
	resp, err := s.patch(t, id, offset, strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (s *testServer) uploadRows(t *testing.T) int {
	t.Helper()
	n, err := s.db.CountUploads(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (s *testServer) analysisRows(t *testing.T) int {
	t.Helper()
	list, err := s.db.List(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// Every malformed class, through every door: uploaded like the browser does,
// and registered by server path for an analysis and a preview. Each is a 4xx
// naming the file and the reason, leaves no file and no row, and a healthy
// analysis right after still succeeds.
func TestBadInputThroughEveryDoor(t *testing.T) {
	s := newGuardedServer(t, true, nil)
	bad := filepath.Join(s.root, "bad")
	os.Mkdir(bad, 0o755)
	for _, c := range malformedFiles(t) {
		t.Run("upload/"+c.name, func(t *testing.T) {
			_, u := s.do(t, "POST", "/api/uploads", fmt.Sprintf(`{"side": "vla", "path": %q, "size": %d}`, c.name, len(c.data)))
			code, body := s.sendUpload(t, u["id"].(string), 0, c.data)
			if code != 400 || !strings.Contains(body, "vla/"+c.name) || !strings.Contains(body, c.want) {
				t.Errorf("%d %s, want 400 naming vla/%s and %q", code, body, c.name, c.want)
			}
			if _, err := os.Stat(u["spec_path"].(string)); !os.IsNotExist(err) {
				t.Error("the refused file is still on disk")
			}
		})
		os.WriteFile(filepath.Join(bad, c.name), c.data, 0o644)
		for _, door := range []string{"/api/analyses", "/api/preview"} {
			t.Run("path"+door+"/"+c.name, func(t *testing.T) {
				code, body := s.quick(t, "POST", door, fmt.Sprintf(`{"base": ["bad/%s"], "vla": ["pi05/vla/model.safetensors"]}`, c.name))
				var e map[string]string
				json.Unmarshal([]byte(body), &e)
				if code != 400 || !strings.Contains(e["error"], filepath.Join(bad, c.name)) || !strings.Contains(e["error"], c.want) {
					t.Errorf("%d %s, want 400 naming %s and %q", code, body, c.name, c.want)
				}
			})
		}
	}
	if n := s.uploadRows(t); n != 0 {
		t.Errorf("%d upload rows left by refused uploads", n)
	}
	if n := s.analysisRows(t); n != 0 {
		t.Errorf("%d analysis rows left by refused requests", n)
	}
	if leftover, _ := filepath.Glob(filepath.Join(s.srv.cfg.UploadDir, "*", "vla", "*")); len(leftover) != 0 {
		t.Errorf("files left in the upload folder: %v", leftover)
	}
	_, created := s.do(t, "POST", "/api/analyses", fixturePair)
	if a := s.waitDone(t, created["id"].(string)); a["status"] != "done" {
		t.Errorf("a healthy analysis after the refusals: %v", a)
	}
	if err := s.db.IntegrityCheck(context.Background()); err != nil {
		t.Error(err)
	}
}

// Paths that lead outside the roots, and files that are no files, are refused
// at once: nothing blocks on a FIFO or reads a device.
func TestPathConfinement(t *testing.T) {
	s := newGuardedServer(t, false, nil)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret.safetensors"), safetensorsFile(`{}`, nil), 0o644)
	os.Symlink(filepath.Join(outside, "secret.safetensors"), filepath.Join(s.root, "link-out.safetensors"))
	os.Symlink(outside, filepath.Join(s.root, "dir-out"))
	os.Symlink("/dev/zero", filepath.Join(s.root, "zero.safetensors"))
	if err := syscall.Mkfifo(filepath.Join(s.root, "fifo.safetensors"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifoDir := filepath.Join(s.root, "fifo-folder")
	os.Mkdir(fifoDir, 0o755)
	syscall.Mkfifo(filepath.Join(fifoDir, "model.safetensors"), 0o644)
	index := func(dir, shard string) string {
		os.MkdirAll(filepath.Join(s.root, dir), 0o755)
		os.WriteFile(filepath.Join(s.root, dir, "model.safetensors.index.json"), []byte(`{"weight_map": {"w": "`+shard+`"}}`), 0o644)
		return dir
	}
	for _, c := range []struct {
		name, spec string
		status     int
		want       string
	}{
		{"outside every root", outside + "/secret.safetensors", 403, "outside the allowed folders"},
		{"dot-dot", "../../../../../../etc/passwd", 403, "outside the allowed folders"},
		{"dot-dot inside a path", "pi05/../../" + filepath.Base(outside) + "/secret.safetensors", 403, "outside"},
		{"absolute shard in an index", index("abs-index", "/etc/passwd"), 403, "absolute path"},
		{"dot-dot shard in an index", index("up-index", "../../etc/passwd"), 403, "leaves the folder"},
		{"symlink out", "link-out.safetensors", 403, "symlink leads outside"},
		{"folder symlink out", "dir-out/secret.safetensors", 403, "outside the allowed folders"},
		{"device through a symlink", "zero.safetensors", 403, "symlink leads outside"},
		{"FIFO", "fifo.safetensors", 400, "not a regular file"},
		{"FIFO inside a folder", "fifo-folder", 400, "not a regular file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, door := range []string{"/api/analyses", "/api/preview"} {
				code, body := s.quick(t, "POST", door, fmt.Sprintf(`{"base": [%q], "vla": ["pi05/vla/model.safetensors"]}`, c.spec))
				if code != c.status || !strings.Contains(body, c.want) {
					t.Errorf("%s: %d %s, want %d with %q", door, code, body, c.status, c.want)
				}
			}
		})
	}
	if n := s.analysisRows(t); n != 0 {
		t.Errorf("%d analyses recorded for refused paths", n)
	}
}

// A folder of 100 k files is listed a page at a time.
func TestFilesBrowserHundredThousand(t *testing.T) {
	// On tmpfs when there is one: creating 100 k files on a slow disk takes
	// longer than everything else this test does.
	base := t.TempDir()
	if shm, err := os.MkdirTemp("/dev/shm", "deltascope-many-"); err == nil {
		base = shm
		t.Cleanup(func() { os.RemoveAll(shm) })
	}
	s := newGuardedServer(t, false, func(c *Config) { c.Roots = append(c.Roots, base) })
	dir := filepath.Join(base, "many")
	os.Mkdir(dir, 0o755)
	const total = 100_000
	for i := range total {
		fd, err := syscall.Open(filepath.Join(dir, fmt.Sprintf("f%06d.safetensors", i)), syscall.O_CREAT|syscall.O_WRONLY|syscall.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		syscall.Close(fd)
	}
	// The first, a middle and the last page: each costs one pass over at most
	// the names before it, never the whole folder in memory.
	seen := map[string]bool{}
	for _, c := range []struct {
		cursor, next string
		entries      int
	}{{"", "1000", 1000}, {"50000", "51000", 1000}, {"99000", "", 1000}, {"100000", "", 0}} {
		var page filesResponse
		_, body := s.quick(t, "GET", "/api/files?root=2&path=many&limit=1000&cursor="+c.cursor, "")
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatalf("cursor %q: %v", c.cursor, err)
		}
		if len(page.Entries) != c.entries || page.Next != c.next {
			t.Errorf("cursor %q: %d entries, next %q; want %d, %q", c.cursor, len(page.Entries), page.Next, c.entries, c.next)
		}
		for _, e := range page.Entries {
			if seen[e.Name] || e.Kind != "safetensors" {
				t.Fatalf("%s listed twice or as %q", e.Name, e.Kind)
			}
			seen[e.Name] = true
		}
	}
}

// The disk fills mid-upload: a clear 507, the partial file and its row are
// gone, the database is intact, and the next upload works.
func TestUploadDiskFull(t *testing.T) {
	s := newGuardedServer(t, false, nil)
	open := s.srv.guard.openUpload
	s.srv.guard.openUpload = func(root *os.Root, name string) (uploadWriter, error) {
		f, err := open(root, name)
		return &fullDisk{uploadWriter: f, left: 1000}, err
	}
	data, _ := os.ReadFile(filepath.Join(fixtures, "pi05", "vla", "model.safetensors"))
	_, u := s.do(t, "POST", "/api/uploads", fmt.Sprintf(`{"side": "vla", "path": "model.safetensors", "size": %d}`, len(data)))
	code, body := s.sendUpload(t, u["id"].(string), 0, data)
	if code != 507 || !strings.Contains(body, "vla/model.safetensors: the server's disk is full") {
		t.Errorf("disk full: %d %s", code, body)
	}
	if _, err := os.Stat(u["spec_path"].(string)); !os.IsNotExist(err) {
		t.Error("the partial file is still on disk")
	}
	if n := s.uploadRows(t); n != 0 {
		t.Errorf("%d upload rows after a full disk", n)
	}
	if err := s.db.IntegrityCheck(context.Background()); err != nil {
		t.Error(err)
	}
	// The log line of the failure carries the id the client got.
	s.srv.guard.openUpload = open
	_, u = s.do(t, "POST", "/api/uploads", fmt.Sprintf(`{"side": "vla", "path": "model.safetensors", "size": %d}`, len(data)))
	if code, body := s.sendUpload(t, u["id"].(string), 0, data); code != 204 {
		t.Errorf("upload after the disk was freed: %d %s", code, body)
	}
}

// Every response has an X-Request-Id, and the server's log lines for that
// request carry it.
func TestRequestIDsInResponsesAndLogs(t *testing.T) {
	s := newGuardedServer(t, false, nil)
	open := s.srv.guard.openUpload
	s.srv.guard.openUpload = func(root *os.Root, name string) (uploadWriter, error) {
		f, err := open(root, name)
		return &fullDisk{uploadWriter: f, left: 0}, err
	}
	_, u := s.do(t, "POST", "/api/uploads", `{"side": "base", "path": "x.bin", "size": 10}`)
	resp, err := s.patch(t, u["id"].(string), 0, strings.NewReader("0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Header.Get("X-Request-Id")
	if id == "" {
		t.Fatal("no X-Request-Id header")
	}
	lines := 0
	for _, line := range strings.Split(strings.TrimSpace(s.logs.String()), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if rec["request_id"] == id {
			lines++
		}
		if msg := rec["msg"]; (msg == "request" || msg == "disk full: upload removed") && rec["request_id"] == nil {
			t.Errorf("request log line without its id: %s", line)
		}
	}
	if lines < 2 {
		t.Errorf("%d log lines carry the request id %s, want the failure and the access line:\n%s", lines, id, s.logs.String())
	}
}

// Unfinished uploads idle past the expiry are swept: tusd's files, empty
// folders and row; fresh and complete uploads stay. Complete uploads that no
// analysis uses go after UploadKeep; one an analysis names stays.
func TestExpiredUploadsAreSwept(t *testing.T) {
	s := newGuardedServer(t, false, func(c *Config) {
		c.Guard.UploadExpiry = 7 * 24 * time.Hour
		c.Guard.UploadKeep = 30 * 24 * time.Hour
	})
	now := time.Now()
	s.db.Now = func() time.Time { return now }
	_, old := s.do(t, "POST", "/api/uploads", `{"side": "base", "path": "sub/old.safetensors", "size": 100}`)
	s.sendUpload(t, old["id"].(string), 0, make([]byte, 40))
	_, done := s.do(t, "POST", "/api/uploads", `{"side": "vla", "path": "notes.txt", "size": 3}`)
	if code, msg := s.sendUpload(t, done["id"].(string), 0, []byte("abc")); code != 204 {
		t.Fatalf("finish notes.txt: %d %s", code, msg)
	}
	model, _ := os.ReadFile(filepath.Join(fixtures, "pi05", "vla", "model.safetensors"))
	_, used := s.do(t, "POST", "/api/uploads", fmt.Sprintf(`{"side": "vla", "path": "model.safetensors", "size": %d}`, len(model)))
	if code, msg := s.sendUpload(t, used["id"].(string), 0, model); code != 204 {
		t.Fatalf("finish model.safetensors: %d %s", code, msg)
	}
	spec := used["spec_path"].(string)
	if code, body := s.do(t, "POST", "/api/analyses", fmt.Sprintf(`{"base": [%q], "vla": [%q]}`, spec, spec)); code != 202 {
		t.Fatalf("analysis of the upload: %d %v", code, body)
	}
	now = now.Add(8 * 24 * time.Hour)
	_, fresh := s.do(t, "POST", "/api/uploads", fmt.Sprintf(`{"session": %q, "side": "base", "path": "fresh.safetensors", "size": 100}`, done["session"]))

	n, err := s.srv.SweepUploads(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("swept %d (%v), want 1", n, err)
	}
	for _, f := range []string{old["id"].(string), old["id"].(string) + ".info"} {
		if _, err := os.Stat(filepath.Join(s.srv.tusDir(), f)); !os.IsNotExist(err) {
			t.Errorf("the expired upload's %s is still there (%v)", f, err)
		}
	}
	if code, _ := s.do(t, "GET", "/api/uploads/"+old["id"].(string), ""); code != 404 {
		t.Errorf("expired upload still recorded: %d", code)
	}
	if _, err := os.Stat(done["spec_path"].(string)); err != nil {
		t.Errorf("the finished upload was removed: %v", err)
	}
	if code, _ := s.do(t, "GET", "/api/uploads/"+fresh["id"].(string), ""); code != 200 {
		t.Errorf("the fresh upload was removed: %d", code)
	}
	if rows := s.uploadRows(t); rows != 3 {
		t.Errorf("%d upload rows, want 3", rows)
	}

	// A month on: the finished upload nobody analysed goes, the analysed one stays.
	now = now.Add(31 * 24 * time.Hour)
	if _, err := s.srv.SweepUploads(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(done["spec_path"].(string)); !os.IsNotExist(err) {
		t.Errorf("the unused finished upload is still there (%v)", err)
	}
	if _, err := os.Stat(spec); err != nil {
		t.Errorf("the upload an analysis uses was removed: %v", err)
	}
	if code, _ := s.do(t, "GET", "/api/uploads/"+used["id"].(string), ""); code != 200 {
		t.Errorf("the upload an analysis uses is no longer recorded: %d", code)
	}
}
