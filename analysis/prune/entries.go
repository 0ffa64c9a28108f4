package prune

import (
	"bytes"
	"context"
	"io"
	"path/filepath"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/checkpoint/safetensors"
	"github.com/deltascope/deltascope/analysis/tensor"
)

// ExportEntry is one file of an export, known before any byte is written: a
// server can announce an archive's exact length and stream it at once instead
// of building the export on disk first.
type ExportEntry struct {
	Name string // slash-separated path inside the export
	Size int64
	// Write writes exactly Size bytes, or stops within one block with
	// ctx's error when ctx is cancelled (a client that went away).
	Write func(ctx context.Context, w io.Writer) error
}

// MaskedEntries lists the files WriteMasked would write — the VLA's own files
// with pruned cells zeroed, their companions and RecipeFile — with writers
// that stream them from the VLA's files, one block at a time. The masked copy
// of a file is as long as the file, so every size is known up front.
func MaskedEntries(m *Mask, vla *checkpoint.Side) ([]ExportEntry, error) {
	return exportEntries(context.Background(), m, vla, false)
}

// SlicedEntries lists the files WriteSliced would write, sizes included: each
// file's new header and kept bytes are computed from the mask before anything
// is written, as is the rewritten index and WidthsFile.
func SlicedEntries(m *Mask, vla *checkpoint.Side) ([]ExportEntry, error) {
	return exportEntries(context.Background(), m, vla, true)
}

// exportEntries lists the entries, reading what it must (headers, a
// remote folder's listing, the config and index a sliced export rewrites)
// under ctx; each entry's Write reads under its own context.
func exportEntries(ctx context.Context, m *Mask, vla *checkpoint.Side, sliced bool) ([]ExportEntry, error) {
	if err := checkExportable(m, vla, sliced); err != nil {
		return nil, err
	}
	var out []ExportEntry
	seen := map[string]string{}
	for _, src := range vla.Sources {
		dir := ""
		if len(vla.Sources) > 1 {
			name := filepath.Base(src.Path)
			if prev, dup := seen[name]; dup {
				return nil, tensor.Errorf(src.Path, "has the same base name as %s; the export puts each source in a folder of that name", prev)
			}
			seen[name] = src.Path
			dir = name + "/"
		}
		sf, err := openSourceFiles(ctx, src)
		if err != nil {
			return nil, err
		}
		written := map[string]bool{}
		var dataTotal int64
		for _, f := range src.Files {
			rel, err := relInSource(src, f)
			if err != nil {
				return nil, err
			}
			written[rel] = true
			e := ExportEntry{Name: dir + filepath.ToSlash(rel), Size: f.Size, Write: maskedFileWriter(src, f, m)}
			if sliced {
				header, data, err := slicedSize(sf, f, src.Prefix, m)
				if err != nil {
					return nil, err
				}
				e.Size, e.Write = header+data, slicedFileWriter(src, f, m)
				dataTotal += data
			}
			out = append(out, e)
		}
		comps, err := sf.companions(written)
		if err != nil {
			return nil, err
		}
		for _, c := range comps {
			data, rewritten, err := rewrittenCompanion(sf, c, m, sliced, dataTotal)
			switch {
			case err != nil:
				return nil, err
			case rewritten:
				out = append(out, bytesEntry(dir+c.name, data))
			default:
				out = append(out, ExportEntry{Name: dir + c.name, Size: c.size, Write: companionWriter(src, c)})
			}
		}
	}
	var recipe bytes.Buffer
	if err := WriteRecipe(&recipe, m.Recipe); err != nil {
		return nil, err
	}
	out = append(out, bytesEntry(RecipeFile, recipe.Bytes()))
	if sliced {
		var widths bytes.Buffer
		if err := writeIndented(&widths, widthsPatch(m)); err != nil {
			return nil, err
		}
		out = append(out, bytesEntry(WidthsFile, widths.Bytes()))
	}
	return out, nil
}

func bytesEntry(name string, data []byte) ExportEntry {
	return ExportEntry{Name: name, Size: int64(len(data)), Write: func(ctx context.Context, w io.Writer) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		_, err := w.Write(data) // small: a recipe, an index, widths
		return err
	}}
}

// slicedSize is the header and data size of a file's sliced copy.
func slicedSize(sf *sourceFiles, fi checkpoint.FileInfo, prefix string, m *Mask) (header, data int64, err error) {
	in, h, err := sf.open(fi)
	if err != nil {
		return 0, 0, err
	}
	defer in.Close()
	sw, err := safetensors.NewWriter(io.Discard, slicedDecl(h, prefix, m), h.Metadata)
	if err != nil {
		return 0, 0, tensor.Errorf(fi.Path, "%v", err)
	}
	return sw.HeaderSize(), sw.DataSize(), nil
}

// openEntry opens a VLA file for one entry's Write, its remote reads under
// that write's context.
func openEntry(ctx context.Context, src *checkpoint.Source, fi checkpoint.FileInfo) (*exportInput, *safetensors.Header, error) {
	sf, err := openSourceFiles(ctx, src)
	if err != nil {
		return nil, nil, err
	}
	return sf.open(fi)
}

// slicedFileWriter streams one VLA file with its pruned rows and columns cut out.
func slicedFileWriter(src *checkpoint.Source, fi checkpoint.FileInfo, m *Mask) func(context.Context, io.Writer) error {
	return func(ctx context.Context, w io.Writer) error {
		in, h, err := openEntry(ctx, src, fi)
		if err != nil {
			return err
		}
		defer in.Close()
		sw, err := safetensors.NewWriter(w, slicedDecl(h, src.Prefix, m), h.Metadata)
		if err != nil {
			return tensor.Errorf(fi.Path, "%v", err)
		}
		buf := make([]byte, blockBytes)
		if _, err := copyTensors(ctx, sw, in, h, src.Prefix, m, true, &buf, fi.Path, ""); err != nil {
			return err
		}
		return sw.Close()
	}
}

// maskedFileWriter streams one VLA file with its pruned cells zeroed: the
// header verbatim, then every tensor in order.
func maskedFileWriter(src *checkpoint.Source, fi checkpoint.FileInfo, m *Mask) func(context.Context, io.Writer) error {
	return func(ctx context.Context, w io.Writer) error {
		in, h, err := openEntry(ctx, src, fi)
		if err != nil {
			return err
		}
		defer in.Close()
		if _, err := copyBlocks(ctx, w, io.NewSectionReader(in, 0, h.DataOffset)); err != nil {
			return err
		}
		buf := make([]byte, blockBytes)
		_, err = copyTensors(ctx, w, in, h, src.Prefix, m, false, &buf, fi.Path, "")
		return err
	}
}

// companionWriter streams a companion file of src.
func companionWriter(src *checkpoint.Source, c companion) func(context.Context, io.Writer) error {
	return func(ctx context.Context, w io.Writer) error {
		sf, err := openSourceFiles(ctx, src)
		if err != nil {
			return err
		}
		return sf.writeCompanion(ctx, w, c)
	}
}

// fileWriter copies a companion file, which must still have its listed size.
func fileWriter(path string, size int64) func(context.Context, io.Writer) error {
	return func(ctx context.Context, w io.Writer) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := checkpoint.OpenRegular(path) // never blocks on a FIFO put in its place
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.Copy(w, io.LimitReader(f, size))
		if err == nil && n != size {
			err = tensor.Errorf(path, "is shorter than when the export began")
		}
		return err
	}
}
