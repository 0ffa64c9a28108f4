package torchzip

import (
	"fmt"
	"strconv"
	"strings"
)

// maxRendering is the length past which a non-tensor value's rendering is cut:
// it is a hint for the researcher ("int 1234", `list [1, 2, 3]`), not a dump.
const maxRendering = 96

// render describes a non-tensor leaf as "<type> <value>", e.g. "int 1234" or
// `str "nested"`. It spends the flattener's visit budget, so a huge or cyclic
// structure costs no more than the walk allows.
func render(v any, fl *flattener) string {
	if _, ok := v.(pyNone); ok {
		return "None"
	}
	r := &renderer{fl: fl}
	r.value(v, 0)
	s := r.b.String()
	if r.cut || len(s) > maxRendering {
		s = truncate(s, maxRendering) + "…"
	}
	return typeName(v) + " " + s
}

type renderer struct {
	b   strings.Builder
	fl  *flattener
	cut bool
}

func (r *renderer) full() bool {
	if r.b.Len() > maxRendering || r.fl.visitsLeft <= 0 {
		r.cut = true
	}
	return r.cut
}

func (r *renderer) value(v any, depth int) {
	if r.full() {
		return
	}
	r.fl.visitsLeft--
	if depth > 8 {
		r.b.WriteString("…")
		return
	}
	switch x := v.(type) {
	case pyNone:
		r.b.WriteString("None")
	case bool:
		if x {
			r.b.WriteString("True")
		} else {
			r.b.WriteString("False")
		}
	case int64:
		r.b.WriteString(strconv.FormatInt(x, 10))
	case *pyBigInt:
		r.b.WriteString(x.v.String())
	case float64:
		r.b.WriteString(strconv.FormatFloat(x, 'g', -1, 64))
	case string:
		r.b.WriteString(strconv.Quote(truncate(x, maxRendering)))
	case pyBytes:
		fmt.Fprintf(&r.b, "(%d bytes)", len(x))
	case *pyList:
		r.seq("[", x.items, "]", depth)
	case *pyTuple:
		r.seq("(", x.items, ")", depth)
	case *pySet:
		r.seq("{", x.items, "}", depth)
	case *pyDict:
		r.b.WriteString("{")
		for i := range x.keys {
			if i > 0 {
				r.b.WriteString(", ")
			}
			r.value(x.keys[i], depth+1)
			r.b.WriteString(": ")
			r.value(x.vals[i], depth+1)
			if r.full() {
				return
			}
		}
		r.b.WriteString("}")
	case *pyDevice:
		r.b.WriteString(x.s)
	case *pyGlobal:
		r.b.WriteString(x.String())
	case *storageRef:
		fmt.Fprintf(&r.b, "%s key %q (%d elements)", x.typeName, x.key, x.numel)
	case *tensorVal:
		fmt.Fprintf(&r.b, "tensor%v", x.shape)
	default:
		fmt.Fprintf(&r.b, "%T", v)
	}
}

func (r *renderer) seq(open string, items []any, end string, depth int) {
	r.b.WriteString(open)
	for i, it := range items {
		if i > 0 {
			r.b.WriteString(", ")
		}
		r.value(it, depth+1)
		if r.full() {
			return
		}
	}
	r.b.WriteString(end)
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// typeName is the Python type of a value, for renderings and messages.
func typeName(v any) string {
	switch v := v.(type) {
	case pyNone:
		return "None"
	case bool:
		return "bool"
	case int64, *pyBigInt:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case pyBytes:
		return "bytes"
	case *pyList:
		return "list"
	case *pyTuple:
		return "tuple"
	case *pySet:
		if v.frozen {
			return "frozenset"
		}
		return "set"
	case *pyDict:
		return "dict"
	case *pyDevice:
		return "device"
	case *pyGlobal:
		return "global"
	case *storageRef:
		return "storage"
	case *tensorVal:
		return "tensor"
	}
	return fmt.Sprintf("%T", v)
}

// describe is a short rendering for error messages, without a walk budget.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		return "str " + strconv.Quote(truncate(x, 64))
	case int64:
		return "int " + strconv.FormatInt(x, 10)
	case *pyGlobal:
		return "global " + x.String()
	case *pyTuple:
		return fmt.Sprintf("tuple of %d", len(x.items))
	}
	return typeName(v)
}
