package prune

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/deltascope/deltascope/analysis/checkpoint"
)

// ExportKind is one form an export of a mask takes. The table below is the
// only list of them: the command line (`mask --export`) and the server
// (`.../export?kind=`) both look kinds up here and dispatch through it.
type ExportKind struct {
	Name string
	// Folder kinds are a copy of the VLA's files (WriteFolder, Entries); the
	// others are one file (WriteFile).
	Folder bool
	// NeedsVLA: the export reads the VLA's files. The others are made from the
	// mask alone, so they still work once the checkpoint is gone.
	NeedsVLA bool
	// Command: offered by `deltascope mask --export`. The snippet is the
	// server's only: the command prints it after a masks export.
	Command bool
	// Suffix and ContentType of a file kind's download: the file is named
	// STEM+Suffix, STEM made from the recipe's name.
	Suffix, ContentType string

	file   func(ctx context.Context, w io.Writer, m *Mask, vla *checkpoint.Side, stem string) error
	sliced bool
}

var exportKinds = []ExportKind{
	{Name: "recipe", Command: true, Suffix: ".recipe.json", ContentType: "application/json",
		file: func(_ context.Context, w io.Writer, m *Mask, _ *checkpoint.Side, _ string) error {
			return WriteRecipe(w, m.Recipe)
		}},
	{Name: "indices", Command: true, Suffix: ".indices.json", ContentType: "application/json",
		file: func(ctx context.Context, w io.Writer, m *Mask, _ *checkpoint.Side, _ string) error {
			return WriteIndices(ctx, w, m)
		}},
	{Name: "masks", Command: true, NeedsVLA: true, Suffix: ".masks.safetensors", ContentType: "application/octet-stream",
		file: func(ctx context.Context, w io.Writer, m *Mask, vla *checkpoint.Side, _ string) error {
			return WriteMasks(ctx, w, m, vla)
		}},
	{Name: "masks-snippet", Suffix: ".apply_masks.py", ContentType: "text/x-python; charset=utf-8",
		file: func(_ context.Context, w io.Writer, _ *Mask, _ *checkpoint.Side, stem string) error {
			_, err := io.WriteString(w, MaskSnippet(stem+".masks.safetensors")) // beside the masks file of the same stem
			return err
		}},
	{Name: "masked", Command: true, NeedsVLA: true, Folder: true},
	{Name: "sliced", Command: true, NeedsVLA: true, Folder: true, sliced: true},
}

// ExportKinds lists every export kind, in the order they are offered.
func ExportKinds() []ExportKind {
	return append([]ExportKind(nil), exportKinds...)
}

// ExportKindNames lists the kinds' names; with command, only those of
// `deltascope mask --export`.
func ExportKindNames(command bool) []string {
	var out []string
	for _, k := range exportKinds {
		if k.Command || !command {
			out = append(out, k.Name)
		}
	}
	return out
}

// LookupExport finds an export kind by name.
func LookupExport(name string) (ExportKind, error) {
	for _, k := range exportKinds {
		if k.Name == name {
			return k, nil
		}
	}
	return ExportKind{}, fmt.Errorf("unknown export kind %q: one of %s", name, strings.Join(ExportKindNames(false), ", "))
}

// WriteFile writes a file kind's export of m to w; stem names the download
// (the snippet refers to the masks file STEM.masks.safetensors). vla may be
// nil for a kind that does not need it.
func (k ExportKind) WriteFile(ctx context.Context, w io.Writer, m *Mask, vla *checkpoint.Side, stem string) error {
	if k.file == nil {
		return fmt.Errorf("export %s is a folder, not a file", k.Name)
	}
	if k.NeedsVLA && vla == nil {
		return fmt.Errorf("export %s reads the VLA's files: no VLA checkpoint given", k.Name)
	}
	return k.file(ctx, w, m, vla, stem)
}

// WriteFolder writes a folder kind's export into dir (WriteMasked, WriteSliced).
func (k ExportKind) WriteFolder(ctx context.Context, dir string, m *Mask, vla *checkpoint.Side) error {
	if !k.Folder {
		return fmt.Errorf("export %s is a file, not a folder", k.Name)
	}
	return writeCheckpoint(ctx, dir, m, vla, k.sliced)
}

// EntriesContext lists a folder kind's files with their sizes and streaming
// writers (MaskedEntries, SlicedEntries), for a server to send as an archive,
// reading under ctx: a remote VLA's headers, its folder's listing and the
// files a sliced export rewrites are fetched before the first entry is
// written, and a request that goes away should stop them.
func (k ExportKind) EntriesContext(ctx context.Context, m *Mask, vla *checkpoint.Side) ([]ExportEntry, error) {
	if !k.Folder {
		return nil, fmt.Errorf("export %s is a file, not a folder", k.Name)
	}
	return exportEntries(ctx, m, vla, k.sliced)
}
