package handlers

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deltascope/deltascope/store"
)

// tusClient is the plain protocol, as any tus client speaks it: no JSON, no
// deltascope-specific request.
type tusClient struct {
	base, token string
}

func (c tusClient) req(t *testing.T, method, url string, body io.Reader, hdr ...string) (*http.Response, string) {
	t.Helper()
	if !strings.HasPrefix(url, "http") {
		url = c.base + url
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := quickClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(data)
}

func tusMeta(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, kv[i]+" "+base64.StdEncoding.EncodeToString([]byte(kv[i+1])))
	}
	return strings.Join(parts, ",")
}

// create is a tus creation; it returns the response and the upload's URL.
func (c tusClient) create(t *testing.T, size int64, kv ...string) (*http.Response, string, string) {
	t.Helper()
	resp, body := c.req(t, "POST", "/api/uploads", nil, "Upload-Length", strconv.FormatInt(size, 10), "Upload-Metadata", tusMeta(kv...))
	return resp, resp.Header.Get("Location"), body
}

func (c tusClient) offset(t *testing.T, url string) (int, int64) {
	t.Helper()
	resp, _ := c.req(t, "HEAD", url, nil)
	off, _ := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	return resp.StatusCode, off
}

func (c tusClient) patch(t *testing.T, url string, off int64, data []byte) (*http.Response, string) {
	t.Helper()
	return c.req(t, "PATCH", url, strings.NewReader(string(data)), "Content-Type", "application/offset+octet-stream", "Upload-Offset", strconv.FormatInt(off, 10))
}

// A plain tus client uploads a checkpoint: create, PATCH in chunks, lose the
// connection, HEAD for the offset, resume, finish; the file is where analyses
// read it and an analysis of it completes.
func TestTusClientUploadsAndResumes(t *testing.T) {
	s := newGuardedServer(t, true, nil)
	c := tusClient{base: s.URL}
	data, err := os.ReadFile(filepath.Join(fixtures, "pi05", "vla", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	resp, url, body := c.create(t, int64(len(data)), "side", "vla", "path", "model.safetensors", "filename", "model.safetensors")
	if resp.StatusCode != 201 || !strings.Contains(url, "/api/uploads/") || resp.Header.Get("Tus-Resumable") != "1.0.0" {
		t.Fatalf("create: %d %q %s", resp.StatusCode, url, body)
	}
	spec := resp.Header.Get("Deltascope-Spec-Path")
	chunk := int64(len(data) / 3)
	if resp, body := c.patch(t, url, 0, data[:chunk]); resp.StatusCode != 204 || resp.Header.Get("Upload-Offset") != strconv.FormatInt(chunk, 10) {
		t.Fatalf("first chunk: %d %s", resp.StatusCode, body)
	}
	// The second chunk's connection drops after 1000 bytes.
	req, _ := http.NewRequest("PATCH", url, &failingReader{data: data[chunk:], n: 1000})
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(chunk, 10))
	if resp, err := quickClient.Do(req); err == nil {
		resp.Body.Close()
	}
	var off int64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		code, o := c.offset(t, url)
		if code == 200 && o >= chunk {
			off = o
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("HEAD after the drop: %d offset %d", code, o)
		}
	}
	for off < int64(len(data)) {
		end := min(int64(len(data)), off+chunk)
		resp, body := c.patch(t, url, off, data[off:end])
		if resp.StatusCode == 400 && strings.Contains(body, "ERR_UPLOAD_INTERRUPTED") || resp.StatusCode == 409 {
			_, off = c.offset(t, url) // the dropped request was still saving: ask again
			continue
		}
		if resp.StatusCode != 204 {
			t.Fatalf("PATCH at %d: %d %s", off, resp.StatusCode, body)
		}
		off, _ = strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	}
	if stored, err := os.ReadFile(spec); err != nil || string(stored) != string(data) {
		t.Fatalf("the finished file at %s differs from the original (%v)", spec, err)
	}
	if code, off := c.offset(t, url); code != 200 || off != int64(len(data)) {
		t.Errorf("HEAD of the finished upload: %d offset %d", code, off)
	}
	code, created := s.do(t, "POST", "/api/analyses", fmt.Sprintf(`{"base": [%q], "vla": [%q]}`, spec, spec))
	if code != 202 {
		t.Fatalf("analysis of the upload: %d %v", code, created)
	}
	if a := s.waitDone(t, created["id"].(string)); a["status"] != "done" {
		t.Errorf("analysis of the upload: %v", a)
	}
}

// tokenServer is a guarded server with accounts on, and a token per user.
func tokenServer(t *testing.T, mutate func(*Config), users ...string) (*guardedServer, map[string]string) {
	t.Helper()
	s := newGuardedServer(t, false, func(c *Config) {
		c.Auth = AuthAccounts
		if mutate != nil {
			mutate(c)
		}
	})
	fastPasswords(t, s.db)
	tokens := map[string]string{}
	for _, name := range users {
		role := store.RoleEditor
		if name == "viewer" {
			role = store.RoleViewer
		}
		if _, err := s.db.CreateUser(context.Background(), name, role, testPassword); err != nil {
			t.Fatal(err)
		}
		secret, _, err := s.db.CreateAPIToken(context.Background(), name, "test")
		if err != nil {
			t.Fatal(err)
		}
		tokens[name] = secret
	}
	return s, tokens
}

// Uploads belong to their creator: another account (editor or viewer) gets
// 404 for every request on it, does not see it listed, and cannot add a file
// to its session (the attack: a config.json that changes head geometry).
func TestUploadsBelongToTheirCreator(t *testing.T) {
	s, tok := tokenServer(t, nil, "alice", "bob", "viewer")
	alice, bob := tusClient{s.URL, tok["alice"]}, tusClient{s.URL, tok["bob"]}
	resp, url, body := alice.create(t, 10, "side", "base", "path", "notes.txt")
	if resp.StatusCode != 201 {
		t.Fatalf("alice creates: %d %s", resp.StatusCode, body)
	}
	session := resp.Header.Get("Deltascope-Upload-Session")
	if resp, body := alice.patch(t, url, 0, []byte("01234")); resp.StatusCode != 204 {
		t.Fatalf("alice sends: %d %s", resp.StatusCode, body)
	}
	for _, who := range []tusClient{bob, {s.URL, tok["viewer"]}} {
		for _, m := range []string{"HEAD", "GET", "DELETE"} {
			// A viewer may not delete anything (403); an editor learns nothing (404).
			if resp, body := who.req(t, m, url, nil); resp.StatusCode != 404 && !(m == "DELETE" && who.token == tok["viewer"] && resp.StatusCode == 403) {
				t.Errorf("%s of alice's upload by another account: %d %s", m, resp.StatusCode, body)
			}
		}
		if resp, body := who.patch(t, url, 5, []byte("56789")); resp.StatusCode != 404 && resp.StatusCode != 403 {
			t.Errorf("PATCH of alice's upload by another account: %d %s", resp.StatusCode, body)
		}
		if _, body := who.req(t, "GET", "/api/uploads", nil); strings.Contains(body, session) {
			t.Errorf("another account's listing shows alice's session: %s", body)
		}
	}
	// The file browser hides the session folder and tusd's folder from others.
	for _, who := range []tusClient{bob, {s.URL, tok["viewer"]}} {
		if _, body := who.req(t, "GET", "/api/files?root=0", nil); strings.Contains(body, session) || strings.Contains(body, ".tus") {
			t.Errorf("another account lists the upload folders: %s", body)
		}
		for _, p := range []string{session, session + "/base", ".tus"} {
			if resp, body := who.req(t, "GET", "/api/files?root=0&path="+p, nil); resp.StatusCode != 404 {
				t.Errorf("another account browses %s: %d %s", p, resp.StatusCode, body)
			}
		}
	}
	if resp, _, body := bob.create(t, 3, "side", "base", "path", "config.json", "session", session); resp.StatusCode != 404 {
		t.Errorf("bob adds a file to alice's session: %d %s", resp.StatusCode, body)
	}
	// Alice's upload is untouched and hers to finish.
	if code, off := alice.offset(t, url); code != 200 || off != 5 {
		t.Errorf("alice's HEAD: %d offset %d", code, off)
	}
	if _, body := alice.req(t, "GET", "/api/uploads", nil); !strings.Contains(body, session) {
		t.Errorf("alice's listing lacks her upload: %s", body)
	}
	if resp, body := alice.patch(t, url, 5, []byte("56789")); resp.StatusCode != 204 {
		t.Errorf("alice finishes: %d %s", resp.StatusCode, body)
	}
	// The finished file is in her session folder, which she (only) sees.
	if resp, body := alice.req(t, "GET", "/api/files?root=0", nil); resp.StatusCode != 200 || !strings.Contains(body, session) || strings.Contains(body, ".tus") {
		t.Errorf("alice's listing of the upload folder: %d %s", resp.StatusCode, body)
	}
}

// Each account has an upload quota: past the count 429, past the bytes 507,
// and one file past --max-upload 413. The attack of issue 14 (3,000 uploads in
// 10 s) stops at the count.
func TestUploadQuota(t *testing.T) {
	s, tok := tokenServer(t, func(c *Config) {
		c.Guard.MaxUploadsPerUser = 20
		c.Guard.MaxUploadBytesPerUser = 1000
		c.MaxUploadBytes = 600
	}, "alice", "bob")
	alice, bob := tusClient{s.URL, tok["alice"]}, tusClient{s.URL, tok["bob"]}
	codes := map[int]int{}
	for i := range 100 {
		resp, _, _ := alice.create(t, 1, "side", "base", "path", fmt.Sprintf("f%d.txt", i))
		codes[resp.StatusCode]++
	}
	if codes[201] != 20 || codes[429] != 80 {
		t.Errorf("100 creations against a quota of 20: %v", codes)
	}
	resp, _, body := alice.create(t, 1, "side", "base", "path", "one-more.txt")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "you hold 20 uploads (limit 20)") {
		t.Errorf("past the count: %d %s", resp.StatusCode, body)
	}
	if resp, _, body := bob.create(t, 700, "side", "base", "path", "big.bin"); resp.StatusCode != 413 || !strings.Contains(body, "accepts files up to 600 bytes") {
		t.Errorf("one file past --max-upload: %d %s", resp.StatusCode, body)
	}
	if resp, _, body := bob.create(t, 600, "side", "base", "path", "a.bin"); resp.StatusCode != 201 {
		t.Fatalf("bob's first file: %d %s", resp.StatusCode, body)
	}
	if resp, _, body := bob.create(t, 500, "side", "base", "path", "b.bin"); resp.StatusCode != 507 || !strings.Contains(body, "quota of 1000 bytes") {
		t.Errorf("past the bytes: %d %s", resp.StatusCode, body)
	}
	if n := s.uploadRows(t); n != 21 {
		t.Errorf("%d upload rows, want 21", n)
	}
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// The uploadLocks attack of issue 14: a viewer sends 1,200 HEADs with 500 KB
// random ids (the old server took a lock per id and never let it go: RSS 37 MB
// → 1.09 GB). Now a 500 KB request line is refused before routing (431), a
// 48 KB id (under that cap) and an id of the right shape that does not exist
// are answered 404 without a lock, the connections refused linger briefly and
// the address hits its connection cap (429); the heap does not grow, and
// /healthz answers another client.
func TestUploadLockAttackDoesNotGrowMemory(t *testing.T) {
	s, tok := tokenServer(t, nil, "viewer")
	const attacks, idBytes, midID = 1200, 500 << 10, 48 << 10
	random := make([]byte, idBytes*3/4)
	rand.Read(random)
	long := base64.RawURLEncoding.EncodeToString(random)
	before := heapInUse()

	// A fresh connection per request, like an attacker's script; the server's
	// answer past the per-address connection cap (429) then answers the
	// request instead of surprising an idle pooled connection.
	attacker := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	other := otherClient()
	var mu sync.Mutex
	codes := map[string]int{}
	midAnswered := 0 // 48 KB ids the handler answered
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				var id string
				switch i % 6 {
				case 0:
					// 500 KB, different each time (a sixth of the requests: the
					// server reads 64 KB of each before refusing it, which takes
					// a while on loopback)
					id = fmt.Sprintf("%06d", i) + long[6:]
				case 1, 2, 3, 4:
					// 48 KB, different each time: under the request-header cap,
					// so these reach the handler; 800 of them are 38 MB of ids,
					// which a lock (or anything else) kept per id would hold.
					id = fmt.Sprintf("%06d", i) + long[6:midID]
				default:
					id = base64.RawURLEncoding.EncodeToString(random[i%1000 : i%1000+9]) // the real shape, unknown
				}
				req, _ := http.NewRequest("HEAD", s.URL+"/api/uploads/"+id, nil)
				req.Header.Set("Tus-Resumable", "1.0.0")
				req.Header.Set("Authorization", "Bearer "+tok["viewer"])
				key := "error"
				if resp, err := attacker.Do(req); err == nil {
					resp.Body.Close()
					key = strconv.Itoa(resp.StatusCode)
				}
				mu.Lock()
				codes[key]++
				if len(id) > 1000 && len(id) < idBytes && key == "404" {
					midAnswered++
				}
				mu.Unlock()
			}
		}()
	}
	healthy := true
	for i := range attacks {
		work <- i
		if i%200 == 0 {
			if resp, err := other.Get(s.URL + "/healthz"); err != nil || resp.StatusCode != 200 {
				healthy = false
			} else {
				resp.Body.Close()
			}
		}
	}
	close(work)
	wg.Wait()
	// This server logs into memory, each long id in its access line; a real
	// server writes them out. Drop them so the heap is what the server keeps.
	s.logs.mu.Lock()
	logged := s.logs.b.Cap()
	s.logs.b = bytes.Buffer{}
	s.logs.mu.Unlock()
	after := heapInUse()
	growth := int64(after) - int64(before)
	t.Logf("%d HEADs: %v; live heap %d MB → %d MB (after dropping %d MB of logs)", attacks, codes, before>>20, after>>20, logged>>20)
	if !healthy {
		t.Error("/healthz failed during the attack")
	}
	if codes["200"] > 0 || codes["404"] == 0 || codes["404"]+codes["429"]+codes["431"]+codes["error"] != attacks {
		t.Errorf("unknown ids: %v, want 404 (shaped ids), 431 (500 KB ids) or 429 (connection cap), never 200", codes)
	}
	if midAnswered*midID <= 16<<20 {
		t.Errorf("only %d of the 48 KB ids reached the handler: too few to show a leak over the 16 MB bound", midAnswered)
	}
	if growth > 16<<20 {
		t.Errorf("the live heap grew by %d MB over the attack", growth>>20)
	}
}
