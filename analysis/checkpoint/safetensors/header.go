// Package safetensors reads and validates the header of a .safetensors file as
// strictly as the reference implementation (huggingface/safetensors): every
// number in the header is checked against the file before it is trusted, and
// every allocation is bounded by a limit or by the file's own size.
//
// File layout: 8 bytes N (u64 little-endian), N bytes of UTF-8 JSON (an object
// mapping tensor names to {dtype, shape, data_offsets}, plus an optional
// "__metadata__" object of strings), then the data section, which the tensors
// must cover exactly, in any listing order, with no hole and no overlap.
package safetensors

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/deltascope/deltascope/analysis/tensor"
)

// MaxHeaderLen is the format's own cap on the JSON header (the reference
// implementation refuses larger headers).
const MaxHeaderLen = 100_000_000

// DefaultMaxTensors is used when ReadHeader or ParseHeader is given maxTensors ≤ 0:
// OpenVLA-7B has 982 tensors and π0.5 812, so 65,536 is 60× the largest VLA
// while a header at the limit parses in ~20-40 MB (1 M tensors took 1.5 GB).
const DefaultMaxTensors = 65_536

// MaxNameLen bounds one tensor's name. Real names are under 150 bytes
// (OpenVLA-7B's longest is about 80, π0.5's about 110); a header of 65,536
// names of 1,400 bytes (91 MB) once made one preview of two such files peak at
// 435 MB. With this cap a name costs at most ~1 KB wherever it is kept or
// shown, and the header limit (checkpoint.DefaultLimits, 16 MiB) bounds the
// names' total: together they keep memory proportional to a real header
// rather than to what a hostile one may list. A per-name cap alone would not
// (65,536 names of 1 KB are still 64 MB), nor a budget on total name bytes
// alone (one 16 MB name would be copied whole into every message and table
// that names it).
const MaxNameLen = 1024

// MaxRank bounds the number of dimensions of one tensor. The reference has no
// limit, but no framework goes past a few dozen (NumPy: 64) and the bound keeps a
// hostile header from turning 100 MB of "1," into a gigabyte of shapes.
const MaxRank = 64

// metadataKey is the reserved header key holding free-form string metadata.
const metadataKey = "__metadata__"

// Entry is one tensor of the header. Begin and End are relative to the data
// section, which starts at Header.DataOffset in the file.
type Entry struct {
	Name  string
	DType tensor.DType
	Shape []int64 // empty for a scalar
	Begin int64
	End   int64
}

// Elements is the product of the shape (1 for a scalar); validated not to overflow.
func (e *Entry) Elements() int64 {
	n := int64(1)
	for _, d := range e.Shape {
		n *= d
	}
	return n
}

// Bytes is the size of the tensor's data.
func (e *Entry) Bytes() int64 { return e.End - e.Begin }

// Header is a validated safetensors header.
type Header struct {
	Metadata   map[string]string // nil when the file has no __metadata__
	Entries    []Entry           // sorted by Begin (then End, then Name)
	HeaderLen  int64             // N, the JSON length including padding
	DataOffset int64             // 8 + N: where the data section starts in the file
}

// ReadHeader reads and validates the header of the file at path, opened as f, of
// size bytes. The header length is checked against maxHeader (clamped to
// MaxHeaderLen; ≤ 0 means MaxHeaderLen) and against the file size before the
// header is read, so a forged length never causes an allocation. The header is
// streamed from the file, twice: a first pass counts its entries and checks its
// UTF-8 in constant memory, so a header over maxTensors is refused before a
// byte is kept for any tensor; the second decodes it token by token, keeping
// only the entries. Memory follows the tensors, not the header's length.
func ReadHeader(f io.ReaderAt, size int64, path string, maxHeader int64, maxTensors int) (*Header, error) {
	if maxHeader <= 0 || maxHeader > MaxHeaderLen {
		maxHeader = MaxHeaderLen
	}
	if size < 8 {
		return nil, tensor.Errorf(path, "file is %d bytes, too short for the 8-byte header length of a safetensors file", size)
	}
	var lenBuf [8]byte
	if err := readFull(f, lenBuf[:], 0); err != nil {
		return nil, tensor.Errorf(path, "reading the header length: %v", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > uint64(maxHeader) {
		return nil, tensor.Errorf(path, "header length %d exceeds the limit of %d bytes "+
			"(real checkpoints' headers are a few hundred KB; not a safetensors file, or a hostile one?)", n, maxHeader)
	}
	if n > uint64(size-8) {
		return nil, tensor.Errorf(path, "header length %d runs past the end of the file (%d bytes after the length)", n, size-8)
	}
	// Read in chunks of up to 64 KB (the decoder's own reads are small).
	section := func() io.Reader {
		return bufio.NewReaderSize(io.NewSectionReader(f, 8, int64(n)), int(min(n, 64<<10)))
	}
	return parseHeader(section, int64(n), size, path, maxTensors)
}

// readFull is ReadAt that treats a short read as an error even when the reader
// says io.EOF (the file shrank after its size was taken).
func readFull(f io.ReaderAt, p []byte, off int64) error {
	n, err := f.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// ParseHeader validates the JSON header hdr (the N bytes after the length) of a
// file of fileSize bytes. It allocates nothing beyond what the header's own
// bytes can describe, and refuses more than maxTensors tensors (≤ 0 means
// DefaultMaxTensors) while parsing, before the list grows.
func ParseHeader(hdr []byte, fileSize int64, path string, maxTensors int) (*Header, error) {
	return parseHeader(func() io.Reader { return bytes.NewReader(hdr) }, int64(len(hdr)), fileSize, path, maxTensors)
}

// parseHeader validates the header of hdrLen bytes that each call of open
// streams from its start.
func parseHeader(open func() io.Reader, hdrLen, fileSize int64, path string, maxTensors int) (*Header, error) {
	if maxTensors <= 0 {
		maxTensors = DefaultMaxTensors
	}
	dataLen := fileSize - 8 - hdrLen
	if fileSize < 8 || dataLen < 0 {
		return nil, tensor.Errorf(path, "header of %d bytes does not fit in a file of %d bytes", hdrLen, fileSize)
	}
	sc, err := scanHeader(open(), hdrLen)
	if err == nil && sc.bytes != hdrLen {
		err = io.ErrUnexpectedEOF // the file shrank after its size was taken
	}
	if err != nil {
		return nil, tensor.Errorf(path, "reading the %d-byte header: %v", hdrLen, err)
	}
	switch {
	case !sc.nonSpace:
		return nil, tensor.Errorf(path, "header is empty; it must be a JSON object")
	case !sc.utf8:
		return nil, tensor.Errorf(path, "header is not valid UTF-8")
	case sc.tensors() > maxTensors:
		return nil, tensor.Errorf(path, "header lists more than %d tensors, the limit (%d listed; "+
			"the largest VLAs have about a thousand)", maxTensors, sc.tensors())
	}
	h, err := parseJSON(open(), path, maxTensors, sc.keys)
	if err != nil {
		return nil, err
	}
	h.HeaderLen = hdrLen
	h.DataOffset = 8 + h.HeaderLen
	for i := range h.Entries {
		if err := checkEntry(&h.Entries[i], dataLen, path); err != nil {
			return nil, err
		}
	}
	if err := checkLayout(h.Entries, dataLen, path); err != nil {
		return nil, err
	}
	return h, nil
}

// checkEntry checks what one tensor declares on its own: offsets in order and
// inside the data section, an element count and byte size that fit in int64, and
// a byte range exactly as long as dtype and shape require.
func checkEntry(e *Entry, dataLen int64, path string) error {
	if e.End < e.Begin {
		return tensor.TensorErrorf(path, e.Name, "data_offsets [%d, %d): end before begin", e.Begin, e.End)
	}
	elems := int64(1)
	for _, d := range e.Shape {
		// Fold left and fail on the first overflow, as the reference does, so a
		// zero dimension after an overflowing prefix does not hide it.
		if d != 0 && elems > (1<<63-1)/d {
			return tensor.TensorErrorf(path, e.Name, "shape %v: element count overflows 64 bits", e.Shape)
		}
		elems *= d
	}
	bits := e.DType.Bits()
	if elems > (1<<63-1)/bits {
		return tensor.TensorErrorf(path, e.Name, "shape %v: byte size of %s overflows 64 bits", e.Shape, e.DType)
	}
	if elems*bits%8 != 0 {
		return tensor.TensorErrorf(path, e.Name, "%s %v has %d elements of %d bits, which do not fill whole bytes (misaligned sub-byte tensor)", e.DType, e.Shape, elems, bits)
	}
	need := elems * bits / 8
	if e.End-e.Begin != need {
		return tensor.TensorErrorf(path, e.Name, "data_offsets [%d, %d) but %s %v needs %d bytes", e.Begin, e.End, e.DType, e.Shape, need)
	}
	if e.End > dataLen {
		return tensor.TensorErrorf(path, e.Name, "data_offsets [%d, %d) run past the end of the data section (%d bytes): file truncated", e.Begin, e.End, dataLen)
	}
	return nil
}

// checkLayout sorts entries by offset and checks that they tile the data section
// exactly: the first starts at 0, each starts where the previous ends (no hole,
// no overlap, so no two tensors alias the same bytes), and the last ends at the
// end of the file. Zero-size tensors fit anywhere in the sequence.
func checkLayout(entries []Entry, dataLen int64, path string) error {
	slices.SortFunc(entries, func(a, b Entry) int {
		if a.Begin != b.Begin {
			return cmp.Compare(a.Begin, b.Begin)
		}
		if a.End != b.End {
			return cmp.Compare(a.End, b.End)
		}
		return strings.Compare(a.Name, b.Name)
	})
	var pos int64
	prev := ""
	for i := range entries {
		e := &entries[i]
		switch {
		case e.Begin > pos && prev == "":
			return tensor.TensorErrorf(path, e.Name, "data_offsets [%d, %d) leave a hole: bytes [0, %d) of the data section belong to no tensor", e.Begin, e.End, e.Begin)
		case e.Begin > pos:
			return tensor.TensorErrorf(path, e.Name, "data_offsets [%d, %d) leave a hole: bytes [%d, %d) after tensor %q belong to no tensor", e.Begin, e.End, pos, e.Begin, prev)
		case e.Begin < pos:
			return tensor.TensorErrorf(path, e.Name, "data_offsets [%d, %d) overlap tensor %q, which ends at %d", e.Begin, e.End, prev, pos)
		}
		pos = e.End
		prev = e.Name
	}
	if pos != dataLen {
		return tensor.Errorf(path, "trailing bytes: tensors end at %d but the data section holds %d bytes", pos, dataLen)
	}
	return nil
}

// headerScan is what the first pass learns about a header.
type headerScan struct {
	bytes    int64 // bytes read
	keys     int   // keys of the top-level object: tensors, and __metadata__ if present
	metadata bool  // one of the keys is __metadata__
	nonSpace bool  // anything but whitespace
	utf8     bool  // valid UTF-8 throughout
}

// tensors is how many tensors the header lists, if it is valid JSON.
func (sc headerScan) tensors() int {
	if sc.metadata {
		return sc.keys - 1
	}
	return sc.keys
}

// scanHeader reads r (size bytes) once, in constant memory: it counts the top-level keys
// (colons at depth 1 outside strings; in valid JSON, one per key), notes
// whether one is __metadata__, and checks UTF-8, carrying a rune split
// between two reads over to the next.
func scanHeader(r io.Reader, size int64) (headerScan, error) {
	sc := headerScan{utf8: true}
	const pre = utf8.UTFMax // room before each read for the carried bytes
	buf := make([]byte, pre+int(min(max(size, 1), 64<<10)))
	carry := 0 // bytes of an incomplete rune, kept in buf[pre-carry:pre]
	depth, inString, escaped := 0, false, false
	var key [16]byte // the first bytes of the current depth-1 string
	keyLen, tracking, lastKey := 0, false, false
	for {
		n, err := r.Read(buf[pre:])
		sc.bytes += int64(n)
		for _, c := range buf[pre : pre+n] {
			switch {
			case escaped:
				escaped = false
			case inString:
				switch c {
				case '\\':
					escaped = true
					tracking = false // writers spell __metadata__ without escapes
				case '"':
					inString = false
					lastKey = tracking && keyLen == len(metadataKey) && string(key[:keyLen]) == metadataKey
				default:
					if keyLen < len(key) {
						key[keyLen] = c
					}
					keyLen++
				}
			case c == '"':
				inString, tracking, keyLen = true, depth == 1, 0
			case c == '{' || c == '[':
				depth++
			case c == '}' || c == ']':
				depth--
			case c == ':' && depth == 1:
				sc.keys++
				if lastKey {
					sc.metadata = true
				}
				lastKey = false
			}
			if !sc.nonSpace && c != ' ' && c != '\t' && c != '\n' && c != '\r' {
				sc.nonSpace = true
			}
		}
		if sc.utf8 && n > 0 {
			chunk := buf[pre-carry : pre+n]
			keep := 0
			for i := len(chunk) - 1; i >= 0 && i >= len(chunk)-utf8.UTFMax; i-- {
				if utf8.RuneStart(chunk[i]) {
					if !utf8.FullRune(chunk[i:]) {
						keep = len(chunk) - i
					}
					break
				}
			}
			sc.utf8 = utf8.Valid(chunk[:len(chunk)-keep])
			copy(buf[pre-keep:pre], chunk[len(chunk)-keep:])
			carry = keep
		}
		if err == io.EOF {
			if carry > 0 {
				sc.utf8 = false
			}
			return sc, nil
		}
		if err != nil {
			return sc, err
		}
	}
}
