package prune

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/tensor"
)

// Files a checkpoint export adds beside the VLA's own.
const (
	RecipeFile = "deltascope_recipe.json" // the recipe, replayable (both exports)
	WidthsFile = "widths.json"            // per-layer widths, a config patch (sliced export)
)

// WriteMasked writes into dir (which must not exist) a copy of the VLA's files —
// same names, shards, index, config.json and dtypes — in which the pruned rows
// and columns are zero and every other byte is identical, headers included, so
// that unchanged loading code evaluates the pruned model. Small companion files
// of a folder source (config, index, tokenizer, remote code: regular files up to
// 64 MiB that are not weights) are copied verbatim; a single-file source brings
// the config.json beside it. RecipeFile is added. The folder appears whole or
// not at all: it is written under a temporary name and renamed. Cancelling ctx
// stops it within one block and removes what it wrote. A remote VLA (s3://,
// hf://) is read through the checkpoint layer's ranged readers, companions
// listed from its store, and gives the same bytes as its files on disk; an
// object that changed since the VLA was opened fails the export.
func WriteMasked(ctx context.Context, dir string, m *Mask, vla *checkpoint.Side) error {
	return writeCheckpoint(ctx, dir, m, vla, false)
}

// WriteSliced writes into dir (which must not exist) a checkpoint with the same
// files as the VLA where the pruned rows and columns are physically removed:
// same tensor names, order, dtypes and file metadata, smaller shapes; the shard
// index is rewritten with the new total_size, other companion files are copied,
// and WidthsFile holds the per-layer widths, since widths are no longer uniform
// across layers. Its parameter count is Mask.Params.After. Like WriteMasked,
// it appears whole or not at all, and stops within one block when ctx is
// cancelled.
func WriteSliced(ctx context.Context, dir string, m *Mask, vla *checkpoint.Side) error {
	return writeCheckpoint(ctx, dir, m, vla, true)
}

const (
	maxCompanionBytes = 64 << 20
	blockBytes        = 8 << 20
	maxRowBytes       = 64 << 20
)

func writeCheckpoint(ctx context.Context, dir string, m *Mask, vla *checkpoint.Side, sliced bool) (err error) {
	if err := checkExportable(m, vla, sliced); err != nil {
		return err
	}
	if _, err := os.Lstat(dir); err == nil {
		return tensor.Errorf(dir, "already exists; choose a new folder for the export")
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return asDiskFull(&writeError{msg: tensor.Errorf(dir, "%v", err), cause: err}, "", dir)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
			if ctx.Err() != nil { // whatever failed on the way, the cause is the cancellation
				err = interrupted(ctx, dir)
				return
			}
			err = asDiskFull(err, tmp, dir) // after the removal, which its message promises
		}
	}()
	buf := make([]byte, blockBytes)
	seen := map[string]string{}
	for _, src := range vla.Sources {
		out := tmp
		if len(vla.Sources) > 1 {
			name := filepath.Base(src.Path)
			if prev, dup := seen[name]; dup {
				return tensor.Errorf(src.Path, "has the same base name as %s; the export puts each source in a folder of that name", prev)
			}
			seen[name] = src.Path
			out = filepath.Join(tmp, name)
		}
		if err := exportSource(ctx, src, out, m, sliced, &buf); err != nil {
			return err
		}
	}
	if err := writeSmall(filepath.Join(tmp, RecipeFile), func(w io.Writer) error { return WriteRecipe(w, m.Recipe) }); err != nil {
		return err
	}
	if sliced {
		if err := writeSmall(filepath.Join(tmp, WidthsFile), func(w io.Writer) error { return writeIndented(w, widthsPatch(m)) }); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil { // the last chance to leave nothing behind
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return tensor.Errorf(dir, "%v", err)
	}
	return nil
}

// checkExportable refuses what a masked or sliced copy cannot be made of.
func checkExportable(m *Mask, vla *checkpoint.Side, sliced bool) error {
	if vla == nil || len(vla.Sources) == 0 {
		return errors.New("no VLA checkpoint to export from")
	}
	if err := checkAgainst(m, vla); err != nil {
		return err
	}
	for _, src := range vla.Sources {
		if src.Format == checkpoint.FormatTorchZip {
			return tensor.Errorf(src.Path, "masked and sliced exports copy safetensors files; this VLA source is a torch pickle (convert it to safetensors first, or export masks or indices)")
		}
	}
	byName := make(map[string]*checkpoint.Tensor, len(vla.Tensors))
	for _, t := range vla.Tensors {
		byName[t.Name] = t
	}
	for _, t := range m.Tensors {
		ct := byName[t.Name]
		if ct.DType.Bits() < 8 || ct.DType.Bits()%8 != 0 {
			return tensor.TensorErrorf(ct.File, ct.Name, "%v packs several elements per byte; pruned rows and columns cannot be cut out of it", ct.DType)
		}
		if !sliced && ct.DType == tensor.F8_E8M0 {
			return tensor.TensorErrorf(ct.File, ct.Name, "F8_E8M0 has no zero; a masked copy cannot zero it (use the sliced export)")
		}
	}
	return nil
}

// widthsPatch is the content of WidthsFile: per-layer widths as a config patch.
func widthsPatch(m *Mask) any {
	return map[string]any{"recipe": m.Recipe.Name, "params_before": m.Params.Before, "params_after": m.Params.After, "widths": m.Widths}
}

func writeIndented(w io.Writer, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// writeSmall creates path and fills it with fill.
func writeSmall(path string, fill func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return tensor.Errorf(path, "%v", err)
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	if err := fill(bw); err != nil {
		f.Close()
		return writeFailed(path, err)
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return writeFailed(path, err)
	}
	if err := f.Close(); err != nil {
		return writeFailed(path, err)
	}
	return nil
}

// writeBytes creates path holding data.
func writeBytes(path string, data []byte) error {
	return writeSmall(path, func(w io.Writer) error { _, err := w.Write(data); return err })
}

// exportSource writes one source's files into out.
func exportSource(ctx context.Context, src *checkpoint.Source, out string, m *Mask, sliced bool, buf *[]byte) error {
	sf, err := openSourceFiles(ctx, src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return tensor.Errorf(out, "%v", err)
	}
	written := map[string]bool{}
	var dataTotal int64
	for _, f := range src.Files {
		rel, err := relInSource(src, f)
		if err != nil {
			return err
		}
		dst := filepath.Join(out, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return tensor.Errorf(dst, "%v", err)
		}
		in, h, err := sf.open(f)
		if err != nil {
			return err
		}
		n, err := exportFile(ctx, in, h, dst, src.Prefix, m, sliced, buf)
		in.Close()
		if err != nil {
			return err
		}
		dataTotal += n
		written[rel] = true
	}
	comps, err := sf.companions(written)
	if err != nil {
		return err
	}
	for _, c := range comps {
		data, rewritten, err := rewrittenCompanion(sf, c, m, sliced, dataTotal)
		switch {
		case err != nil:
			return err
		case rewritten:
			err = writeBytes(filepath.Join(out, c.name), data)
		default:
			err = sf.copyCompanion(c, filepath.Join(out, c.name))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// rewrittenCompanion is companion c as a sliced export of data size dataTotal
// writes it, when it is rewritten there: config.json says the per-layer
// widths (slicedconfig.go), the shard index the new total size. Any other
// companion, and every one of a masked export, is copied verbatim
// (rewritten false).
func rewrittenCompanion(sf *sourceFiles, c companion, m *Mask, sliced bool, dataTotal int64) (data []byte, rewritten bool, err error) {
	if !sliced || c.name != ConfigFile && c.name != checkpoint.IndexName {
		return nil, false, nil
	}
	if data, err = sf.read(c); err != nil {
		return nil, true, err
	}
	if c.name == ConfigFile {
		data, err = slicedConfigOf(data, c.path, m)
	} else {
		data, err = rewrittenIndexOf(data, c.path, dataTotal)
	}
	return data, true, err
}

// relInSource is a weight file's path inside its export folder: its base name
// for a single file, its path inside the folder for a folder source.
func relInSource(src *checkpoint.Source, f checkpoint.FileInfo) (string, error) {
	if src.Format != checkpoint.FormatSharded && src.Format != checkpoint.FormatFolder {
		return filepath.Base(f.Path), nil
	}
	r, err := filepath.Rel(src.Path, f.Path)
	if err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return "", tensor.Errorf(f.Path, "is not inside its checkpoint folder %s", src.Path)
	}
	return r, nil
}

// companion is a small non-weight file copied beside the weights.
type companion struct {
	name, path string
	size       int64
}

// companions lists a source's companion files: a folder's small non-weight
// files, a single file's config.json; skip names the weights already took.
func companions(src *checkpoint.Source, skip map[string]bool) ([]companion, error) {
	folder := isFolder(src)
	srcDir, names := filepath.Dir(src.Path), []string{ConfigFile}
	if folder {
		srcDir, names = src.Path, nil
		ents, err := os.ReadDir(src.Path)
		if err != nil {
			return nil, tensor.Errorf(src.Path, "%v", err)
		}
		for _, e := range ents {
			names = append(names, e.Name())
		}
	}
	var out []companion
	for _, name := range names {
		if skip[name] || isWeightFile(name) {
			continue
		}
		p := filepath.Join(srcDir, name)
		info, err := os.Stat(p)
		if err != nil || !info.Mode().IsRegular() || info.Size() > maxCompanionBytes {
			continue
		}
		out = append(out, companion{name: name, path: p, size: info.Size()})
	}
	return out, nil
}

func isWeightFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".gguf", ".h5", ".msgpack", ".npz":
		return true
	}
	return false
}

func copyFile(from, to string) error {
	in, err := checkpoint.OpenRegular(from) // never blocks on a FIFO put in its place
	if err != nil {
		return err
	}
	defer in.Close()
	return writeSmall(to, func(w io.Writer) error {
		_, err := io.Copy(w, io.LimitReader(in, maxCompanionBytes))
		return err
	})
}

// rewrittenIndexOf is a shard index (data, read from the file from) with
// metadata.total_size set to the sliced data size; the weight map is
// unchanged, since every tensor stays in its file.
func rewrittenIndexOf(data []byte, from string, total int64) ([]byte, error) {
	var idx map[string]json.RawMessage
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, tensor.Errorf(from, "not a valid index: %v", err)
	}
	meta := map[string]json.RawMessage{}
	if raw, ok := idx["metadata"]; ok {
		if err := json.Unmarshal(raw, &meta); err != nil {
			return nil, tensor.Errorf(from, "metadata is not an object: %v", err)
		}
	}
	meta["total_size"] = json.RawMessage(fmt.Sprint(total))
	raw, _ := json.Marshal(meta)
	idx["metadata"] = raw
	var b bytes.Buffer
	if err := writeIndented(&b, idx); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
