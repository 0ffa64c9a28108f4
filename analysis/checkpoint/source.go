package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/deltascope/deltascope/analysis/checkpoint/safetensors"
	"github.com/deltascope/deltascope/analysis/checkpoint/torchzip"
	"github.com/deltascope/deltascope/analysis/tensor"
)

// IndexName is the file that maps tensors to shards in a sharded HF folder.
const IndexName = "model.safetensors.index.json"

const (
	maxIndexBytes  = 64 << 20 // a 7B index is ~30 KB; anything near this is not an index
	maxConfigBytes = 16 << 20
)

// ParseSpec splits `[PREFIX=]PATH`. A leading part counts as a prefix only when it
// holds no path separator, so `a=b/c.safetensors` is read as prefix "a" and path
// "b/c.safetensors" while `dir/x=y.safetensors` stays a path.
func ParseSpec(spec string) (prefix, p string) {
	if i := strings.IndexByte(spec, '='); i >= 0 && !strings.ContainsAny(spec[:i], `/\`) {
		return spec[:i], spec[i+1:]
	}
	return "", spec
}

// MapSpecPaths rewrites the path of each `[PREFIX=]PATH` spec with f, keeping
// its prefix: making paths absolute, or resolving them against a root.
func MapSpecPaths(specs []string, f func(path string) string) []string {
	out := make([]string, len(specs))
	for i, spec := range specs {
		prefix, p := ParseSpec(spec)
		p = f(p)
		if prefix != "" {
			p = prefix + "=" + p
		}
		out[i] = p
	}
	return out
}

// OpenSource opens and validates one `[PREFIX=]PATH`: a .safetensors file, a folder
// (with model.safetensors.index.json, or its *.safetensors files), or a torch zip
// pickle (.bin, .pt, .pth). Only headers are read.
func OpenSource(spec string, opt Options) (*Source, error) {
	prefix, p := ParseSpec(spec)
	if p == "" {
		return nil, errorf(spec, "empty path")
	}
	src := &Source{Spec: spec, Prefix: prefix, Path: filepath.Clean(p), Metadata: map[string]string{}, mapped: opt.Map,
		filesOnly: opt.FilesOnly, headerWait: opt.HeaderWait}
	open := src.open
	if IsRemote(p) { // s3:// and hf:// are not file paths: filepath.Clean would fold their "//"
		src.Path, open = p, src.openRemote
	}
	if err := open(opt); err != nil {
		src.Close()
		return nil, err
	}
	return src, nil
}

func (src *Source) open(opt Options) error {
	dir, name, err := confine(src.Path, opt.Roots)
	if err != nil {
		return err
	}
	defer dir.Close()
	info, err := dir.Stat(name)
	if err != nil {
		return errorf(src.Path, "%s", plainFSError(err))
	}
	lim := opt.limits()
	switch {
	case info.IsDir():
		sub, err := dir.OpenRoot(name)
		if err != nil {
			return errorf(src.Path, "%s", plainFSError(err))
		}
		defer sub.Close()
		err = src.readFolder(sub, lim)
		if err == nil {
			src.Config = readConfig(sub, "config.json")
		}
		if err != nil {
			return err
		}
	case info.Mode().IsRegular():
		if err := src.readFile(dir, name, src.Path, lim); err != nil {
			return err
		}
		src.Config = readConfig(dir, "config.json")
	default:
		return errorf(src.Path, "not a regular file or folder (%s)", info.Mode().Type())
	}
	if len(src.Tensors) > lim.MaxTensors {
		return errorf(src.Path, "%d tensors exceed the limit of %d", len(src.Tensors), lim.MaxTensors)
	}
	for i := range src.Tensors {
		src.Tensors[i].Name = src.Prefix + src.Tensors[i].Stored
	}
	return nil
}

// confine opens the folder holding p as an os.Root, so that every later open is
// checked by the kernel against escapes (.., symlinks out). With roots given, p
// must lie inside one of them, after resolving symlinks.
func confine(p string, roots []string) (*os.Root, string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, "", errorf(p, "%v", err)
	}
	if len(roots) == 0 {
		dir, err := os.OpenRoot(filepath.Dir(abs))
		if err != nil {
			return nil, "", errorf(p, "%s", plainFSError(err))
		}
		return dir, filepath.Base(abs), nil
	}
	for _, r := range roots {
		if IsRemote(r) { // an s3:// or hf:// root allows remote sources only (remote.go)
			continue
		}
		rabs, err := filepath.Abs(r)
		if err != nil {
			continue
		}
		rel, err := filepath.Rel(rabs, abs)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			continue
		}
		root, err := os.OpenRoot(rabs)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", errorf(p, "no such file or folder")
		}
		if err != nil {
			continue
		}
		// Open the parent through the root: a symlinked parent that leads out is refused here.
		parent := filepath.Dir(rel)
		dir, err := root.OpenRoot(parent)
		root.Close()
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", errorf(p, "no such file or folder")
		}
		if err != nil {
			return nil, "", outsideRoots(p, roots, "outside the allowed folders", plainFSError(err))
		}
		base := filepath.Base(rel)
		// A final symlink is followed by os.Root only when it stays inside; Lstat
		// here gives the clearer message.
		if fi, err := dir.Lstat(base); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			if _, err := dir.Stat(base); err != nil {
				dir.Close()
				return nil, "", outsideRoots(p, roots, "symlink leads outside the allowed folders", "")
			}
		}
		return dir, base, nil
	}
	return nil, "", outsideRoots(p, roots, "outside the allowed folders", "")
}

// outsideRoots is the refusal of p, which lies (or leads) outside roots. It
// says which folders are allowed and how to add one, whatever the way out
// (a path elsewhere, a folder or file symlinked out): the reader of this
// message is usually the person who started the server.
func outsideRoots(p string, roots []string, what, detail string) error {
	msg := what + " (" + strings.Join(roots, ", ") + ")"
	if detail != "" {
		msg += ": " + detail
	}
	return &tensor.Error{Path: p, Forbidden: true, Msg: msg + "; start the server with --root DIR to allow another"}
}

// plainFSError drops the operation and path that *PathError repeats, since every
// message already starts with the path.
func plainFSError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file or folder"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	return err.Error()
}

// openRegular opens name inside dir and insists on a regular file, so that a FIFO
// or a device is refused before anything blocks on it. The open itself is
// non-blocking (opening a FIFO for reading would otherwise wait for a writer,
// forever) and the check is made on the open file, so a name swapped for a
// FIFO between a look and the open cannot hang the caller either.
func openRegular(dir *os.Root, name, display string) (*os.File, int64, error) {
	f, err := dir.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, errorf(display, "%s", plainFSError(err))
	}
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() {
		f.Close()
		if err != nil {
			return nil, 0, errorf(display, "%s", plainFSError(err))
		}
		return nil, 0, errorf(display, "not a regular file (%s)", info.Mode().Type())
	}
	return f, info.Size(), nil
}

// readFile reads one checkpoint file (safetensors or torch zip), chosen by content
// rather than extension so that a mislabelled file gets the right error.
func (s *Source) readFile(dir *os.Root, name, display string, lim Limits) error {
	f, size, err := openRegular(dir, name, display)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, f)
	s.Files = append(s.Files, identify(f, display, size))
	if s.filesOnly {
		return nil
	}
	return s.parseFile(f, f, f, size, name, display, lim)
}

// parseFile reads the header of one checkpoint file through hdr and records its
// tensors, whose bytes are later read through data. A local file passes itself
// for both (and as osf, which it may map); a remote object passes a reader of
// exact ranges for the header and a block-cached one for the data.
func (s *Source) parseFile(hdr, data io.ReaderAt, osf *os.File, size int64, name, display string, lim Limits) error {
	f := hdr
	var magic [4]byte
	n, _ := f.ReadAt(magic[:], 0)
	isZip := n == 4 && string(magic[:]) == "PK\x03\x04"
	ext := strings.ToLower(filepath.Ext(name))
	if isZip || ext == ".bin" || ext == ".pt" || ext == ".pth" {
		if s.Format == "" {
			s.Format = FormatTorchZip
		}
		release, err := acquireHeaderSlot(f, true, display, s.headerWait)
		if err != nil {
			return err
		}
		arc, err := torchzip.Read(f, size, display, lim.MaxPickleBytes, lim.MaxTensors)
		release()
		if err != nil {
			return err
		}
		for _, e := range arc.Tensors {
			s.Tensors = append(s.Tensors, Tensor{Stored: e.Name, DType: e.DType, Shape: e.Shape, File: display, Offset: e.Offset, Size: e.Size, f: data})
		}
		for _, e := range arc.NonTensors {
			s.Entries = append(s.Entries, Entry{Name: e.Name, Value: e.Value})
		}
		return nil
	}
	if s.Format == "" {
		s.Format = FormatSafetensors
	}
	release, err := acquireHeaderSlot(f, false, display, s.headerWait)
	if err != nil {
		return err
	}
	h, err := safetensors.ReadHeader(f, size, display, lim.MaxHeaderBytes, lim.MaxTensors)
	release()
	if err != nil {
		return err
	}
	for k, v := range h.Metadata {
		s.Metadata[k] = v
	}
	// Map only once the header is valid: every tensor then lies inside the file.
	var m *mapping
	if s.mapped && osf != nil {
		if m = mapFile(osf, size); m != nil {
			s.closers = append(s.closers, m)
		}
	}
	// Grown once: appending 65,536 tensors one by one left ~2× their size in
	// discarded arrays behind, on top of the header's own garbage.
	s.Tensors = slices.Grow(s.Tensors, len(h.Entries))
	for _, e := range h.Entries {
		s.Tensors = append(s.Tensors, Tensor{Stored: e.Name, DType: e.DType, Shape: e.Shape, File: display, Offset: h.DataOffset + e.Begin, Size: e.End - e.Begin, f: data, m: m})
	}
	return nil
}

type shardIndex struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// readFolder reads a sharded HF folder through its index, or every *.safetensors
// file in it when there is no index.
func (s *Source) readFolder(dir *os.Root, lim Limits) error {
	idxPath := filepath.Join(s.Path, IndexName)
	if _, err := dir.Stat(IndexName); err == nil {
		return s.readIndexed(localFolder{dir, s.Path}, idxPath, lim)
	}
	d, err := dir.Open(".")
	if err != nil {
		return errorf(s.Path, "%s", plainFSError(err))
	}
	defer d.Close()
	var names []string
	for {
		ents, err := d.ReadDir(1024)
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".safetensors") {
				names = append(names, e.Name())
				if len(names) > lim.MaxShards {
					return errorf(s.Path, "more than %d .safetensors files", lim.MaxShards)
				}
			}
		}
		if err == io.EOF || len(ents) == 0 {
			break
		}
		if err != nil {
			return errorf(s.Path, "%s", plainFSError(err))
		}
	}
	if len(names) == 0 {
		return errorf(s.Path, "folder has no %s and no .safetensors files", IndexName)
	}
	sort.Strings(names)
	s.Format = FormatFolder
	return s.readShards(names, func(n string) string { return filepath.Join(s.Path, n) },
		func(n, display string) error { return s.readFile(dir, n, display, lim) })
}

// readShards reads the shard files of a folder without an index, in order,
// and refuses a tensor stored in two of them: local and remote folders alike.
func (s *Source) readShards(names []string, display func(name string) string, read func(name, display string) error) error {
	seen := map[string]string{}
	for _, n := range names {
		d := display(n)
		before := len(s.Tensors)
		if err := read(n, d); err != nil {
			return err
		}
		for _, t := range s.Tensors[before:] {
			if other, dup := seen[t.Stored]; dup {
				return tensorErrorf(d, t.Stored, "also stored in %s", other)
			}
			seen[t.Stored] = d
		}
	}
	return nil
}

// folder is where an index and its shards are found: a folder on disk, or a
// prefix in object storage or a Hub repository (remote.go).
type folder interface {
	readSmall(name, display string, limit int64) ([]byte, error)
	readFile(s *Source, name, display string, lim Limits) error
	join(name string) string // the display path of a slash-separated name inside
}

type localFolder struct {
	dir  *os.Root
	path string
}

func (l localFolder) readSmall(name, display string, limit int64) ([]byte, error) {
	return readSmall(l.dir, filepath.FromSlash(name), display, limit)
}

func (l localFolder) readFile(s *Source, name, display string, lim Limits) error {
	return s.readFile(l.dir, filepath.FromSlash(name), display, lim)
}

func (l localFolder) join(name string) string { return filepath.Join(l.path, filepath.FromSlash(name)) }

func (s *Source) readIndexed(dir folder, idxPath string, lim Limits) error {
	data, err := dir.readSmall(IndexName, idxPath, maxIndexBytes)
	if err != nil {
		return err
	}
	var idx shardIndex
	if err := json.Unmarshal(data, &idx); err != nil {
		return errorf(idxPath, "not a valid index: %v", err)
	}
	if len(idx.WeightMap) == 0 {
		return errorf(idxPath, "weight_map is missing or empty")
	}
	s.Format = FormatSharded
	shards := map[string]bool{}
	for name, shard := range idx.WeightMap {
		if err := checkShardPath(shard); err != nil {
			return &tensor.Error{Path: idxPath, Tensor: name, Msg: fmt.Sprintf("shard %q %v", shard, err), Forbidden: true}
		}
		shards[shard] = true
	}
	if len(shards) > lim.MaxShards {
		return errorf(idxPath, "%d shards exceed the limit of %d", len(shards), lim.MaxShards)
	}
	order := make([]string, 0, len(shards))
	for sh := range shards {
		order = append(order, sh)
	}
	sort.Strings(order)
	found := make(map[string]bool, len(idx.WeightMap))
	var total int64
	for _, sh := range order {
		display := dir.join(sh)
		before := len(s.Tensors)
		if err := dir.readFile(s, sh, display, lim); err != nil {
			var te *tensor.Error
			if errors.As(err, &te) && strings.Contains(te.Msg, "escapes") {
				te.Forbidden = true
			}
			return err
		}
		if s.filesOnly {
			continue
		}
		for _, t := range s.Tensors[before:] {
			want, listed := idx.WeightMap[t.Stored]
			if !listed {
				return tensorErrorf(display, t.Stored, "stored in the shard but not listed in %s", IndexName)
			}
			if want != sh {
				return tensorErrorf(display, t.Stored, "%s maps it to %s", IndexName, want)
			}
			found[t.Stored] = true
			total += t.Size
		}
	}
	if s.filesOnly {
		return nil
	}
	missing := make([]string, 0)
	for name := range idx.WeightMap {
		if !found[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return tensorErrorf(dir.join(idx.WeightMap[missing[0]]), missing[0],
			"listed in %s but missing from its shard (%d missing in all)", IndexName, len(missing))
	}
	if ts, ok := idx.Metadata["total_size"]; ok {
		if f, isNum := ts.(float64); !isNum || f < 0 {
			return errorf(idxPath, "metadata.total_size is not a non-negative number")
		} else if int64(f) != total {
			return errorf(idxPath, "metadata.total_size is %d but the shards hold %d bytes of tensors", int64(f), total)
		}
	}
	for k, v := range idx.Metadata {
		if str, ok := v.(string); ok {
			s.Metadata[k] = str
		} else {
			b, _ := json.Marshal(v)
			s.Metadata[k] = string(b)
		}
	}
	return nil
}

// checkShardPath refuses shard paths that could leave the folder. os.Root would
// refuse them too; checking first gives a message that says why.
func checkShardPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("is empty")
	case strings.HasPrefix(p, "/") || strings.HasPrefix(p, `\`) || filepath.IsAbs(p) || (len(p) > 1 && p[1] == ':'):
		return fmt.Errorf("is an absolute path; shards must lie inside the folder")
	case slices.Contains(strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }), ".."):
		return fmt.Errorf("leaves the folder (..)")
	case path.Clean(p) != p && path.Clean(p) != strings.TrimPrefix(p, "./"):
		return fmt.Errorf("is not a clean relative path")
	}
	return nil
}

// readSmall reads a whole small file (index, config) after checking its size.
func readSmall(dir *os.Root, name, display string, limit int64) ([]byte, error) {
	f, size, err := openRegular(dir, name, display)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size > limit {
		return nil, errorf(display, "%d bytes is larger than the %d allowed for this file", size, limit)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, errorf(display, "reading: %v", err)
	}
	return data, nil
}

// readConfig returns config.json beside a checkpoint when it exists and is a JSON
// object; anything else is ignored, since the config only refines defaults.
func readConfig(dir *os.Root, name string) json.RawMessage {
	data, err := readSmall(dir, name, name, maxConfigBytes)
	if err != nil {
		return nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return nil
	}
	return data
}

// identify records the quick identity of an open regular file.
func identify(f *os.File, display string, size int64) FileInfo {
	fi := FileInfo{Path: display, Size: size}
	if info, err := f.Stat(); err == nil {
		fi.ModTimeNs = info.ModTime().UnixNano()
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			fi.Inode, fi.Device = st.Ino, uint64(st.Dev)
		}
	}
	const edge = 64 << 10
	h := sha256.New()
	buf := make([]byte, min(size, edge))
	if n, _ := f.ReadAt(buf, 0); n > 0 {
		h.Write(buf[:n])
	}
	if size > edge {
		if n, _ := f.ReadAt(buf, max(edge, size-edge)); n > 0 {
			h.Write(buf[:n])
		}
	}
	fi.HeadSHA = hex.EncodeToString(h.Sum(nil))
	return fi
}
