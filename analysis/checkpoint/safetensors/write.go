package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/deltascope/deltascope/analysis/tensor"
)

// WriteTensor declares one tensor of a file about to be written: its bytes follow
// the header in declaration order, so the caller streams data in that order.
type WriteTensor struct {
	Name  string
	DType tensor.DType
	Shape []int64
}

// Writer streams the data section of a safetensors file after NewWriter has
// written its header. It counts bytes so that a file can never end up with a
// header that disagrees with its data.
type Writer struct {
	w          io.Writer
	headerSize int64 // 8-byte length prefix + padded JSON
	dataSize   int64
	written    int64
	err        error // sticky: after a failed write the file is unusable
}

// maxWriteHeader is the format's own cap on the JSON header; readers refuse more.
const maxWriteHeader = 100_000_000

// WriteTensorBytes is the number of data bytes a tensor of dtype d and shape
// shape occupies, with every rule of the format checked: a known dtype,
// non-negative dimensions, no overflow, and packed sub-byte types ending on a byte.
func WriteTensorBytes(d tensor.DType, shape []int64) (int64, error) {
	bits := d.Bits()
	if bits == 0 {
		return 0, fmt.Errorf("invalid dtype %v", d)
	}
	elems := int64(1)
	for i, n := range shape {
		if n < 0 {
			return 0, fmt.Errorf("dimension %d is negative (%d)", i, n)
		}
		if n != 0 && elems > math.MaxInt64/n {
			return 0, fmt.Errorf("shape %v overflows int64 elements", shape)
		}
		elems *= n
	}
	if elems > math.MaxInt64/bits {
		return 0, fmt.Errorf("shape %v of %v overflows int64 bits", shape, d)
	}
	totalBits := elems * bits
	if totalBits%8 != 0 {
		return 0, fmt.Errorf("%d elements of %v do not fill whole bytes", elems, d)
	}
	return totalBits / 8, nil
}

// DataSize is the total number of data bytes of the tensors, i.e. the file size
// minus the header. Every tensor is validated as NewWriter would.
func DataSize(tensors []WriteTensor) (int64, error) {
	var total int64
	for _, t := range tensors {
		n, err := WriteTensorBytes(t.DType, t.Shape)
		if err != nil {
			return 0, fmt.Errorf("tensor %q: %v", t.Name, err)
		}
		if total > math.MaxInt64-n {
			return 0, fmt.Errorf("tensor %q: total data size overflows int64", t.Name)
		}
		total += n
	}
	return total, nil
}

// NewWriter validates the tensors, writes the header (8-byte little-endian
// length, then JSON padded with spaces to a multiple of 8 bytes as the reference
// writer does, metadata first under "__metadata__", tensors contiguous from 0 in
// the given order) and returns a Writer for the data bytes.
func NewWriter(w io.Writer, tensors []WriteTensor, metadata map[string]string) (*Writer, error) {
	header, dataSize, err := encodeWriteHeader(tensors, metadata)
	if err != nil {
		return nil, err
	}
	var prefix [8]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(len(header)))
	if _, err := w.Write(prefix[:]); err != nil {
		return nil, fmt.Errorf("writing header length: %w", err)
	}
	if _, err := w.Write(header); err != nil {
		return nil, fmt.Errorf("writing header: %w", err)
	}
	return &Writer{w: w, headerSize: 8 + int64(len(header)), dataSize: dataSize}, nil
}

// encodeWriteHeader builds the padded JSON header by hand so that the key order
// (metadata, then tensors as declared) is the order the data is laid out in,
// which encoding/json's sorted maps would not give.
func encodeWriteHeader(tensors []WriteTensor, metadata map[string]string) ([]byte, int64, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	if len(metadata) > 0 {
		b.WriteString(`"__metadata__":{`)
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys) // deterministic output for equal inputs
		for i, k := range keys {
			if !utf8.ValidString(k) || !utf8.ValidString(metadata[k]) {
				return nil, 0, fmt.Errorf("metadata %q: not valid UTF-8", k)
			}
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(&b, k)
			b.WriteByte(':')
			writeJSONString(&b, metadata[k])
		}
		b.WriteByte('}')
		first = false
	}
	seen := make(map[string]struct{}, len(tensors))
	var offset int64
	for _, t := range tensors {
		switch {
		case t.Name == "":
			return nil, 0, errors.New("tensor with an empty name")
		case t.Name == "__metadata__":
			return nil, 0, errors.New(`tensor named "__metadata__" would clash with the metadata key`)
		case !utf8.ValidString(t.Name):
			return nil, 0, fmt.Errorf("tensor %q: name is not valid UTF-8", t.Name)
		}
		if _, dup := seen[t.Name]; dup {
			return nil, 0, fmt.Errorf("tensor %q: declared twice", t.Name)
		}
		seen[t.Name] = struct{}{}
		n, err := WriteTensorBytes(t.DType, t.Shape)
		if err != nil {
			return nil, 0, fmt.Errorf("tensor %q: %v", t.Name, err)
		}
		if offset > math.MaxInt64-n {
			return nil, 0, fmt.Errorf("tensor %q: total data size overflows int64", t.Name)
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		writeJSONString(&b, t.Name)
		b.WriteString(`:{"dtype":"`)
		b.WriteString(t.DType.String())
		b.WriteString(`","shape":[`)
		for i, d := range t.Shape {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatInt(d, 10))
		}
		b.WriteString(`],"data_offsets":[`)
		b.WriteString(strconv.FormatInt(offset, 10))
		b.WriteByte(',')
		offset += n
		b.WriteString(strconv.FormatInt(offset, 10))
		b.WriteString("]}")
		if b.Len() > maxWriteHeader {
			return nil, 0, fmt.Errorf("header exceeds the format's %d-byte limit", maxWriteHeader)
		}
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	if b.Len() > maxWriteHeader {
		return nil, 0, fmt.Errorf("header exceeds the format's %d-byte limit", maxWriteHeader)
	}
	return b.Bytes(), offset, nil
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s) // cannot fail for a string; invalid UTF-8 is rejected earlier
	b.Write(enc)
}

// HeaderSize is the number of bytes before the data: the 8-byte length prefix
// plus the padded JSON. The file's final size is HeaderSize() + DataSize().
func (w *Writer) HeaderSize() int64 { return w.headerSize }

// DataSize is the number of data bytes the header declares.
func (w *Writer) DataSize() int64 { return w.dataSize }

// Written is the number of data bytes accepted so far.
func (w *Writer) Written() int64 { return w.written }

// Write appends data bytes. A write that would go past the declared data is
// refused whole, so nothing beyond the header's promise ever reaches the file.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if int64(len(p)) > w.dataSize-w.written {
		return 0, fmt.Errorf("safetensors writer: %d bytes more than the %d declared", w.written+int64(len(p))-w.dataSize, w.dataSize)
	}
	n, err := w.w.Write(p)
	w.written += int64(n)
	if err != nil {
		w.err = err
		return n, err
	}
	return n, nil
}

// Close checks that exactly the declared number of data bytes was written. It
// does not close the underlying writer, which the caller owns.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.written != w.dataSize {
		return fmt.Errorf("safetensors writer: %d data bytes written, header declares %d", w.written, w.dataSize)
	}
	return nil
}
