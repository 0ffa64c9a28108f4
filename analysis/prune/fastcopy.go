package prune

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/deltascope/deltascope/analysis/checkpoint/safetensors"
)

// The fast path of a local export, written at explicit offsets into the new
// file: every range no mask touches (the header of a masked copy, every tensor
// without pruned cells) is copied by the kernel with copy_file_range, as cp
// does, without passing through this process; only masked tensors are read
// and written here, in blockBytes blocks. The bytes are those of the
// streaming path (stream.go), which remote sources and the server's tar use.
//
// On a 3.8 GB OpenVLA-7B-shaped VLA (scale 0.5) with openvla-moderate, 12 % of
// the bytes are in untouched tensors, 60 % in tensors with pruned rows only,
// 28 % in tensors with pruned columns. The streaming path took 30,600 read
// and write calls (32 KiB io.Copy rounds for untouched tensors); this one
// takes 1,900 (8 MiB preads and pwrites, 576 copy_file_range), and its time
// is the kernel's page-cache writes, as cp's is. Copying a row-masked tensor
// with copy_file_range and writing zeros over its pruned rows was tried: 38,000
// more pwrites, and 1.2-1.4x the CPU-seconds of reading it through memory; so
// was pwritev of its kept rows straight from a read-only mapping of the file
// (page faults on the mapping instead of the pread copy): 1.1-2.3x.

// exportLocal writes the masked or sliced copy of the local file in into out
// and returns the data bytes written.
func exportLocal(ctx context.Context, in *exportInput, h *safetensors.Header, out *os.File, dst, prefix string, m *Mask, sliced bool, buf *[]byte) (int64, error) {
	o := &fileOut{f: out}
	var sw *safetensors.Writer
	if sliced {
		// The new header goes first; data is then written around the
		// Writer, whose count would miss the kernel's copies, so the total is
		// checked here against what the header declares.
		var err error
		if sw, err = safetensors.NewWriter(o, slicedDecl(h, prefix, m), h.Metadata); err != nil {
			return 0, writeFailed(dst, err)
		}
	} else if err := o.copyRange(ctx, in.file, 0, h.DataOffset); err != nil {
		return 0, writeFailed(dst, err)
	}
	start := o.pos
	for i := range h.Entries {
		e := &h.Entries[i]
		t := m.Tensor(prefix + e.Name)
		var err error
		if t == nil {
			err = o.copyRange(ctx, in.file, h.DataOffset+e.Begin, e.Bytes())
		} else {
			_, err = streamMasked(ctx, o, io.NewSectionReader(in.file, h.DataOffset+e.Begin, e.Bytes()), e, t, sliced, buf)
		}
		if err != nil {
			return 0, streamFailed(in.path, dst, e.Name, err)
		}
	}
	total := o.pos - start
	if sw != nil && total != sw.DataSize() {
		return 0, writeFailed(dst, errors.New("the sliced data is not the size its header declares"))
	}
	if err := out.Close(); err != nil {
		return 0, writeFailed(dst, err)
	}
	return total, nil
}

// fileOut appends to a new file at explicit offsets.
type fileOut struct {
	f      *os.File
	pos    int64
	noCopy bool // copy_file_range was refused once (another file system, an old kernel): copy through memory
}

func (o *fileOut) Write(p []byte) (int, error) {
	n, err := o.f.WriteAt(p, o.pos)
	o.pos += int64(n)
	return n, err
}

// copyRange appends n bytes of in from off, one blockBytes block at a time,
// checking ctx before each (a cancelled export stops within a block), with
// copy_file_range where the kernel takes it and through memory (copyBlocks)
// from the first block it refuses on.
func (o *fileOut) copyRange(ctx context.Context, in *os.File, off, n int64) error {
	for n > 0 && !o.noCopy {
		if err := ctx.Err(); err != nil {
			return err
		}
		done, err := copyFileRange(in, off, o.f, o.pos, int(min(n, blockBytes)))
		switch {
		case err == nil && done == 0:
			return io.ErrUnexpectedEOF // the file is shorter than its header says: truncated since it was opened
		case err == nil:
			off, o.pos, n = off+int64(done), o.pos+int64(done), n-int64(done)
		case errors.Is(err, errNoCopyRange):
			o.noCopy = true
		default:
			return err
		}
	}
	if n == 0 {
		return nil
	}
	_, err := copyBlocks(ctx, o, io.NewSectionReader(in, off, n))
	return err
}
