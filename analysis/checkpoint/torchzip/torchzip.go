// Package torchzip reads the tensor directory of a torch.save zip archive (.bin,
// .pt, .pth) without executing anything: the zip central directory gives where
// each storage's bytes lie in the file, and a restricted unpickler written for
// this project interprets data.pkl symbolically, accepting only the handful of
// globals torch uses to rebuild tensors and refusing every other one.
//
// Nothing but data.pkl is read: storages stay in the file and their absolute
// offsets are reported so the caller can pread tensor bytes straight from it.
package torchzip

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"sort"
	"strings"

	"github.com/deltascope/deltascope/analysis/tensor"
)

// Defaults used by Read when the caller passes a limit ≤ 0.
const (
	// DefaultMaxPickle bounds data.pkl: a state dict spends ~150 bytes per
	// tensor (OpenVLA's 982 tensors: ~150 KB), so 64 MB holds the 65,536
	// tensors of DefaultMaxTensors with long names to spare.
	DefaultMaxPickle  = 64 << 20
	DefaultMaxTensors = 65536 // see checkpoint.DefaultLimits
	// maxPickleRatio is the most a deflated data.pkl may expand. torch.save
	// stores entries uncompressed; a re-zipped pickle of names and small ints
	// deflates ~5:1, while a run of one opcode deflates ~1000:1 — the shape of
	// a zip bomb.
	maxPickleRatio = 100
)

// Entry is one tensor of the archive.
type Entry struct {
	Name   string       // dotted, flattened from nested dicts and tensor lists
	DType  tensor.DType //
	Shape  []int64      // empty for a scalar
	Offset int64        // absolute offset of the first element in the zip FILE
	Size   int64        // bytes: elements × element size
}

// NonTensor is a leaf of the pickled object that is not a tensor (a step counter,
// a note, a config list), reported with a short rendering such as "int 1234" or
// `str "nested"`.
type NonTensor struct {
	Name, Value string
}

// Archive is what a torch.save file holds. Tensors are sorted by Offset (then by
// Name, for tensors that share bytes), which is the order in which reading them
// walks the file forward. NonTensors keep the order of the pickle.
type Archive struct {
	Tensors    []Entry
	NonTensors []NonTensor
}

// storageEntry is where the bytes of one storage (<archive>/data/<key>) lie in
// the file.
type storageEntry struct {
	offset int64 // absolute offset of the first byte in the file
	size   int64 // bytes
}

// Read parses the zip central directory and data.pkl of the file at path (f of
// size `size`) without executing anything. maxPickle bounds the size of data.pkl
// (checked before it is read); maxTensors bounds the number of tensors, and
// separately the number of non-tensor entries. A limit ≤ 0 means its default.
func Read(f io.ReaderAt, size int64, path string, maxPickle int64, maxTensors int) (*Archive, error) {
	if maxPickle <= 0 {
		maxPickle = DefaultMaxPickle
	}
	if maxTensors <= 0 {
		maxTensors = DefaultMaxTensors
	}
	if err := sniff(f, size, path); err != nil {
		return nil, err
	}
	zr, err := zip.NewReader(f, size)
	if err != nil {
		return nil, tensor.Errorf(path, "zip archive is truncated or corrupt (%v)", err)
	}
	prefix, pkl, err := findDataPkl(zr, path)
	if err != nil {
		return nil, err
	}
	if err := checkByteOrder(zr, prefix, path); err != nil {
		return nil, err
	}
	storages, err := storageTable(zr, prefix, size, path)
	if err != nil {
		return nil, err
	}
	data, err := readPickle(pkl, maxPickle, path)
	if err != nil {
		return nil, err
	}
	return unpickle(path, data, storages, maxTensors)
}

// legacyMagic is the pickled magic number (LONG1 of 10 bytes) that opens every
// file written by the pre-1.6 torch serializer, right after PROTO.
var legacyMagic = []byte{0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}

// sniff tells the formats torch.save has used apart before the zip reader sees
// the file, so that an old checkpoint gets an error that says what to do.
func sniff(f io.ReaderAt, size int64, path string) error {
	if size < 4 {
		return tensor.Errorf(path, "file is %d bytes, too short to be a torch.save zip archive", size)
	}
	head := make([]byte, min(size, 512))
	if _, err := f.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return tensor.Errorf(path, "cannot read the file header: %v", err)
	}
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return nil
	case head[0] == 0x80 && len(head) > 2 && bytes.HasPrefix(head[2:], legacyMagic):
		return tensor.Errorf(path, "legacy (pre-1.6) torch serialization format is not supported; "+
			"re-save it with torch.save(..., _use_new_zipfile_serialization=True)")
	case head[0] == 0x80:
		return tensor.Errorf(path, "a bare pickle, not a torch.save zip archive (legacy torch serialization "+
			"formats are not supported; re-save it with torch.save(..., _use_new_zipfile_serialization=True))")
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return tensor.Errorf(path, "tar-based torch serialization format (torch < 0.4) is not supported; "+
			"re-save it with a recent torch.save")
	}
	return tensor.Errorf(path, "not a zip archive: torch.save zip format (.bin, .pt, .pth) expected")
}

// findDataPkl finds the one "<folder>/data.pkl" of the archive. The folder name
// varies with the writer ("archive", the file stem, ...).
func findDataPkl(zr *zip.Reader, path string) (prefix string, pkl *zip.File, err error) {
	for _, zf := range zr.File {
		folder, rest, ok := strings.Cut(zf.Name, "/")
		if !ok || rest != "data.pkl" || folder == "" {
			continue
		}
		if pkl != nil {
			return "", nil, tensor.Errorf(path, "zip archive holds two data.pkl (%s and %s)", pkl.Name, zf.Name)
		}
		prefix, pkl = folder+"/", zf
	}
	if pkl == nil {
		return "", nil, tensor.Errorf(path, "zip archive has no <folder>/data.pkl: not a torch.save archive")
	}
	return prefix, pkl, nil
}

// checkByteOrder refuses archives written on a big-endian machine: tensor bytes
// are read raw and decoded as little-endian everywhere else.
func checkByteOrder(zr *zip.Reader, prefix, path string) error {
	for _, zf := range zr.File {
		if zf.Name != prefix+"byteorder" {
			continue
		}
		rc, err := zf.Open()
		if err != nil {
			return tensor.Errorf(path, "cannot open %s: %v", zf.Name, err)
		}
		b, err := io.ReadAll(io.LimitReader(rc, 16))
		rc.Close()
		if err != nil {
			return tensor.Errorf(path, "cannot read %s: %v", zf.Name, err)
		}
		if order := strings.TrimSpace(string(b)); order != "little" {
			return tensor.Errorf(path, "byteorder is %q: only little-endian archives are supported", order)
		}
	}
	return nil
}

// storageTable locates every "<folder>/data/<key>" entry in the file. Storages are
// read later straight from the file, so only stored (uncompressed) entries whose
// bytes lie inside the file are accepted.
func storageTable(zr *zip.Reader, prefix string, fileSize int64, path string) (map[string]storageEntry, error) {
	dataDir := prefix + "data/"
	table := make(map[string]storageEntry)
	for _, zf := range zr.File {
		key, ok := strings.CutPrefix(zf.Name, dataDir)
		if !ok || key == "" || strings.Contains(key, "/") {
			continue
		}
		if _, dup := table[key]; dup {
			return nil, tensor.Errorf(path, "storage %q appears twice in the zip archive", key)
		}
		if zf.Method != zip.Store {
			return nil, tensor.Errorf(path, "storage %q (%s) is compressed (zip method %d); only stored "+
				"(uncompressed) entries are supported, as torch.save writes them", key, zf.Name, zf.Method)
		}
		if zf.CompressedSize64 != zf.UncompressedSize64 {
			return nil, tensor.Errorf(path, "storage %q (%s): stored entry sizes disagree (%d compressed, %d uncompressed)",
				key, zf.Name, zf.CompressedSize64, zf.UncompressedSize64)
		}
		off, err := zf.DataOffset()
		if err != nil {
			return nil, tensor.Errorf(path, "storage %q (%s): cannot read its local header: %v", key, zf.Name, err)
		}
		n := zf.UncompressedSize64
		if off < 0 || off > fileSize || n > uint64(fileSize-off) {
			return nil, tensor.Errorf(path, "storage %q (%s): %d bytes at offset %d run past the end of the %d-byte file",
				key, zf.Name, n, off, fileSize)
		}
		table[key] = storageEntry{offset: off, size: int64(n)}
	}
	return table, nil
}

// readPickle reads data.pkl after checking its declared size against the limit;
// the read itself is limited too, so a lying header cannot make it allocate more.
func readPickle(zf *zip.File, maxPickle int64, path string) ([]byte, error) {
	if zf.UncompressedSize64 > uint64(maxPickle) {
		return nil, tensor.Errorf(path, "%s is %d bytes, over the %d-byte limit", zf.Name, zf.UncompressedSize64, maxPickle)
	}
	// Refused before inflating anything; the read below stops at the declared
	// size, so a header that understates it gains nothing.
	if zf.Method != zip.Store && zf.UncompressedSize64 > maxPickleRatio*max(zf.CompressedSize64, 1) {
		return nil, tensor.Errorf(path, "%s is compressed %d:1 (%d bytes inflate to %d); a checkpoint's pickle "+
			"compresses at most %d:1, so this looks like a zip bomb", zf.Name,
			zf.UncompressedSize64/max(zf.CompressedSize64, 1), zf.CompressedSize64, zf.UncompressedSize64, maxPickleRatio)
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, tensor.Errorf(path, "cannot open %s: %v", zf.Name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, int64(zf.UncompressedSize64)+1))
	if err != nil {
		return nil, tensor.Errorf(path, "cannot read %s (truncated or corrupt zip archive): %v", zf.Name, err)
	}
	if uint64(len(data)) != zf.UncompressedSize64 {
		return nil, tensor.Errorf(path, "%s holds %d bytes, its zip entry says %d", zf.Name, len(data), zf.UncompressedSize64)
	}
	return data, nil
}

// sortByOffset puts tensors in file order, which is the order a reader walks the
// file forward; tensors sharing bytes (tied weights) are ordered by name.
func sortByOffset(entries []Entry) {
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].Offset != entries[j].Offset {
			return entries[i].Offset < entries[j].Offset
		}
		return entries[i].Name < entries[j].Name
	})
}
