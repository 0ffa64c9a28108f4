package prune

import (
	"context"
	"errors"
	"io"
	"os"
	"sort"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/checkpoint/safetensors"
	"github.com/deltascope/deltascope/analysis/tensor"
)

// sourceFiles reads one VLA source's files for a masked or sliced export:
// local files are opened again by path; remote objects (s3://, hf://) are read
// through the checkpoint layer's own ranged readers, whose reads check the
// version the analysis opened, so an object rewritten mid-export fails
// instead of mixing two versions' bytes. Either way the bytes written are the
// same.
type sourceFiles struct {
	src    *checkpoint.Source
	remote *checkpoint.RemoteFiles // nil for a local source
}

// openSourceFiles prepares src for reading under ctx: a remote read in flight
// stops when ctx is cancelled.
func openSourceFiles(ctx context.Context, src *checkpoint.Source) (*sourceFiles, error) {
	r, err := src.Remote(ctx)
	if err != nil {
		return nil, err
	}
	return &sourceFiles{src: src, remote: r}, nil
}

// exportInput is one weight file of the VLA, opened again for an export.
type exportInput struct {
	io.ReaderAt          // the whole file
	file        *os.File // the local file (copy_file_range can take it), or nil
	path        string
	close       func() error
}

func (in *exportInput) Close() error { return in.close() }

// open opens one of the source's files and reads its header, refusing a file
// that changed size since the analysis opened it.
func (s *sourceFiles) open(fi checkpoint.FileInfo) (*exportInput, *safetensors.Header, error) {
	in, hdr, size, err := s.openInput(fi)
	if err != nil {
		return nil, nil, err
	}
	if size != fi.Size {
		in.Close()
		return nil, nil, tensor.Errorf(fi.Path, "is %d bytes now but was %d when opened: it changed during the export", size, fi.Size)
	}
	h, err := safetensors.ReadHeader(hdr, size, fi.Path, 0, 0)
	if err != nil {
		in.Close()
		return nil, nil, err
	}
	return in, h, nil
}

// openInput opens one of the source's files again: hdr is what its header is
// read from (a remote object's exact ranges, without the readahead that would
// fetch tensor blocks), size its size now.
func (s *sourceFiles) openInput(fi checkpoint.FileInfo) (in *exportInput, hdr io.ReaderAt, size int64, err error) {
	if s.remote == nil {
		f, err := checkpoint.OpenRegular(fi.Path) // never blocks on a FIFO put in its place
		if err != nil {
			return nil, nil, 0, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, nil, 0, tensor.Errorf(fi.Path, "%v", err)
		}
		return &exportInput{ReaderAt: f, file: f, path: fi.Path, close: f.Close}, f, st.Size(), nil
	}
	r, err := s.remote.Open(fi.Path)
	if err != nil {
		return nil, nil, 0, err
	}
	return &exportInput{ReaderAt: r, path: fi.Path, close: r.Close}, r.Header(), r.Size(), nil
}

// maxRemoteNames bounds the listing of a remote folder for its companions;
// the source itself was opened with at most a few thousand shards.
const maxRemoteNames = 1 << 16

// companions lists the source's companion files (see the local companions);
// a remote folder's are its small objects that are not weights, a remote
// single file's the config.json beside it.
func (s *sourceFiles) companions(skip map[string]bool) ([]companion, error) {
	if s.remote == nil {
		return companions(s.src, skip)
	}
	names := []string{ConfigFile}
	if isFolder(s.src) {
		var err error
		if names, err = s.remote.Names(maxRemoteNames); err != nil {
			return nil, err
		}
		sort.Strings(names) // the order os.ReadDir gives a local folder
	}
	var out []companion
	for _, name := range names {
		if skip[name] || isWeightFile(name) {
			continue
		}
		size, err := s.remote.Stat(name)
		if errors.Is(err, checkpoint.ErrNoObject) {
			continue
		}
		if err != nil { // not skipped: an export without its tokenizer would look whole
			return nil, err
		}
		if size > maxCompanionBytes {
			continue
		}
		out = append(out, companion{name: name, path: s.remote.Path(name), size: size})
	}
	return out, nil
}

func isFolder(src *checkpoint.Source) bool {
	return src.Format == checkpoint.FormatSharded || src.Format == checkpoint.FormatFolder
}

// read reads a whole companion file (at most maxCompanionBytes).
func (s *sourceFiles) read(c companion) ([]byte, error) {
	if s.remote == nil {
		return checkpoint.ReadRegular(c.path, maxCompanionBytes)
	}
	return s.remote.ReadSmall(c.name, c.size, maxCompanionBytes)
}

// copyCompanion writes companion c verbatim to the new file to.
func (s *sourceFiles) copyCompanion(c companion, to string) error {
	if s.remote == nil {
		return copyFile(c.path, to)
	}
	data, err := s.read(c)
	if err != nil {
		return err
	}
	return writeBytes(to, data)
}

// writeCompanion streams companion c, which must still have its listed size.
func (s *sourceFiles) writeCompanion(ctx context.Context, w io.Writer, c companion) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.remote == nil {
		return fileWriter(c.path, c.size)(ctx, w)
	}
	data, err := s.read(c)
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}
