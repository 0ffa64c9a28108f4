package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/checkpoint/safetensors"
	"github.com/deltascope/deltascope/analysis/checkpoint/torchzip"
	"github.com/deltascope/deltascope/store"
)

// Uploads follow the shape of the tus protocol: create with a declared size,
// append chunks at an explicit offset, ask for the offset after a dropped
// connection. Bytes are written to disk as they arrive (never buffered whole)
// and the offset is recorded only after they are synced, so whatever happens
// the upload resumes from a confirmed offset.

type createUploadRequest struct {
	Session string `json:"session"`
	Side    string `json:"side"`
	Path    string `json:"path"`
	Size    int64  `json:"size"`
}

type uploadView struct {
	*store.Upload
	SpecPath string `json:"spec_path"` // absolute path of the file, for POST /api/analyses
	SideDir  string `json:"side_dir"`  // absolute path of the side's folder
}

func (s *Server) uploadView(u *store.Upload) uploadView {
	side := filepath.Join(s.cfg.UploadDir, u.Session, u.Side)
	return uploadView{Upload: u, SpecPath: filepath.Join(side, filepath.FromSlash(u.Path)), SideDir: side}
}

// uploadFile is the file's path relative to the upload folder.
func uploadFile(u *store.Upload) string {
	return path.Join(u.Session, u.Side, u.Path)
}

func validSession(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// cleanUploadPath accepts a relative path of plain names (sub-folders allowed).
func cleanUploadPath(p string) (string, error) {
	if p == "" || len(p) > 512 || strings.ContainsRune(p, 0) || strings.HasPrefix(p, "/") || strings.Contains(p, `\`) {
		return "", fmt.Errorf("path must be a relative file name")
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return "", fmt.Errorf("path must not contain empty, . or .. parts")
		}
	}
	return p, nil
}

func (s *Server) uploadRoot(w http.ResponseWriter) (*os.Root, bool) {
	if s.cfg.UploadDir == "" {
		forbidden(w, "uploads are disabled on this server")
		return nil, false
	}
	if err := os.MkdirAll(s.cfg.UploadDir, 0o755); err != nil {
		writeJSON(w, http.StatusInternalServerError, errorBody{"cannot create the upload folder"})
		return nil, false
	}
	root, err := os.OpenRoot(s.cfg.UploadDir)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, errorBody{"cannot open the upload folder"})
		return nil, false
	}
	return root, true
}

func (s *Server) apiUploadCreate(w http.ResponseWriter, r *http.Request) {
	var req createUploadRequest
	if !s.decodeJSON(w, r, &req) {
		return
	}
	if req.Side != "base" && req.Side != "vla" {
		badRequest(w, `side must be "base" or "vla"`)
		return
	}
	p, err := cleanUploadPath(req.Path)
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	if req.Size < 0 {
		badRequest(w, "size must not be negative")
		return
	}
	if req.Size > s.cfg.MaxUploadBytes {
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{fmt.Sprintf("%s is %d bytes; this server accepts files up to %d bytes", p, req.Size, s.cfg.MaxUploadBytes)})
		return
	}
	if req.Session == "" {
		req.Session = store.NewUploadSession()
	} else if !validSession(req.Session) {
		badRequest(w, "bad session id")
		return
	}
	root, ok := s.uploadRoot(w)
	if !ok {
		return
	}
	defer root.Close()
	rel := path.Join(req.Session, req.Side, p)
	if err := root.MkdirAll(path.Dir(rel), 0o755); err != nil {
		badRequest(w, "cannot create the folder for "+p)
		return
	}
	f, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		conflict(w, p+" is already being uploaded in this session")
		return
	}
	if err != nil {
		badRequest(w, "cannot create "+p)
		return
	}
	f.Close()
	u, err := s.db.CreateUpload(r.Context(), req.Session, req.Side, p, req.Size)
	if err != nil {
		root.Remove(rel)
		s.apiError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/uploads/"+u.ID)
	writeJSON(w, http.StatusCreated, s.uploadView(u))
}

func (s *Server) apiUploadGet(w http.ResponseWriter, r *http.Request) {
	u, err := s.db.GetUpload(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.uploadView(u))
}

// apiUploadHead waits for a chunk still being received (a dropped connection
// the server has not yet noticed, a stalled one being cut), so the offset it
// gives is where the next chunk must start.
func (s *Server) apiUploadHead(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	defer s.lockUpload(id)()
	u, err := s.db.GetUpload(r.Context(), id)
	if err != nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.Header().Set("Upload-Offset", strconv.FormatInt(u.Received, 10))
	w.Header().Set("Upload-Length", strconv.FormatInt(u.Size, 10))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

func (s *Server) lockUpload(id string) func() {
	m, _ := s.uploadLocks.LoadOrStore(id, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// apiUploadPatch appends the body at Upload-Offset.
func (s *Server) apiUploadPatch(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if ct := r.Header.Get("Content-Type"); ct != "application/offset+octet-stream" {
		writeJSON(w, http.StatusUnsupportedMediaType, errorBody{"Content-Type must be application/offset+octet-stream"})
		return
	}
	offset, err := strconv.ParseInt(r.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || offset < 0 {
		badRequest(w, "Upload-Offset header must be a non-negative number")
		return
	}
	release, refusal := s.guard.acquireUpload(r)
	if refusal != "" {
		tooManyRequests(w, refusal)
		return
	}
	defer release()
	defer s.lockUpload(id)()
	u, err := s.db.GetUpload(r.Context(), id)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if u.Complete || offset != u.Received {
		writeJSON(w, http.StatusConflict, map[string]any{"error": fmt.Sprintf("the upload is at offset %d", u.Received), "offset": u.Received})
		return
	}
	root, ok := s.uploadRoot(w)
	if !ok {
		return
	}
	defer root.Close()
	f, err := s.guard.openUpload(root, uploadFile(u))
	if err != nil {
		s.apiError(w, r, fmt.Errorf("upload %s: %w", id, err))
		return
	}
	defer f.Close()
	// Cut whatever an interrupted chunk left past the confirmed offset.
	if err := f.Truncate(u.Received); err != nil {
		s.apiError(w, r, err)
		return
	}
	remaining := u.Size - u.Received
	body, stopBody := s.guard.uploadBody(w, r)
	out := &offsetWriter{f: f, off: u.Received}
	n, copyErr := io.Copy(out, io.LimitReader(body, remaining+1))
	stopBody()
	if n > remaining {
		f.Truncate(u.Received)
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{fmt.Sprintf("more bytes than the declared size %d", u.Size)})
		return
	}
	writeErr := out.err
	if writeErr == nil && (copyErr == nil || n > 0) {
		// A dropped, stalled or drained connection still confirms what arrived:
		// the client resumes there.
		writeErr = f.Sync()
	}
	if writeErr != nil {
		s.uploadWriteFailed(w, r, root, f, u, writeErr)
		return
	}
	if u.Received+n == u.Size {
		// The last chunk: check the file before accepting it, so a broken
		// checkpoint is refused here, with its reason, and leaves nothing behind.
		if err := s.validateUpload(root, u); err != nil {
			f.Close()
			root.Remove(uploadFile(u))
			s.db.DeleteUpload(context.WithoutCancel(r.Context()), id)
			s.apiError(w, r, err)
			return
		}
	}
	if err := s.db.AdvanceUpload(context.WithoutCancel(r.Context()), id, u.Received, u.Received+n); err != nil {
		s.apiError(w, r, err)
		return
	}
	confirmed := u.Received + n
	w.Header().Set("Upload-Offset", strconv.FormatInt(confirmed, 10))
	switch {
	case copyErr == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(copyErr, errDraining):
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", "10")
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": fmt.Sprintf("the server is restarting; %s is saved up to byte %d, resume from there", u.Path, confirmed), "offset": confirmed})
	case isTimeout(copyErr):
		writeJSON(w, http.StatusRequestTimeout, map[string]any{"error": fmt.Sprintf("no bytes arrived for %v; %s is saved up to byte %d, resume from there", s.guard.g.UploadStall, u.Path, confirmed), "offset": confirmed})
	default:
		// The client is gone; nobody reads this.
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "reading the chunk: " + copyErr.Error(), "offset": confirmed})
	}
}

// uploadWriteFailed answers a failed write or sync. A full disk removes the
// partial file and its row: keeping gigabytes on a full disk blocks every other
// upload, and the message tells the user what to do. Other write errors drop
// only the failed chunk, so the upload resumes from its confirmed offset.
func (s *Server) uploadWriteFailed(w http.ResponseWriter, r *http.Request, root *os.Root, f uploadWriter, u *store.Upload, err error) {
	log := s.reqLog(r).With("upload", u.ID, "path", u.Path)
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		f.Close()
		root.Remove(uploadFile(u))
		s.db.DeleteUpload(context.WithoutCancel(r.Context()), u.ID)
		log.Warn("disk full: upload removed", "err", err)
		writeJSON(w, http.StatusInsufficientStorage, errorBody{fmt.Sprintf("%s: the server's disk is full; the partial upload was removed: free space on the server and upload the file again", path.Join(u.Side, u.Path))})
		return
	}
	f.Truncate(u.Received)
	log.Error("upload write failed", "err", err)
	writeJSON(w, http.StatusInternalServerError, errorBody{fmt.Sprintf("%s: writing failed (%v); resume from offset %d", path.Join(u.Side, u.Path), plainErr(err), u.Received)})
}

func plainErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// validateUpload parses the header of a finished checkpoint file (safetensors or
// torch pickle); other files (index, config, tokenizer) are checked when the
// analysis opens the folder.
func (s *Server) validateUpload(root *os.Root, u *store.Upload) error {
	name := uploadFile(u)
	display := path.Join(u.Side, u.Path)
	lim := s.openOptions().Limits
	if lim.MaxHeaderBytes == 0 {
		lim = checkpoint.DefaultLimits
	}
	switch {
	case strings.HasSuffix(u.Path, ".safetensors"):
		f, err := root.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = safetensors.ReadHeader(f, u.Size, display, lim.MaxHeaderBytes, lim.MaxTensors)
		return err
	case strings.HasSuffix(u.Path, ".bin"), strings.HasSuffix(u.Path, ".pt"), strings.HasSuffix(u.Path, ".pth"):
		f, err := root.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = torchzip.Read(f, u.Size, display, lim.MaxPickleBytes, lim.MaxTensors)
		return err
	}
	return nil
}

// offsetWriter writes at increasing offsets with WriteAt, so a chunk lands
// exactly where the confirmed offset says, whatever the file position.
// The first write error is kept in err, to tell a failing disk from a failing
// client after io.Copy.
type offsetWriter struct {
	f   io.WriterAt
	off int64
	err error
}

func (o *offsetWriter) Write(p []byte) (int, error) {
	n, err := o.f.WriteAt(p, o.off)
	o.off += int64(n)
	if err != nil && o.err == nil {
		o.err = err
	}
	return n, err
}

func (s *Server) apiUploadDelete(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	defer s.lockUpload(id)()
	u, err := s.db.GetUpload(r.Context(), id)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	root, ok := s.uploadRoot(w)
	if !ok {
		return
	}
	defer root.Close()
	if err := root.Remove(uploadFile(u)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.apiError(w, r, err)
		return
	}
	if err := s.db.DeleteUpload(r.Context(), id); err != nil {
		s.apiError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
