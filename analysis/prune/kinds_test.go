package prune

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestExportKindNames(t *testing.T) {
	if got, want := ExportKindNames(true), []string{"recipe", "indices", "masks", "masked", "sliced"}; !slices.Equal(got, want) {
		t.Errorf("command kinds %v, want %v", got, want)
	}
	if got, want := ExportKindNames(false), []string{"recipe", "indices", "masks", "masks-snippet", "masked", "sliced"}; !slices.Equal(got, want) {
		t.Errorf("all kinds %v, want %v", got, want)
	}
	for _, k := range ExportKinds() {
		got, err := LookupExport(k.Name)
		if err != nil || got.Name != k.Name {
			t.Errorf("LookupExport(%q) = %v, %v", k.Name, got.Name, err)
		}
		if k.Folder == (k.Suffix != "") {
			t.Errorf("%s: a folder kind has no suffix, a file kind has one (folder %v, suffix %q)", k.Name, k.Folder, k.Suffix)
		}
	}
	if _, err := LookupExport("zip"); err == nil || !strings.Contains(err.Error(), `"zip"`) || !strings.Contains(err.Error(), "masks-snippet") {
		t.Errorf("unknown kind: %v", err)
	}
}

// Dispatching through the table writes exactly what the kind's own writer
// writes.
func TestExportDispatch(t *testing.T) {
	m, vla := exportMask(t), openFixtureVLA(t)
	defer vla.Close()
	ctx := context.Background()
	direct := map[string]func(*bytes.Buffer) error{
		"recipe":  func(b *bytes.Buffer) error { return WriteRecipe(b, m.Recipe) },
		"indices": func(b *bytes.Buffer) error { return WriteIndices(ctx, b, m) },
		"masks":   func(b *bytes.Buffer) error { return WriteMasks(ctx, b, m, vla) },
		"masks-snippet": func(b *bytes.Buffer) error {
			_, err := b.WriteString(MaskSnippet("stem.masks.safetensors"))
			return err
		},
	}
	for _, k := range ExportKinds() {
		t.Run(k.Name, func(t *testing.T) {
			if k.Folder {
				if err := k.WriteFile(ctx, &bytes.Buffer{}, m, vla, "stem"); err == nil {
					t.Error("WriteFile of a folder kind did not fail")
				}
				dir := filepath.Join(t.TempDir(), "via-table")
				if err := k.WriteFolder(ctx, dir, m, vla); err != nil {
					t.Fatal(err)
				}
				want := filepath.Join(t.TempDir(), "direct")
				write := WriteMasked
				if k.Name == "sliced" {
					write = WriteSliced
				}
				if err := write(ctx, want, m, vla); err != nil {
					t.Fatal(err)
				}
				if a, b := treeBytes(t, dir), treeBytes(t, want); !mapsEqual(a, b) {
					t.Errorf("the table's %s export differs from %d files written directly (%d files)", k.Name, len(b), len(a))
				}
				return
			}
			if err := k.WriteFolder(ctx, filepath.Join(t.TempDir(), "x"), m, vla); err == nil {
				t.Error("WriteFolder of a file kind did not fail")
			}
			if _, err := k.EntriesContext(ctx, m, vla); err == nil {
				t.Error("Entries of a file kind did not fail")
			}
			var got, want bytes.Buffer
			if err := k.WriteFile(ctx, &got, m, vla, "stem"); err != nil {
				t.Fatal(err)
			}
			if err := direct[k.Name](&want); err != nil {
				t.Fatal(err)
			}
			if got.Len() == 0 || !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("%d bytes through the table, %d directly", got.Len(), want.Len())
			}
			if k.NeedsVLA {
				if err := k.WriteFile(ctx, &got, m, nil, "stem"); err == nil || !strings.Contains(err.Error(), "VLA") {
					t.Errorf("without the VLA: %v", err)
				}
			}
		})
	}
}

// treeBytes reads every file under dir, by slash-separated relative path.
func treeBytes(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) || len(a) == 0 {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
