package checkpoint

import (
	"context"
	"errors"
	"io"
	"path"
	"strings"
)

// RemoteFiles reads a remote source's objects again from start to end — what
// a masked or sliced export needs, which copies whole files — through the
// same backends, retries, ETag checks and block cache as the analysis.
// Exports cannot reopen remote paths the way they reopen local files, so
// this is their way in; it adds no state to the source.
type RemoteFiles struct {
	// remoteFolder is the folder holding the source's companions (prefix ""
	// for the root), read under the export's ctx.
	remoteFolder
	objs   map[string]remoteObject // the source's files by display path, as opened (size and ETag)
	source string
}

// Remote gives the objects of a remote source, every read under ctx (so a
// cancelled export stops a fetch in flight, not just before the next one).
// It answers nil for a local source.
func (s *Source) Remote(ctx context.Context) (*RemoteFiles, error) {
	if !IsRemote(s.Path) {
		return nil, nil
	}
	r := &RemoteFiles{remoteFolder: remoteFolder{ctx: ctx}, objs: map[string]remoteObject{}, source: s.Path}
	for _, c := range s.closers {
		f, ok := c.(*remoteFile)
		if !ok {
			continue
		}
		r.be = f.be
		r.objs[f.display] = f.obj
	}
	if r.be == nil {
		return nil, errorf(s.Path, "is closed, or has no remote files to read")
	}
	switch s.Format {
	case FormatSharded, FormatFolder:
		// The source path is the folder: display("") + its key.
		root := r.be.display("")
		p := strings.TrimSuffix(s.Path, "/") + "/"
		key, ok := strings.CutPrefix(p, root)
		if !ok {
			return nil, errorf(s.Path, "cannot tell the folder's key (objects are named under %s)", root)
		}
		r.prefix = strings.TrimSuffix(key, "/")
	default:
		if len(s.Files) != 1 {
			return nil, errorf(s.Path, "a single-file source with %d files", len(s.Files))
		}
		obj, ok := r.objs[s.Files[0].Path]
		if !ok {
			return nil, errorf(s.Path, "was not opened as a remote object")
		}
		if d := path.Dir(obj.key); d != "." {
			r.prefix = d
		}
	}
	return r, nil
}

// RemoteReader reads one object of a remote source: ReadAt fills all of p or
// fails with a message naming the object (changed, shorter, unreachable).
type RemoteReader struct {
	d      *remoteData
	cancel context.CancelFunc
}

// Open opens the source's file at display path p (one of Source.Files) for a
// read from start to end, with readahead to its end. Its bytes must be the
// version the source opened: a rewritten object fails the read.
func (r *RemoteFiles) Open(p string) (*RemoteReader, error) {
	obj, ok := r.objs[p]
	if !ok {
		return nil, errorf(p, "is not a file of %s", r.source)
	}
	// A file of its own (the cache keys blocks by file): its reads run under
	// the export's context, and Close cancels its prefetches still in flight
	// (a failed fetch can be evicted; a prefetch nobody will read, fetched
	// whole, could not) and drops its blocks.
	ctx, cancel := context.WithCancel(r.ctx)
	f := &remoteFile{ctx: ctx, be: r.be, obj: obj, display: p}
	return &RemoteReader{d: &remoteData{f: f, end: obj.size}, cancel: cancel}, nil
}

// Size is the object's size when the source was opened.
func (rr *RemoteReader) Size() int64 { return rr.d.f.obj.size }

// ReadAt reads len(p) bytes at off; a read past the end is an error.
func (rr *RemoteReader) ReadAt(p []byte, off int64) (int, error) {
	if err := rr.d.f.ctx.Err(); err != nil {
		return 0, err
	}
	return rr.d.ReadAt(p, off)
}

// Header reads exact ranges without the block cache: for the safetensors
// header, where readahead would fetch tensor blocks nobody may read.
func (rr *RemoteReader) Header() io.ReaderAt { return rr.d.f }

// Close stops the reader's prefetches and forgets its cached blocks.
func (rr *RemoteReader) Close() error {
	rr.cancel()
	return rr.d.f.Close()
}

// Names lists the objects directly in the source's folder (a folder source's
// own, a single file's neighbours), at most max of them.
func (r *RemoteFiles) Names(max int) ([]string, error) {
	names, err := r.be.list(r.ctx, r.prefix, max)
	if err != nil {
		return nil, remoteErr(r.Path(""), err)
	}
	return names, nil
}

// Path is the display path of name in the source's folder ("" the folder).
func (r *RemoteFiles) Path(name string) string {
	if name == "" {
		return strings.TrimSuffix(r.be.display(r.prefix), "/")
	}
	return r.join(name)
}

// ErrNoObject is what Stat answers for a name with no object.
var ErrNoObject = errors.New("no such object")

// Stat is the size of the object name in the source's folder, or ErrNoObject.
func (r *RemoteFiles) Stat(name string) (int64, error) {
	obj, err := r.be.stat(r.ctx, r.key(name))
	if errors.Is(err, errRemoteNotFound) {
		return 0, ErrNoObject
	}
	if err != nil {
		return 0, remoteErr(r.Path(name), err)
	}
	return obj.size, nil
}

// ReadSmall reads the whole object name of the source's folder, which must be
// size bytes long (what Stat said: an export announces sizes before it
// writes) and at most limit.
func (r *RemoteFiles) ReadSmall(name string, size, limit int64) ([]byte, error) {
	display := r.Path(name)
	data, err := r.readSmall(name, display, limit)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != size {
		return nil, errorf(display, "is %d bytes now but was %d when the export began: it changed during the export", len(data), size)
	}
	return data, nil
}
