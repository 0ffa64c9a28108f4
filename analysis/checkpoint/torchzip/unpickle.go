package torchzip

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"unicode/utf8"
)

// Pickle opcodes understood here: the binary ones of protocols 2–5 that
// torch.save and plain containers use, plus the few cheap protocol 0/1 ones
// that have no side effects. INST, OBJ, EXT*, buffers and the text number
// opcodes are refused.
const (
	opMark            = '('
	opStop            = '.'
	opPop             = '0'
	opPopMark         = '1'
	opDup             = '2'
	opBinfloat        = 'G'
	opBinint          = 'J'
	opBinint1         = 'K'
	opBinint2         = 'M'
	opNone            = 'N'
	opPersid          = 'P'
	opBinpersid       = 'Q'
	opReduce          = 'R'
	opBinstring       = 'T'
	opShortBinstring  = 'U'
	opBinunicode      = 'X'
	opAppend          = 'a'
	opBuild           = 'b'
	opGlobal          = 'c'
	opDict            = 'd'
	opEmptyDict       = '}'
	opAppends         = 'e'
	opBinget          = 'h'
	opLongBinget      = 'j'
	opList            = 'l'
	opEmptyList       = ']'
	opBinput          = 'q'
	opLongBinput      = 'r'
	opSetitem         = 's'
	opTuple           = 't'
	opEmptyTuple      = ')'
	opSetitems        = 'u'
	opBinbytes        = 'B'
	opShortBinbytes   = 'C'
	opProto           = 0x80
	opNewobj          = 0x81
	opTuple1          = 0x85
	opTuple2          = 0x86
	opTuple3          = 0x87
	opNewtrue         = 0x88
	opNewfalse        = 0x89
	opLong1           = 0x8a
	opLong4           = 0x8b
	opShortBinunicode = 0x8c
	opBinunicode8     = 0x8d
	opBinbytes8       = 0x8e
	opEmptySet        = 0x8f
	opAdditems        = 0x90
	opFrozenset       = 0x91
	opNewobjEx        = 0x92
	opStackGlobal     = 0x93
	opMemoize         = 0x94
	opFrame           = 0x95
	opBytearray8      = 0x96
)

// Bounds on the shape of a pickle. What it may build in all is bounded by the
// budget (budget.go), which follows from the tensor limit, not the pickle size.
const (
	maxMarks     = 256 // open MARKs: nesting of tuples, lists and dicts being built
	maxLongBytes = 64  // LONG1/LONG4 payload: torch never needs more than 8
	maxLineBytes = 256 // GLOBAL module and name lines
)

// unpickler interprets a pickle symbolically. It mirrors Python's _Unpickler:
// stack is the current frame, marks remembers where each open MARK started.
type unpickler struct {
	data     []byte
	pos      int
	op       byte // current opcode and its offset, for messages
	opPos    int
	stack    []any
	marks    []int
	memo     map[uint32]any
	storages map[string]storageEntry
	loaded   map[string]*storageRef // persistent loads, by key, as torch reuses them
	budget   budget
}

// pickleError is an error inside data.pkl; unpickle wraps it with the file path.
type pickleError struct{ msg string }

func (e *pickleError) Error() string { return e.msg }

func (u *unpickler) fail(format string, args ...any) error {
	return &pickleError{fmt.Sprintf("data.pkl offset %d (opcode 0x%02x): %s", u.opPos, u.op, fmt.Sprintf(format, args...))}
}

// run executes the pickle up to STOP and returns the root object.
func (u *unpickler) run() (any, error) {
	for {
		if u.pos >= len(u.data) {
			return nil, &pickleError{fmt.Sprintf("data.pkl is truncated: no STOP opcode in its %d bytes", len(u.data))}
		}
		u.op, u.opPos = u.data[u.pos], u.pos
		u.pos++
		if u.op == opStop {
			return u.pop()
		}
		if err := u.step(); err != nil {
			return nil, err
		}
		// One step pushes at most one value; bulk copies charge themselves first.
		if u.budget.objects > u.budget.maxObjects {
			return nil, u.chargeObjects(0)
		}
	}
}

func (u *unpickler) step() error {
	switch u.op {
	case opProto:
		b, err := u.read(1)
		if err != nil {
			return err
		}
		if b[0] > 5 {
			return u.fail("pickle protocol %d is not supported (at most 5)", b[0])
		}
	case opFrame:
		// A frame is only a buffering hint; its length must still fit the data.
		if _, err := u.length(8); err != nil {
			return err
		}
	case opMark:
		if len(u.marks) >= maxMarks {
			return u.fail("nesting deeper than %d MARKs", maxMarks)
		}
		u.marks = append(u.marks, len(u.stack))
	case opPop:
		_, err := u.pop()
		return err
	case opPopMark:
		_, err := u.popMark()
		return err
	case opDup:
		v, err := u.top()
		if err != nil {
			return err
		}
		u.push(v)
	case opNone:
		u.push(pyNone{})
	case opNewtrue:
		u.push(true)
	case opNewfalse:
		u.push(false)
	case opBinint:
		b, err := u.read(4)
		if err != nil {
			return err
		}
		u.push(int64(int32(binary.LittleEndian.Uint32(b))))
	case opBinint1:
		b, err := u.read(1)
		if err != nil {
			return err
		}
		u.push(int64(b[0]))
	case opBinint2:
		b, err := u.read(2)
		if err != nil {
			return err
		}
		u.push(int64(binary.LittleEndian.Uint16(b)))
	case opLong1, opLong4:
		return u.long()
	case opBinfloat:
		b, err := u.read(8)
		if err != nil {
			return err
		}
		u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
	case opShortBinunicode, opBinunicode, opBinunicode8, opShortBinstring, opBinstring:
		return u.str()
	case opShortBinbytes, opBinbytes, opBinbytes8, opBytearray8:
		return u.bytes()
	case opEmptyTuple:
		u.push(&pyTuple{})
	case opTuple1, opTuple2, opTuple3:
		n := int(u.op-opTuple1) + 1
		if err := u.need(n); err != nil {
			return err
		}
		items := append([]any(nil), u.stack[len(u.stack)-n:]...)
		u.stack = u.stack[:len(u.stack)-n]
		u.push(&pyTuple{items})
	case opTuple:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		u.push(&pyTuple{items})
	case opEmptyList:
		u.push(&pyList{})
	case opList:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		u.push(&pyList{items})
	case opAppend, opAppends:
		return u.appendItems()
	case opEmptyDict:
		u.push(newDict())
	case opDict:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		d := newDict()
		if err := u.setItems(d, items); err != nil {
			return err
		}
		u.push(d)
	case opSetitem, opSetitems:
		return u.setItemsOp()
	case opEmptySet:
		u.push(&pySet{})
	case opAdditems:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		v, err := u.top()
		if err != nil {
			return err
		}
		s, ok := v.(*pySet)
		if !ok || s.frozen {
			return u.fail("ADDITEMS on a %s, not a set", typeName(v))
		}
		s.items = append(s.items, items...)
	case opFrozenset:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		u.push(&pySet{items: items, frozen: true})
	case opBinput, opLongBinput, opMemoize:
		return u.put()
	case opBinget, opLongBinget:
		return u.get()
	case opGlobal:
		module, err := u.line()
		if err != nil {
			return err
		}
		name, err := u.line()
		if err != nil {
			return err
		}
		return u.global(module, name)
	case opStackGlobal:
		nameV, err := u.pop()
		if err != nil {
			return err
		}
		moduleV, err := u.pop()
		if err != nil {
			return err
		}
		module, ok1 := moduleV.(string)
		name, ok2 := nameV.(string)
		if !ok1 || !ok2 {
			return u.fail("STACK_GLOBAL needs two strings, got %s and %s", typeName(moduleV), typeName(nameV))
		}
		return u.global(module, name)
	case opBinpersid:
		pid, err := u.pop()
		if err != nil {
			return err
		}
		ref, err := u.persistentLoad(pid)
		if err != nil {
			return err
		}
		u.push(ref)
	case opPersid:
		if _, err := u.line(); err != nil {
			return err
		}
		return u.fail("text persistent ids (PERSID) are not written by torch.save")
	case opReduce:
		args, err := u.pop()
		if err != nil {
			return err
		}
		fn, err := u.pop()
		if err != nil {
			return err
		}
		v, err := u.reduce(fn, args)
		if err != nil {
			return err
		}
		u.push(v)
	case opNewobj:
		args, err := u.pop()
		if err != nil {
			return err
		}
		cls, err := u.pop()
		if err != nil {
			return err
		}
		return u.newobj(cls, args, nil)
	case opNewobjEx:
		kwargs, err := u.pop()
		if err != nil {
			return err
		}
		args, err := u.pop()
		if err != nil {
			return err
		}
		cls, err := u.pop()
		if err != nil {
			return err
		}
		return u.newobj(cls, args, kwargs)
	case opBuild:
		return u.build()
	default:
		return u.fail("opcode not supported by this restricted unpickler")
	}
	return nil
}

// --- raw reading ---

func (u *unpickler) read(n int) ([]byte, error) {
	if n < 0 || n > len(u.data)-u.pos {
		return nil, &pickleError{fmt.Sprintf("data.pkl offset %d (opcode 0x%02x): needs %d bytes, only %d remain (truncated pickle)",
			u.opPos, u.op, n, len(u.data)-u.pos)}
	}
	b := u.data[u.pos : u.pos+n]
	u.pos += n
	return b, nil
}

// length reads a little-endian length of width bytes and checks it against the
// bytes that remain before anything is sized by it.
func (u *unpickler) length(width int) (int, error) {
	b, err := u.read(width)
	if err != nil {
		return 0, err
	}
	var n uint64
	switch width {
	case 1:
		n = uint64(b[0])
	case 4:
		n = uint64(binary.LittleEndian.Uint32(b))
	case 8:
		n = binary.LittleEndian.Uint64(b)
	}
	if rem := uint64(len(u.data) - u.pos); n > rem {
		return 0, u.fail("length %d exceeds the %d bytes that remain in data.pkl", n, rem)
	}
	return int(n), nil
}

func (u *unpickler) line() (string, error) {
	for i := u.pos; i < len(u.data) && i-u.pos <= maxLineBytes; i++ {
		if u.data[i] == '\n' {
			s := string(u.data[u.pos:i])
			u.pos = i + 1
			return s, nil
		}
	}
	return "", u.fail("no newline within %d bytes (truncated or malformed GLOBAL/PERSID)", maxLineBytes)
}

func (u *unpickler) long() error {
	var n int
	if u.op == opLong1 {
		b, err := u.read(1)
		if err != nil {
			return err
		}
		n = int(b[0])
	} else {
		b, err := u.read(4)
		if err != nil {
			return err
		}
		n = int(int32(binary.LittleEndian.Uint32(b)))
		if n < 0 {
			return u.fail("negative LONG4 length %d", n)
		}
	}
	if n > maxLongBytes {
		return u.fail("integer of %d bytes is over the %d-byte limit", n, maxLongBytes)
	}
	b, err := u.read(n)
	if err != nil {
		return err
	}
	if n <= 8 {
		var v uint64
		for i := n - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		if n > 0 && n < 8 && b[n-1]&0x80 != 0 { // sign-extend two's complement
			v |= ^uint64(0) << (8 * n)
		}
		u.push(int64(v))
		return nil
	}
	// Two's complement little-endian → big.Int, only to render it.
	be := make([]byte, n)
	for i := range b {
		be[n-1-i] = b[i]
	}
	v := new(big.Int).SetBytes(be)
	if b[n-1]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(8*n)))
	}
	u.push(&pyBigInt{v})
	return nil
}

func (u *unpickler) str() error {
	var width int
	switch u.op {
	case opShortBinunicode, opShortBinstring:
		width = 1
	case opBinunicode, opBinstring:
		width = 4
	case opBinunicode8:
		width = 8
	}
	n, err := u.length(width)
	if err != nil {
		return err
	}
	if err := u.chargeBytes(n); err != nil {
		return err
	}
	b, _ := u.read(n)
	if !utf8.Valid(b) {
		return u.fail("string is not valid UTF-8")
	}
	u.push(string(b))
	return nil
}

func (u *unpickler) bytes() error {
	width := 4
	switch u.op {
	case opShortBinbytes:
		width = 1
	case opBinbytes8, opBytearray8:
		width = 8
	}
	n, err := u.length(width)
	if err != nil {
		return err
	}
	b, _ := u.read(n)
	u.push(pyBytes(b))
	return nil
}

// --- stack, marks and memo ---

// push counts every value against the budget (run checks it after each step):
// stack slots and the container items they become are what a bomb multiplies.
func (u *unpickler) push(v any) {
	u.budget.objects += cells(v)
	u.stack = append(u.stack, v)
}

// base is where the current frame starts: values below the last MARK belong to
// an enclosing frame and cannot be popped, as in Python.
func (u *unpickler) base() int {
	if len(u.marks) == 0 {
		return 0
	}
	return u.marks[len(u.marks)-1]
}

func (u *unpickler) need(n int) error {
	if len(u.stack)-u.base() < n {
		return u.fail("stack underflow: needs %d values, has %d", n, len(u.stack)-u.base())
	}
	return nil
}

func (u *unpickler) pop() (any, error) {
	if err := u.need(1); err != nil {
		return nil, err
	}
	v := u.stack[len(u.stack)-1]
	u.stack = u.stack[:len(u.stack)-1]
	return v, nil
}

func (u *unpickler) top() (any, error) {
	if err := u.need(1); err != nil {
		return nil, err
	}
	return u.stack[len(u.stack)-1], nil
}

func (u *unpickler) popMark() ([]any, error) {
	if len(u.marks) == 0 {
		return nil, u.fail("no MARK to pop to")
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	items := append([]any(nil), u.stack[m:]...)
	u.stack = u.stack[:m]
	return items, nil
}

func (u *unpickler) put() error {
	var idx uint32
	switch u.op {
	case opBinput:
		b, err := u.read(1)
		if err != nil {
			return err
		}
		idx = uint32(b[0])
	case opLongBinput:
		b, err := u.read(4)
		if err != nil {
			return err
		}
		idx = binary.LittleEndian.Uint32(b)
	case opMemoize:
		idx = uint32(len(u.memo))
	}
	v, err := u.top()
	if err != nil {
		return err
	}
	if _, exists := u.memo[idx]; !exists {
		if u.budget.memo >= u.budget.maxMemo {
			return u.fail("more than %d memo entries (%d per tensor allowed: torch memoizes ~12); refusing a pickle bomb",
				u.budget.maxMemo, memoPerTensor)
		}
		u.budget.memo++
	}
	u.memo[idx] = v
	return nil
}

func (u *unpickler) get() error {
	var idx uint32
	if u.op == opBinget {
		b, err := u.read(1)
		if err != nil {
			return err
		}
		idx = uint32(b[0])
	} else {
		b, err := u.read(4)
		if err != nil {
			return err
		}
		idx = binary.LittleEndian.Uint32(b)
	}
	v, ok := u.memo[idx]
	if !ok {
		return u.fail("memo index %d was never stored (bad BINGET)", idx)
	}
	u.push(v)
	return nil
}

// --- containers ---

func (u *unpickler) appendItems() error {
	if u.op == opAppends {
		return u.appendsItems()
	}
	v, err := u.pop()
	if err != nil {
		return err
	}
	top, err := u.top()
	if err != nil {
		return err
	}
	l, ok := top.(*pyList)
	if !ok {
		return u.fail("APPEND to a %s, not a list", typeName(top))
	}
	l.items = append(l.items, v)
	return nil
}

// appendsItems moves the items above the last MARK straight from the stack into
// the list below it, without the intermediate copy popMark makes: APPENDS is
// how a long list arrives, so this halves the peak memory of one.
func (u *unpickler) appendsItems() error {
	if len(u.marks) == 0 {
		return u.fail("no MARK to pop to")
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	// The list is the value just below the MARK, in the enclosing frame.
	if have := m - u.base(); have < 1 {
		return u.fail("stack underflow: needs 1 values, has %d", have)
	}
	l, ok := u.stack[m-1].(*pyList)
	if !ok {
		return u.fail("APPEND to a %s, not a list", typeName(u.stack[m-1]))
	}
	items := u.stack[m:]
	l.items = append(l.items, items...)
	clear(items) // the stack's spare capacity must not keep the items alive
	u.stack = u.stack[:m]
	return nil
}

func (u *unpickler) setItemsOp() error {
	var items []any
	if u.op == opSetitem {
		if err := u.need(2); err != nil {
			return err
		}
		items = append([]any(nil), u.stack[len(u.stack)-2:]...)
		u.stack = u.stack[:len(u.stack)-2]
	} else {
		var err error
		if items, err = u.popMark(); err != nil {
			return err
		}
	}
	v, err := u.top()
	if err != nil {
		return err
	}
	d, ok := v.(*pyDict)
	if !ok {
		return u.fail("SETITEM on a %s, not a dict", typeName(v))
	}
	return u.setItems(d, items)
}

func (u *unpickler) setItems(d *pyDict, items []any) error {
	if len(items)%2 != 0 {
		return u.fail("odd number of values (%d) for dict keys and values", len(items))
	}
	// The pairs' slots were charged when pushed; the dict's index entry (and
	// the growth of its map) costs about four cells more per pair.
	if err := u.chargeObjects(2 * len(items)); err != nil {
		return err
	}
	for i := 0; i < len(items); i += 2 {
		switch items[i].(type) {
		case *pyList, *pyDict, *pySet:
			return u.fail("unhashable dict key of type %s", typeName(items[i]))
		}
		d.set(items[i], items[i+1])
	}
	return nil
}
