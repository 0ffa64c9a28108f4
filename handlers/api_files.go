package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/deltascope/deltascope/analysis/checkpoint"
)

type fileEntry struct {
	Name string `json:"name"`
	Path string `json:"path"` // relative to the root
	Dir  bool   `json:"dir"`
	Size int64  `json:"size"`
	Kind string `json:"kind"`
	// Remote roots only: the object's ETag (S3) or LFS sha256 / git blob id
	// (the Hub), and whether a folder is a sharded checkpoint (it holds
	// model.safetensors.index.json).
	ETag       string `json:"etag,omitempty"`
	Checkpoint bool   `json:"checkpoint,omitempty"`
}

type filesResponse struct {
	Roots   []string    `json:"roots"`
	Root    int         `json:"root"`
	Path    string      `json:"path"`
	Entries []fileEntry `json:"entries"`
	Next    string      `json:"next"`
	// Remote roots only: "s3" or "hub"; whether the folder listed is itself a
	// sharded checkpoint; the Hub commit listed; and need_repo at an
	// hf://ORG root, which cannot be listed: name a REPO[@REVISION] as path.
	Remote     string `json:"remote,omitempty"`
	Checkpoint bool   `json:"checkpoint,omitempty"`
	Commit     string `json:"commit,omitempty"`
	NeedRepo   bool   `json:"need_repo,omitempty"`
}

const (
	defaultFilesPage = 200
	maxFilesPage     = 1000
)

// apiFiles lists one folder under a root, a page at a time: a folder of 100 k
// files is streamed through, never read whole. Everything goes through os.Root,
// so neither ".." nor a symlink can show anything outside the roots.
func (s *Server) apiFiles(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	idx, err := strconv.Atoi(q.Get("root"))
	if q.Get("root") == "" {
		idx, err = 0, nil
	}
	if err != nil || idx < 0 || idx >= len(s.cfg.Roots) {
		badRequest(w, "root must be the index of a server root")
		return
	}
	limit := defaultFilesPage
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit <= 0 || limit > maxFilesPage {
			badRequest(w, "limit must be 1 to 1000")
			return
		}
	}
	if checkpoint.IsRemote(s.cfg.Roots[idx]) {
		s.apiFilesRemote(w, r, idx, limit)
		return
	}
	rel := path.Clean("/" + q.Get("path"))[1:]
	if rel == "" {
		rel = "."
	}
	skip := 0
	if v := q.Get("cursor"); v != "" {
		if skip, err = strconv.Atoi(v); err != nil || skip < 0 {
			badRequest(w, "bad cursor")
			return
		}
	}
	if s.hiddenUpload(r, idx, rel) {
		notFound(w, "no such folder")
		return
	}
	root, err := os.OpenRoot(s.cfg.Roots[idx])
	if errors.Is(err, fs.ErrNotExist) {
		// The uploads folder of a fresh data folder, made at the first
		// upload, is an empty folder until then. Any other missing root (the
		// demo folder under --no-demo, a --root deleted since) is a 404 that
		// names it: an empty 200 read as "nothing here" (issue 14).
		if s.cfg.UploadDir != "" && s.cfg.Roots[idx] == s.cfg.UploadDir && rel == "." {
			writeJSON(w, http.StatusOK, filesResponse{Roots: s.cfg.Roots, Root: idx, Path: rel, Entries: []fileEntry{}})
			return
		}
		if rel != "." {
			notFound(w, "no such folder")
			return
		}
		notFound(w, fmt.Sprintf("the server root %s does not exist", s.cfg.Roots[idx]))
		return
	}
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	defer root.Close()
	// O_DIRECTORY: anything but a folder fails at once, and O_NONBLOCK: a
	// FIFO under a root would otherwise block the open (and this request's
	// thread) until a writer came, which may be never.
	dir, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NONBLOCK, 0)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			notFound(w, "no such folder")
		case errors.Is(err, syscall.ENOTDIR):
			badRequest(w, "not a folder")
		default:
			forbidden(w, "cannot open that folder")
		}
		return
	}
	defer dir.Close()
	names, more, err := readDirPage(dir, skip, limit)
	if err != nil {
		badRequest(w, "not a folder")
		return
	}
	resp := filesResponse{Roots: s.cfg.Roots, Root: idx, Path: rel, Entries: make([]fileEntry, 0, len(names))}
	// Entries are only looked at (Lstat, Stat), never opened: listing must not
	// depend on what a FIFO or a device would do when opened.
	for _, name := range names {
		fe := fileEntry{Name: name, Path: path.Join(rel, name)}
		if s.hiddenUpload(r, idx, fe.Path) {
			continue
		}
		if info, err := root.Lstat(fe.Path); err == nil {
			fe.Dir, fe.Size = info.IsDir(), info.Size()
			mode := info.Mode()
			if mode&fs.ModeSymlink != 0 {
				// Resolve through the root: a link leading out is shown as such and cannot be opened.
				if target, err := root.Stat(fe.Path); err == nil {
					fe.Dir, fe.Size, mode = target.IsDir(), target.Size(), target.Mode()
				} else {
					fe.Kind = "outside"
				}
			}
			if fe.Kind == "" && !mode.IsDir() && !mode.IsRegular() {
				fe.Kind = "special" // a FIFO, socket or device: never a checkpoint, whatever its name
			}
		}
		if fe.Kind == "" {
			fe.Kind = fileKind(fe.Name, fe.Dir)
		}
		resp.Entries = append(resp.Entries, fe)
	}
	slices.SortFunc(resp.Entries, func(a, b fileEntry) int {
		if a.Dir != b.Dir {
			if a.Dir {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	if more {
		resp.Next = strconv.Itoa(skip + limit)
	}
	writeJSON(w, http.StatusOK, resp)
}

// remoteListTimeout bounds one page of a remote listing: a store that stops
// answering must not hold the request (and its client) for ever.
const remoteListTimeout = 60 * time.Second

// apiFilesRemote lists a folder under an s3:// or hf:// root, a page at a
// time (checkpoint.ListRemote), for the same picker. Entries' paths are
// relative to the root, as for local roots, so root + "/" + path is the
// source to add; the listing never leaves the root.
func (s *Server) apiFilesRemote(w http.ResponseWriter, r *http.Request, idx, limit int) {
	q := r.URL.Query()
	root := s.cfg.Roots[idx]
	// The request's context: a client that leaves stops the listing.
	ctx, cancel := context.WithTimeout(r.Context(), remoteListTimeout)
	defer cancel()
	l, err := checkpoint.ListRemote(ctx, root, q.Get("path"), q.Get("cursor"), limit)
	switch {
	case errors.Is(err, checkpoint.ErrNoSuchFolder):
		notFound(w, "no such folder: "+err.Error())
		return
	case err != nil && r.Context().Err() != nil:
		return // the client left: nobody to answer
	case errors.Is(err, context.DeadlineExceeded):
		writeJSON(w, http.StatusGatewayTimeout, errorBody{fmt.Sprintf("%s did not answer within %v", root, remoteListTimeout)})
		return
	case err != nil:
		s.apiError(w, r, err)
		return
	}
	resp := filesResponse{Roots: s.cfg.Roots, Root: idx, Path: l.Path, Entries: make([]fileEntry, 0, len(l.Entries)), Next: l.Next,
		Remote: "s3", Checkpoint: l.Checkpoint, Commit: l.Commit, NeedRepo: l.NeedRepo}
	if strings.HasPrefix(root, "hf://") {
		resp.Remote = "hub"
	}
	for _, e := range l.Entries {
		resp.Entries = append(resp.Entries, fileEntry{Name: e.Name, Path: e.Path, Dir: e.Dir, Size: e.Size,
			Kind: fileKind(e.Name, e.Dir), ETag: e.ETag, Checkpoint: e.Checkpoint})
	}
	writeJSON(w, http.StatusOK, resp)
}

// readDirPage returns the names [skip, skip+limit) of the folder in directory
// order, reading it in bounded batches. Names only: skipping costs no stat per
// entry, which matters 100 pages into a folder of 100 k files.
func readDirPage(dir *os.File, skip, limit int) ([]string, bool, error) {
	var page []string
	seen := 0
	for {
		batch, err := dir.Readdirnames(1024)
		for _, name := range batch {
			if seen >= skip && len(page) < limit {
				page = append(page, name)
			} else if len(page) == limit {
				return page, true, nil
			}
			seen++
		}
		if err == io.EOF || (err == nil && len(batch) == 0) {
			return page, false, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
}

func fileKind(name string, dir bool) string {
	switch {
	case dir:
		return "dir"
	case strings.HasSuffix(name, ".safetensors.index.json"):
		return "index"
	case strings.HasSuffix(name, ".safetensors"):
		return "safetensors"
	case name == "config.json":
		return "config"
	case strings.HasSuffix(name, ".bin"), strings.HasSuffix(name, ".pt"), strings.HasSuffix(name, ".pth"):
		return "pickle"
	}
	return "other"
}
