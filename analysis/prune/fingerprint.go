package prune

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/deltascope/deltascope/analysis/checkpoint"
)

// LayoutFingerprint identifies a checkpoint by its tensor names, dtypes and
// shapes (not its values): "layout-sha256:<hex>". It is what the CLI records in
// a recipe when no content fingerprint from the store is at hand; two
// checkpoints with the same layout take the same masks.
func LayoutFingerprint(side *checkpoint.Side) string {
	h := sha256.New()
	for _, t := range side.Tensors { // sorted by name
		fmt.Fprintf(h, "%q %s %v\n", t.Name, t.DType, t.Shape)
	}
	return "layout-sha256:" + hex.EncodeToString(h.Sum(nil))
}
