package handlers

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/store"
)

// Uploads speak tus 1.0 (api_uploads_tus.go): any tus client creates an upload
// with its metadata, appends chunks and resumes after a dropped connection.
// The rules of this server are tusd's hooks: who owns an upload, how much one
// account may hold, and the checkpoint check at the end. A finished file is
// linked to <uploads>/<session>/<side>/<path>, where analyses read it.

type uploadView struct {
	*store.Upload
	SpecPath string `json:"spec_path"` // absolute path (or s3:// source) of the file, for POST /api/analyses
	SideDir  string `json:"side_dir"`  // absolute path (or s3:// source) of the side's folder
}

func (s *Server) uploadView(u *store.Upload) uploadView {
	if s.cfg.UploadStore != "" { // s3://BUCKET/PREFIX/<session>/<side>/<path>
		side := s.cfg.UploadStore + "/" + path.Join(u.Session, u.Side)
		return uploadView{Upload: u, SpecPath: side + "/" + u.Path, SideDir: side}
	}
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

func plainErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// validateUpload parses the header of a finished checkpoint file (safetensors or
// torch pickle) stored under root as name; other files (index, config,
// tokenizer) are checked when the analysis opens the folder.
func (s *Server) validateUpload(root *os.Root, name string, u *store.Upload) error {
	// The same check as opening the file, bounds and header slots included: a
	// pickle bomb or a million-tensor header is refused here in bounded memory.
	return checkpoint.ValidateFile(root, name, path.Join(u.Side, u.Path), s.openOptions())
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
