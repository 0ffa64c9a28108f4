package handlers

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/internal/hubtest"
	"github.com/deltascope/deltascope/internal/s3test"
	"github.com/deltascope/deltascope/internal/testfixtures"
)

// remoteRootsServer is a server whose roots are an s3:// prefix on a real
// Versity gateway and an hf:// organisation on the Hub stand-in, beside its
// local roots. The bucket holds, under runs/, the π0.5 pair (the base a
// sharded folder with its index) and a folder of many small objects; beside
// runs/, a prefix runs10/ that shares its first letters but not its
// component, and must never be listed. The Hub holds lab/pi05 and a repo of
// another organisation.
func remoteRootsServer(t *testing.T) (*liveServer, *s3test.Server, *hubtest.Hub) {
	t.Helper()
	s3 := s3test.Start(t)
	s3.MakeBucket(t, "models")
	s3.PutDir(t, "models", "runs/pi05/base", testfixtures.Path("pi05", "base"))
	s3.PutDir(t, "models", "runs/pi05/vla", testfixtures.Path("pi05", "vla"))
	for _, k := range []string{"a.txt", "b/x.txt", "c.txt", "d/y.txt", "d/z.txt", "e.txt"} {
		s3.PutBytes(t, "models", "runs/many/"+k, []byte(k))
	}
	s3.PutBytes(t, "models", "runs10/secret.safetensors", []byte("not for this root"))
	hub := hubtest.Start(t)
	files := hubtest.Dir(t, "base", testfixtures.Path("pi05", "base"))
	for k, v := range hubtest.Dir(t, "vla", testfixtures.Path("pi05", "vla")) {
		files[k] = v
	}
	hub.Commit(t, "lab/pi05", "main", false, files)
	hub.Commit(t, "elsewhere/pi05", "main", false, files)
	l := startLiveServer(t, testServerOptions{config: func(c *Config) {
		c.Roots = append(c.Roots, "s3://models/runs", "hf://lab")
	}})
	return l, s3, hub
}

// listFiles asks /api/files for one page and decodes it, failing unless the
// status is want.
func listFiles(t *testing.T, base string, q url.Values, want int) (filesResponse, string) {
	t.Helper()
	resp, err := http.Get(base + "/api/files?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatalf("%s: %v", q.Encode(), err)
	}
	if resp.StatusCode != want {
		t.Fatalf("/api/files?%s: %d %s; want %d", q.Encode(), resp.StatusCode, raw, want)
	}
	var fr filesResponse
	if want == http.StatusOK {
		if err := json.Unmarshal(raw, &fr); err != nil {
			t.Fatal(err)
		}
	}
	return fr, string(raw)
}

func rootIndex(t *testing.T, roots []string, root string) string {
	t.Helper()
	i := slices.Index(roots, root)
	if i < 0 {
		t.Fatalf("root %s not in %v", root, roots)
	}
	return itoa(i)
}

func entryNames(es []fileEntry) []string {
	var out []string
	for _, e := range es {
		n := e.Name
		if e.Dir {
			n += "/"
		}
		out = append(out, n)
	}
	return out
}

// TestAPIFilesS3Root: an s3:// root lists its "folders" and objects through
// the gateway, marks the sharded folder and its files, pages without losing
// or repeating entries (a page may end on a folder), and never shows what
// lies outside the root.
func TestAPIFilesS3Root(t *testing.T) {
	l, _, _ := remoteRootsServer(t)
	first, _ := listFiles(t, l.URL, url.Values{}, http.StatusOK)
	root := rootIndex(t, first.Roots, "s3://models/runs")

	top, _ := listFiles(t, l.URL, url.Values{"root": {root}}, http.StatusOK)
	if got := entryNames(top.Entries); !slices.Equal(got, []string{"many/", "pi05/"}) || top.Remote != "s3" {
		t.Fatalf("root listing: %q (remote %q); want many/ and pi05/ only, not runs10", got, top.Remote)
	}
	pi05, _ := listFiles(t, l.URL, url.Values{"root": {root}, "path": {"pi05"}}, http.StatusOK)
	if got := entryNames(pi05.Entries); !slices.Equal(got, []string{"base/", "vla/"}) {
		t.Fatalf("pi05: %q", got)
	}
	if !pi05.Entries[0].Checkpoint || pi05.Entries[1].Checkpoint || pi05.Checkpoint {
		t.Errorf("checkpoint marks: base %v, vla %v, pi05 itself %v; want only base (it holds the index)",
			pi05.Entries[0].Checkpoint, pi05.Entries[1].Checkpoint, pi05.Checkpoint)
	}
	base, _ := listFiles(t, l.URL, url.Values{"root": {root}, "path": {"pi05/base"}}, http.StatusOK)
	if !base.Checkpoint || len(base.Entries) != 5 {
		t.Fatalf("pi05/base: checkpoint %v, %d entries", base.Checkpoint, len(base.Entries))
	}
	kinds := map[string]string{}
	for _, e := range base.Entries {
		kinds[e.Name] = e.Kind
		if e.Path != "pi05/base/"+e.Name || e.ETag == "" || e.Size <= 0 {
			t.Errorf("entry %+v: want its path under the root, an ETag and a size", e)
		}
	}
	if kinds["model.safetensors.index.json"] != "index" || kinds["model-00001-of-00004.safetensors"] != "safetensors" {
		t.Errorf("kinds: %v", kinds)
	}

	// Pages of two: every entry once, in key order, folders included.
	var all []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		q := url.Values{"root": {root}, "path": {"many"}, "limit": {"2"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		p, _ := listFiles(t, l.URL, q, http.StatusOK)
		if len(p.Entries) > 2 {
			t.Fatalf("a page of %d entries with limit 2", len(p.Entries))
		}
		all = append(all, entryNames(p.Entries)...)
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	if want := []string{"a.txt", "b/", "c.txt", "d/", "e.txt"}; !slices.Equal(all, want) {
		t.Errorf("paged listing %q; want %q", all, want)
	}

	// Never outside the root: ".." is cleaned away (runs/runs10 does not
	// exist), a folder that is not there is 404.
	for _, p := range []string{"../runs10", "../../runs10", "/../runs10", "nothing-here"} {
		_, body := listFiles(t, l.URL, url.Values{"root": {root}, "path": {p}}, http.StatusNotFound)
		if strings.Contains(body, "secret") {
			t.Errorf("path %q showed %s", p, body)
		}
	}
	listFiles(t, l.URL, url.Values{"root": {"99"}}, http.StatusBadRequest)
	listFiles(t, l.URL, url.Values{"root": {root}, "limit": {"5000"}}, http.StatusBadRequest)
}

// TestAPIFilesHubRoot: an hf://ORG root cannot list the organisation, so it
// asks for a repository; a repository lists through the tree API at the
// pinned commit, pages, marks the sharded folder, and another organisation's
// repository is never reached.
func TestAPIFilesHubRoot(t *testing.T) {
	l, _, hub := remoteRootsServer(t)
	hub.TreePage = 2 // the Hub's own pages, shorter than the picker's
	first, _ := listFiles(t, l.URL, url.Values{}, http.StatusOK)
	root := rootIndex(t, first.Roots, "hf://lab")

	top, _ := listFiles(t, l.URL, url.Values{"root": {root}}, http.StatusOK)
	if !top.NeedRepo || len(top.Entries) != 0 || top.Remote != "hub" {
		t.Fatalf("hf://lab itself: %+v; want need_repo", top)
	}
	repo, _ := listFiles(t, l.URL, url.Values{"root": {root}, "path": {"pi05"}}, http.StatusOK)
	if got := entryNames(repo.Entries); !slices.Equal(got, []string{"base/", "vla/"}) || len(repo.Commit) != 40 {
		t.Fatalf("lab/pi05: %q at commit %q", got, repo.Commit)
	}
	if !repo.Entries[0].Checkpoint || repo.Entries[1].Checkpoint || repo.Entries[0].Path != "pi05/base" {
		t.Errorf("entries %+v: want base/ marked a checkpoint, with its path under the root", repo.Entries)
	}
	// The base folder: five files over three Hub pages, in picker pages of 3.
	var all []fileEntry
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		q := url.Values{"root": {root}, "path": {"pi05@main/base"}, "limit": {"3"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		p, _ := listFiles(t, l.URL, q, http.StatusOK)
		if !p.Checkpoint {
			t.Errorf("pi05@main/base not marked as a checkpoint")
		}
		all = append(all, p.Entries...)
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	if len(all) != 5 || all[0].Name != "model-00001-of-00004.safetensors" || all[4].Name != "model.safetensors.index.json" {
		t.Fatalf("paged base: %q", entryNames(all))
	}
	if all[0].Size != 999832 || len(all[0].ETag) != 64 || all[0].Path != "pi05@main/base/model-00001-of-00004.safetensors" {
		t.Errorf("an LFS shard: %+v; want its real size, its sha256 and its path with the revision asked", all[0])
	}
	if n := hub.TreeGets.Load(); n < 3 {
		t.Errorf("%d tree pages fetched; the Hub's pages of 2 need 3 for five files", n)
	}

	// Outside the root: ".." cannot reach hf://elsewhere.
	for _, p := range []string{"../elsewhere/pi05", "../../elsewhere/pi05/base"} {
		_, body := listFiles(t, l.URL, url.Values{"root": {root}, "path": {p}}, http.StatusBadRequest)
		if !strings.Contains(body, "hf://lab/elsewhere") {
			t.Errorf("path %q: %s; want it read as hf://lab/elsewhere (no such repository)", p, body)
		}
	}
	listFiles(t, l.URL, url.Values{"root": {root}, "path": {"pi05/nothing"}}, http.StatusNotFound)
	listFiles(t, l.URL, url.Values{"root": {root}, "path": {"pi05@nobranch"}}, http.StatusBadRequest)
}

// TestAPIAnalysisOrigins: GET /api/analyses/{id} says where each side came
// from: the S3 bucket, key and ETags of an s3:// base, the Hub repository,
// file, revision asked and commit read of an hf:// VLA; the comparison page
// shows both analyses' origins, the local one included.
func TestAPIAnalysisOrigins(t *testing.T) {
	l, _, hub := remoteRootsServer(t)
	sha := hub.Commit(t, "lab/pi05", "v1", false, hubtest.Dir(t, "vla", testfixtures.Path("pi05", "vla")))
	l.start()
	ps := &pageServer{Server: l.Server, db: l.db, root: l.root, uploads: l.uploads}
	remote := ps.postAnalysis(t, `{"base": ["s3://models/runs/pi05/base"], "vla": ["hf://lab/pi05@v1/vla/model.safetensors"]}`)
	ps.waitStatus(t, remote, "done")
	local := ps.analyzeFixture(t)

	resp, err := http.Get(l.URL + "/api/analyses/" + remote)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		ID      string
		Status  string
		Request struct{ Base []string }
		Origins struct {
			Base, VLA []struct {
				Kind, Spec, Path, Bucket, Key, Repo, File, Revision, Commit string
				Files                                                       []struct {
					Path string
					Size int64
					ETag string
				}
			}
		}
	}
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil || got.ID != remote || got.Status != "done" || len(got.Request.Base) != 1 {
		t.Fatalf("GET: %v %+v; the existing fields must stay", err, got)
	}
	if len(got.Origins.Base) != 1 || len(got.Origins.VLA) != 1 {
		t.Fatalf("origins: %+v", got.Origins)
	}
	b, v := got.Origins.Base[0], got.Origins.VLA[0]
	if b.Kind != "s3" || b.Bucket != "models" || b.Key != "runs/pi05/base" || len(b.Files) != 4 {
		t.Errorf("base origin %+v", b)
	}
	for _, f := range b.Files {
		if !strings.HasPrefix(f.Path, "s3://models/runs/pi05/base/") || f.ETag == "" || f.Size <= 0 {
			t.Errorf("base file %+v: want its s3:// path, size and ETag", f)
		}
	}
	if v.Kind != "hub" || v.Repo != "lab/pi05" || v.File != "vla/model.safetensors" || v.Revision != "v1" || v.Commit != sha ||
		v.Path != "hf://lab/pi05@"+sha+"/vla/model.safetensors" {
		t.Errorf("VLA origin %+v; want repository, file, revision v1 and commit %s", v, sha)
	}

	page := getBody(t, l.URL+"/compare?a="+remote+"&b="+local)
	for _, want := range []string{`data-testid="origins-a"`, `data-testid="origins-b"`, `>S3</span>`, `>Hub</span>`, `>local</span>`,
		`>` + sha[:7] + `</code> (asked: <code>v1</code>)`} {
		if !strings.Contains(page, want) {
			t.Errorf("the comparison page lacks %q", want)
		}
	}
}

func getBody(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", u, resp.StatusCode, err)
	}
	return string(data)
}

// TestJobPageOrigins: a queued analysis's page already says where its sides
// come from, from the request alone (nothing read yet, so no ETags).
func TestJobPageOrigins(t *testing.T) {
	s := newPageServer(t, false)
	id := s.postAnalysis(t, `{"base": ["vision.=pi05/base"], "vla": ["pi05/vla/model.safetensors"]}`)
	page := getBody(t, s.URL+"/analyses/"+id)
	for _, want := range []string{`data-testid="job"`, `data-testid="origin-base"`, `>local</span>`, `prefix <code>vision.</code>`,
		`<code>` + s.root + `/pi05/vla/model.safetensors</code>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the job page lacks %q", want)
		}
	}
	if strings.Contains(page, "origin-etag") {
		t.Error("the job page shows ETags before anything was read")
	}
}
