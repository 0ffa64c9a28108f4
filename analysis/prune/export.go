package prune

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/checkpoint/safetensors"
	"github.com/deltascope/deltascope/analysis/tensor"
)

// WriteIndices writes the mask as the Torch-Pruning style record of what to cut:
//
//	{"recipe": {...}, "params": {...},
//	 "tensors": {"<VLA tensor>": {"shape": [R, C], "rows": [...], "cols": [...]}, ...}}
//
// streamed tensor by tensor (never built whole in memory), checking ctx
// before each tensor.
func WriteIndices(ctx context.Context, w io.Writer, m *Mask) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	recipe, err := json.Marshal(m.Recipe)
	if err != nil {
		return err
	}
	params, err := json.Marshal(m.Params)
	if err != nil {
		return err
	}
	bw.WriteString(`{"recipe":`)
	bw.Write(recipe)
	bw.WriteString(`,"params":`)
	bw.Write(params)
	bw.WriteString(`,"tensors":{`)
	var num []byte
	list := func(xs []int32) {
		bw.WriteByte('[')
		for i, x := range xs {
			if i > 0 {
				bw.WriteByte(',')
			}
			num = strconv.AppendInt(num[:0], int64(x), 10)
			bw.Write(num)
		}
		bw.WriteByte(']')
	}
	for i, t := range m.Tensors {
		if err := ctx.Err(); err != nil {
			return err
		}
		if i > 0 {
			bw.WriteByte(',')
		}
		name, _ := json.Marshal(t.Name)
		bw.WriteString("\n")
		bw.Write(name)
		bw.WriteString(`:{"shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				bw.WriteByte(',')
			}
			bw.WriteString(strconv.FormatInt(d, 10))
		}
		bw.WriteString(`],"rows":`)
		list(t.Rows)
		bw.WriteString(`,"cols":`)
		list(t.Cols)
		bw.WriteByte('}')
	}
	bw.WriteString("\n}}\n")
	return bw.Flush()
}

// Names of the keep-mask tensors in a masks file: "<tensor>" + RowsSuffix holds
// one U8 per row of the VLA tensor, "<tensor>" + ColsSuffix one per column; 1
// keeps, 0 prunes. A tensor has a rows mask when a row of it is pruned, a cols
// mask when a column is.
const (
	RowsSuffix = ".__rows__"
	ColsSuffix = ".__cols__"
)

// WriteMasks writes a safetensors file of 1-D U8 keep-masks (see RowsSuffix),
// with the recipe as JSON in its metadata under "deltascope_recipe". When vla
// is not nil, every masked tensor is first checked to exist there with the same
// shape, so that masks never silently miss their model. It checks ctx before
// each mask.
func WriteMasks(ctx context.Context, w io.Writer, m *Mask, vla *checkpoint.Side) error {
	if err := checkAgainst(m, vla); err != nil {
		return err
	}
	var decl []safetensors.WriteTensor
	longest := int64(0)
	for _, t := range m.Tensors {
		if len(t.Rows) > 0 {
			decl = append(decl, safetensors.WriteTensor{Name: t.Name + RowsSuffix, DType: tensor.U8, Shape: []int64{t.Shape[0]}})
			longest = max(longest, t.Shape[0])
		}
		if len(t.Cols) > 0 {
			decl = append(decl, safetensors.WriteTensor{Name: t.Name + ColsSuffix, DType: tensor.U8, Shape: []int64{t.Shape[1]}})
			longest = max(longest, t.Shape[1])
		}
	}
	recipe, err := json.Marshal(m.Recipe)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	sw, err := safetensors.NewWriter(bw, decl, map[string]string{"format": "pt", "deltascope_recipe": string(recipe)})
	if err != nil {
		return err
	}
	buf := make([]byte, longest) // the longest dimension of a masked tensor, bounded by its validated shape
	emit := func(n int64, pruned []int32) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := buf[:n]
		for i := range b {
			b[i] = 1
		}
		for _, p := range pruned {
			b[p] = 0
		}
		_, err := sw.Write(b)
		return err
	}
	for _, t := range m.Tensors {
		if len(t.Rows) > 0 {
			if err := emit(t.Shape[0], t.Rows); err != nil {
				return err
			}
		}
		if len(t.Cols) > 0 {
			if err := emit(t.Shape[1], t.Cols); err != nil {
				return err
			}
		}
	}
	if err := sw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// MaskSnippet is the Python that applies a masks file to a PyTorch model loaded
// with the VLA's own code (its state-dict keys are the checkpoint's names):
// pruned rows and columns are set to zero in place.
func MaskSnippet(maskFile string) string {
	return strings.ReplaceAll(`# Apply deltascope keep-masks (1 = keep, 0 = pruned) to a loaded PyTorch model.
import torch
from safetensors.torch import load_file

def apply_deltascope_masks(model, path=MASKFILE):
    masks = load_file(path)
    state = model.state_dict()
    with torch.no_grad():
        for key, keep in masks.items():
            if key.endswith(".__rows__"):
                name, dim = key[: -len(".__rows__")], 0
            elif key.endswith(".__cols__"):
                name, dim = key[: -len(".__cols__")], 1
            else:
                continue
            w = state[name]  # a KeyError here: the model's names differ from the checkpoint's
            drop = (keep == 0).to(w.device)
            if dim == 0:
                w[drop] = 0
            else:
                w[:, drop] = 0
    return model
`, "MASKFILE", strconv.Quote(maskFile))
}

// checkAgainst verifies that every masked tensor exists in the VLA side with the
// mask's shape.
func checkAgainst(m *Mask, vla *checkpoint.Side) error {
	if vla == nil {
		return nil
	}
	byName := make(map[string]*checkpoint.Tensor, len(vla.Tensors))
	for _, t := range vla.Tensors {
		byName[t.Name] = t
	}
	for _, t := range m.Tensors {
		ct := byName[t.Name]
		if ct == nil {
			return fmt.Errorf("tensor %q of the mask is not in the VLA checkpoint (was the recipe resolved on another model?)", t.Name)
		}
		if !slices.Equal(ct.Shape, t.Shape) {
			return tensor.TensorErrorf(ct.File, ct.Name, "shape %v differs from the %v the mask was resolved on", ct.Shape, t.Shape)
		}
	}
	return nil
}
