package handlers

import (
	"archive/tar"
	"context"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/prune"
)

// apiRecipeExport downloads an export of a saved recipe.
func (s *Server) apiRecipeExport(w http.ResponseWriter, r *http.Request) {
	kind, ok := exportKind(w, r)
	if !ok {
		return
	}
	rec, ok := s.savedRecipe(w, r)
	if !ok {
		return
	}
	rc, err := recipeOf(rec)
	if err != nil {
		s.recipeAPIError(w, r, err)
		return
	}
	s.export(w, r, kind, rc)
}

// apiInlineExport downloads an export of a recipe sent in the body (JSON, or
// the form field "recipe" so that a plain HTML form can start a download the
// browser streams to disk).
func (s *Server) apiInlineExport(w http.ResponseWriter, r *http.Request) {
	kind, ok := exportKind(w, r)
	if !ok {
		return
	}
	rc, err := s.readRecipeBody(w, r)
	if err != nil {
		recipeBodyError(w, err)
		return
	}
	s.export(w, r, kind, rc)
}

func exportKind(w http.ResponseWriter, r *http.Request) (prune.ExportKind, bool) {
	kind, err := prune.LookupExport(r.URL.Query().Get("kind"))
	if err != nil {
		badRequest(w, "export: ?kind= must be one of "+strings.Join(prune.ExportKindNames(false), ", "))
		return prune.ExportKind{}, false
	}
	return kind, true
}

// export resolves the recipe and streams one export. Everything that can be
// refused (the recipe, the analysis, the VLA files) is checked before the
// first byte, so those errors are JSON; a failure after it aborts the
// connection, so that no client takes a truncated file for a whole one. Every
// writer runs under the request's context: a client that goes away stops the
// export within one block.
func (s *Server) export(w http.ResponseWriter, r *http.Request, kind prune.ExportKind, rc prune.Recipe) {
	sw := newStallWriter(w, s.guard.g.ExportStall) // a client that stops reading is cut off
	defer sw.done()
	w = sw
	id := chi.URLParam(r, "id")
	m, b, err := s.resolve(r, id, rc)
	if err != nil {
		s.recipeAPIError(w, r, err)
		return
	}
	name := fileStem(m.Recipe.Name)
	w.Header().Set("X-Params-Before", strconv.FormatInt(m.Params.Before, 10))
	w.Header().Set("X-Params-After", strconv.FormatInt(m.Params.After, 10))
	s.stats.exportsRunning.Add(1)
	defer s.stats.exportsRunning.Add(-1)
	ctx := r.Context()
	if !kind.NeedsVLA { // made from the mask alone: works once the checkpoint is gone
		s.streamFile(w, r, name+kind.Suffix, kind.ContentType, func(w io.Writer) error { return kind.WriteFile(ctx, w, m, nil, name) })
		return
	}

	vla, err := checkpoint.OpenSide(b.analysis.Request.VLA, s.openOptions())
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	defer vla.Close()
	if !kind.Folder {
		s.streamFile(w, r, name+kind.Suffix, kind.ContentType, func(w io.Writer) error { return kind.WriteFile(ctx, w, m, vla, name) })
		return
	}

	release, refusal := s.exportSlots.acquire(r.Context(), exportUser(r))
	if refusal != "" {
		tooManyRequests(w, refusal)
		return
	}
	defer release()
	// Checkpoint exports stream straight from the VLA's files into the tar:
	// every file's size is known from the mask before a byte is written, so
	// the download starts at once and needs no scratch disk. A remote VLA's
	// headers and companions are read under the request's context.
	files, err := kind.EntriesContext(ctx, m, vla)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	folder := name + "." + kind.Name
	entries := make([]tarEntry, len(files))
	now := time.Now().Truncate(time.Second)
	for i, e := range files {
		entries[i] = tarEntry{write: e.Write, hdr: &tar.Header{Typeflag: tar.TypeReg, Name: folder + "/" + e.Name, Size: e.Size, Mode: 0o644, ModTime: now}}
	}
	if err := streamTarEntries(ctx, w, entries, folder+".tar"); err != nil {
		s.apiError(w, r, err)
	}
}

// fileStem turns a recipe name into a safe file name stem.
func fileStem(name string) string {
	var b strings.Builder
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			b.WriteRune(c)
		case c == ' ' || c == '.':
			b.WriteByte('_')
		}
		if b.Len() >= 80 {
			break
		}
	}
	if strings.Trim(b.String(), "_") == "" {
		return "recipe"
	}
	return b.String()
}

func setDownloadHeaders(h http.Header, filename, ctype string) {
	h.Set("Content-Type", ctype)
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": filename}))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
}

// lazyDownload sends the download headers with the first byte, so that an
// error before it can still be a JSON error.
type lazyDownload struct {
	w               http.ResponseWriter
	filename, ctype string
	started         bool
}

func (d *lazyDownload) Write(p []byte) (int, error) {
	if !d.started {
		d.started = true
		setDownloadHeaders(d.w.Header(), d.filename, d.ctype)
		d.w.WriteHeader(http.StatusOK)
	}
	return d.w.Write(p)
}

// streamFile writes one file export straight to the response.
func (s *Server) streamFile(w http.ResponseWriter, r *http.Request, filename, ctype string, fill func(io.Writer) error) {
	d := &lazyDownload{w: w, filename: filename, ctype: ctype}
	if err := fill(d); err != nil {
		if !d.started {
			s.apiError(w, r, err)
			return
		}
		if r.Context().Err() != nil { // the client went away: the export stopped with it, as it should
			s.log.Info("export stopped: the client went away", "file", filename, "request_id", requestID(r))
		} else {
			s.log.Warn("export aborted midway", "file", filename, "err", err, "request_id", requestID(r))
		}
		panic(http.ErrAbortHandler)
	}
	if !d.started {
		d.Write(nil)
	}
}

type tarEntry struct {
	hdr   *tar.Header
	write func(context.Context, io.Writer) error // writes exactly hdr.Size bytes, or stops with ctx
}

// streamTarEntries sends entries as a tar with an exact Content-Length. An
// error before the first byte is returned; after it, the connection is
// aborted, so the client never takes half an archive for a whole one.
func streamTarEntries(ctx context.Context, w http.ResponseWriter, entries []tarEntry, filename string) error {
	length, err := tarLength(entries)
	if err != nil {
		return err
	}
	setDownloadHeaders(w.Header(), filename, "application/x-tar")
	w.Header().Set("Content-Length", strconv.FormatInt(length, 10))
	w.WriteHeader(http.StatusOK)

	tw := tar.NewWriter(w)
	for _, e := range entries {
		if err := copyTarEntry(ctx, tw, e); err != nil {
			panic(http.ErrAbortHandler)
		}
	}
	if err := tw.Close(); err != nil {
		panic(http.ErrAbortHandler)
	}
	return nil
}

func copyTarEntry(ctx context.Context, tw *tar.Writer, e tarEntry) error {
	if err := tw.WriteHeader(e.hdr); err != nil {
		return err
	}
	// tar.Writer refuses more bytes than the header says; Flush refuses fewer.
	if err := e.write(ctx, tw); err != nil {
		return err
	}
	return tw.Flush()
}

// tarLength is the exact size of the tar of entries: each header as
// archive/tar writes it (PAX records included), each file padded to 512
// bytes, and the two zero blocks of the end.
func tarLength(entries []tarEntry) (int64, error) {
	var n int64
	for _, e := range entries {
		var c countWriter
		if err := tar.NewWriter(&c).WriteHeader(e.hdr); err != nil {
			return 0, err
		}
		n += c.n + (e.hdr.Size+511)/512*512
	}
	return n + 1024, nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
