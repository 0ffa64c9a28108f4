package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/deltascope/deltascope/internal/s3test"
	"github.com/deltascope/deltascope/store"
)

const s3UploadStore = "s3://lab/uploads"

// s3UploadServers are two page servers behind "one address": the same store
// (one SQLite file) and the same upload bucket on a real S3 server (Versity),
// each with its own process state (tusd handler, locks, caches).
type s3UploadServers struct {
	s3     *s3test.Server
	a, b   *liveServer
	tokens map[string]string
}

func startS3UploadServers(t *testing.T, mutate func(*Config)) *s3UploadServers {
	t.Helper()
	s3 := s3test.Start(t)
	s3.MakeBucket(t, "lab")
	data := t.TempDir()
	opt := testServerOptions{data: data, limited: true, config: func(c *Config) {
		c.Auth = AuthAccounts
		c.UploadStore = s3UploadStore
		// The runner reads the uploads from the bucket (serve adds it too);
		// the server keeps it out of the file browser's roots.
		c.Roots = append(c.Roots, s3UploadStore)
		if mutate != nil {
			mutate(c)
		}
	}}
	a := startLiveServer(t, opt)
	b := startLiveServer(t, opt)
	tokens := map[string]string{}
	for _, name := range []string{"alice", "bob"} {
		if _, err := a.db.CreateUser(context.Background(), name, store.RoleEditor, testPassword); err != nil {
			t.Fatal(err)
		}
		secret, _, err := a.db.CreateAPIToken(context.Background(), name, "test")
		if err != nil {
			t.Fatal(err)
		}
		tokens[name] = secret
	}
	return &s3UploadServers{s3: s3, a: a, b: b, tokens: tokens}
}

// keys lists the bucket's object keys under prefix.
func (s *s3UploadServers) keys(t *testing.T, prefix string) []string {
	t.Helper()
	var out []string
	for obj := range s.s3.Client.ListObjects(context.Background(), "lab", minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		out = append(out, obj.Key)
	}
	return out
}

// multiparts lists the multipart uploads in progress for exactly key.
func (s *s3UploadServers) multiparts(t *testing.T, key string) int {
	t.Helper()
	n := 0
	for mu := range s.s3.Client.ListIncompleteUploads(context.Background(), "lab", key, true) {
		if mu.Err != nil {
			t.Fatal(mu.Err)
		}
		if mu.Key == key {
			n++
		}
	}
	return n
}

// analyse starts an analysis through c and waits for its end.
func analyse(t *testing.T, c tusClient, base, vla string) (string, map[string]any) {
	t.Helper()
	resp, body := c.req(t, "POST", "/api/analyses", strings.NewReader(fmt.Sprintf(`{"base": [%q], "vla": [%q]}`, base, vla)), "Content-Type", "application/json")
	var created map[string]any
	if resp.StatusCode != 202 || json.Unmarshal([]byte(body), &created) != nil {
		t.Fatalf("analysis of %s: %d %s", vla, resp.StatusCode, body)
	}
	id := created["id"].(string)
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		_, body := c.req(t, "GET", "/api/analyses/"+id, nil)
		var a map[string]any
		json.Unmarshal([]byte(body), &a)
		switch a["status"] {
		case "done", "failed", "cancelled":
			return id, a
		}
	}
	t.Fatalf("analysis %s of %s did not finish", id, vla)
	return "", nil
}

// An upload with --uploads s3://BUCKET/PREFIX, as a lab with several servers
// behind one address sees it: created and a third sent on server A, resumed
// on server B (HEAD for the offset, a chunk whose connection drops, HEAD
// again, PATCH the rest), finished into the bucket
// under its session, side and file name; analysed on server A from the bucket
// with the same result as the local file; another account gets 404 on both
// servers; an unfinished upload left idle is swept from the bucket by the
// server that did not receive it; a broken checkpoint is refused at the end
// with nothing left behind.
func TestS3UploadsResumeOnAnotherServer(t *testing.T) {
	s := startS3UploadServers(t, func(c *Config) {
		c.Guard.UploadExpiry = time.Hour
		c.Guard.UploadKeep = 30 * 24 * time.Hour
	})
	s.a.start() // A computes the analyses
	aliceA, aliceB := tusClient{s.a.URL, s.tokens["alice"]}, tusClient{s.b.URL, s.tokens["alice"]}
	local := filepath.Join(s.a.root, "pi05", "vla", "model.safetensors")
	data, err := os.ReadFile(local)
	if err != nil {
		t.Fatal(err)
	}

	resp, loc, body := aliceA.create(t, int64(len(data)), "side", "vla", "path", "model.safetensors", "filename", "model.safetensors")
	if resp.StatusCode != 201 {
		t.Fatalf("create on A: %d %s", resp.StatusCode, body)
	}
	url := strings.TrimPrefix(loc, s.a.URL) // the same path on any server
	session := resp.Header.Get("Deltascope-Upload-Session")
	spec := resp.Header.Get("Deltascope-Spec-Path")
	key := "uploads/" + session + "/vla/model.safetensors"
	if spec != "s3://lab/"+key {
		t.Fatalf("spec path %q, want s3://lab/%s", spec, key)
	}
	chunk := int64(len(data) / 3)
	if resp, body := aliceA.patch(t, url, 0, data[:chunk]); resp.StatusCode != 204 || resp.Header.Get("Upload-Offset") != strconv.FormatInt(chunk, 10) {
		t.Fatalf("first part on A: %d %s", resp.StatusCode, body)
	}
	// B never saw this upload: it learns the offset from the bucket.
	if code, off := aliceB.offset(t, url); code != 200 || off != chunk {
		t.Fatalf("HEAD on B: %d offset %d, want 200 offset %d", code, off, chunk)
	}
	// B's chunk loses its connection after 1000 bytes: what arrived is kept
	// in the bucket, and the client resumes from the offset HEAD gives.
	req, _ := http.NewRequest("PATCH", s.b.URL+url, &failingReader{data: data[chunk:], n: 1000})
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Authorization", "Bearer "+s.tokens["alice"])
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(chunk, 10))
	if resp, err := quickClient.Do(req); err == nil {
		resp.Body.Close()
	}
	off := int64(-1)
	for deadline := time.Now().Add(10 * time.Second); off < chunk; time.Sleep(10 * time.Millisecond) {
		if code, o := aliceB.offset(t, url); code == 200 {
			off = o
		}
		if time.Now().After(deadline) {
			t.Fatalf("HEAD on B after the drop: offset %d", off)
		}
	}
	t.Logf("offset after the dropped chunk: %d (%d before it)", off, chunk)
	for {
		resp, body = aliceB.patch(t, url, off, data[off:])
		if resp.StatusCode == 400 && strings.Contains(body, "ERR_UPLOAD_INTERRUPTED") || resp.StatusCode == 409 {
			_, off = aliceB.offset(t, url) // the dropped chunk was still saving: ask again
			continue
		}
		break
	}
	if resp.StatusCode != 204 || resp.Header.Get("Upload-Offset") != strconv.Itoa(len(data)) {
		t.Fatalf("the rest on B from %d: %d %s", off, resp.StatusCode, body)
	}
	if got := resp.Header.Get("Deltascope-Spec-Path"); got != spec {
		t.Errorf("B's finishing answer names %q, want %q", got, spec)
	}
	obj, err := s.s3.Client.GetObject(context.Background(), "lab", key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := io.ReadAll(obj)
	if err != nil || string(stored) != string(data) {
		t.Fatalf("s3://lab/%s holds %d bytes (%v), want the %d bytes sent", key, len(stored), err, len(data))
	}
	if code, off := aliceA.offset(t, url); code != 200 || off != int64(len(data)) {
		t.Errorf("HEAD of the finished upload on A: %d offset %d", code, off)
	}
	_, body = aliceA.req(t, "GET", url, nil)
	if !strings.Contains(body, `"complete":true`) || !strings.Contains(body, `"spec_path":"`+spec+`"`) {
		t.Errorf("GET of the finished upload on A: %s", body)
	}

	// Another account learns nothing, on either server.
	for _, bob := range []tusClient{{s.a.URL, s.tokens["bob"]}, {s.b.URL, s.tokens["bob"]}} {
		for _, m := range []string{"HEAD", "GET", "DELETE"} {
			if resp, body := bob.req(t, m, url, nil); resp.StatusCode != 404 {
				t.Errorf("%s of alice's upload by bob on %s: %d %s", m, bob.base, resp.StatusCode, body)
			}
		}
		if resp, body := bob.patch(t, url, 0, data[:10]); resp.StatusCode != 404 {
			t.Errorf("PATCH of alice's upload by bob on %s: %d %s", bob.base, resp.StatusCode, body)
		}
	}
	// The pages' file browser does not list the bucket (every account's
	// sessions): its roots are the local ones.
	if _, body := aliceA.req(t, "GET", "/api/files?root=0", nil); strings.Contains(body, "s3://") {
		t.Errorf("the file browser offers the upload bucket: %s", body)
	}

	// The sharded base in the same session, file by file (index, shards),
	// alternating servers: its side is one prefix, one source.
	base := filepath.Join(s.a.root, "pi05", "base")
	shards, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range shards {
		c := []tusClient{aliceA, aliceB}[i%2]
		file, _ := os.ReadFile(filepath.Join(base, f.Name()))
		resp, loc, body := c.create(t, int64(len(file)), "side", "base", "path", f.Name(), "session", session)
		if resp.StatusCode != 201 {
			t.Fatalf("create base/%s: %d %s", f.Name(), resp.StatusCode, body)
		}
		if resp, body := c.patch(t, strings.TrimPrefix(loc, c.base), 0, file); resp.StatusCode != 204 {
			t.Fatalf("send base/%s: %d %s", f.Name(), resp.StatusCode, body)
		}
	}
	baseSpec := "s3://lab/uploads/" + session + "/base"

	// Analysed on A from the bucket: the same result as the local files.
	fromS3, a := analyse(t, aliceA, baseSpec, spec)
	if a["status"] != "done" {
		t.Fatalf("analysis of the uploaded checkpoints: %v", a)
	}
	fromDisk, a := analyse(t, aliceA, base, local)
	if a["status"] != "done" {
		t.Fatalf("analysis of the local file: %v", a)
	}
	remote, err := s.a.db.Tensors(context.Background(), fromS3, store.TensorFilter{})
	if err != nil {
		t.Fatal(err)
	}
	disk, err := s.a.db.Tensors(context.Background(), fromDisk, store.TensorFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(remote) == 0 || !reflect.DeepEqual(remote, disk) {
		t.Errorf("the analysis from s3 (%d tensors) differs from the local one (%d tensors)", len(remote), len(disk))
	}

	// A finished upload nobody analyses, in a session of its own.
	resp, _, body = aliceB.create(t, 3, "side", "vla", "path", "notes.txt")
	if resp.StatusCode != 201 {
		t.Fatalf("create notes.txt: %d %s", resp.StatusCode, body)
	}
	notesKey := "uploads/" + resp.Header.Get("Deltascope-Upload-Session") + "/vla/notes.txt"
	if resp, body := aliceB.patch(t, strings.TrimPrefix(resp.Header.Get("Location"), s.b.URL), 0, []byte("abc")); resp.StatusCode != 204 {
		t.Fatalf("send notes.txt: %d %s", resp.StatusCode, body)
	}

	// An upload started on B and abandoned: A's sweep removes it from the bucket.
	resp, stale, body := aliceB.create(t, 10<<20, "side", "base", "path", "stale.safetensors")
	if resp.StatusCode != 201 {
		t.Fatalf("create on B: %d %s", resp.StatusCode, body)
	}
	staleSession := resp.Header.Get("Deltascope-Upload-Session")
	stale = strings.TrimPrefix(stale, s.b.URL)
	if resp, body := aliceB.patch(t, stale, 0, make([]byte, 1000)); resp.StatusCode != 204 {
		t.Fatalf("part of the stale upload: %d %s", resp.StatusCode, body)
	}
	staleKey := "uploads/" + staleSession + "/base/stale.safetensors"
	if got := s.keys(t, "uploads/.tus/"+staleSession+"/"); len(got) != 2 || s.multiparts(t, staleKey) != 1 {
		t.Fatalf("the unfinished upload's state in the bucket: %v and %d multipart uploads, want its .info and .part and one", got, s.multiparts(t, staleKey))
	}
	later := time.Now().Add(2 * time.Hour)
	s.a.db.Now = func() time.Time { return later }
	if n, err := s.a.srv.SweepUploads(context.Background()); err != nil || n != 1 {
		t.Fatalf("A swept %d uploads (%v), want 1", n, err)
	}
	if got := s.keys(t, "uploads/.tus/"+staleSession+"/"); len(got) != 0 {
		t.Errorf("the swept upload's objects are still in the bucket: %v", got)
	}
	if n := s.multiparts(t, staleKey); n != 0 {
		t.Errorf("the swept upload's multipart upload is still open (%d)", n)
	}
	if code, _ := aliceB.offset(t, stale); code != 404 {
		t.Errorf("HEAD of the swept upload on B: %d, want 404", code)
	}
	// A month on: the finished upload nobody analysed goes, the analysed ones stay.
	later = later.Add(31 * 24 * time.Hour)
	if n, err := s.a.srv.SweepUploads(context.Background()); err != nil || n != 1 {
		t.Fatalf("A swept %d finished uploads (%v), want 1", n, err)
	}
	if got := s.keys(t, notesKey); len(got) != 0 {
		t.Errorf("the unused finished upload is still in the bucket: %v", got)
	}
	if got := s.keys(t, "uploads/"+session+"/"); len(got) != 1+len(shards) {
		t.Errorf("the analysed uploads in the bucket: %v, want the model and the %d base files", got, len(shards))
	}

	// A broken checkpoint: refused when its last byte arrives, with the
	// reason, and nothing stays in the bucket or the store.
	bad := safetensorsFile(`{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}`, make([]byte, 8))
	resp, badURL, body := aliceA.create(t, int64(len(bad)), "side", "vla", "path", "broken.safetensors")
	if resp.StatusCode != 201 {
		t.Fatalf("create broken.safetensors: %d %s", resp.StatusCode, body)
	}
	badSession := resp.Header.Get("Deltascope-Upload-Session")
	resp, body = aliceB.patch(t, strings.TrimPrefix(badURL, s.a.URL), 0, bad)
	if resp.StatusCode != 400 || !strings.Contains(body, "broken.safetensors") {
		t.Errorf("finishing a broken checkpoint: %d %s, want 400 naming the file", resp.StatusCode, body)
	}
	if got := s.keys(t, "uploads/"+badSession+"/"); len(got) != 0 {
		t.Errorf("the refused checkpoint is in the bucket: %v", got)
	}
	if got := s.keys(t, "uploads/.tus/"+badSession+"/"); len(got) != 0 {
		t.Errorf("the refused checkpoint's state is in the bucket: %v", got)
	}
	if _, body := aliceA.req(t, "GET", "/api/uploads", nil); strings.Contains(body, badSession) {
		t.Errorf("the refused checkpoint is still listed: %s", body)
	}
}

// The create hook's limits hold on the S3 store and across servers: a file
// past --max-upload is refused (413), the account's byte quota counts what it
// holds through every server (507) and its count too (429), and a refused
// creation leaves nothing in the bucket.
func TestS3UploadLimitsAcrossServers(t *testing.T) {
	s := startS3UploadServers(t, func(c *Config) {
		c.MaxUploadBytes = 600
		c.Guard.MaxUploadsPerUser = 3
		c.Guard.MaxUploadBytesPerUser = 1000
	})
	aliceA, aliceB := tusClient{s.a.URL, s.tokens["alice"]}, tusClient{s.b.URL, s.tokens["alice"]}
	if resp, _, body := aliceA.create(t, 700, "side", "base", "path", "big.bin"); resp.StatusCode != 413 || !strings.Contains(body, "accepts files up to 600 bytes") {
		t.Errorf("one file past --max-upload: %d %s", resp.StatusCode, body)
	}
	if resp, _, body := aliceA.create(t, 600, "side", "base", "path", "a.bin"); resp.StatusCode != 201 {
		t.Fatalf("a.bin on A: %d %s", resp.StatusCode, body)
	}
	if resp, _, body := aliceB.create(t, 500, "side", "base", "path", "b.bin"); resp.StatusCode != 507 || !strings.Contains(body, "quota of 1000 bytes") {
		t.Errorf("past the byte quota on B: %d %s", resp.StatusCode, body)
	}
	for i, c := range []tusClient{aliceB, aliceA} {
		if resp, _, body := c.create(t, 1, "side", "base", "path", fmt.Sprintf("c%d.txt", i)); resp.StatusCode != 201 {
			t.Fatalf("a small file on %s: %d %s", c.base, resp.StatusCode, body)
		}
	}
	if resp, _, body := aliceB.create(t, 1, "side", "base", "path", "d.txt"); resp.StatusCode != 429 || !strings.Contains(body, "limit 3") {
		t.Errorf("past the count on B: %d %s", resp.StatusCode, body)
	}
	var infos int
	for _, k := range s.keys(t, "uploads/") {
		if strings.HasSuffix(k, ".info") {
			infos++
		}
		for _, refused := range []string{"big.bin", "b.bin", "d.txt"} {
			if strings.Contains(k, refused) {
				t.Errorf("a refused upload is in the bucket: %s", k)
			}
		}
	}
	if infos != 3 {
		t.Errorf("%d uploads' states in the bucket, want the 3 accepted", infos)
	}
}
