package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/internal/hubtest"
	"github.com/deltascope/deltascope/internal/s3test"
	"github.com/deltascope/deltascope/internal/testfixtures"
	"github.com/deltascope/deltascope/store"
)

// analyzeJSON runs analyze with --rows --units and returns its JSON.
func analyzeJSON(t *testing.T, base, vla string, extra ...string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.json")
	args := append([]string{"analyze", "--base", base, "--vla", vla, "--rows", "--units", "--json", out}, extra...)
	if code, _, stderr := run(t, args...); code != 0 {
		t.Fatalf("analyze %s %s: %s", base, vla, stderr)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestS3AnalyzeMatchesLocal: the π0.5 fixtures read from a real S3 server give
// byte for byte the JSON of the same files on disk, inspect lists them by
// their s3:// paths, and --data caches the result by the objects' identity.
func TestS3AnalyzeMatchesLocal(t *testing.T) {
	s := s3test.Start(t)
	s.MakeBucket(t, "models")
	s.PutDir(t, "models", "pi05/base", testfixtures.Path("pi05", "base"))
	s.PutDir(t, "models", "pi05/vla", testfixtures.Path("pi05", "vla"))
	local := analyzeJSON(t, testfixtures.Path("pi05", "base"), testfixtures.Path("pi05", "vla", "model.safetensors"))
	remote := analyzeJSON(t, "s3://models/pi05/base", "s3://models/pi05/vla/model.safetensors")
	if string(local) != string(remote) {
		t.Fatal("analyze over s3:// differs from the local run")
	}
	code, stdout, stderr := run(t, "inspect", "--json", "s3://models/pi05/base")
	if code != 0 || !strings.Contains(stdout, `"s3://models/pi05/base/model-00001-of-00004.safetensors"`) {
		t.Fatalf("inspect s3://: %d %s %.300s", code, stderr, stdout)
	}
	data := t.TempDir()
	cached := analyzeJSON(t, "s3://models/pi05/base", "s3://models/pi05/vla/model.safetensors", "--data", data)
	again := analyzeJSON(t, "s3://models/pi05/base", "s3://models/pi05/vla/model.safetensors", "--data", data)
	// --data adds the content fingerprints, which must agree too.
	localCached := analyzeJSON(t, testfixtures.Path("pi05", "base"), testfixtures.Path("pi05", "vla", "model.safetensors"), "--data", t.TempDir())
	if string(cached) != string(localCached) || string(again) != string(localCached) {
		t.Fatal("analyze --data over s3:// differs from the local run")
	}
	if n := countAnalyses(t, data); n != 1 {
		t.Errorf("%d analyses stored for two identical runs; want the second served from the cache", n)
	}
	// The same bytes uploaded again keep their ETag: still one checkpoint.
	s.Put(t, "models", "pi05/vla/model.safetensors", testfixtures.Path("pi05", "vla", "model.safetensors"))
	analyzeJSON(t, "s3://models/pi05/base", "s3://models/pi05/vla/model.safetensors", "--data", data)
	if n := countAnalyses(t, data); n != 1 {
		t.Errorf("%d analyses after the same bytes were uploaded again; want the cached one", n)
	}
	// Other bytes (a new ETag) are another checkpoint: no stale answer.
	vla, err := os.ReadFile(testfixtures.Path("pi05", "vla", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	vla[len(vla)-2] ^= 0x01
	s.PutBytes(t, "models", "pi05/vla/model.safetensors", vla)
	if changed := analyzeJSON(t, "s3://models/pi05/base", "s3://models/pi05/vla/model.safetensors", "--data", data); string(changed) == string(cached) {
		t.Error("a rewritten object was answered from the cache")
	}
	if n := countAnalyses(t, data); n != 2 {
		t.Errorf("%d analyses after the object was rewritten; want a new one", n)
	}
	code, _, stderr = run(t, "analyze", "--base", "s3://models/pi05/base", "--vla", "s3://models/pi05/vla/missing.safetensors")
	if code == 0 || !strings.Contains(stderr, "s3://models/pi05/vla/missing.safetensors: no such object") {
		t.Errorf("missing key: %d %q", code, stderr)
	}
}

func countAnalyses(t *testing.T, data string) int {
	t.Helper()
	db, err := store.Open(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	list, err := db.List(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// TestHubAnalyzeMatchesLocal: the fixtures published on a stand-in Hub give
// the local JSON; inspect names the commit read; a moved branch is another
// checkpoint for the cache.
func TestHubAnalyzeMatchesLocal(t *testing.T) {
	h := hubtest.Start(t)
	files := hubtest.Dir(t, "base", testfixtures.Path("pi05", "base"))
	for k, v := range hubtest.Dir(t, "vla", testfixtures.Path("pi05", "vla")) {
		files[k] = v
	}
	sha := h.Commit(t, "lab/pi05", "main", true, files)
	t.Setenv("HF_TOKEN", h.Token)
	local := analyzeJSON(t, testfixtures.Path("pi05", "base"), testfixtures.Path("pi05", "vla", "model.safetensors"))
	remote := analyzeJSON(t, "hf://lab/pi05/base", "hf://lab/pi05@main/vla/model.safetensors")
	if string(local) != string(remote) {
		t.Fatal("analyze over hf:// differs from the local run")
	}
	code, stdout, stderr := run(t, "inspect", "--json", "hf://lab/pi05/vla/model.safetensors")
	if code != 0 || !strings.Contains(stdout, `"hf://lab/pi05@`+sha+`/vla/model.safetensors"`) {
		t.Fatalf("inspect hf://: %d %s %.300s", code, stderr, stdout)
	}
	var rep struct {
		Tensors []json.RawMessage `json:"tensors"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || len(rep.Tensors) == 0 {
		t.Fatalf("inspect --json: %v", err)
	}
	data := t.TempDir()
	analyzeJSON(t, "hf://lab/pi05/base", "hf://lab/pi05/vla/model.safetensors", "--data", data)
	analyzeJSON(t, "hf://lab/pi05/base", "hf://lab/pi05/vla/model.safetensors", "--data", data)
	if n := countAnalyses(t, data); n != 1 {
		t.Errorf("%d analyses for two runs of one commit; want one", n)
	}
	h.Commit(t, "lab/pi05", "main", true, files) // same files, new commit
	analyzeJSON(t, "hf://lab/pi05/base", "hf://lab/pi05/vla/model.safetensors", "--data", data)
	if n := countAnalyses(t, data); n != 2 {
		t.Errorf("%d analyses after main moved; want the new commit analysed", n)
	}
	t.Setenv("HF_TOKEN", "")
	code, _, stderr = run(t, "inspect", "hf://lab/pi05/base")
	if code == 0 || !strings.Contains(stderr, "hf://lab/pi05/base: the Hub refused access (gated or private); set HF_TOKEN") {
		t.Errorf("gated without a token: %d %q", code, stderr)
	}
}

// TestServeRemoteRoots: a server started with --root s3://BUCKET/PREFIX and
// --root hf://ORG previews and analyses remote sources under them (the
// preview from headers only), and refuses remote sources outside them.
func TestServeRemoteRoots(t *testing.T) {
	s := s3test.Start(t)
	s.MakeBucket(t, "models")
	s.PutDir(t, "models", "pi05/base", testfixtures.Path("pi05", "base"))
	s.PutDir(t, "models", "pi05/vla", testfixtures.Path("pi05", "vla"))
	s.PutDir(t, "models", "other/vla", testfixtures.Path("pi05", "vla"))
	h := hubtest.Start(t)
	h.Commit(t, "lab/pi05", "main", false, hubtest.Dir(t, "vla", testfixtures.Path("pi05", "vla")))
	srv := startServer(t, "--data", t.TempDir(), "--root", "s3://models/pi05", "--root", "hf://lab")
	body := `{"base": ["s3://models/pi05/base"], "vla": ["hf://lab/pi05/vla/model.safetensors"]}`
	pv := srv.post(t, "/api/preview", body)
	if pv["aligned"] != float64(68) || pv["base_tensors"] != float64(68) {
		t.Fatalf("preview of remote sources: %v", pv)
	}
	id, _ := srv.post(t, "/api/analyses", body)["id"].(string)
	a := srv.waitFor(t, id, "done", func(a map[string]any) bool { return a["status"] == "done" || a["status"] == "failed" })
	if a["status"] != "done" {
		t.Fatalf("remote analysis: %v", a)
	}
	for _, bad := range []string{
		`{"base": ["s3://models/other/vla/model.safetensors"], "vla": ["hf://lab/pi05/vla/model.safetensors"]}`,
		`{"base": ["s3://models/pi05/base"], "vla": ["hf://elsewhere/pi05/vla/model.safetensors"]}`,
	} {
		resp, err := http.Post(srv.url+"/api/preview", "application/json", strings.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(msg), "outside the allowed sources") {
			t.Errorf("%s: %d %s; want 403 outside the allowed sources", bad, resp.StatusCode, msg)
		}
	}
}

// TestS3Mask: mask takes s3:// sources; the recipe export needs no local file
// (masked and sliced copies of a remote VLA: TestMaskExportRemoteVLA).
func TestS3Mask(t *testing.T) {
	s := s3test.Start(t)
	s.MakeBucket(t, "models")
	s.PutDir(t, "models", "pi05/base", testfixtures.Path("pi05", "base"))
	s.PutDir(t, "models", "pi05/vla", testfixtures.Path("pi05", "vla"))
	out := filepath.Join(t.TempDir(), "indices.json")
	localOut := filepath.Join(t.TempDir(), "indices.json")
	if code, _, stderr := run(t, "mask", "--base", "s3://models/pi05/base", "--vla", "s3://models/pi05/vla/model.safetensors", "--preset", "pi05-moderate", "--export", "indices", "--out", out); code != 0 {
		t.Fatalf("mask over s3://: %s", stderr)
	}
	if code, _, stderr := run(t, "mask", "--base", testfixtures.Path("pi05", "base"), "--vla", testfixtures.Path("pi05", "vla", "model.safetensors"), "--preset", "pi05-moderate", "--export", "indices", "--out", localOut); code != 0 {
		t.Fatalf("mask: %s", stderr)
	}
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(localOut)
	if len(a) == 0 || string(a) != string(b) {
		t.Error("mask indices over s3:// differ from the local run's")
	}
}
