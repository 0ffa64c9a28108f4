package tensor

import "fmt"

// DType is an element type as named by the safetensors format. Torch storages map
// onto the same set so the rest of deltascope sees one vocabulary.
type DType uint8

// The dtypes the safetensors format defines, plus the FNUZ float8 variants that
// newer writers emit.
const (
	Invalid DType = iota
	BOOL
	U8
	I8
	I16
	U16
	F16
	BF16
	I32
	U32
	F32
	F64
	I64
	U64
	F8_E4M3
	F8_E5M2
	F8_E8M0
	F8_E4M3FNUZ
	F8_E5M2FNUZ
	F4
	F6_E2M3
	F6_E3M2
	C64
	numDTypes
)

var dtypeNames = [numDTypes]string{
	Invalid: "INVALID", BOOL: "BOOL", U8: "U8", I8: "I8", I16: "I16", U16: "U16",
	F16: "F16", BF16: "BF16", I32: "I32", U32: "U32", F32: "F32", F64: "F64",
	I64: "I64", U64: "U64", F8_E4M3: "F8_E4M3", F8_E5M2: "F8_E5M2", F8_E8M0: "F8_E8M0",
	F8_E4M3FNUZ: "F8_E4M3FNUZ", F8_E5M2FNUZ: "F8_E5M2FNUZ", F4: "F4",
	F6_E2M3: "F6_E2M3", F6_E3M2: "F6_E3M2", C64: "C64",
}

// dtypeBits is the storage width of one element in bits. Sub-byte types (F4, F6)
// are packed, so byte sizes must be computed from bits, not bytes.
var dtypeBits = [numDTypes]int64{
	BOOL: 8, U8: 8, I8: 8, I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32,
	F32: 32, F64: 64, I64: 64, U64: 64, F8_E4M3: 8, F8_E5M2: 8, F8_E8M0: 8,
	F8_E4M3FNUZ: 8, F8_E5M2FNUZ: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, C64: 64,
}

// ParseDType maps a safetensors dtype string to a DType.
func ParseDType(s string) (DType, error) {
	for i := DType(1); i < numDTypes; i++ {
		if dtypeNames[i] == s {
			return i, nil
		}
	}
	return Invalid, fmt.Errorf("unknown dtype %q", s)
}

func (d DType) String() string {
	if d >= numDTypes {
		return fmt.Sprintf("DType(%d)", uint8(d))
	}
	return dtypeNames[d]
}

// Bits is the storage width of one element in bits (0 for Invalid).
func (d DType) Bits() int64 {
	if d >= numDTypes {
		return 0
	}
	return dtypeBits[d]
}

// IsFloat reports whether values of d are real floating-point numbers that the
// divergence engine decodes and measures (C64 is complex and is compared bytewise).
func (d DType) IsFloat() bool {
	switch d {
	case F16, BF16, F32, F64, F8_E4M3, F8_E5M2, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ, F4, F6_E2M3, F6_E3M2:
		return true
	}
	return false
}

// GroupElems is the smallest number of elements that starts and ends on a byte
// boundary: 2 for F4, 4 for F6, 1 otherwise. Chunked readers must cut tensors at
// multiples of it.
func (d DType) GroupElems() int64 {
	switch d.Bits() {
	case 4:
		return 2
	case 6:
		return 4
	}
	return 1
}
