//go:build linux

package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/deltascope/deltascope/store"
)

// mountTmpfs mounts a tmpfs of the given size ("16m") on a fresh folder: a
// real disk that fills up. It needs root; without it the test is skipped,
// except under CI=true, where a missing capability is a broken CI, not a pass.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0755"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount a %s tmpfs for the disk-full test: %v (CI runs as root)", size, err)
		}
		t.Skipf("cannot mount a tmpfs here (%v); the disk-full test needs root", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) }) // runs before TempDir's removal
	return dir
}

// fillDisk allocates a ballast file so that only about `free` bytes stay
// available on dir's file system, and returns a function that removes it.
func fillDisk(t *testing.T, dir string, free int64) (unfill func()) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	n := int64(st.Bavail)*st.Bsize - free
	if n <= 0 {
		t.Fatalf("only %d bytes free on %s before filling", int64(st.Bavail)*st.Bsize, dir)
	}
	path := filepath.Join(dir, "ballast")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, n); err != nil {
		t.Fatalf("fallocate %d bytes: %v", n, err)
	}
	return func() { os.Remove(path) }
}

// fullDiskServer is a real server whose data folder (database, uploads and
// export scratch space) is a 16 MiB tmpfs, holding the π0.5 fixture analysis.
type fullDiskServer struct {
	*httptest.Server
	db         *store.DB
	data, id   string
	fixtureVLA []byte
}

func newFullDiskServer(t *testing.T) *fullDiskServer {
	t.Helper()
	data := mountTmpfs(t, "16m")
	var id string
	l := startLiveServer(t, testServerOptions{data: data, prepare: func(db *store.DB, root string) {
		id = analyzeInto(t, db, root, []string{"pi05/base"}, []string{"pi05/vla/model.safetensors"})
	}})
	vla, err := os.ReadFile(filepath.Join(l.root, "pi05/vla/model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	return &fullDiskServer{Server: l.Server, db: l.db, data: data, id: id, fixtureVLA: vla}
}

func (s *fullDiskServer) do(t *testing.T, method, path, ctype string, body io.Reader, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL+path, body)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp, got
}

// intact checks what a full disk must never break: the database passes
// PRAGMA integrity_check, and the server still answers from it.
func (s *fullDiskServer) intact(t *testing.T) {
	t.Helper()
	if err := s.db.IntegrityCheck(context.Background()); err != nil {
		t.Errorf("integrity: %v", err)
	}
	resp, body := s.do(t, "GET", "/api/analyses/"+s.id, "", nil)
	var a struct{ Status string }
	json.Unmarshal(body, &a)
	if resp.StatusCode != 200 || a.Status != "done" {
		t.Errorf("the analysis after a full disk: %d %s", resp.StatusCode, body)
	}
}

// Checkpoint exports stream straight from the VLA's files and write nothing to
// the server's disk: on a full disk both still download whole, leave no scratch
// folder, and the database stays intact. (Exports onto a full disk through the
// CLI are tested in cli.)
func TestExportDiskFull(t *testing.T) {
	s := newFullDiskServer(t)
	defer fillDisk(t, s.data, 256<<10)() // the fixture VLA is 2.7 MB
	for _, kind := range []string{"masked", "sliced"} {
		t.Run(kind, func(t *testing.T) {
			resp, body := s.do(t, "POST", "/api/analyses/"+s.id+"/export?kind="+kind, "application/json", strings.NewReader(`{"preset": "pi05-light"}`))
			if resp.StatusCode != 200 || strconv.Itoa(len(body)) != resp.Header.Get("Content-Length") {
				t.Errorf("%s export on a full disk: %d, %d bytes of %s", kind, resp.StatusCode, len(body), resp.Header.Get("Content-Length"))
			}
			if kind == "masked" && len(body) < len(s.fixtureVLA) {
				t.Errorf("masked export of %d bytes is shorter than the VLA", len(body))
			}
			if names, err := readExportDir(s.data); err != nil || len(names) != 0 {
				t.Errorf("scratch left under exports/: %v (%v)", names, err)
			}
			s.intact(t)
		})
	}
}

// An upload onto the real full disk (reliability_test.go injects the failing
// writer; this one is the kernel's ENOSPC): 507 naming the file, the partial
// file and its row gone, the database intact.
func TestUploadDiskFullTmpfs(t *testing.T) {
	s := newFullDiskServer(t)
	defer fillDisk(t, s.data, 256<<10)()
	resp, body := s.do(t, "POST", "/api/uploads", "application/json",
		strings.NewReader(fmt.Sprintf(`{"side": "vla", "path": "model.safetensors", "size": %d}`, len(s.fixtureVLA))))
	var u struct {
		ID       string `json:"id"`
		SpecPath string `json:"spec_path"`
	}
	if err := json.Unmarshal(body, &u); err != nil || resp.StatusCode != 201 && resp.StatusCode != 200 {
		t.Fatalf("create upload: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, "PATCH", "/api/uploads/"+u.ID, "application/offset+octet-stream", strings.NewReader(string(s.fixtureVLA)), "Upload-Offset", "0")
	if resp.StatusCode != http.StatusInsufficientStorage || !strings.Contains(string(body), "vla/model.safetensors: the server's disk is full") {
		t.Errorf("upload on a full disk: %d %s", resp.StatusCode, body)
	}
	if _, err := os.Stat(u.SpecPath); !os.IsNotExist(err) {
		t.Errorf("the partial upload is still on disk (%v)", err)
	}
	if n, err := s.db.CountUploads(context.Background()); err != nil || n != 0 {
		t.Errorf("%d upload rows after a full disk (%v)", n, err)
	}
	s.intact(t)
}

func readExportDir(data string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(data, "exports"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, err
}
