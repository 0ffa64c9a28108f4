package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/deltascope/deltascope/internal/s3test"
	"github.com/deltascope/deltascope/internal/testfixtures"
)

// tusRequest sends one tus request (the plain protocol, as curl would) and
// returns the status, the Upload-Offset and the body.
func tusRequest(t *testing.T, method, url string, off int64, body []byte) (int, int64, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	if method == "PATCH" {
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		req.Header.Set("Upload-Offset", strconv.FormatInt(off, 10))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	got, _ := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	return resp.StatusCode, got, string(data)
}

// TestServeUploadsToS3: two `serve --uploads s3://BUCKET/PREFIX` processes on
// one store: an upload begun on one is resumed on the other, lands in the
// bucket under its file name, and the first server's jobs analyse it from
// there (the prefix is a root without --root). A bucket that is not there
// stops serve at once, naming it.
func TestServeUploadsToS3(t *testing.T) {
	s3 := s3test.Start(t) // the servers inherit its AWS_* variables
	s3.MakeBucket(t, "lab")
	data := t.TempDir()
	fixtures := testfixtures.Path("pi05")
	a := startServer(t, "--data", data, "--root", fixtures, "--uploads", "s3://lab/incoming")
	b := startServer(t, "--data", data, "--root", fixtures, "--uploads", "s3://lab/incoming")

	model, err := os.ReadFile(testfixtures.Path("pi05", "vla", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	u := a.post(t, "/api/uploads", fmt.Sprintf(`{"side": "vla", "path": "model.safetensors", "size": %d}`, len(model)))
	id, spec := u["id"].(string), u["spec_path"].(string)
	key := "incoming/" + u["session"].(string) + "/vla/model.safetensors"
	if spec != "s3://lab/"+key {
		t.Fatalf("spec path %q, want s3://lab/%s", spec, key)
	}
	half := int64(len(model) / 2)
	if code, off, body := tusRequest(t, "PATCH", a.url+"/api/uploads/"+id, 0, model[:half]); code != 204 || off != half {
		t.Fatalf("first half on A: %d offset %d %s", code, off, body)
	}
	if code, off, _ := tusRequest(t, "HEAD", b.url+"/api/uploads/"+id, 0, nil); code != 200 || off != half {
		t.Fatalf("HEAD on B: %d offset %d, want 200 offset %d", code, off, half)
	}
	if code, off, body := tusRequest(t, "PATCH", b.url+"/api/uploads/"+id, half, model[half:]); code != 204 || off != int64(len(model)) {
		t.Fatalf("second half on B: %d offset %d %s", code, off, body)
	}
	info, err := s3.Client.StatObject(context.Background(), "lab", key, minio.StatObjectOptions{})
	if err != nil || info.Size != int64(len(model)) {
		t.Fatalf("s3://lab/%s: %d bytes (%v), want %d", key, info.Size, err, len(model))
	}

	created := a.post(t, "/api/analyses", fmt.Sprintf(`{"base": [%q], "vla": [%q]}`, testfixtures.Path("pi05", "base"), spec))
	done := a.waitFor(t, created["id"].(string), "done", func(a map[string]any) bool { return a["status"] == "done" || a["status"] == "failed" })
	if done["status"] != "done" {
		t.Fatalf("analysis of the upload in the bucket: %v", done)
	}

	code, _, stderr := run(t, "serve", "--addr", "127.0.0.1:0", "--no-demo", "--data", t.TempDir(), "--uploads", "s3://no-such-bucket/x")
	if code == 0 || !strings.Contains(stderr, `the bucket "no-such-bucket" cannot be used`) {
		t.Errorf("serve with a missing bucket: %d %q", code, stderr)
	}
	code, _, stderr = run(t, "serve", "--addr", "127.0.0.1:0", "--no-demo", "--data", t.TempDir(), "--uploads", "/srv/uploads")
	if code == 0 || !strings.Contains(stderr, "give s3://BUCKET/PREFIX") {
		t.Errorf("serve with a folder for --uploads: %d %q", code, stderr)
	}
}
