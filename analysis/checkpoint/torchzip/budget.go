package torchzip

// What the unpickler may build, derived from what a checkpoint needs rather
// than from the size of data.pkl: a pickle is a program, and a few bytes of it
// can make an unbounded interpreter hold far more than the file (a 64 KB
// deflated data.pkl of MARK + a million NONEs + APPENDS, repeated, took the
// server to 3.2 GB before these bounds).
//
// Measured on torch.save state dicts (the fixtures' 68 tensors: 1,439 values
// in ~2,800 cells, 550 memo entries, 8.9 KB of pickle): one tensor costs about
// 41 cells (key, persistent-id tuple, shape and stride tuples, rebuild call,
// its arguments) and about 8 memo entries. The budgets give each of the
// tensors the limit allows a little more than that (the limit itself is ~66×
// OpenVLA's 982 tensors), with a floor for small files whose non-tensor
// entries (configs, step counters) dominate. At the default limit of 65,536
// tensors the worst pickle of cheap values (a list of Nones) allocates
// ~140 MB before it is refused.
const (
	objectsPerTensor = 56      // 16-byte cells: values pushed (memo references too) and copied container items
	memoPerTensor    = 24      // memo entries
	minObjects       = 1 << 20 // floor: a million cells, ~16 MB, for any file
	minMemo          = 1 << 18
	maxNameBytes     = 4096 // one flattened dotted name; real ones are under 200
	nameBytesPer     = 512  // kept names and renderings, per allowed entry
)

// cells is what pushing v costs, in 16-byte cells: its stack slot (which
// becomes a container item) and, for a container, the container itself, so a
// run of EMPTY_DICT costs what it allocates, not one cell per dict.
func cells(v any) int {
	switch v.(type) {
	case *pyDict:
		return 5 // slot + keys, vals slices and index pointer
	case *pyList, *pyTuple, *pySet, *tensorVal:
		return 3 // slot + a slice header
	}
	return 1
}

// budget counts what the unpickler and the flattener build against limits set
// once per file. Each counter is checked before the memory it stands for is
// allocated, or right after a single step that can add at most a few values.
type budget struct {
	objects, maxObjects int   // values pushed on the stack and container items copied
	memo, maxMemo       int   // memo entries
	bytes, maxBytes     int64 // bytes of strings and byte strings built from the pickle
}

func newBudget(maxTensors, pickleBytes int) budget {
	b := budget{maxObjects: objectsPerTensor * maxTensors, maxMemo: memoPerTensor * maxTensors}
	b.maxObjects = max(b.maxObjects, minObjects)
	b.maxMemo = max(b.maxMemo, minMemo)
	// Strings are copied out of data.pkl once each; only _codecs.encode can copy
	// one string again and again, so twice the pickle (plus slack) is plenty.
	b.maxBytes = 2*int64(pickleBytes) + 1<<20
	return b
}

// chargeObjects accounts for n more values; the error says which bound and why.
func (u *unpickler) chargeObjects(n int) error {
	u.budget.objects += n
	if u.budget.objects > u.budget.maxObjects {
		return u.fail("the pickle builds more than %d cells of values (%d per tensor allowed; a torch state dict "+
			"needs ~41); refusing a pickle bomb", u.budget.maxObjects, objectsPerTensor)
	}
	return nil
}

func (u *unpickler) chargeBytes(n int) error {
	u.budget.bytes += int64(n)
	if u.budget.bytes > u.budget.maxBytes {
		return u.fail("the pickle builds more than %d bytes of strings, twice its own size; refusing a pickle bomb",
			u.budget.maxBytes)
	}
	return nil
}
