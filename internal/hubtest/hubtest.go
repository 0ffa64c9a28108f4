// Package hubtest is a stand-in for the Hugging Face Hub, for tests that must
// not leave the machine. It implements the two endpoints deltascope uses, as
// the Hub documents and answers them:
//
//   - GET /api/models/{org}/{repo}/revision/{rev}: the commit a branch, tag or
//     sha names, as JSON {"id", "sha", "siblings": [{"rfilename"}]};
//   - HEAD and GET /{org}/{repo}/resolve/{rev}/{path}: a small (git) file is
//     served directly, with ETag and X-Repo-Commit; a large (LFS) file is a
//     302 redirect to a second server, the "CDN", carrying X-Linked-Size,
//     X-Linked-Etag and X-Repo-Commit; the CDN serves Range requests;
//   - GET /api/models/{org}/{repo}/tree/{rev}[/{path}]: the entries directly
//     in a folder (all below it with ?recursive=true), as a JSON array of
//     {"type": "file"|"directory", "oid", "size", "path"}, files in LFS with
//     "lfs": {"oid", "size", "pointerSize"}; folders first, then files, each
//     by path; TreePage entries a page (1,000 by default, as on the Hub),
//     the next page named by a Link header (rel="next") carrying a cursor.
//
// A gated repository answers 401 without the right Bearer token; a missing
// repository, revision or file answers 404 with the Hub's X-Error-Code.
package hubtest

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Hub is a running stand-in, with its CDN.
type Hub struct {
	URL   string // the HF_ENDPOINT to use
	Token string // the token gated repositories accept

	// CDNRanges counts the ranged GETs the CDN served; HubGets the GETs of
	// file contents served by the Hub itself (small files).
	CDNRanges, HubGets atomic.Int64
	// FailRanges makes the CDN answer that many ranged GETs with 503 (a
	// transient failure a reader should retry); CutBlobs makes it serve every
	// file short by that many bytes (a broken mirror).
	FailRanges, CutBlobs atomic.Int64
	// TreePage is the tree API's page size (0: the Hub's 1,000); TreeGets
	// counts the tree pages served.
	TreePage int
	TreeGets atomic.Int64

	mu    sync.Mutex
	repos map[string]*repo
	blobs map[string][]byte // by sha256, on the CDN
	cdn   *httptest.Server
}

type repo struct {
	gated   bool
	refs    map[string]string            // branch or tag → commit sha
	commits map[string]map[string][]byte // sha → path → content
}

// Start runs a Hub and its CDN until the test ends and points HF_ENDPOINT and
// HF_TOKEN (unset) of the test at it.
func Start(t *testing.T) *Hub {
	t.Helper()
	h := &Hub{Token: "hf_test_token", repos: map[string]*repo{}, blobs: map[string][]byte{}}
	h.cdn = httptest.NewServer(http.HandlerFunc(h.serveCDN))
	t.Cleanup(h.cdn.Close)
	hub := httptest.NewServer(http.HandlerFunc(h.serveHub))
	t.Cleanup(hub.Close)
	h.URL = hub.URL
	t.Setenv("HF_ENDPOINT", h.URL)
	t.Setenv("HF_TOKEN", "")
	return h
}

// Commit adds a commit to repo (ORG/NAME) holding files (repository path →
// local file), points branch at it, and returns its sha.
func (h *Hub) Commit(t testing.TB, name, branch string, gated bool, files map[string]string) string {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.repos[name]
	if r == nil {
		r = &repo{refs: map[string]string{}, commits: map[string]map[string][]byte{}}
		h.repos[name] = r
	}
	r.gated = gated
	content := map[string][]byte{}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	sum := sha1.New()
	sum.Write([]byte(name + "\x00" + branch + "\x00" + time.Now().String()))
	for _, p := range paths {
		data, err := os.ReadFile(files[p])
		if err != nil {
			t.Fatal(err)
		}
		content[p] = data
		sum.Write([]byte(p))
		sum.Write(data)
		if isLFS(p) {
			d := sha256.Sum256(data)
			h.blobs[hex.EncodeToString(d[:])] = data
		}
	}
	sha := hex.EncodeToString(sum.Sum(nil))
	r.commits[sha] = content
	r.refs[branch] = sha
	return sha
}

// Dir maps every regular file of a local folder to prefix/name, for Commit.
func Dir(t testing.TB, prefix, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		if e.Type().IsRegular() {
			out[strings.TrimPrefix(prefix+"/"+e.Name(), "/")] = filepath.Join(dir, e.Name())
		}
	}
	return out
}

// isLFS: the Hub stores weights in LFS (or Xet), JSON and text in git.
func isLFS(p string) bool {
	return strings.HasSuffix(p, ".safetensors") || strings.HasSuffix(p, ".bin") || strings.HasSuffix(p, ".pt")
}

func hubError(w http.ResponseWriter, status int, code, msg string) {
	if code != "" {
		w.Header().Set("X-Error-Code", code)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// lookup finds repository and commit, answering the error itself.
func (h *Hub) lookup(w http.ResponseWriter, r *http.Request, name, rev string) (map[string][]byte, string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	rp := h.repos[name]
	if rp == nil {
		hubError(w, http.StatusNotFound, "RepoNotFound", "Repository Not Found for url: "+r.URL.String())
		return nil, "", false
	}
	if rp.gated && r.Header.Get("Authorization") != "Bearer "+h.Token {
		hubError(w, http.StatusUnauthorized, "GatedRepo", "Access to model "+name+" is restricted. You must have access to it and be authenticated to access it. Please log in.")
		return nil, "", false
	}
	sha := rp.refs[rev]
	if sha == "" && rp.commits[rev] != nil {
		sha = rev
	}
	if sha == "" {
		hubError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+rev)
		return nil, "", false
	}
	return rp.commits[sha], sha, true
}

func (h *Hub) serveHub(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hubError(w, http.StatusMethodNotAllowed, "", "method not allowed")
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	// /api/models/{org}/{repo}/revision/{rev}
	if len(parts) == 6 && parts[0] == "api" && parts[1] == "models" && parts[4] == "revision" {
		files, sha, ok := h.lookup(w, r, parts[2]+"/"+parts[3], parts[5])
		if !ok {
			return
		}
		type sibling struct {
			Name string `json:"rfilename"`
		}
		resp := struct {
			ID       string    `json:"id"`
			Sha      string    `json:"sha"`
			Siblings []sibling `json:"siblings"`
		}{ID: parts[2] + "/" + parts[3], Sha: sha, Siblings: []sibling{}}
		for p := range files {
			resp.Siblings = append(resp.Siblings, sibling{p})
		}
		sort.Slice(resp.Siblings, func(i, j int) bool { return resp.Siblings[i].Name < resp.Siblings[j].Name })
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
		return
	}
	// /api/models/{org}/{repo}/tree/{rev}[/{path...}]
	if len(parts) >= 6 && parts[0] == "api" && parts[1] == "models" && parts[4] == "tree" {
		files, sha, ok := h.lookup(w, r, parts[2]+"/"+parts[3], parts[5])
		if !ok {
			return
		}
		h.serveTree(w, r, files, sha, strings.Trim(strings.Join(parts[6:], "/"), "/"))
		return
	}
	// /{org}/{repo}/resolve/{rev}/{path...}
	if len(parts) >= 5 && parts[2] == "resolve" {
		files, sha, ok := h.lookup(w, r, parts[0]+"/"+parts[1], parts[3])
		if !ok {
			return
		}
		p := strings.Join(parts[4:], "/")
		data, found := files[p]
		if !found {
			hubError(w, http.StatusNotFound, "EntryNotFound", p+" does not exist on \""+parts[3]+"\"")
			return
		}
		w.Header().Set("X-Repo-Commit", sha)
		if isLFS(p) {
			d := sha256.Sum256(data)
			oid := hex.EncodeToString(d[:])
			w.Header().Set("X-Linked-Size", strconv.Itoa(len(data)))
			w.Header().Set("X-Linked-Etag", `"`+oid+`"`)
			w.Header().Set("ETag", `"`+oid+`"`)
			w.Header().Set("Location", h.cdn.URL+"/blobs/"+oid+"?signed=1")
			w.WriteHeader(http.StatusFound)
			return
		}
		gitSum := sha1.Sum(data)
		w.Header().Set("ETag", `"`+hex.EncodeToString(gitSum[:])+`"`)
		if r.Method == http.MethodGet {
			h.HubGets.Add(1)
		}
		http.ServeContent(w, r, p, time.Time{}, bytes.NewReader(data))
		return
	}
	hubError(w, http.StatusNotFound, "", "not found")
}

// treeEntry is one entry of the tree API's answer.
type treeEntry struct {
	Type string   `json:"type"`
	Oid  string   `json:"oid"`
	Size int      `json:"size"`
	Path string   `json:"path"`
	LFS  *treeLFS `json:"lfs,omitempty"`
}

type treeLFS struct {
	Oid         string `json:"oid"`
	Size        int    `json:"size"`
	PointerSize int    `json:"pointerSize"`
}

// gitBlobID is git's id of a blob: sha1 of "blob LEN\0" and the bytes.
func gitBlobID(data []byte) string {
	s := sha1.New()
	s.Write([]byte("blob " + strconv.Itoa(len(data)) + "\x00"))
	s.Write(data)
	return hex.EncodeToString(s.Sum(nil))
}

// serveTree answers the tree API for folder dir ("" for the top) of a commit.
func (h *Hub) serveTree(w http.ResponseWriter, r *http.Request, files map[string][]byte, sha, dir string) {
	h.TreeGets.Add(1)
	recursive := r.URL.Query().Get("recursive") == "true" || r.URL.Query().Get("recursive") == "1"
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	dirs := map[string]bool{}
	var entries []treeEntry
	for p, data := range files {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok {
			continue
		}
		// Every folder between dir and the file is an entry of its own.
		parts := strings.Split(rest, "/")
		for i := 1; i < len(parts); i++ {
			if i > 1 && !recursive {
				break
			}
			d := prefix + strings.Join(parts[:i], "/")
			if !dirs[d] {
				dirs[d] = true
				sum := sha1.Sum([]byte(sha + "\x00" + d))
				entries = append(entries, treeEntry{Type: "directory", Oid: hex.EncodeToString(sum[:]), Path: d})
			}
		}
		if len(parts) > 1 && !recursive {
			continue
		}
		e := treeEntry{Type: "file", Oid: gitBlobID(data), Size: len(data), Path: p}
		if isLFS(p) {
			d := sha256.Sum256(data)
			oid := hex.EncodeToString(d[:])
			pointer := "version https://git-lfs.github.com/spec/v1\noid sha256:" + oid + "\nsize " + strconv.Itoa(len(data)) + "\n"
			e.Oid, e.Size = gitBlobID([]byte(pointer)), len(data)
			e.LFS = &treeLFS{Oid: oid, Size: len(data), PointerSize: len(pointer)}
		}
		entries = append(entries, e)
	}
	if len(entries) == 0 {
		hubError(w, http.StatusNotFound, "EntryNotFound", dir+" does not exist on \""+sha+"\"")
		return
	}
	sort.Slice(entries, func(i, j int) bool {
		if (entries[i].Type == "directory") != (entries[j].Type == "directory") {
			return entries[i].Type == "directory"
		}
		return entries[i].Path < entries[j].Path
	})
	page := h.TreePage
	if page <= 0 {
		page = 1000
	}
	start := 0
	if c := r.URL.Query().Get("cursor"); c != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(string(mustBase64(c)), "offset:"))
		if err != nil || n < 0 || n > len(entries) {
			hubError(w, http.StatusBadRequest, "", "Invalid cursor")
			return
		}
		start = n
	}
	end := min(start+page, len(entries))
	if end < len(entries) {
		next := *r.URL
		q := next.Query()
		q.Set("cursor", base64.StdEncoding.EncodeToString([]byte("offset:"+strconv.Itoa(end))))
		next.RawQuery = q.Encode()
		w.Header().Set("Link", "<"+h.URL+next.RequestURI()+`>; rel="next"`)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(entries[start:end])
}

func mustBase64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil
	}
	return b
}

func (h *Hub) serveCDN(w http.ResponseWriter, r *http.Request) {
	oid, ok := strings.CutPrefix(r.URL.Path, "/blobs/")
	h.mu.Lock()
	data, found := h.blobs[oid]
	h.mu.Unlock()
	if !ok || !found || r.URL.Query().Get("signed") != "1" {
		http.Error(w, "AccessDenied", http.StatusForbidden)
		return
	}
	if r.Header.Get("Range") != "" {
		h.CDNRanges.Add(1)
		if h.FailRanges.Add(-1) >= 0 {
			http.Error(w, "SlowDown", http.StatusServiceUnavailable)
			return
		}
		h.FailRanges.Store(0)
	}
	if cut := int(h.CutBlobs.Load()); cut > 0 {
		data = data[:max(0, len(data)-cut)]
	}
	w.Header().Set("ETag", `"`+oid+`"`)
	http.ServeContent(w, r, oid, time.Time{}, bytes.NewReader(data))
}
