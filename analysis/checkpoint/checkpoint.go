// Package checkpoint reads model checkpoints as researchers have them —
// safetensors files, sharded safetensors folders and torch zip pickles — without
// trusting a single number in them until it has been checked against the file.
//
// Opening a source reads and validates only headers; tensor bytes are read later,
// in caller-sized chunks: with ReadAt (pread) into reused buffers, or, with
// Options.Map, for safetensors files on Linux, as slices of the file mapped into
// memory (Mapped) that the reader releases once processed (Release), so memory
// stays bounded whatever the checkpoint size.
package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/deltascope/deltascope/analysis/checkpoint/safetensors"
	"github.com/deltascope/deltascope/analysis/tensor"
)

// Format names how a source is stored on disk.
type Format string

const (
	FormatSafetensors Format = "safetensors"         // one .safetensors file
	FormatSharded     Format = "safetensors-sharded" // a folder with model.safetensors.index.json
	FormatFolder      Format = "safetensors-folder"  // a folder of *.safetensors files, no index
	FormatTorchZip    Format = "torch-zip"           // torch.save zip pickle (.bin, .pt, .pth)
)

// Tensor locates one tensor's bytes in a file. Nothing is read until ReadAt.
type Tensor struct {
	Name   string       // name seen by the analysis: the source prefix + Stored
	Stored string       // name inside the source (dotted for nested pickles)
	DType  tensor.DType //
	Shape  []int64      // empty for a scalar
	File   string       // path of the file holding the bytes
	Offset int64        // absolute offset of the first byte in File
	Size   int64        // bytes; always Elements()*DType.Bits()/8, checked at open

	f io.ReaderAt // the open file; set by the source that produced the tensor
	m *mapping    // the file mapped into memory, or nil (see Mapped)
}

// Elements is the product of the shape (1 for a scalar). Shapes are checked for
// overflow when a source is opened, so this cannot overflow for an opened tensor.
func (t *Tensor) Elements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// ReadAt reads len(p) bytes of the tensor's data starting at byte off of the tensor.
func (t *Tensor) ReadAt(p []byte, off int64) error {
	if off < 0 || off+int64(len(p)) > t.Size {
		return fmt.Errorf("%s: tensor %q: read [%d, %d) outside its %d bytes", t.File, t.Name, off, off+int64(len(p)), t.Size)
	}
	if t.f == nil {
		return fmt.Errorf("%s: tensor %q: source is closed", t.File, t.Name)
	}
	n, err := t.f.ReadAt(p, t.Offset+off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	// A remote object's reader already says what went wrong, about this file.
	if te, ok := errors.AsType[*tensor.Error](err); ok && te.Path == t.File {
		return &tensor.Error{Path: t.File, Tensor: t.Name, Msg: "reading data: " + te.Msg}
	}
	return &tensor.Error{Path: t.File, Tensor: t.Name, Msg: fmt.Sprintf("reading data: %v (was the file truncated after opening?)", err)}
}

// FileInfo describes one file read for a source. Size, modification time, inode,
// device and a hash of the file's first and last 64 KiB form a quick identity: a
// cache can recognise unchanged files without reading them again.
type FileInfo struct {
	Path      string `json:"path"`
	Size      int64  `json:"size"`
	ModTimeNs int64  `json:"mtime_ns"`
	Inode     uint64 `json:"inode"`
	Device    uint64 `json:"device"`
	HeadSHA   string `json:"head_sha"`
}

// Entry is a non-tensor value found in a pickle (a step counter, a note): listed
// for the user, never fatal.
type Entry struct {
	Name  string `json:"name"`
	Value string `json:"value"` // a short rendering, e.g. "int 1234"
}

// Source is one `[PREFIX=]PATH` that has been opened and validated.
type Source struct {
	Spec     string            // as given by the user
	Prefix   string            // prepended to every stored name
	Path     string            // the path part of Spec, cleaned
	Format   Format            //
	Files    []FileInfo        // every file opened, in a stable order
	Tensors  []Tensor          // in file order
	Metadata map[string]string // safetensors __metadata__ or index metadata, stringified
	Config   json.RawMessage   // config.json beside the checkpoint, when present and valid JSON
	Entries  []Entry           // non-tensor pickle entries

	closers    []io.Closer
	filesOnly  bool          // Options.FilesOnly
	mapped     bool          // Options.Map
	headerWait time.Duration // Options.HeaderWait
}

// Close releases the open files. Tensors of a closed source cannot be read.
func (s *Source) Close() error {
	var first error
	for _, c := range s.closers {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	s.closers = nil
	for i := range s.Tensors {
		s.Tensors[i].f = nil
		s.Tensors[i].m = nil
	}
	return first
}

func errorf(path, format string, args ...any) error {
	return tensor.Errorf(path, format, args...)
}

func tensorErrorf(path, name, format string, args ...any) error {
	return tensor.TensorErrorf(path, name, format, args...)
}

// Limits bounds what a source may declare before anything is allocated for it.
type Limits struct {
	MaxHeaderBytes int64 // safetensors JSON header; at most the format's own cap, safetensors.MaxHeaderLen (100,000,000)
	MaxTensors     int   // per source
	MaxShards      int   // files per sharded folder
	MaxPickleBytes int64 // data.pkl size
}

// DefaultLimits are generous enough for every public VLA and small enough that a
// hostile header cannot make deltascope allocate gigabytes.
//
// MaxTensors: OpenVLA-7B has 982 tensors, π0.5 812, a 70B Llama 723; 65,536
// leaves 60× room over the largest VLA while keeping one parsed source under
// ~40 MB (a header of 1 M tiny tensors, 89 MB, took a preview to 1.5 GB).
//
// MaxHeaderBytes: real headers are 100–200 KB (OpenVLA-7B's, 982 tensors, is
// ~110 KB); 16 MiB leaves 80× room while bounding what the names of one file
// may total (with safetensors.MaxNameLen per name). At the format's own cap,
// 65,536 names of 1,400 bytes made a 91 MB header that took one preview to
// 435 MB and `inspect` to 533 MB. `serve --max-header` may raise it up to
// safetensors.MaxHeaderLen.
var DefaultLimits = Limits{
	MaxHeaderBytes: 16 << 20,
	MaxTensors:     65_536,
	MaxShards:      10_000,
	MaxPickleBytes: 64 << 20, // ~150 bytes per tensor in a state dict's data.pkl
}

// Options control how sources are opened.
type Options struct {
	Limits Limits
	// Roots, when non-empty, confines every path opened to these folders (after
	// resolving symlinks). Used by the server; the CLI leaves it empty.
	Roots []string
	// FilesOnly finds and identifies a source's files (confinement, index,
	// quick identity) without reading any header: enough to recognise files
	// analysed before, at a fraction of the cost. Such a source has no tensors.
	FilesOnly bool
	// Map maps safetensors files into memory (Linux), so the engine reads
	// tensors in place instead of copying them with pread. Off by default, and
	// the analysis callers leave it off: measured on the 2-core VM (Linux 6.18),
	// mapped reading took 5–10 % less time on pairs already in the page cache
	// (TinyLlama, 4.4–8.8 GB), but on a pair larger than the page cache
	// (OpenVLA-7B shape, 30 GB, read from disk) it took 28 s against 16 s with
	// pread and 20 s for `cat`. Tests check both paths agree.
	Map bool
	// HeaderWait is how long opening waits for one of the HeaderSlots before
	// failing with ErrBusy; 0 waits as long as it takes. The server sets it
	// (DefaultHeaderWait), so a crowd of large headers gets 429s instead of
	// memory; the CLI and the job runner wait.
	HeaderWait time.Duration
	// Context bounds the requests made for remote sources (s3://, hf://), from
	// opening to the last tensor read, so a cancelled job stops its downloads;
	// nil means context.Background. Local files ignore it.
	Context context.Context
}

func (o Options) limits() Limits {
	l := o.Limits
	d := DefaultLimits
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	l.MaxHeaderBytes = min(l.MaxHeaderBytes, safetensors.MaxHeaderLen)
	if l.MaxTensors <= 0 {
		l.MaxTensors = d.MaxTensors
	}
	if l.MaxShards <= 0 {
		l.MaxShards = d.MaxShards
	}
	if l.MaxPickleBytes <= 0 {
		l.MaxPickleBytes = d.MaxPickleBytes
	}
	return l
}
