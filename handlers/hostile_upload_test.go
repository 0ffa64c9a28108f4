package handlers

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/internal/hostile"
	"github.com/deltascope/deltascope/store"
)

// TestPickleBombUploadValidation: the check the upload finish hook runs
// (validateUpload) refuses the bomb with its upload path, in bounded memory.
func TestPickleBombUploadValidation(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv := New(db, nil, Config{UploadDir: dir, Roots: []string{dir}})
	bomb := hostile.PickleBomb(8, 1<<20, false)
	hostile.WriteFile(t, filepath.Join(dir, "upload-1"), bomb)
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	u := &store.Upload{ID: "upload-1", Side: "base", Path: "prismatic/checkpoint.pt", Size: int64(len(bomb))}
	use := hostile.Measure(func() { err = srv.validateUpload(root, "upload-1", u) })
	t.Logf("%v; %v", use, err)
	if err == nil || !strings.HasPrefix(err.Error(), "base/prismatic/checkpoint.pt: ") || !strings.Contains(err.Error(), "pickle bomb") {
		t.Fatalf("validation: %v, want the bomb refused naming base/prismatic/checkpoint.pt", err)
	}
	if use.Alloc > hostileBudget {
		t.Errorf("validation allocated %d MB", use.Alloc>>20)
	}
}

// TestPickleBombUploadHTTP uploads the bombs over the real upload protocol:
// the last PATCH is answered 400 with the reason, and finishing the upload
// allocates less than 300 MB.
func TestPickleBombUploadHTTP(t *testing.T) {
	s := newTestServer(t)
	for name, data := range map[string][]byte{
		"bomb.pt":          hostile.PickleBomb(8, 1<<20, false),
		"bomb-deflated.pt": hostile.PickleBomb(60, 1<<20, true),
	} {
		u := s.createUpload(t, "", "base", name, int64(len(data)))
		var status int
		var body []byte
		use := hostile.Measure(func() {
			resp, err := s.patch(t, u["id"].(string), 0, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
		})
		t.Logf("%s: %d %s; %v", name, status, body, use)
		if status != 400 || !strings.Contains(string(body), "base/"+name+": ") || !strings.Contains(string(body), "bomb") {
			t.Errorf("%s: %d %s, want 400 naming the file and the bomb", name, status, body)
		}
		if use.Alloc > hostileBudget+uint64(2*len(data)) { // the upload's own bytes pass through buffers
			t.Errorf("%s: the upload allocated %d MB", name, use.Alloc>>20)
		}
	}
}
