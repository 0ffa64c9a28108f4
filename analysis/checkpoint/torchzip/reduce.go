package torchzip

import (
	"fmt"
	"math"
	"unicode/utf8"
)

// The symbolic side of the unpickler: allowed globals are markers, and REDUCE,
// NEWOBJ, BUILD and BINPERSID build their results here without calling anything.

func (u *unpickler) global(module, name string) error {
	g, ok := lookupGlobal(module, name)
	if !ok {
		return u.fail("refusing global %s.%s: only torch tensor-rebuild functions, storage types, dtypes "+
			"and collections.OrderedDict are allowed; nothing in this file is executed", module, name)
	}
	u.push(g)
	return nil
}

// persistentLoad interprets torch's persistent id
// ('storage', storage_type, key, location, numel).
func (u *unpickler) persistentLoad(pid any) (any, error) {
	t, ok := pid.(*pyTuple)
	if !ok || len(t.items) != 5 {
		return nil, u.fail("persistent id must be a 5-tuple ('storage', type, key, location, numel), got %s", describe(pid))
	}
	kind, ok := asText(t.items[0])
	if !ok || kind != "storage" {
		return nil, u.fail("persistent id of kind %s; only 'storage' is supported", describe(t.items[0]))
	}
	g, ok := t.items[1].(*pyGlobal)
	if !ok || g.kind != gStorageType {
		return nil, u.fail("persistent id storage type must be a torch storage class or dtype, got %s", describe(t.items[1]))
	}
	if g.dtype == 0 {
		return nil, u.fail("storage type %s is not supported (no matching deltascope element type)", g)
	}
	key, ok := asText(t.items[2])
	if !ok {
		return nil, u.fail("persistent id storage key must be a string, got %s", describe(t.items[2]))
	}
	if _, ok := asText(t.items[3]); !ok {
		return nil, u.fail("persistent id location must be a string, got %s", describe(t.items[3]))
	}
	numel, ok := t.items[4].(int64)
	if !ok || numel < 0 {
		return nil, u.fail("persistent id element count must be a non-negative int, got %s", describe(t.items[4]))
	}
	if ref, ok := u.loaded[key]; ok && ref.dtype == g.dtype {
		return ref, nil
	}
	ref := &storageRef{key: key, typeName: g.String(), dtype: g.dtype, numel: numel}
	if e, ok := u.storages[key]; ok {
		ref.entry = &e
	}
	u.loaded[key] = ref
	return ref, nil
}

func (u *unpickler) reduce(fn, argsV any) (any, error) {
	g, ok := fn.(*pyGlobal)
	if !ok {
		return nil, u.fail("REDUCE on a %s: only allowed torch globals can be applied", typeName(fn))
	}
	argsT, ok := argsV.(*pyTuple)
	if !ok {
		return nil, u.fail("REDUCE arguments for %s must be a tuple, got %s", g, typeName(argsV))
	}
	args := argsT.items
	switch g.kind {
	case gRebuildTensorV2:
		return u.rebuildTensor(args)
	case gRebuildParameter, gRebuildParameterWithState:
		want := 3
		if g.kind == gRebuildParameterWithState {
			want = 4
		}
		if len(args) != want {
			return nil, u.fail("%s takes %d arguments, got %d", g, want, len(args))
		}
		t, ok := args[0].(*tensorVal)
		if !ok {
			return nil, u.fail("%s needs a tensor as its first argument, got %s", g, typeName(args[0]))
		}
		return t, nil
	case gOrderedDict:
		return u.dictFrom(g, args)
	case gDevice:
		if len(args) < 1 || len(args) > 2 {
			return nil, u.fail("torch.device takes 1 or 2 arguments, got %d", len(args))
		}
		s, ok := args[0].(string)
		if !ok {
			return nil, u.fail("torch.device needs a string, got %s", typeName(args[0]))
		}
		if len(args) == 2 {
			i, ok := args[1].(int64)
			if !ok {
				return nil, u.fail("torch.device index must be an int, got %s", typeName(args[1]))
			}
			s = fmt.Sprintf("%s:%d", s, i)
		}
		return &pyDevice{s}, nil
	case gSize:
		if len(args) != 1 {
			return nil, u.fail("torch.Size takes 1 argument, got %d", len(args))
		}
		t, ok := args[0].(*pyTuple)
		if !ok {
			return nil, u.fail("torch.Size needs a tuple, got %s", typeName(args[0]))
		}
		return t, nil
	case gCodecsEncode:
		return u.encodeLatin1(args)
	case gSet, gFrozenSet:
		s := &pySet{frozen: g.kind == gFrozenSet}
		if len(args) == 1 {
			l, ok := args[0].(*pyList)
			if !ok {
				return nil, u.fail("%s needs a list, got %s", g, typeName(args[0]))
			}
			if err := u.chargeObjects(len(l.items)); err != nil {
				return nil, err
			}
			s.items = append(s.items, l.items...)
		} else if len(args) != 0 {
			return nil, u.fail("%s takes at most 1 argument, got %d", g, len(args))
		}
		return s, nil
	}
	return nil, u.fail("%s cannot be applied", g)
}

// newobj handles cls.__new__(cls, *args): only OrderedDict, which needs no args.
func (u *unpickler) newobj(clsV, argsV, kwargs any) error {
	g, ok := clsV.(*pyGlobal)
	if !ok || g.kind != gOrderedDict {
		return u.fail("NEWOBJ of %s: only collections.OrderedDict may be instantiated", describe(clsV))
	}
	if _, ok := argsV.(*pyTuple); !ok {
		return u.fail("NEWOBJ arguments must be a tuple, got %s", typeName(argsV))
	}
	if kwargs != nil {
		if _, ok := kwargs.(*pyDict); !ok {
			return u.fail("NEWOBJ_EX keyword arguments must be a dict, got %s", typeName(kwargs))
		}
	}
	u.push(newDict())
	return nil
}

// dictFrom builds OrderedDict() or OrderedDict([(k, v), ...]).
func (u *unpickler) dictFrom(g *pyGlobal, args []any) (any, error) {
	d := newDict()
	if len(args) == 0 {
		return d, nil
	}
	if len(args) != 1 {
		return nil, u.fail("%s takes at most 1 argument, got %d", g, len(args))
	}
	var pairs []any
	switch src := args[0].(type) {
	case *pyList:
		pairs = src.items
	case *pyTuple:
		pairs = src.items
	case *pyDict:
		// OrderedDict(d) copies d: a memoized dict copied over and over would
		// otherwise multiply its size for a few bytes each.
		if err := u.chargeObjects(6 * len(src.keys)); err != nil { // two slots and an index entry each
			return nil, err
		}
		for i := range src.keys {
			d.set(src.keys[i], src.vals[i])
		}
		return d, nil
	default:
		return nil, u.fail("%s needs a list of pairs, got %s", g, typeName(args[0]))
	}
	if err := u.chargeObjects(2 * len(pairs)); err != nil {
		return nil, err
	}
	for _, p := range pairs {
		t, ok := p.(*pyTuple)
		if !ok || len(t.items) != 2 {
			return nil, u.fail("%s needs (key, value) pairs, got %s", g, describe(p))
		}
		if err := u.setItems(d, t.items); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// encodeLatin1 is _codecs.encode(s, "latin1"), how protocol 2 pickles bytes.
func (u *unpickler) encodeLatin1(args []any) (any, error) {
	if len(args) != 2 {
		return nil, u.fail("_codecs.encode takes 2 arguments, got %d", len(args))
	}
	s, ok1 := args[0].(string)
	enc, ok2 := args[1].(string)
	if !ok1 || !ok2 || (enc != "latin1" && enc != "latin-1") {
		return nil, u.fail("_codecs.encode is only supported as encode(str, 'latin1')")
	}
	if err := u.chargeBytes(len(s)); err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			return nil, u.fail("_codecs.encode: character U+%04X is not latin-1", r)
		}
		out = append(out, byte(r))
	}
	return pyBytes(out), nil
}

// build handles BUILD (setstate). A state dict's OrderedDict carries a _metadata
// attribute (module versions) that torch pickles this way; it is ignored.
func (u *unpickler) build() error {
	state, err := u.pop()
	if err != nil {
		return err
	}
	v, err := u.top()
	if err != nil {
		return err
	}
	if _, ok := v.(*pyDict); !ok {
		return u.fail("BUILD on a %s is not supported (state %s)", typeName(v), typeName(state))
	}
	return nil
}

// rebuildTensor is _rebuild_tensor_v2(storage, storage_offset, size, stride,
// requires_grad, backward_hooks[, metadata]). The view is checked against the
// storage later, when the tensor has a name (see resolve).
func (u *unpickler) rebuildTensor(args []any) (any, error) {
	if len(args) != 6 && len(args) != 7 {
		return nil, u.fail("_rebuild_tensor_v2 takes 6 or 7 arguments, got %d", len(args))
	}
	s, ok := args[0].(*storageRef)
	if !ok {
		return nil, u.fail("_rebuild_tensor_v2 needs a storage (persistent id) first, got %s", typeName(args[0]))
	}
	off, ok := args[1].(int64)
	if !ok || off < 0 {
		return nil, u.fail("_rebuild_tensor_v2 storage offset must be a non-negative int, got %s", describe(args[1]))
	}
	shape, err := u.intTuple("size", args[2])
	if err != nil {
		return nil, err
	}
	stride, err := u.intTuple("stride", args[3])
	if err != nil {
		return nil, err
	}
	if len(stride) != len(shape) {
		return nil, u.fail("_rebuild_tensor_v2 size %v and stride %v differ in length", shape, stride)
	}
	if _, ok := args[4].(bool); !ok {
		return nil, u.fail("_rebuild_tensor_v2 requires_grad must be a bool, got %s", typeName(args[4]))
	}
	if _, err := elements(shape); err != nil {
		return nil, u.fail("_rebuild_tensor_v2 size %v: %v", shape, err)
	}
	return &tensorVal{storage: s, offset: off, shape: shape, stride: stride}, nil
}

const maxRank = 64

func (u *unpickler) intTuple(what string, v any) ([]int64, error) {
	t, ok := v.(*pyTuple)
	if !ok {
		return nil, u.fail("_rebuild_tensor_v2 %s must be a tuple, got %s", what, typeName(v))
	}
	if len(t.items) > maxRank {
		return nil, u.fail("_rebuild_tensor_v2 %s has %d dimensions (at most %d)", what, len(t.items), maxRank)
	}
	out := make([]int64, len(t.items))
	for i, it := range t.items {
		n, ok := it.(int64)
		if !ok || n < 0 {
			return nil, u.fail("_rebuild_tensor_v2 %s must hold non-negative ints, got %s", what, describe(it))
		}
		out[i] = n
	}
	return out, nil
}

// elements is the product of shape, refusing products that overflow (or come
// close: sizes in bytes are computed from it).
func elements(shape []int64) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d != 0 && n > (math.MaxInt64>>4)/d {
			return 0, fmt.Errorf("element count overflows")
		}
		n *= d
	}
	return n, nil
}

func asText(v any) (string, bool) {
	switch s := v.(type) {
	case string:
		return s, true
	case pyBytes:
		if utf8.Valid(s) {
			return string(s), true
		}
	}
	return "", false
}
