package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/deltascope/deltascope/analysis/tensor"
)

// hubBackend reads one repository of the Hugging Face Hub (or a mirror named
// by HF_ENDPOINT) at one commit. The revision given (a branch, a tag, or
// nothing for main) is resolved once, when the source is opened, through
// GET /api/models/{repo}/revision/{rev}, which answers the commit's "sha" and
// its files ("siblings"); every later request names that sha, so a branch
// that moves during an analysis cannot mix two versions, and the record says
// exactly which commit was analysed. Files are read through the resolve URLs
// ({endpoint}/{repo}/resolve/{sha}/{path}) with Range requests; for large (LFS
// or Xet) files the Hub answers with a redirect to its CDN, which the client
// follows (Go drops the Authorization header when the redirect leaves the host,
// as the CDN's signed URL needs none).
type hubBackend struct {
	endpoint string // no trailing slash
	repo     string // ORG/REPO
	sha      string
	token    string
	files    map[string]bool
	client   *http.Client // follows redirects: data reads
	noFollow *http.Client // does not: HEADs that read the Hub's X-Linked-* headers
}

// hubName is what the Hub allows in an organisation or repository name.
var hubName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$`)

// hubSha is a full commit id; anything else is a branch or tag to resolve.
var hubSha = regexp.MustCompile(`^[0-9a-f]{40}$`)

// maxHubAPIBytes bounds the revision answer: a repository of 10,000 files
// lists well under this.
const maxHubAPIBytes = 32 << 20

// hubTimeout bounds one metadata request (the revision, a HEAD); data reads
// are bounded by their context and by the transport's own timeouts.
const hubTimeout = 60 * time.Second

// HubPath is an hf://ORG/REPO[@REVISION][/PATH] path taken apart.
type HubPath struct {
	Org, Name string
	Revision  string // as asked ("main" when none was), %-escapes undone: refs%2Fpr%2F1 is refs/pr/1
	File      string // the file or folder in the repository, "" for its top
}

// Repo is ORG/REPO.
func (h HubPath) Repo() string { return h.Org + "/" + h.Name }

// ParseHubPath takes an hf:// path apart; ok is false when it names no
// organisation and repository. It checks nothing else (newHubBackend does).
func ParseHubPath(p string) (h HubPath, ok bool) {
	parts := strings.SplitN(strings.TrimPrefix(p, "hf://"), "/", 3)
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return HubPath{}, false
	}
	h.Org = parts[0]
	h.Name, h.Revision, _ = strings.Cut(parts[1], "@")
	if h.Revision == "" {
		h.Revision = "main"
	}
	if r, err := url.PathUnescape(h.Revision); err == nil { // refs/pr/1 may be written refs%2Fpr%2F1
		h.Revision = r
	}
	if len(parts) == 3 {
		h.File = strings.TrimSuffix(parts[2], "/")
	}
	return h, true
}

// newHubBackend parses hf://ORG/REPO[@REVISION]/PATH and pins the revision.
func newHubBackend(ctx context.Context, p string) (remoteBackend, string, error) {
	hp, ok := ParseHubPath(p)
	if !ok {
		return nil, "", errorf(p, "give a repository: hf://ORG/REPO[@REVISION]/PATH")
	}
	// Names go into URL paths unescaped: only the Hub's own characters pass.
	if !hubName.MatchString(hp.Org) || !hubName.MatchString(hp.Name) {
		return nil, "", errorf(p, "%q is not a Hub repository name (letters, digits, '-', '_', '.')", hp.Repo())
	}
	rev, key := hp.Revision, hp.File
	endpoint := strings.TrimSuffix(os.Getenv("HF_ENDPOINT"), "/")
	if endpoint == "" {
		endpoint = "https://huggingface.co"
	}
	if u, err := url.Parse(endpoint); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, "", errorf(p, "HF_ENDPOINT %q is not an http(s)://HOST address", endpoint)
	}
	tr := remoteTransport
	if tr == nil {
		tr = http.DefaultTransport
	}
	b := &hubBackend{endpoint: endpoint, repo: hp.Repo(), token: os.Getenv("HF_TOKEN"),
		client: &http.Client{Transport: tr},
		noFollow: &http.Client{Transport: tr, Timeout: hubTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if err := b.resolve(ctx, p, rev); err != nil {
		return nil, "", err
	}
	return b, key, nil
}

type hubRevision struct {
	Sha      string `json:"sha"`
	Siblings []struct {
		Name string `json:"rfilename"`
	} `json:"siblings"`
}

// apiJSON GETs one URL of the Hub's API, retried with backoff and bounded in
// time and size, and decodes its JSON answer into v; check turns a status that
// is not the answer into an error (b.status, with what a 404 means there).
// what names the answer in errors; the answer's headers are returned (the
// tree API pages through Link).
func (b *hubBackend) apiJSON(ctx context.Context, u, what string, check func(*http.Response) error, display string, v any) (http.Header, error) {
	var header http.Header
	err := withRetry(ctx, func() error {
		rctx, cancel := context.WithTimeout(ctx, hubTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(rctx, http.MethodGet, u, nil)
		if err != nil {
			return permanentError{err}
		}
		resp, err := b.do(b.noFollow, req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if err := check(resp); err != nil {
			return err
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxHubAPIBytes+1))
		if err != nil {
			return err
		}
		if len(data) > maxHubAPIBytes {
			return permanentError{errorf(display, "the Hub's %s is larger than %d bytes", what, maxHubAPIBytes)}
		}
		if err := json.Unmarshal(data, v); err != nil {
			return permanentError{errorf(display, "the Hub's %s is not the JSON it should be: %v", what, err)}
		}
		header = resp.Header
		return nil
	})
	return header, err
}

// resolve asks the Hub which commit rev is, and which files it holds.
func (b *hubBackend) resolve(ctx context.Context, p, rev string) error {
	u := b.endpoint + "/api/models/" + b.repo + "/revision/" + url.PathEscape(rev)
	var info hubRevision
	_, err := b.apiJSON(ctx, u, "description of revision "+strconv.Quote(rev), func(resp *http.Response) error {
		return b.status(p, resp, "repository "+b.repo+" with a revision "+strconv.Quote(rev))
	}, p, &info)
	if err != nil {
		return remoteErr(p, err)
	}
	if !hubSha.MatchString(info.Sha) {
		return errorf(p, "the Hub answered revision %q without a commit sha", rev)
	}
	if len(info.Siblings) > DefaultLimits.MaxShards*10 {
		return errorf(p, "the repository lists %d files; more than this reader accepts", len(info.Siblings))
	}
	b.sha = info.Sha
	b.files = make(map[string]bool, len(info.Siblings))
	for _, s := range info.Siblings {
		b.files[s.Name] = true
	}
	return nil
}

func (b *hubBackend) do(c *http.Client, req *http.Request) (*http.Response, error) {
	if b.token != "" {
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
	req.Header.Set("User-Agent", "deltascope")
	return c.Do(req)
}

// status turns an error answer into a message that names the path and says
// what to do: 401/403 is a gated or private repository, 404 a missing one.
func (b *hubBackend) status(display string, resp *http.Response, what string) error {
	switch c := resp.StatusCode; {
	case c < 400: // a redirect the caller reads (HEAD) or followed (GET)
		return nil
	case c == http.StatusUnauthorized || c == http.StatusForbidden:
		if b.token == "" {
			return permanentError{&tensor.Error{Path: display, Msg: "the Hub refused access (gated or private); set HF_TOKEN to a token that has accepted its terms"}}
		}
		return permanentError{&tensor.Error{Path: display, Msg: fmt.Sprintf("the Hub refused access with HF_TOKEN (%s): the token has no access to this gated or private repository", resp.Status)}}
	case c == http.StatusNotFound:
		return permanentError{errorf(display, "the Hub (%s) has no %s", b.endpoint, what)}
	case c == http.StatusTooManyRequests || c >= 500:
		return fmt.Errorf("the Hub answered %s", resp.Status)
	}
	return permanentError{errorf(display, "the Hub answered %s", resp.Status)}
}

// pinned is the source path with the revision replaced by the commit read.
func (b *hubBackend) pinned(key string) string {
	if key == "" {
		return "hf://" + b.repo + "@" + b.sha
	}
	return b.display(key)
}

func (b *hubBackend) display(key string) string { return "hf://" + b.repo + "@" + b.sha + "/" + key }

func (b *hubBackend) resolveURL(key string) string {
	return b.endpoint + "/" + b.repo + "/resolve/" + b.sha + "/" + escapeKey(key)
}

// escapeKey escapes each component of a file's path in the repository for a
// URL path, keeping its slashes.
func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// stat reads a file's size and ETag from a HEAD on its resolve URL without
// following the redirect: for LFS files the Hub puts the real size and ETag in
// X-Linked-Size and X-Linked-Etag (Content-Length is the redirect's own).
func (b *hubBackend) stat(ctx context.Context, key string) (remoteObject, error) {
	if !b.files[key] {
		return remoteObject{}, errRemoteNotFound
	}
	display := b.display(key)
	var obj remoteObject
	err := withRetry(ctx, func() error {
		rctx, cancel := context.WithTimeout(ctx, hubTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(rctx, http.MethodHead, b.resolveURL(key), nil)
		if err != nil {
			return permanentError{err}
		}
		resp, err := b.do(b.noFollow, req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 && resp.StatusCode < 400 && resp.Header.Get("X-Linked-Size") == "" {
			return permanentError{errorf(display, "the Hub redirected (%s) without the file's size", resp.Status)}
		}
		if err := b.status(display, resp, "such file at commit "+b.sha); err != nil {
			return err
		}
		if c := resp.Header.Get("X-Repo-Commit"); c != "" && c != b.sha {
			return permanentError{errorf(display, "the Hub answered for commit %s, not %s", c, b.sha)}
		}
		size, etag := resp.Header.Get("X-Linked-Size"), resp.Header.Get("X-Linked-Etag")
		if size == "" {
			size = resp.Header.Get("Content-Length")
		}
		if etag == "" {
			etag = resp.Header.Get("ETag")
		}
		n, err := strconv.ParseInt(size, 10, 64)
		if err != nil || n < 0 {
			return permanentError{errorf(display, "the Hub gave no valid size (%q)", size)}
		}
		obj = remoteObject{key: key, size: n, etag: strings.Trim(strings.TrimPrefix(etag, "W/"), `"`)}
		return nil
	})
	return obj, err
}

// list names the files directly under prefix, from the revision's file list.
func (b *hubBackend) list(_ context.Context, prefix string, max int) ([]string, error) {
	p := prefix
	if p != "" {
		p += "/"
	}
	var names []string
	for f := range b.files {
		name, ok := strings.CutPrefix(f, p)
		if !ok || name == "" || strings.Contains(name, "/") {
			continue
		}
		if len(names) >= max {
			return nil, errorf(b.display(prefix), "more than %d files in this folder", max)
		}
		names = append(names, name)
	}
	return names, nil
}

// get reads one range. The commit is pinned, so the bytes cannot change; the
// answer must still be the range asked for (206 with a matching Content-Range
// of the expected total), or the file is not what the Hub described.
func (b *hubBackend) get(ctx context.Context, obj remoteObject, dst []byte, off int64) error {
	if len(dst) == 0 {
		return nil
	}
	display := b.display(obj.key)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.resolveURL(obj.key), nil)
	if err != nil {
		return permanentError{err}
	}
	end := off + int64(len(dst)) - 1
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, end))
	resp, err := b.do(b.client, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		return permanentError{errorf(display, "the file is shorter than the %d bytes the Hub announced", obj.size)}
	}
	if err := b.status(display, resp, "such file at commit "+b.sha); err != nil {
		return err
	}
	want := fmt.Sprintf("bytes %d-%d/%d", off, end, obj.size)
	if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != want {
		// A 200 would stream the whole file: never read it.
		return permanentError{errorf(display, "asked for %s, the server answered %s with Content-Range %q", want, resp.Status, resp.Header.Get("Content-Range"))}
	}
	if n, err := io.ReadFull(resp.Body, dst); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: got %d of %d bytes at %d: %w", display, n, len(dst), off, err)
		}
		return err
	}
	return nil
}
