package torchzip

import (
	"math/big"

	"github.com/deltascope/deltascope/analysis/tensor"
)

// The values the unpickler builds. Python scalars map to Go types (string, int64,
// float64, bool); everything else is one of the types below. Containers are
// pointers so that memo references share them, as in Python, and so that
// traversals can remember what they have already seen.
type (
	pyNone   struct{}
	pyBigInt struct{ v *big.Int } // an int beyond int64 (LONG1/LONG4), kept only to be rendered
	pyBytes  []byte
	pyList   struct{ items []any }
	pyTuple  struct{ items []any }
	pySet    struct {
		items  []any
		frozen bool
	}
	pyDevice struct{ s string } // torch.device("cuda:0")

	// pyDict keeps insertion order (Python dicts do) and replaces the value of a
	// key set twice. index only holds hashable keys we understand (str, int);
	// other keys are kept in order and refused when the dict is flattened.
	pyDict struct {
		keys, vals []any
		index      map[any]int
	}
)

// newDict makes an empty dict; its index is made on the first set, so the many
// empty OrderedDicts of a state dict (backward hooks) cost no map each.
func newDict() *pyDict { return &pyDict{} }

func (d *pyDict) set(k, v any) {
	switch k.(type) {
	case string, int64:
		if d.index == nil {
			d.index = make(map[any]int)
		}
		if i, ok := d.index[k]; ok {
			d.vals[i] = v
			return
		}
		d.index[k] = len(d.keys)
	}
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
}

// storageRef is the result of a persistent load: one storage of the archive,
// viewed with the element type its persistent id names. entry is nil when the
// archive has no such storage; that is reported when a tensor using it is named.
type storageRef struct {
	key      string
	typeName string // the storage type as pickled, for messages
	dtype    tensor.DType
	numel    int64 // elements, as the persistent id says
	entry    *storageEntry
}

// tensorVal is a tensor rebuilt by _rebuild_tensor_v2: a view into a storage.
// The view is checked against the storage once the tensor has a name, so that
// the error can name it.
type tensorVal struct {
	storage *storageRef
	offset  int64 // in elements
	shape   []int64
	stride  []int64
}
