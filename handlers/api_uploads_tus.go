package handlers

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/tus/tusd/v2/pkg/filestore"
	tus "github.com/tus/tusd/v2/pkg/handler"
	expslog "golang.org/x/exp/slog"

	"github.com/deltascope/deltascope/store"
)

// tusDirName is the folder, inside the upload folder, where tusd keeps the
// files being received (<id>) and their state (<id>.info). The file browser
// never lists it.
const tusDirName = ".tus"

// uploadsTus is the tus side of uploads: tusd's handler over a file store
// whose writes go through the Guard (full-disk handling, tests' failing disks),
// or over tusd's S3 store (--uploads s3://BUCKET/PREFIX, api_uploads_s3.go).
type uploadsTus struct {
	h   *tus.UnroutedHandler
	dir string // absolute path of <uploads>/.tus (with S3: tusd's part buffers)
	// locker: one PATCH, HEAD or DELETE of an upload at a time, in this
	// server and, with a PostgreSQL store, in every server sharing it
	// (api_uploads_lock.go).
	locker *uploadLocker
	store  *tusStore     // the file store; nil with S3
	s3     *s3Uploads    // the S3 store; nil on local disk
	core   tus.DataStore // whichever of the two
}

func (s *Server) tusDir() string { return filepath.Join(s.cfg.UploadDir, tusDirName) }

// newUploadsTus builds the tusd handler; nil when uploads are disabled.
func (s *Server) newUploadsTus() (*uploadsTus, error) {
	if s.cfg.UploadDir == "" {
		return nil, nil
	}
	// Each lock held keeps a connection: the PATCHes this server accepts at
	// once, and room for HEADs, DELETEs and the sweeper.
	locker, err := newUploadLocker(s.cfg.UploadLockDB, s.guard.g.MaxUploads+16)
	if err != nil {
		return nil, err
	}
	t := &uploadsTus{dir: s.tusDir(), locker: locker}
	composer := tus.NewStoreComposer()
	if s.cfg.UploadStore != "" {
		su, err := newS3Uploads(s.db, s.cfg.UploadStore, t.dir)
		if err != nil {
			locker.Close()
			return nil, err
		}
		ds := s3DataStore{su}
		t.s3, t.core = su, ds
		composer.UseCore(ds)
		composer.UseTerminater(ds)
	} else {
		t.store = &tusStore{fs: filestore.New(t.dir), s: s, dir: t.dir}
		t.core = t.store
		composer.UseCore(t.store)
		composer.UseTerminater(t.store)
	}
	t.locker.UseIn(composer)
	h, err := tus.NewUnroutedHandler(tus.Config{
		StoreComposer: composer,
		BasePath:      "/api/uploads/",
		// Sizes are checked by the create hook, which says which limit was hit.
		MaxSize:              0,
		DisableDownload:      true,
		DisableConcatenation: true,
		Cors:                 &tus.CorsConfig{Disable: true}, // same origin only; CSRF is checked before tusd
		// The stall rule: a chunk may take hours, but each read must bring bytes
		// within UploadStall (tusd extends the read deadline after every read).
		NetworkTimeout:            s.guard.g.UploadStall,
		AcquireLockTimeout:        5 * time.Second,
		PreUploadCreateCallback:   s.tusPreCreate,
		PreFinishResponseCallback: s.tusPreFinish,
		PreUploadTerminateCallback: func(ev tus.HookEvent) (tus.HTTPResponse, error) {
			return tus.HTTPResponse{}, s.removeUploadFiles(ev.Context, ev.Upload.ID, false)
		},
		Logger: expslog.New(expslog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		locker.Close()
		return nil, err
	}
	t.h = h
	return t, nil
}

// tusError is an answer from a hook: tusd writes it as the response.
func tusError(status int, code, msg string) error {
	return tus.NewError(code, msg, status)
}

// hookOwner is the account a hook's request acts as (the hook's context keeps the
// request's values).
func hookOwner(ctx context.Context) *int64 {
	if p, _ := ctx.Value(principalKey{}).(*principal); p != nil && p.User != nil {
		return &p.User.ID
	}
	return nil
}

func sameOwner(a, b *int64) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

// tusPreCreate is the creation hook: the metadata names the side, the path in
// the side's folder and optionally the session to add the file to; the owner's
// quota is checked and the row recorded under an id this server chooses.
func (s *Server) tusPreCreate(ev tus.HookEvent) (tus.HTTPResponse, tus.FileInfoChanges, error) {
	var none tus.FileInfoChanges
	info := ev.Upload
	meta := info.MetaData
	side := meta["side"]
	if side != "base" && side != "vla" {
		return tus.HTTPResponse{}, none, tusError(http.StatusBadRequest, "ERR_BAD_METADATA", `metadata "side" must be "base" or "vla"`)
	}
	rel := meta["path"]
	if rel == "" {
		rel = meta["filename"]
	}
	p, err := cleanUploadPath(rel)
	if err != nil {
		return tus.HTTPResponse{}, none, tusError(http.StatusBadRequest, "ERR_BAD_METADATA", `metadata "path": `+err.Error())
	}
	if info.SizeIsDeferred {
		return tus.HTTPResponse{}, none, tusError(http.StatusBadRequest, "ERR_LENGTH_REQUIRED", "declare the file's size with Upload-Length")
	}
	if info.Size > s.cfg.MaxUploadBytes {
		return tus.HTTPResponse{}, none, tusError(http.StatusRequestEntityTooLarge, "ERR_MAX_SIZE_EXCEEDED",
			fmt.Sprintf("%s is %d bytes; this server accepts files up to %d bytes", p, info.Size, s.cfg.MaxUploadBytes))
	}
	session := meta["session"]
	if session == "" {
		session = store.NewUploadSession()
	} else if !validSession(session) {
		return tus.HTTPResponse{}, none, tusError(http.StatusBadRequest, "ERR_BAD_METADATA", "bad session id")
	}
	if err := os.MkdirAll(s.tusDir(), 0o755); err != nil {
		return tus.HTTPResponse{}, none, fmt.Errorf("creating the upload folder: %w", err)
	}
	// The file's place must be free: a finished upload is linked there (or,
	// with S3, completed there, over whatever was there).
	if s.uploads.s3 != nil {
		if taken, err := s.uploads.s3.exists(ev.Context, &store.Upload{Session: session, Side: side, Path: p}); err != nil {
			return tus.HTTPResponse{}, none, fmt.Errorf("asking the upload store: %w", err)
		} else if taken {
			return tus.HTTPResponse{}, none, tusError(http.StatusConflict, "ERR_EXISTS", p+" is already uploaded in this session")
		}
	} else if _, err := os.Lstat(filepath.Join(s.cfg.UploadDir, session, side, filepath.FromSlash(p))); err == nil {
		return tus.HTTPResponse{}, none, tusError(http.StatusConflict, "ERR_EXISTS", p+" is already uploaded in this session")
	}
	id := store.NewUploadSession() // a fresh random id, like sessions
	u, err := s.db.CreateOwnedUpload(ev.Context, store.NewUpload{ID: id, Session: session, Side: side, Path: p, Size: info.Size, Owner: hookOwner(ev.Context)},
		store.UploadQuota{Count: s.guard.g.MaxUploadsPerUser, Bytes: s.guard.g.MaxUploadBytesPerUser})
	var qe *store.QuotaError
	switch {
	case errors.As(err, &qe) && qe.Count >= qe.MaxCount:
		return tus.HTTPResponse{}, none, tus.Error{ErrorCode: "ERR_QUOTA", Message: qe.Error(), HTTPResponse: tus.HTTPResponse{
			StatusCode: http.StatusTooManyRequests, Body: "ERR_QUOTA: " + qe.Error() + "\n", Header: tus.HTTPHeader{"Retry-After": "60", "Content-Type": "text/plain; charset=utf-8"}}}
	case errors.As(err, &qe):
		return tus.HTTPResponse{}, none, tusError(http.StatusInsufficientStorage, "ERR_QUOTA", qe.Error())
	case errors.Is(err, store.ErrNotFound):
		return tus.HTTPResponse{}, none, tusError(http.StatusNotFound, "ERR_SESSION_NOT_FOUND", "no such upload session")
	case errors.Is(err, store.ErrConflict):
		return tus.HTTPResponse{}, none, tusError(http.StatusConflict, "ERR_EXISTS", err.Error())
	case err != nil:
		return tus.HTTPResponse{}, none, err
	}
	v := s.uploadView(u)
	return tus.HTTPResponse{Header: tus.HTTPHeader{"Deltascope-Upload-Session": session, "Deltascope-Spec-Path": v.SpecPath}},
		tus.FileInfoChanges{ID: id, MetaData: tus.MetaData{"side": side, "path": p, "session": session, "filename": path.Base(p)}}, nil
}

// tusPreFinish runs when the last byte arrived: a checkpoint that does not
// parse is refused with its reason and leaves nothing behind; a good one is
// linked into its session's folder and its row marked complete.
func (s *Server) tusPreFinish(ev tus.HookEvent) (tus.HTTPResponse, error) {
	ctx := context.WithoutCancel(ev.Context)
	u, err := s.db.GetUpload(ctx, ev.Upload.ID)
	if err != nil {
		return tus.HTTPResponse{}, tusError(http.StatusNotFound, "ERR_UPLOAD_NOT_FOUND", "upload not found")
	}
	if s.uploads.s3 != nil {
		return s.tusPreFinishS3(ctx, u)
	}
	root, err := os.OpenRoot(s.cfg.UploadDir)
	if err != nil {
		return tus.HTTPResponse{}, err
	}
	defer root.Close()
	if verr := s.validateUpload(root, path.Join(tusDirName, u.ID), u); verr != nil {
		s.removeUploadFiles(ctx, u.ID, true)
		return tus.HTTPResponse{}, tusError(http.StatusBadRequest, "ERR_INVALID_CHECKPOINT", verr.Error())
	}
	name := uploadFile(u)
	if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
		return tus.HTTPResponse{}, err
	}
	// A hard link: the bytes stay where tusd keeps them (so HEAD still answers
	// for a finished upload) and appear where analyses read them, for free.
	src, dst := filepath.Join(s.tusDir(), u.ID), filepath.Join(s.cfg.UploadDir, filepath.FromSlash(name))
	if err := os.Link(src, dst); err != nil {
		if errors.Is(err, os.ErrExist) {
			s.removeUploadFiles(ctx, u.ID, true)
			return tus.HTTPResponse{}, tusError(http.StatusConflict, "ERR_EXISTS", path.Join(u.Side, u.Path)+" is already uploaded in this session")
		}
		return tus.HTTPResponse{}, fmt.Errorf("linking the finished upload: %w", err)
	}
	if err := s.db.CompleteUpload(ctx, u.ID); err != nil {
		os.Remove(dst)
		return tus.HTTPResponse{}, err
	}
	return tus.HTTPResponse{Header: tus.HTTPHeader{"Deltascope-Spec-Path": s.uploadView(u).SpecPath}}, nil
}

// tusPreFinishS3 is tusPreFinish in a bucket: tusd has completed the object
// at its key, where analyses read it; its header is read back from there.
func (s *Server) tusPreFinishS3(ctx context.Context, u *store.Upload) (tus.HTTPResponse, error) {
	if verr := s.uploads.s3.validate(ctx, u, s.openOptions()); verr != nil {
		s.removeUploadFiles(ctx, u.ID, true)
		return tus.HTTPResponse{}, tusError(http.StatusBadRequest, "ERR_INVALID_CHECKPOINT", verr.Error())
	}
	if err := s.db.CompleteUpload(ctx, u.ID); err != nil {
		return tus.HTTPResponse{}, err
	}
	return tus.HTTPResponse{Header: tus.HTTPHeader{"Deltascope-Spec-Path": s.uploadView(u).SpecPath}}, nil
}

// removeUploadFiles removes an upload's linked file (and the folders that
// leaves empty) and its row; withTus also tusd's own files (tusd removes them
// itself on DELETE).
func (s *Server) removeUploadFiles(ctx context.Context, id string, withTus bool) error {
	ctx = context.WithoutCancel(ctx)
	// Files first: on a full disk, the database needs the space they free.
	if withTus && s.uploads.s3 == nil {
		s.removeTusFiles(id)
	}
	u, err := s.db.GetUpload(ctx, id)
	if err != nil {
		return nil
	}
	if s.uploads.s3 != nil {
		// tusd's DELETE removes the objects too, after this hook; removing
		// them here as well costs a few requests and leaves nothing behind
		// if that fails.
		s.removeObjects(ctx, u)
	} else {
		s.removeLinked(u)
	}
	if err := s.db.DeleteUpload(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// removeFiles removes everything an upload has on disk (its row is the
// caller's).
func (s *Server) removeFiles(u *store.Upload) {
	if s.uploads.s3 != nil {
		s.removeObjects(context.Background(), u)
		return
	}
	s.removeLinked(u)
	s.removeTusFiles(u.ID)
}

// removeObjects removes everything an upload has in the bucket, logging what
// could not be.
func (s *Server) removeObjects(ctx context.Context, u *store.Upload) {
	if err := s.uploads.s3.remove(ctx, u); err != nil {
		s.log.Warn("upload objects not removed", "upload", u.ID, "err", err)
	}
}

// removeLinked removes a finished upload's file from its session folder, and
// the folders that leaves empty.
func (s *Server) removeLinked(u *store.Upload) {
	root, err := os.OpenRoot(s.cfg.UploadDir)
	if err != nil {
		return
	}
	defer root.Close()
	name := uploadFile(u)
	if err := root.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("upload file not removed", "upload", u.ID, "err", err)
	}
	for dir := path.Dir(name); dir != "." && root.Remove(dir) == nil; dir = path.Dir(dir) {
	}
}

func (s *Server) removeTusFiles(id string) {
	for _, f := range []string{id, id + ".info"} {
		if err := os.Remove(filepath.Join(s.tusDir(), f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("upload file not removed", "upload", id, "err", err)
		}
	}
}

// validUploadID is the shape of the ids this server gives (store.newID, 12
// URL-safe characters): a request for anything else is answered 404 before
// any lookup or lock.
func validUploadID(id string) bool { return validSession(id) }

// tusUnavailable answers when uploads are disabled.
func (s *Server) tusUnavailable(w http.ResponseWriter) bool {
	if s.uploads == nil {
		forbidden(w, "uploads are disabled on this server")
		return true
	}
	return false
}

// apiUploadCreate is tus creation (POST /api/uploads), with tusd's protocol
// checks (Tus-Resumable, Upload-Length) before the create hook.
func (s *Server) apiUploadCreate(w http.ResponseWriter, r *http.Request) {
	if s.tusUnavailable(w) {
		return
	}
	if r.Method == http.MethodPost && r.Header.Get("Tus-Resumable") == "" && r.Header.Get("Upload-Length") == "" && r.Header.Get("Upload-Defer-Length") == "" {
		s.createFromJSON(w, r)
		return
	}
	s.uploads.h.Middleware(http.HandlerFunc(s.uploads.h.PostFile)).ServeHTTP(w, r)
}

// createFromJSON lets a script without a tus client create an upload with
// {"session", "side", "path", "size"}: the same tus creation (hooks, quota)
// runs, and the answer is the upload's JSON description with its Location.
// The chunks then go by plain tus PATCH requests.
func (s *Server) createFromJSON(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Session string `json:"session"`
		Side    string `json:"side"`
		Path    string `json:"path"`
		Size    int64  `json:"size"`
	}
	if !s.decodeJSON(w, r, &req) {
		return
	}
	if req.Size < 0 {
		badRequest(w, "size must not be negative")
		return
	}
	meta := []string{}
	for k, v := range map[string]string{"session": req.Session, "side": req.Side, "path": req.Path} {
		if v != "" {
			meta = append(meta, k+" "+base64.StdEncoding.EncodeToString([]byte(v)))
		}
	}
	tr := r.Clone(r.Context())
	tr.Body, tr.ContentLength = http.NoBody, 0
	tr.Header = r.Header.Clone()
	tr.Header.Del("Content-Type")
	tr.Header.Set("Tus-Resumable", "1.0.0")
	tr.Header.Set("Upload-Length", strconv.FormatInt(req.Size, 10))
	tr.Header.Set("Upload-Metadata", strings.Join(meta, ","))
	rec := httptest.NewRecorder()
	s.uploads.h.Middleware(http.HandlerFunc(s.uploads.h.PostFile)).ServeHTTP(rec, tr)
	if rec.Code != http.StatusCreated {
		msg := strings.TrimSpace(rec.Body.String())
		if _, after, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "ERR_") {
			msg = after
		}
		if ra := rec.Header().Get("Retry-After"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		writeJSON(w, rec.Code, errorBody{msg})
		return
	}
	loc := rec.Header().Get("Location")
	u, err := s.db.GetUpload(r.Context(), path.Base(loc))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	w.Header().Set("Location", loc)
	writeJSON(w, http.StatusCreated, s.uploadView(u))
}

// ownUpload finds the upload of the URL for its owner; anyone else, like an
// id that does not exist, gets 404. Malformed ids are refused before the
// database is asked, and no lock is ever taken for an unknown id.
func (s *Server) ownUpload(w http.ResponseWriter, r *http.Request) (*store.Upload, bool) {
	id := chi.URLParam(r, "id")
	if !validUploadID(id) {
		w.Header().Set("Tus-Resumable", "1.0.0")
		notFound(w, "upload not found")
		return nil, false
	}
	u, err := s.db.GetUpload(r.Context(), id)
	if err == nil && !sameOwner(u.Owner, actorID(r)) {
		err = store.ErrNotFound
	}
	if err != nil {
		w.Header().Set("Tus-Resumable", "1.0.0")
		if errors.Is(err, store.ErrNotFound) {
			notFound(w, "upload not found")
		} else {
			s.apiError(w, r, err)
		}
		return nil, false
	}
	return u, true
}

// apiUploadResource is tus HEAD (offset), PATCH (append) and DELETE
// (termination) of one upload, for its owner.
func (s *Server) apiUploadResource(w http.ResponseWriter, r *http.Request) {
	if s.tusUnavailable(w) {
		return
	}
	if r.Method == http.MethodOptions {
		s.uploads.h.Middleware(http.NotFoundHandler()).ServeHTTP(w, r)
		return
	}
	u, ok := s.ownUpload(w, r)
	if !ok {
		return
	}
	if r.Header.Get("Tus-Resumable") == "" {
		// A plain client (curl, the JSON creation above) speaks tus 1.0
		// without saying so: the requests are the same.
		r.Header.Set("Tus-Resumable", "1.0.0")
	}
	var next http.HandlerFunc
	switch r.Method {
	case http.MethodHead:
		next = s.uploads.h.HeadFile
	case http.MethodDelete:
		next = s.uploads.h.DelFile
	case http.MethodPatch:
		release, refusal := s.guard.acquireUpload(r)
		if refusal != "" {
			w.Header().Set("Tus-Resumable", "1.0.0")
			tooManyRequests(w, refusal)
			return
		}
		defer release()
		if !u.Complete {
			s.db.TouchUpload(r.Context(), u.ID)
		}
		body, stop := s.guard.drainableBody(w, r)
		defer stop()
		r.Body = body
		// tusd answers a stalled or drained chunk 500; say what happened.
		w = &chunkStatus{ResponseWriter: w, body: body.(*drainBody), stall: s.guard.g.UploadStall}
		next = s.uploads.h.PatchFile
	default:
		w.Header().Set("Allow", "HEAD, PATCH, DELETE, GET")
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{"method not allowed"})
		return
	}
	// tusd reads the id from a path relative to its base path.
	http.StripPrefix("/api/uploads", s.uploads.h.Middleware(next)).ServeHTTP(w, r)
}

// apiUploadGet describes one of the caller's uploads: where its file lies
// (spec_path, for POST /api/analyses) and how much has arrived.
func (s *Server) apiUploadGet(w http.ResponseWriter, r *http.Request) {
	if s.tusUnavailable(w) {
		return
	}
	u, ok := s.ownUpload(w, r)
	if !ok {
		return
	}
	s.withOffset(r.Context(), u)
	writeJSON(w, http.StatusOK, s.uploadView(u))
}

// apiUploadList lists the caller's own uploads (nobody else's).
func (s *Server) apiUploadList(w http.ResponseWriter, r *http.Request) {
	if s.tusUnavailable(w) {
		return
	}
	list, err := s.db.ListUploads(r.Context(), actorID(r))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	out := make([]uploadView, 0, len(list))
	for i := range list {
		s.withOffset(r.Context(), &list[i])
		out = append(out, s.uploadView(&list[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"uploads": out})
}

// withOffset fills in the offset of an upload still receiving from tusd's
// state (the row records it only at the end).
func (s *Server) withOffset(ctx context.Context, u *store.Upload) {
	if u.Complete {
		return
	}
	if up, err := s.uploads.core.GetUpload(ctx, u.ID); err == nil {
		if info, err := up.GetInfo(ctx); err == nil {
			u.Received = info.Offset
		}
	}
}

// tusStore is tusd's file store with this server's writes: chunks go through
// the Guard's opener at an explicit offset and are synced before tusd
// confirms them, and a full disk removes the partial upload and says so (507).
type tusStore struct {
	fs  filestore.FileStore
	s   *Server
	dir string
}

func (st *tusStore) NewUpload(ctx context.Context, info tus.FileInfo) (tus.Upload, error) {
	up, err := st.fs.NewUpload(ctx, info)
	if err != nil {
		return nil, err
	}
	return &tusUpload{Upload: up, st: st, id: info.ID}, nil
}

func (st *tusStore) GetUpload(ctx context.Context, id string) (tus.Upload, error) {
	up, err := st.fs.GetUpload(ctx, id)
	if err != nil {
		return nil, err
	}
	return &tusUpload{Upload: up, st: st, id: id}, nil
}

func (st *tusStore) AsTerminatableUpload(up tus.Upload) tus.TerminatableUpload {
	return st.fs.AsTerminatableUpload(up.(*tusUpload).Upload)
}

type tusUpload struct {
	tus.Upload
	st *tusStore
	id string
}

func (u *tusUpload) WriteChunk(ctx context.Context, offset int64, src io.Reader) (int64, error) {
	root, err := os.OpenRoot(u.st.dir)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	f, err := u.st.s.guard.openUpload(root, u.id)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	// Cut whatever an interrupted write left past the confirmed offset.
	if err := f.Truncate(offset); err != nil {
		return 0, err
	}
	out := &offsetWriter{f: f, off: offset}
	n, _ := io.Copy(out, src) // tusd's body reader keeps read errors to itself
	werr := out.err
	if werr == nil {
		werr = f.Sync()
	}
	if werr == nil {
		return n, nil
	}
	if errors.Is(werr, syscall.ENOSPC) || errors.Is(werr, syscall.EDQUOT) {
		// Keeping gigabytes on a full disk blocks every other upload: the
		// partial upload goes, and the message says what to do.
		display := u.id
		if row, err := u.st.s.db.GetUpload(context.WithoutCancel(ctx), u.id); err == nil {
			display = path.Join(row.Side, row.Path)
		}
		f.Close()
		u.st.s.removeUploadFiles(ctx, u.id, true)
		u.st.s.log.Warn("disk full: upload removed", "upload", u.id, "err", werr, "request_id", middleware.GetReqID(ctx))
		return 0, tusError(http.StatusInsufficientStorage, "ERR_DISK_FULL",
			display+": the server's disk is full; the partial upload was removed: free space on the server and upload the file again")
	}
	f.Truncate(offset)
	u.st.s.log.Error("upload write failed", "upload", u.id, "err", werr, "request_id", middleware.GetReqID(ctx))
	return 0, fmt.Errorf("writing failed (%v); resume from offset %d", plainErr(werr), offset)
}

// drainableBody makes an upload chunk stop reading when the server drains
// (Shutdown): tusd keeps what arrived, and the client resumes from it.
func (gs *guardState) drainableBody(w http.ResponseWriter, r *http.Request) (io.ReadCloser, func()) {
	b := &drainBody{ReadCloser: r.Body}
	select {
	case <-gs.draining:
		// The drain began before this chunk did: Shutdown lets the requests
		// it has accepted finish, so only chunks already streaming are cut
		// (and whether a new one was cut would be a race with the watcher).
		return b, func() {}
	default:
	}
	rc := http.NewResponseController(w)
	done := make(chan struct{})
	go func() {
		select {
		case <-gs.draining:
			b.drained.Store(true)
			rc.SetReadDeadline(time.Now()) // wakes a blocked Read
		case <-done:
		}
	}()
	return b, func() { close(done) }
}

type drainBody struct {
	io.ReadCloser
	drained  atomic.Bool
	timedOut atomic.Bool
}

func (b *drainBody) Read(p []byte) (int, error) {
	if b.drained.Load() {
		return 0, errDraining
	}
	n, err := b.ReadCloser.Read(p)
	switch {
	case err != nil && b.drained.Load():
		err = errDraining
	case err != nil && isTimeout(err):
		b.timedOut.Store(true)
	}
	return n, err
}

// chunkStatus closes the connection after a failed chunk, and turns tusd's 500 for a chunk cut by the stall rule into 408, and
// for one cut by a drain into 503: both saved what arrived (HEAD gives the
// offset to resume from), and a client should retry, not report a fault.
type chunkStatus struct {
	http.ResponseWriter
	body    *drainBody
	stall   time.Duration
	rewrote string
}

func (c *chunkStatus) WriteHeader(code int) {
	if code >= 400 {
		// tusd stops an interrupted chunk by setting the connection's read
		// deadline to now from a goroutine, which can run after this response:
		// on a reused connection it would cancel the next request. Not reusing
		// a connection whose chunk failed avoids that.
		c.Header().Set("Connection", "close")
	}
	if code == http.StatusInternalServerError {
		switch {
		case c.body.drained.Load():
			c.Header().Set("Retry-After", "10")
			c.Header().Set("Connection", "close")
			code, c.rewrote = http.StatusServiceUnavailable, "the server is restarting; what arrived is saved: resume from the offset HEAD gives\n"
		case c.body.timedOut.Load():
			code, c.rewrote = http.StatusRequestTimeout, fmt.Sprintf("no bytes arrived for %v; what arrived is saved: resume from the offset HEAD gives\n", c.stall)
		}
		if c.rewrote != "" {
			c.Header().Set("Content-Type", "text/plain; charset=utf-8")
			c.Header().Del("Content-Length")
		}
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *chunkStatus) Write(p []byte) (int, error) {
	if c.rewrote != "" {
		msg := c.rewrote
		c.rewrote = "-"
		if msg != "-" {
			c.ResponseWriter.Write([]byte(msg))
		}
		return len(p), nil
	}
	return c.ResponseWriter.Write(p)
}

func (c *chunkStatus) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// hiddenUpload says whether the file browser must hide rel under root idx:
// tusd's own folder, and under accounts the session folders of other
// accounts (their names would let anyone add files to or analyse another's
// upload).
func (s *Server) hiddenUpload(r *http.Request, idx int, rel string) bool {
	if s.cfg.UploadDir == "" || idx < 0 || idx >= len(s.cfg.Roots) || s.cfg.Roots[idx] != s.cfg.UploadDir || rel == "." {
		return false
	}
	first, _, _ := strings.Cut(rel, "/")
	if first == tusDirName {
		return true
	}
	if !s.cfg.Auth.accounts() {
		return false
	}
	ok, err := s.db.UploadSessionVisible(r.Context(), first, actorID(r))
	return err != nil || !ok
}
