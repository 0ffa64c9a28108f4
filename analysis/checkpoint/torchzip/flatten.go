package torchzip

import (
	"fmt"
	"strconv"

	"github.com/deltascope/deltascope/analysis/tensor"
)

// Bounds on walking the unpickled object. Memo references can share one
// container many times over or even make cycles, so every walk is limited in
// depth and in the number of steps it takes, whatever the pickle says.
const (
	maxDepth      = 256
	maxVisitsBase = 1 << 16 // plus a few steps per pickle byte
)

// unpickle interprets data (the bytes of data.pkl) against the storage table and
// flattens the result into an Archive. It is the whole pickle layer, separate
// from the zip layer so that it can be fuzzed with a fake storage table.
func unpickle(path string, data []byte, storages map[string]storageEntry, maxTensors int) (*Archive, error) {
	u := &unpickler{
		data:     data,
		memo:     make(map[uint32]any),
		storages: storages,
		loaded:   make(map[string]*storageRef),
		budget:   newBudget(maxTensors, len(data)),
	}
	root, err := u.run()
	if err != nil {
		return nil, tensor.Errorf(path, "%v", err)
	}
	fl := &flattener{
		path:       path,
		maxTensors: maxTensors,
		visitsLeft: maxVisitsBase + 4*len(data),
		keptLeft:   int64(nameBytesPer)*int64(maxTensors) + 1<<20,
		names:      make(map[string]bool),
		hasTensor:  make(map[any]bool),
		out:        &Archive{},
	}
	if err := fl.walk("", root, 0); err != nil {
		return nil, err
	}
	sortByOffset(fl.out.Tensors)
	return fl.out, nil
}

type flattener struct {
	path       string
	maxTensors int
	visitsLeft int
	keptLeft   int64 // bytes of names and renderings the archive may still keep
	names      map[string]bool
	hasTensor  map[any]bool // container → holds a tensor somewhere (memoized: shared containers)
	out        *Archive
}

// Names given to a root that is not a container (torch.save(tensor), torch.save(3)).
const (
	rootTensorName = "tensor"
	rootValueName  = "value"
)

func (fl *flattener) visit(name string, depth int) error {
	if depth > maxDepth {
		return tensor.Errorf(fl.path, "the pickled object nests deeper than %d levels %s (cyclic references?)", maxDepth, where(name))
	}
	fl.visitsLeft--
	if fl.visitsLeft < 0 {
		return tensor.Errorf(fl.path, "the pickled object is too large to walk %s (shared or cyclic references?)", where(name))
	}
	return nil
}

// where names a place in the pickled object for messages.
func where(name string) string {
	if name == "" {
		return "at the root"
	}
	return fmt.Sprintf("at %q", name)
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// child names the entry key of name, refusing names no checkpoint has: one
// long key shared through the memo at every level would otherwise grow names
// quadratically with the nesting.
func (fl *flattener) child(name, key string) (string, error) {
	if len(name)+1+len(key) > maxNameBytes {
		return "", tensor.Errorf(fl.path, "a dotted name %s would be longer than %d bytes (key of %d bytes)",
			where(truncate(name, 80)), maxNameBytes, len(key))
	}
	return join(name, key), nil
}

func (fl *flattener) walk(name string, v any, depth int) error {
	if err := fl.visit(name, depth); err != nil {
		return err
	}
	switch x := v.(type) {
	case *pyDict:
		if len(x.keys) == 0 && name != "" {
			return fl.addValue(name, "dict {}")
		}
		for i, k := range x.keys {
			var ks string
			switch kk := k.(type) {
			case string:
				ks = kk
			case int64:
				ks = strconv.FormatInt(kk, 10)
			default:
				return tensor.Errorf(fl.path, "dict %s has a key of type %s (%s): keys must be strings or integers",
					where(name), typeName(k), describe(k))
			}
			child, err := fl.child(name, ks)
			if err != nil {
				return err
			}
			if err := fl.walk(child, x.vals[i], depth+1); err != nil {
				return err
			}
		}
		return nil
	case *tensorVal:
		if name == "" {
			name = rootTensorName
		}
		e, err := fl.resolve(name, x)
		if err != nil {
			return err
		}
		if len(fl.out.Tensors) >= fl.maxTensors {
			return tensor.TensorErrorf(fl.path, name, "more than %d tensors", fl.maxTensors)
		}
		if err := fl.claim(name); err != nil {
			return err
		}
		fl.out.Tensors = append(fl.out.Tensors, e)
		return nil
	case *pyList, *pyTuple, *pySet:
		has, err := fl.containsTensor(name, v, depth)
		if err != nil {
			return err
		}
		if !has {
			return fl.addValue(name, render(v, fl))
		}
		var items []any
		switch c := v.(type) {
		case *pyList:
			items = c.items
		case *pyTuple:
			items = c.items
		default:
			return tensor.TensorErrorf(fl.path, name, "tensors inside a set have no name or order; not supported")
		}
		for i, it := range items {
			child, err := fl.child(name, strconv.Itoa(i))
			if err != nil {
				return err
			}
			if err := fl.walk(child, it, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return fl.addValue(name, render(v, fl))
}

func (fl *flattener) claim(name string) error {
	if fl.names[name] {
		return tensor.TensorErrorf(fl.path, name, "two entries flatten to the same dotted name")
	}
	if fl.keptLeft -= int64(len(name)); fl.keptLeft < 0 {
		return tensor.Errorf(fl.path, "the names of the pickled entries add up to more than the tensor limit allows "+
			"(%d bytes per entry)", nameBytesPer)
	}
	fl.names[name] = true
	return nil
}

func (fl *flattener) addValue(name, rendering string) error {
	if name == "" {
		name = rootValueName
	}
	if err := fl.claim(name); err != nil {
		return err
	}
	if len(fl.out.NonTensors) >= fl.maxTensors {
		return tensor.TensorErrorf(fl.path, name, "more than %d non-tensor entries", fl.maxTensors)
	}
	fl.out.NonTensors = append(fl.out.NonTensors, NonTensor{Name: name, Value: rendering})
	return nil
}

// containsTensor reports whether a tensor is reachable from v. Results are
// memoized per container, so shared containers are walked once; a container
// being walked counts as tensor-free, which ends cycles.
func (fl *flattener) containsTensor(name string, v any, depth int) (bool, error) {
	if err := fl.visit(name, depth); err != nil {
		return false, err
	}
	var items []any
	switch x := v.(type) {
	case *tensorVal:
		return true, nil
	case *pyList:
		items = x.items
	case *pyTuple:
		items = x.items
	case *pySet:
		items = x.items
	case *pyDict:
		items = x.vals
	default:
		return false, nil
	}
	if has, seen := fl.hasTensor[v]; seen {
		return has, nil
	}
	fl.hasTensor[v] = false
	for _, it := range items {
		has, err := fl.containsTensor(name, it, depth+1)
		if err != nil {
			return false, err
		}
		if has {
			fl.hasTensor[v] = true
			return true, nil
		}
	}
	return false, nil
}

// resolve checks a tensor view against its storage and places it in the file.
// Only row-major contiguous views are accepted: the engine reads tensor bytes as
// one run from the file.
func (fl *flattener) resolve(name string, t *tensorVal) (Entry, error) {
	s := t.storage
	if s.entry == nil {
		return Entry{}, tensor.TensorErrorf(fl.path, name, "references storage %q (data/%s), which is not in the zip archive", s.key, s.key)
	}
	elem := s.dtype.Bits() / 8
	if elem <= 0 || s.dtype.Bits()%8 != 0 {
		return Entry{}, tensor.TensorErrorf(fl.path, name, "storage %q: element type %s is not byte-sized", s.key, s.dtype)
	}
	if s.entry.size%elem != 0 {
		return Entry{}, tensor.TensorErrorf(fl.path, name, "storage %q holds %d bytes, not a multiple of the %d-byte %s element",
			s.key, s.entry.size, elem, s.dtype)
	}
	storageNumel := s.entry.size / elem
	if s.numel != storageNumel {
		return Entry{}, tensor.TensorErrorf(fl.path, name, "storage %q: its persistent id says %d %s elements but the zip entry holds %d",
			s.key, s.numel, s.typeName, storageNumel)
	}
	numel, err := elements(t.shape)
	if err != nil {
		return Entry{}, tensor.TensorErrorf(fl.path, name, "shape %v: %v", t.shape, err)
	}
	if err := checkContiguous(t.shape, t.stride, numel); err != nil {
		return Entry{}, tensor.TensorErrorf(fl.path, name, "%v", err)
	}
	if numel > storageNumel || t.offset > storageNumel-numel {
		return Entry{}, tensor.TensorErrorf(fl.path, name,
			"view of %d elements at storage offset %d does not fit storage %q of %d elements (storage too small)",
			numel, t.offset, s.key, storageNumel)
	}
	return Entry{
		Name:   name,
		DType:  s.dtype,
		Shape:  append([]int64{}, t.shape...),
		Offset: s.entry.offset + t.offset*elem,
		Size:   numel * elem,
	}, nil
}

// checkContiguous accepts row-major strides; dimensions of size 1 may have any
// stride (torch gives them arbitrary ones) and empty tensors have no layout.
func checkContiguous(shape, stride []int64, numel int64) error {
	if numel == 0 {
		return nil
	}
	want := make([]int64, len(shape))
	expect := int64(1)
	ok := true
	for i := len(shape) - 1; i >= 0; i-- {
		want[i] = expect
		if shape[i] != 1 && stride[i] != expect {
			ok = false
		}
		expect *= shape[i]
	}
	if !ok {
		return fmt.Errorf("non-contiguous view (shape %v, stride %v; contiguous would be %v) is not supported; "+
			"save a .contiguous() copy", shape, stride, want)
	}
	return nil
}
