package torchzip

import (
	"github.com/deltascope/deltascope/analysis/tensor"
)

// globalKind says what an allowed global stands for. The unpickler never calls
// anything: REDUCE, NEWOBJ and BINPERSID look at the kind and build the result
// themselves.
type globalKind uint8

const (
	gRebuildTensorV2 globalKind = iota + 1
	gRebuildParameter
	gRebuildParameterWithState
	gOrderedDict
	gStorageType // a torch.*Storage class, torch.UntypedStorage, or a torch dtype: names an element type
	gDevice      // torch.device
	gSize        // torch.Size
	gCodecsEncode
	gSet
	gFrozenSet
)

// pyGlobal is an allowed global as it sits on the unpickler's stack: a marker.
type pyGlobal struct {
	module, name string
	kind         globalKind
	dtype        tensor.DType // for gStorageType; Invalid when torch has it but deltascope cannot read it
}

func (g *pyGlobal) String() string { return g.module + "." + g.name }

// storageDTypes maps the storage classes torch.save pickles (one per element
// type) to deltascope's element types.
var storageDTypes = map[string]tensor.DType{
	"FloatStorage":         tensor.F32,
	"DoubleStorage":        tensor.F64,
	"HalfStorage":          tensor.F16,
	"BFloat16Storage":      tensor.BF16,
	"LongStorage":          tensor.I64,
	"IntStorage":           tensor.I32,
	"ShortStorage":         tensor.I16,
	"CharStorage":          tensor.I8,
	"ByteStorage":          tensor.U8,
	"BoolStorage":          tensor.BOOL,
	"ComplexFloatStorage":  tensor.C64,
	"UntypedStorage":       tensor.U8,
	"ComplexDoubleStorage": tensor.Invalid, // complex128: no deltascope dtype
	"QInt8Storage":         tensor.Invalid, // quantized storages need scales that live outside the storage
	"QUInt8Storage":        tensor.Invalid,
	"QInt32Storage":        tensor.Invalid,
	"QUInt4x2Storage":      tensor.Invalid,
	"QUInt2x4Storage":      tensor.Invalid,
}

// torchDTypes maps torch dtype objects (pickled as GLOBAL torch.<name>, used as
// the storage type of TypedStorage persistent ids by newer torch, and found in
// plain metadata) to deltascope's element types.
var torchDTypes = map[string]tensor.DType{
	"float32": tensor.F32, "float": tensor.F32,
	"float64": tensor.F64, "double": tensor.F64,
	"float16": tensor.F16, "half": tensor.F16,
	"bfloat16": tensor.BF16,
	"int64":    tensor.I64, "long": tensor.I64,
	"int32": tensor.I32, "int": tensor.I32,
	"int16": tensor.I16, "short": tensor.I16,
	"int8":      tensor.I8,
	"uint8":     tensor.U8,
	"uint16":    tensor.U16,
	"uint32":    tensor.U32,
	"uint64":    tensor.U64,
	"bool":      tensor.BOOL,
	"complex64": tensor.C64, "cfloat": tensor.C64,
	"float8_e4m3fn":    tensor.F8_E4M3,
	"float8_e5m2":      tensor.F8_E5M2,
	"float8_e4m3fnuz":  tensor.F8_E4M3FNUZ,
	"float8_e5m2fnuz":  tensor.F8_E5M2FNUZ,
	"float8_e8m0fnu":   tensor.F8_E8M0,
	"complex128":       tensor.Invalid,
	"cdouble":          tensor.Invalid,
	"complex32":        tensor.Invalid,
	"qint8":            tensor.Invalid,
	"quint8":           tensor.Invalid,
	"qint32":           tensor.Invalid,
	"float4_e2m1fn_x2": tensor.Invalid, // packed pairs: torch's element is a byte holding two values
}

// lookupGlobal resolves module.name against the allowlist. Anything else is
// refused by the caller with an error naming it; nothing is ever imported or called.
func lookupGlobal(module, name string) (*pyGlobal, bool) {
	g := &pyGlobal{module: module, name: name}
	switch module {
	case "torch._utils":
		switch name {
		case "_rebuild_tensor_v2":
			g.kind = gRebuildTensorV2
		case "_rebuild_parameter":
			g.kind = gRebuildParameter
		case "_rebuild_parameter_with_state":
			g.kind = gRebuildParameterWithState
		}
	case "collections":
		if name == "OrderedDict" {
			g.kind = gOrderedDict
		}
	case "torch":
		if dt, ok := storageDTypes[name]; ok {
			g.kind, g.dtype = gStorageType, dt
		} else if dt, ok := torchDTypes[name]; ok {
			g.kind, g.dtype = gStorageType, dt
		} else if name == "device" {
			g.kind = gDevice
		} else if name == "Size" {
			g.kind = gSize
		}
	case "_codecs":
		// Protocol 2 pickles bytes as _codecs.encode(str, "latin1").
		if name == "encode" {
			g.kind = gCodecsEncode
		}
	case "builtins", "__builtin__":
		// Protocol 2 pickles sets as set([items]).
		switch name {
		case "set":
			g.kind = gSet
		case "frozenset":
			g.kind = gFrozenSet
		}
	}
	return g, g.kind != 0
}
