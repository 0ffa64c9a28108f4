package prune

import (
	"context"
	"fmt"

	"github.com/deltascope/deltascope/analysis/checkpoint"
)

// EntriesContext is Entries reading under ctx: a remote VLA's headers, its
// folder's listing and the files a sliced export rewrites are fetched before
// the first entry is written, and a request that goes away should stop them.
func (k ExportKind) EntriesContext(ctx context.Context, m *Mask, vla *checkpoint.Side) ([]ExportEntry, error) {
	if !k.Folder {
		return nil, fmt.Errorf("export %s is a file, not a folder", k.Name)
	}
	return exportEntriesContext(ctx, m, vla, k.sliced)
}
