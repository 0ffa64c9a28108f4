package checkpoint

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ErrBusy is returned (wrapped, with the file's path) when every header
// parsing slot stayed taken for Options.HeaderWait: the server answers 429
// with Retry-After, a script tries again.
var ErrBusy = errors.New("the server is parsing as many large checkpoint headers as it allows at once; try again in a few seconds")

// HeaderSlots is how many large headers are parsed at once, process-wide.
// Parsing is CPU-bound and its memory follows the tensors kept (a header at
// the 65,536-tensor limit holds ~20-40 MB while parsed), so two at a time
// keep a small server's cores and memory for everything else: in the review,
// three concurrent previews of 1 M-tensor headers reached 5.8 GB.
const HeaderSlots = 2

// bigHeader is the size from which a header takes a slot: OpenVLA's largest
// shard header is ~100 KB and parses in milliseconds, so ordinary checkpoints
// never wait. Torch pickles always take one: they are rare and their parse,
// bounded by the unpickler's budget, is the costlier.
const bigHeader = 1 << 20

// DefaultHeaderWait is how long a server request waits for a slot before
// ErrBusy (see Options.HeaderWait).
const DefaultHeaderWait = 5 * time.Second

var headerSlots = make(chan struct{}, HeaderSlots)

// acquireHeaderSlot takes a slot for parsing the file f (display names it) when
// its header is large or it is a torch pickle; release gives it back. wait ≤ 0
// waits as long as it takes (the CLI, the job runner: work they were asked to do).
func acquireHeaderSlot(f io.ReaderAt, pickle bool, display string, wait time.Duration) (release func(), err error) {
	if !pickle {
		var b [8]byte
		if n, _ := f.ReadAt(b[:], 0); n < 8 || binary.LittleEndian.Uint64(b[:]) < bigHeader {
			return func() {}, nil // small or broken: the parser reports the latter
		}
	}
	if wait <= 0 {
		headerSlots <- struct{}{}
		return func() { <-headerSlots }, nil
	}
	select {
	case headerSlots <- struct{}{}:
		return func() { <-headerSlots }, nil
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case headerSlots <- struct{}{}:
		return func() { <-headerSlots }, nil
	case <-t.C:
		return nil, fmt.Errorf("%s: %w", display, ErrBusy)
	}
}

// IsCheckpointFile says whether a file's name is one deltascope reads weights from
// (safetensors or a torch pickle): the files an upload is validated as.
func IsCheckpointFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".safetensors", ".bin", ".pt", ".pth":
		return true
	}
	return false
}

// ValidateFile checks one checkpoint file that is not yet part of a source —
// a finished upload — exactly as opening it would: the header (safetensors) or
// the pickle (torch zip, chosen by content or by a .bin/.pt/.pth name) under
// the same limits, budgets and header slots. name is opened inside dir and
// must be a regular file; display names it in errors. Other files (index,
// config, tokenizer) are accepted: they are checked when their folder is
// opened.
func ValidateFile(dir *os.Root, name, display string, opt Options) error {
	if !IsCheckpointFile(display) {
		return nil
	}
	src := &Source{Path: display, Metadata: map[string]string{}, headerWait: opt.HeaderWait}
	defer src.Close()
	return src.readFile(dir, name, display, opt.limits())
}

// OpenRegular opens path for reading when it is a regular file, and refuses
// anything else (FIFO, device, socket) without blocking: the open is
// non-blocking and the check is made on the open file, so a file swapped for
// a FIFO after it was listed cannot hang an export that reopens it.
func OpenRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, errorf(path, "%s", plainFSError(err))
	}
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() {
		f.Close()
		if err != nil {
			return nil, errorf(path, "%s", plainFSError(err))
		}
		return nil, errorf(path, "not a regular file (%s)", info.Mode().Type())
	}
	return f, nil
}

// ReadRegular reads a whole small regular file, refusing one over limit bytes.
func ReadRegular(path string, limit int64) ([]byte, error) {
	f, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, errorf(path, "reading: %v", err)
	}
	if int64(len(data)) > limit {
		return nil, errorf(path, "is larger than the %d bytes allowed for this file", limit)
	}
	return data, nil
}
