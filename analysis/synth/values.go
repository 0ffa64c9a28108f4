package synth

import (
	"encoding/binary"
	"hash/fnv"
	"math"

	"github.com/deltascope/deltascope/analysis/tensor"
)

// blockElems is the number of elements generated together from one seed. Block
// boundaries depend only on the tensor's column count, never on the number of
// workers or on which side is written, so both sides and every GOMAXPROCS see the
// same random streams.
const blockElems = 1 << 16

// mix is the splitmix64 finalizer: a cheap bijective hash of 64 bits.
func mix(z uint64) uint64 {
	z ^= z >> 30
	z *= 0xbf58476d1ce4e5b9
	z ^= z >> 27
	z *= 0x94d049bb133111eb
	return z ^ z>>31
}

func hashString(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// hashNormal maps 64 random bits to an approximately standard normal value.
func hashNormal(x uint64) float64 {
	s := int64(x&0xffff) + int64(x>>16&0xffff) + int64(x>>32&0xffff) + int64(x>>48)
	return float64(s-2*0xffff) * irwinHallScale
}

// irwinHallScale turns a sum of four uniform 16-bit values (variance 4·65536²/12)
// into unit variance. Four summed uniforms are close enough to a normal for
// weights, and cost one 64-bit draw.
const irwinHallScale = 1.7320508075688772 / 65536

// stream is splitmix64: a counter-based generator, so a block's stream is fixed
// by its seed alone.
type stream struct{ state uint64 }

// normals fills out with approximately standard normal values, two per 64-bit
// draw: each is a sum of four uniform bytes (Irwin–Hall), centred and scaled.
// 1021 levels over ±3.5σ is finer than a bfloat16 mantissa, and it halves the
// cost of the generator, which dominates generation time.
func (s *stream) normals(out []float32) {
	const scale = float32(1 / 147.80138700296422) // 1/sqrt(4·(256²−1)/12)
	i := 0
	for ; i+1 < len(out); i += 2 {
		s.state += 0x9e3779b97f4a7c15
		x := mix(s.state)
		a := int32(x&0xff) + int32(x>>8&0xff) + int32(x>>16&0xff) + int32(x>>24&0xff)
		b := int32(x>>32&0xff) + int32(x>>40&0xff) + int32(x>>48&0xff) + int32(x>>56)
		out[i] = float32(a-510) * scale
		out[i+1] = float32(b-510) * scale
	}
	if i < len(out) {
		s.state += 0x9e3779b97f4a7c15
		x := mix(s.state)
		a := int32(x&0xff) + int32(x>>8&0xff) + int32(x>>16&0xff) + int32(x>>24&0xff)
		out[i] = float32(a-510) * scale
	}
}

// bf16Round rounds f to the nearest bfloat16, ties to even, returned as float32.
// Inputs here are always finite and far below the overflow threshold.
func bf16Round(f float32) float32 {
	return math.Float32frombits(uint32(bf16Bits(f)) << 16)
}

func bf16Bits(f float32) uint16 {
	b := math.Float32bits(f)
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// tensorGen produces the bytes of one tensor on one side, a row block at a time.
type tensorGen struct {
	s        *spec
	vla      bool
	rows     int64 // rows on this side
	cols     int64
	dtype    tensor.DType
	seed     uint64 // per tensor: hash of (Options.Seed, key)
	mean     float32
	std      float32
	deltaStd float32
	rowScale []float32 // per row ΔW factor, nil for 1
	colScale []float32 // per column ΔW factor, nil for 1
	perBlock int64     // rows per block
}

func newTensorGen(seed uint64, s *spec, vla bool) *tensorGen {
	shape, dt := s.baseShape, s.baseDType
	if vla {
		shape, dt = s.vlaShape, s.vlaDType
	}
	rows, cols := rowsCols(shape)
	g := &tensorGen{s: s, vla: vla, rows: rows, cols: cols, dtype: dt, seed: mix(seed ^ hashString(s.key))}
	g.perBlock = max(1, blockElems/max(cols, 1))
	ref := 0.05 // ΔW reference for tensors that hover around a constant
	switch s.init {
	case initMatrix:
		g.std = float32(1 / math.Sqrt(float64(max(s.fanIn, 1))))
		ref = float64(g.std)
	case initNorm:
		g.mean, g.std = 1, 0.02
	case initBias:
		g.std = 0.01
		ref = 0.01
	case initToken:
		g.std = 0.02
		ref = 0.02
	case initLayerScale:
		g.mean, g.std = 0.1, 0.02
	}
	if vla && !s.frozen && s.baseRows > 0 {
		g.deltaStd = float32(ref * s.deltaRel)
		if len(shape) >= 2 { // per-unit scales only make sense for matrices
			g.rowScale = unitScales(seed, s.rowUnit, rows)
			g.colScale = unitScales(seed, s.colUnit, cols)
		}
	}
	return g
}

func unitScales(seed uint64, u unitAxis, n int64) []float32 {
	if u.group == "" {
		return nil
	}
	out := make([]float32, n)
	size := max(u.size, 1)
	gh := hashString(u.group)
	for i := range n {
		j := i
		if u.mod > 0 {
			j %= u.mod
		}
		out[i] = unitScale(seed, gh, j/size)
	}
	return out
}

// blocks is the number of row blocks on this side.
func (g *tensorGen) blocks() int64 {
	return (g.rows + g.perBlock - 1) / g.perBlock
}

// blockBytes is the size of block b's bytes on this side.
func (g *tensorGen) blockBytes(b int64) int64 {
	r0 := b * g.perBlock
	r1 := min(r0+g.perBlock, g.rows)
	return (r1 - r0) * g.cols * g.dtype.Bits() / 8
}

// fill writes block b's bytes into dst (len = blockBytes(b)); scratch is the
// calling worker's own buffer.
//
// Base value of element (r, c): mean + std·n from the block's base stream, rounded
// to the base file's dtype — or to bfloat16 for frozen tensors, so that the VLA's
// bfloat16 copy is exactly equal. VLA value: that same base value plus
// ΔW = deltaStd · rowScale[r] · colScale[c] · n' from a second stream, for rows
// that exist in the base; rows past it (new vocabulary) and VLA-only tensors keep
// the fresh random value.
func (g *tensorGen) fill(dst []byte, b int64, scratch *[]float32) {
	r0 := b * g.perBlock
	r1 := min(r0+g.perBlock, g.rows)
	baseStream := stream{mix(g.seed + uint64(b)*0x9e3779b97f4a7c15)}
	deltaStream := stream{mix(g.seed ^ 0xd1b54a32d192ed03 + uint64(b)*0x9e3779b97f4a7c15)}
	roundBF16 := g.s.frozen || g.s.baseDType == tensor.BF16
	if cap(*scratch) < int(2*g.cols) {
		*scratch = make([]float32, 2*g.cols)
	}
	vals, noise := (*scratch)[:g.cols], (*scratch)[g.cols:2*g.cols]
	mean, std := g.mean, g.std
	rowBytes := g.cols * g.dtype.Bits() / 8
	for r := r0; r < r1; r++ {
		baseStream.normals(vals)
		if roundBF16 {
			for i, n := range vals {
				vals[i] = bf16Round(mean + std*n)
			}
		} else {
			for i, n := range vals {
				vals[i] = mean + std*n
			}
		}
		if g.deltaStd != 0 && r < g.s.baseRows {
			k := g.deltaStd
			if g.rowScale != nil {
				k *= g.rowScale[r]
			}
			deltaStream.normals(noise)
			if cs := g.colScale; cs != nil {
				cs = cs[:len(vals)]
				for i, n := range noise {
					vals[i] += k * cs[i] * n
				}
			} else {
				for i, n := range noise {
					vals[i] += k * n
				}
			}
		}
		out := dst[(r-r0)*rowBytes : (r-r0+1)*rowBytes]
		if g.dtype == tensor.BF16 {
			for i, v := range vals {
				binary.LittleEndian.PutUint16(out[2*i:], bf16Bits(v))
			}
		} else {
			for i, v := range vals {
				binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
			}
		}
	}
}
