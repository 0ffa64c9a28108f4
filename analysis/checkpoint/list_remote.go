package checkpoint

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/minio/minio-go/v7"
)

// Listing remote roots for the server's file picker: the "folders" and
// objects one level under a path inside an s3:// or hf:// root, a page at a
// time. Like the local listing it never shows anything outside its root: the
// path listed is the root joined with a cleaned relative path, so ".." cannot
// climb out, and the result is checked against the root on whole components
// (remoteAllowed) before anything is asked of the store.

// RemoteEntry is one entry of a remote folder.
type RemoteEntry struct {
	Name string // the last component
	Path string // relative to the root, slash-separated
	Dir  bool
	Size int64
	ETag string // S3: the object's ETag; the Hub: the LFS sha256 or git blob id
	// Checkpoint marks a folder holding a model.safetensors.index.json (a
	// sharded checkpoint that is one source as a whole).
	Checkpoint bool
}

// RemoteListing is one page of a remote folder.
type RemoteListing struct {
	Path    string // the folder listed, relative to the root ("" for the root)
	Entries []RemoteEntry
	Next    string // the cursor of the next page; "" on the last
	// Checkpoint: the folder listed holds model.safetensors.index.json.
	Checkpoint bool
	// Commit is the Hub commit listed (the revision asked for, pinned).
	Commit string
	// NeedRepo: an hf://ORG root has no listing of its own (the Hub lists an
	// organisation's repositories only through its search API): the caller
	// names a repository, REPO[@REVISION], as the path.
	NeedRepo bool
}

// ErrNoSuchFolder is a listing of a path that holds nothing.
var ErrNoSuchFolder = errors.New("no such folder")

// remoteFolderChecks bounds the concurrent requests that look for an index
// in the sub-folders of one S3 page.
const remoteFolderChecks = 8

// ListRemote lists the folder rel under root (s3://BUCKET[/PREFIX] or
// hf://ORG[/...]), at most limit entries from cursor (a value of Next; "" for
// the first page). ctx bounds every request: a client that leaves stops it.
func ListRemote(ctx context.Context, root, rel, cursor string, limit int) (RemoteListing, error) {
	if limit <= 0 {
		limit = 200
	}
	if !IsRemote(root) {
		return RemoteListing{}, errorf(root, "not a remote root")
	}
	rel = strings.TrimPrefix(path.Clean("/"+rel), "/")
	full := root
	if len(full) > len("s3://") { // s3:// alone is left for CheckRemotePath to refuse
		full = strings.TrimSuffix(full, "/")
	}
	if rel != "" {
		full += "/" + rel
	}
	if err := CheckRemotePath(full); err != nil {
		return RemoteListing{}, err
	}
	if err := remoteAllowed(full, []string{root}); err != nil {
		return RemoteListing{}, err
	}
	switch {
	case strings.HasPrefix(root, "s3://"):
		return listS3(ctx, full, rel, cursor, limit)
	case strings.HasPrefix(root, "hf://"):
		return listHub(ctx, root, full, rel, cursor, limit)
	}
	return RemoteListing{}, errorf(root, "not a remote root")
}

// listS3 lists one "folder" of a bucket: ListObjects with the delimiter "/"
// gives its objects and its sub-folders (common prefixes). A page asks the
// store for limit+1 entries and stops there (cancelling minio's listing
// goroutine); the cursor is the last key shown, from which the next page
// starts (StartAfter). One answer of the store holds the first MaxKeys keys
// in order, but minio hands out its objects before its prefixes (and Versity
// answers them so), so the page is sorted before it is cut.
func listS3(ctx context.Context, full, rel, cursor string, limit int) (RemoteListing, error) {
	be, key, err := newS3Backend(full)
	if err != nil {
		return RemoteListing{}, err
	}
	b := be.(*s3Backend)
	prefix := key
	if prefix != "" {
		prefix += "/"
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := ""
	if cursor != "" {
		start = prefix + cursor
	}
	out := RemoteListing{Path: rel, Entries: []RemoteEntry{}}
	opts := minio.ListObjectsOptions{Prefix: prefix, MaxKeys: min(limit+1, 1000), StartAfter: start}
	type item struct {
		key string
		e   RemoteEntry
	}
	var window []item
	for obj := range b.core.Client.ListObjects(lctx, b.bucket, opts) {
		if obj.Err != nil {
			err := b.classify(key, obj.Err)
			var perm permanentError
			if errors.As(err, &perm) {
				err = perm.err
			}
			return RemoteListing{}, remoteErr(full, err)
		}
		// A store may repeat the sub-folder the previous page ended with
		// (StartAfter "a/" still finds "a/x", rolled up as "a/" again).
		if start != "" && obj.Key <= start {
			continue
		}
		name := strings.TrimPrefix(obj.Key, prefix)
		dir := strings.HasSuffix(name, "/")
		name = strings.TrimSuffix(name, "/")
		if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
			// The folder's own marker object, or a key no source path could
			// name (CheckRemotePath refuses empty, "." and ".." components).
			continue
		}
		e := RemoteEntry{Name: name, Path: joinKey(rel, name), Dir: dir}
		if !dir {
			e.Size, e.ETag = obj.Size, strings.Trim(obj.ETag, `"`)
		}
		window = append(window, item{obj.Key, e})
		if len(window) == limit+1 {
			break
		}
	}
	slices.SortFunc(window, func(a, b item) int { return strings.Compare(a.key, b.key) })
	if len(window) == limit+1 {
		// One more than the page holds: the next page starts after the
		// last key shown (a common prefix's key ends in "/").
		window = window[:limit]
		out.Next = strings.TrimPrefix(window[limit-1].key, prefix)
	}
	for _, it := range window {
		if !it.e.Dir && it.e.Name == IndexName {
			out.Checkpoint = true
		}
		out.Entries = append(out.Entries, it.e)
	}
	if len(out.Entries) == 0 && cursor == "" && rel != "" {
		return RemoteListing{}, fmt.Errorf("%s: %w", full, ErrNoSuchFolder)
	}
	// Which sub-folders are sharded checkpoints: one HEAD of DIR/index each,
	// a few at a time, all cancelled with the request.
	var wg sync.WaitGroup
	sem := make(chan struct{}, remoteFolderChecks)
	for i := range out.Entries {
		e := &out.Entries[i]
		if !e.Dir {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-lctx.Done():
				return
			}
			defer func() { <-sem }()
			_, err := b.core.StatObject(lctx, b.bucket, prefix+e.Name+"/"+IndexName, minio.StatObjectOptions{})
			e.Checkpoint = err == nil
		}()
	}
	if !out.Checkpoint && key != "" && out.Next != "" {
		// The index may be on a later page: ask for it.
		_, err := b.core.StatObject(lctx, b.bucket, prefix+IndexName, minio.StatObjectOptions{})
		out.Checkpoint = err == nil
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return RemoteListing{}, err
	}
	return out, nil
}

// hubTreeEntry is one entry of the Hub's tree API, as it documents it:
// GET /api/models/{repo}/tree/{revision}/{path} answers a JSON array of
// {"type": "file"|"directory", "oid", "size", "path"} with "lfs": {"oid",
// "size", "pointerSize"} on files stored in LFS, and pages through a Link
// header (rel="next") whose URL carries a cursor.
type hubTreeEntry struct {
	Type string `json:"type"`
	Oid  string `json:"oid"`
	Size int64  `json:"size"`
	Path string `json:"path"`
	LFS  *struct {
		Oid  string `json:"oid"`
		Size int64  `json:"size"`
	} `json:"lfs"`
}

// hubCursor is the picker's cursor over the Hub's pages: the Hub's own cursor
// and how many entries of that page were shown already (a Hub page holds up
// to 1,000, more than one picker page).
type hubCursor struct {
	Hub  string `json:"h,omitempty"`
	Skip int    `json:"s,omitempty"`
}

// listHub lists one folder of a repository under an hf:// root: the revision
// is pinned first (the revision API, which also names every file, so folders
// holding an index are known without a request each), then the tree API
// lists the folder at that commit.
func listHub(ctx context.Context, root, full, rel, cursor string, limit int) (RemoteListing, error) {
	// hf://ORG alone names no repository: the picker asks for one.
	if _, ok := ParseHubPath(full); !ok {
		return RemoteListing{Path: rel, Entries: []RemoteEntry{}, NeedRepo: true}, nil
	}
	var cur hubCursor
	if cursor != "" {
		data, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || json.Unmarshal(data, &cur) != nil || cur.Skip < 0 {
			return RemoteListing{}, errorf(full, "bad cursor")
		}
	}
	be, key, err := newHubBackend(ctx, full)
	if err != nil {
		return RemoteListing{}, err
	}
	b := be.(*hubBackend)
	u := b.endpoint + "/api/models/" + b.repo + "/tree/" + b.sha
	if key != "" {
		u += "/" + escapeKey(key)
	}
	if cur.Hub != "" {
		u += "?cursor=" + url.QueryEscape(cur.Hub)
	}
	entries, next, err := b.tree(ctx, full, u)
	if err != nil {
		return RemoteListing{}, err
	}
	out := RemoteListing{Path: rel, Entries: []RemoteEntry{}, Commit: b.sha,
		Checkpoint: b.files[joinKey(key, IndexName)]}
	if cur.Skip > len(entries) {
		cur.Skip = len(entries)
	}
	page := entries[cur.Skip:]
	if len(page) > limit {
		page = page[:limit]
		out.Next = encodeHubCursor(hubCursor{Hub: cur.Hub, Skip: cur.Skip + limit})
	} else if next != "" {
		out.Next = encodeHubCursor(hubCursor{Hub: next})
	}
	for _, t := range page {
		name := path.Base(t.Path)
		if t.Path != joinKey(key, name) {
			return RemoteListing{}, errorf(full, "the Hub listed %q, which is not in this folder", t.Path)
		}
		e := RemoteEntry{Name: name, Path: joinKey(rel, name), Dir: t.Type == "directory", Size: t.Size, ETag: t.Oid}
		if t.LFS != nil {
			e.Size, e.ETag = t.LFS.Size, t.LFS.Oid
		}
		if e.Dir {
			e.Size, e.ETag = 0, ""
			e.Checkpoint = b.files[joinKey(t.Path, IndexName)]
		}
		out.Entries = append(out.Entries, e)
	}
	return out, nil
}

func encodeHubCursor(c hubCursor) string {
	data, _ := json.Marshal(c) // two plain fields: cannot fail
	return base64.RawURLEncoding.EncodeToString(data)
}

// tree fetches one page of the tree API and the cursor of the next page
// (from the Link header), or "" at the end.
func (b *hubBackend) tree(ctx context.Context, display, u string) ([]hubTreeEntry, string, error) {
	var entries []hubTreeEntry
	header, err := b.apiJSON(ctx, u, "listing", func(resp *http.Response) error {
		if resp.StatusCode == http.StatusNotFound {
			return permanentError{fmt.Errorf("%s: %w", display, ErrNoSuchFolder)}
		}
		return b.status(display, resp, "such folder at commit "+b.sha)
	}, display, &entries)
	if err != nil {
		if errors.Is(err, ErrNoSuchFolder) {
			return nil, "", err
		}
		return nil, "", remoteErr(display, err)
	}
	return entries, nextCursor(header.Get("Link")), nil
}

// nextCursor reads the cursor of the rel="next" URL of a Link header. Only
// the cursor is kept: the next request is built from the endpoint again, so a
// Link naming another host is never followed.
func nextCursor(link string) string {
	for _, part := range strings.Split(link, ",") {
		target, params, ok := strings.Cut(strings.TrimSpace(part), ";")
		if !ok || !strings.Contains(strings.ReplaceAll(params, " ", ""), `rel="next"`) {
			continue
		}
		u, err := url.Parse(strings.Trim(strings.TrimSpace(target), "<>"))
		if err != nil {
			return ""
		}
		return u.Query().Get("cursor")
	}
	return ""
}
