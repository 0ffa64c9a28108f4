package spectral_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/deltascope/deltascope/analysis/arch"
	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/checkpoint/safetensors"
	"github.com/deltascope/deltascope/analysis/spectral"
	"github.com/deltascope/deltascope/analysis/synth"
	"github.com/deltascope/deltascope/analysis/tensor"
	"github.com/deltascope/deltascope/internal/testfixtures"
)

func openFixture(t testing.TB) (*checkpoint.Side, *checkpoint.Side) {
	t.Helper()
	base, err := checkpoint.OpenSide([]string{testfixtures.Path("pi05", "base")}, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { base.Close() })
	vla, err := checkpoint.OpenSide([]string{testfixtures.Path("pi05", "vla", "model.safetensors")}, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vla.Close() })
	return base, vla
}

// readAll decodes a whole tensor to float64, independently of the streaming
// reader under test: one read, one decode.
func readAll(t testing.TB, side *checkpoint.Side, name string) (*checkpoint.Tensor, []float64) {
	t.Helper()
	for _, ts := range side.Tensors {
		if ts.Name != name {
			continue
		}
		raw := make([]byte, ts.Size)
		if err := ts.ReadAt(raw, 0); err != nil {
			t.Fatal(err)
		}
		out := make([]float64, ts.Elements())
		if err := tensor.DecodeFloat64(ts.DType, out, raw); err != nil {
			t.Fatal(err)
		}
		return ts, out
	}
	t.Fatalf("no tensor %q", name)
	return nil, nil
}

// refRoundBF16 rounds a float32 to the nearest BF16 value, ties to even,
// written out case by case rather than with the bit trick the code uses.
func refRoundBF16(f float64) float64 {
	x := float32(f)
	bits := math.Float32bits(x)
	lower := math.Float32frombits(bits &^ 0xFFFF)
	upper := math.Float32frombits((bits &^ 0xFFFF) + 0x10000)
	dl, du := math.Abs(float64(x)-float64(lower)), math.Abs(float64(upper)-float64(x))
	switch {
	case dl < du:
		return float64(lower)
	case du < dl:
		return float64(upper)
	case (bits>>16)&1 == 0:
		return float64(lower)
	default:
		return float64(upper)
	}
}

// denseDelta is ΔW of an aligned pair as a gonum matrix (rows of the overlap),
// and its squared Frobenius norm.
func denseDelta(t testing.TB, base, vla *checkpoint.Side, baseName, vlaName string, round bool) *mat.Dense {
	t.Helper()
	bt, b := readAll(t, base, baseName)
	vt, v := readAll(t, vla, vlaName)
	rows, cols := int(min(bt.Shape[0], vt.Shape[0])), int(vt.Shape[1])
	d := mat.NewDense(rows, cols, nil)
	for i := range rows {
		for j := range cols {
			bv := b[i*cols+j]
			if round {
				bv = refRoundBF16(bv)
			}
			d.Set(i, j, v[i*cols+j]-bv)
		}
	}
	return d
}

func denseValues(t testing.TB, d mat.Matrix) []float64 {
	t.Helper()
	var svd mat.SVD
	if !svd.Factorize(d, mat.SVDNone) {
		t.Fatal("dense SVD failed")
	}
	return svd.Values(nil)
}

// TestAgreesWithDenseSVD checks every 2-D pair of the π0.5 fixture: the top K
// singular values from the streamed randomized SVD agree with gonum's dense
// SVD of ΔW within 1e-6·σ₁, and energy, stable rank and rank90 follow.
func TestAgreesWithDenseSVD(t *testing.T) {
	base, vla := openFixture(t)
	for _, o := range []spectral.Options{
		{Exact: true},
		{},
		// The randomized path proper, on every matrix: a range finder of 48
		// directions over matrices of 128 columns and more.
		{Randomized: true, Oversample: 16, Power: 50},
	} {
		// A small chunk makes every matrix span several chunks, so the row
		// offsets of the products are exercised.
		o.ChunkElems, o.Workers = 1000, 2
		exact := o.Exact
		res, err := spectral.Compute(context.Background(), base, vla, o)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Tensors) < 30 {
			t.Fatalf("exact=%v: only %d spectra computed", exact, len(res.Tensors))
		}
		sawLowRank, sawBig := false, false
		for _, ts := range res.Tensors {
			d := denseDelta(t, base, vla, ts.Base, ts.VLA, !exact)
			want := denseValues(t, d)
			k := min(spectral.DefaultRank, len(want))
			if len(ts.SingularValues) != k || len(ts.Energy) != k {
				t.Fatalf("%s: %d values, %d energies, want %d", ts.VLA, len(ts.SingularValues), len(ts.Energy), k)
			}
			tol := 1e-6 * want[0]
			for i := range k {
				if diff := math.Abs(ts.SingularValues[i] - want[i]); diff > tol {
					t.Errorf("exact=%v %s: σ%d = %.12g, dense SVD %.12g (|Δ| %.3g > %.3g)", exact, ts.VLA, i+1, ts.SingularValues[i], want[i], diff, tol)
				}
			}
			fro2 := mat.Norm(d, 2)
			fro2 *= fro2
			if math.Abs(ts.FroDelta*ts.FroDelta-fro2) > 1e-9*fro2 {
				t.Errorf("%s: ‖ΔW‖² %g, dense %g", ts.VLA, ts.FroDelta*ts.FroDelta, fro2)
			}
			if fro2 == 0 {
				continue
			}
			var acc float64
			rank90 := -1
			for i := range k {
				acc += want[i] * want[i]
				if math.Abs(ts.Energy[i]-acc/fro2) > 1e-6 {
					t.Errorf("%s: energy at %d = %g, dense %g", ts.VLA, i+1, ts.Energy[i], acc/fro2)
				}
				if rank90 < 0 && acc/fro2 >= 0.9+1e-6 {
					rank90 = i + 1
				}
			}
			if rank90 > 0 && (ts.Rank90 == nil || *ts.Rank90 != rank90) {
				t.Errorf("%s: rank90 %v, dense %d", ts.VLA, ts.Rank90, rank90)
			}
			if rank90 < 0 && acc/fro2 < 0.9-1e-6 && ts.Rank90 != nil {
				t.Errorf("%s: rank90 %d, but %d directions hold only %.3f of the energy", ts.VLA, *ts.Rank90, k, acc/fro2)
			}
			if sr := fro2 / (want[0] * want[0]); math.Abs(float64(ts.StableRank)-sr) > 1e-6*sr {
				t.Errorf("%s: stable rank %g, dense %g", ts.VLA, float64(ts.StableRank), sr)
			}
			r, c := d.Dims()
			if o.Randomized && min(r, c) > spectral.DefaultRank+o.Oversample {
				sawBig = true // the random range finder is narrower than the matrix
			}
			if ts.Rank90 != nil && *ts.Rank90 < k/2 {
				sawLowRank = true
			}
		}
		if (o.Randomized && !sawBig) || !sawLowRank {
			t.Errorf("exact=%v: fixture did not exercise large matrices (%v) or low-rank ones (%v)", exact, sawBig, sawLowRank)
		}
	}
}

// TestDeterministic: the same files and options give bit-identical spectra
// whatever the number of workers and chunk size.
func TestDeterministic(t *testing.T) {
	base, vla := openFixture(t)
	a, err := spectral.Compute(context.Background(), base, vla, spectral.Options{Rank: 8, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := spectral.Compute(context.Background(), base, vla, spectral.Options{Rank: 8, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Tensors) != len(b.Tensors) {
		t.Fatalf("%d vs %d tensors", len(a.Tensors), len(b.Tensors))
	}
	for i := range a.Tensors {
		if a.Tensors[i].VLA != b.Tensors[i].VLA {
			t.Fatalf("order differs at %d: %s vs %s", i, a.Tensors[i].VLA, b.Tensors[i].VLA)
		}
		for j, v := range a.Tensors[i].SingularValues {
			if v != b.Tensors[i].SingularValues[j] {
				t.Fatalf("%s σ%d: %v vs %v", a.Tensors[i].VLA, j+1, v, b.Tensors[i].SingularValues[j])
			}
		}
	}
	if a.Rank != 8 || len(a.Tensors[0].SingularValues) > 8 {
		t.Errorf("rank 8 asked, result says %d with %d values", a.Rank, len(a.Tensors[0].SingularValues))
	}
}

func TestCancelled(t *testing.T) {
	base, vla := openFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	// The first progress report cancels: the computation must stop with the
	// context's error, not finish or report success.
	_, err := spectral.Compute(ctx, base, vla, spectral.Options{ChunkElems: 512, Progress: func(spectral.Progress) { cancel() }})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestProgressReachesTotal(t *testing.T) {
	base, vla := openFixture(t)
	var last spectral.Progress
	_, err := spectral.Compute(context.Background(), base, vla, spectral.Options{Rank: 4, Progress: func(p spectral.Progress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	if last.BytesTotal == 0 || last.BytesDone != last.BytesTotal || last.TensorsDone != last.TensorsTotal {
		t.Errorf("final progress %+v", last)
	}
}

func TestOptionsRejected(t *testing.T) {
	base, vla := openFixture(t)
	for _, o := range []spectral.Options{{Rank: -1}, {Rank: spectral.MaxRank + 1}, {Power: 51}, {Map: []string{"(=>x"}}} {
		if _, err := spectral.Compute(context.Background(), base, vla, o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

func TestFromSingularValues(t *testing.T) {
	s := spectral.FromSingularValues([]float64{3, 1}, 10+5)
	if math.Abs(s.Energy[0]-0.6) > 1e-15 || math.Abs(s.Energy[1]-10.0/15) > 1e-15 {
		t.Errorf("energy %v", s.Energy)
	}
	if s.Rank90 != nil {
		t.Errorf("rank90 %d, but 2 directions hold 67 %%", *s.Rank90)
	}
	if float64(s.StableRank) != 15.0/9 {
		t.Errorf("stable rank %v", s.StableRank)
	}
	z := spectral.FromSingularValues([]float64{0, 0}, 0)
	if z.Rank90 == nil || *z.Rank90 != 0 || z.StableRank != 0 || z.Energy[0] != 1 {
		t.Errorf("unchanged tensor: %+v", z)
	}
	full := spectral.FromSingularValues([]float64{2, 1}, 5)
	if full.Rank90 == nil || *full.Rank90 != 2 {
		t.Errorf("rank-2 matrix: rank90 %v", full.Rank90)
	}
}

// TestSkipsNothingSilently: every aligned 2-D float pair of the fixture is
// either computed or listed as skipped with a reason.
func TestSkipsNothingSilently(t *testing.T) {
	base, vla := openFixture(t)
	res, err := spectral.Compute(context.Background(), base, vla, spectral.Options{Rank: 2, Power: -1})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, ts := range res.Tensors {
		got[ts.VLA] = true
	}
	for _, s := range res.Skipped {
		got[strings.SplitN(s, ":", 2)[0]] = true
	}
	named := func(ts []*checkpoint.Tensor) []arch.Named {
		out := make([]arch.Named, len(ts))
		for i, x := range ts {
			out[i] = arch.Named{Name: x.Name, Shape: x.Shape}
		}
		return out
	}
	al := arch.Align(named(base.Tensors), named(vla.Tensors), nil)
	want := 0
	for _, p := range al.Pairs {
		v := vla.Tensors[p.VLA]
		if len(v.Shape) == 2 && v.DType.IsFloat() {
			want++
			if !got[v.Name] {
				t.Errorf("%s: aligned 2-D pair neither computed nor skipped", v.Name)
			}
		}
	}
	if want < 30 || len(got) != want {
		t.Errorf("%d aligned 2-D pairs, %d reported", want, len(got))
	}
}

// sparseSafetensors writes a safetensors file whose data is a hole: real
// shapes and sizes, no disk.
func sparseSafetensors(t *testing.T, path string, ts []safetensors.WriteTensor) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := safetensors.NewWriter(f, ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(w.HeaderSize() + w.DataSize()); err != nil {
		t.Fatal(err)
	}
}

// TestScratchBound: a matrix whose scratch at the asked rank would pass the
// bound is skipped with a reason that says what to do, before anything is
// allocated for it or read.
func TestScratchBound(t *testing.T) {
	dir := t.TempDir()
	big := []safetensors.WriteTensor{{Name: "embed.weight", DType: tensor.BF16, Shape: []int64{300_000, 1024}}}
	sparseSafetensors(t, filepath.Join(dir, "base.safetensors"), big)
	sparseSafetensors(t, filepath.Join(dir, "vla.safetensors"), big)
	base, err := checkpoint.OpenSide([]string{filepath.Join(dir, "base.safetensors")}, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	vla, err := checkpoint.OpenSide([]string{filepath.Join(dir, "vla.safetensors")}, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer vla.Close()
	res, err := spectral.Compute(context.Background(), base, vla, spectral.Options{Rank: spectral.MaxRank, Oversample: spectral.MaxRank})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tensors) != 0 || len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0], "smaller rank") {
		t.Fatalf("tensors %d, skipped %v", len(res.Tensors), res.Skipped)
	}
}

// TestFusedQKVAgreesWithDenseSVD: the q, k and v thirds of the fused
// attention weights (DINOv2's in a generated OpenVLA-shaped pair, 192 × 64
// at this scale, so each third is 64 × 64 and a range finder of 48
// directions is narrower than it) agree with a dense SVD of those rows of ΔW
// within 1e-6·σ₁, as the whole weights do.
func TestFusedQKVAgreesWithDenseSVD(t *testing.T) {
	dir := t.TempDir()
	if _, err := synth.Generate(context.Background(), synth.Options{Preset: "openvla-7b", Scale: 0.05, Out: dir}); err != nil {
		t.Fatal(err)
	}
	// Only DINOv2 on the base side: only its tensors align, which keeps the
	// computation (and the dense SVDs) to the vision encoder.
	base, err := checkpoint.OpenSide([]string{"vision_backbone.featurizer.=" + filepath.Join(dir, "base", "dinov2.safetensors")}, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	vla, err := checkpoint.OpenSide([]string{filepath.Join(dir, "vla")}, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer vla.Close()
	res, err := spectral.Compute(context.Background(), base, vla, spectral.Options{Randomized: true, Oversample: 16, Power: 50, ChunkElems: 1000, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string]int{}
	for _, ts := range res.Tensors {
		if ts.Kind != arch.KindAttnQKV {
			continue
		}
		d := denseDelta(t, base, vla, ts.Base, ts.VLA, false)
		rows, cols := d.Dims()
		var want []float64
		switch ts.Block {
		case "":
			want = denseValues(t, d)
		case "q", "k", "v":
			i := strings.Index("qkv", ts.Block)
			want = denseValues(t, d.Slice(i*rows/3, (i+1)*rows/3, 0, cols))
			if ts.Rows != int64(rows/3) {
				t.Errorf("%s %s block: %d rows, want %d", ts.VLA, ts.Block, ts.Rows, rows/3)
			}
		default:
			t.Fatalf("%s: block %q", ts.VLA, ts.Block)
		}
		blocks[ts.Block]++
		if len(ts.SingularValues) != spectral.DefaultRank {
			t.Fatalf("%s %s: %d values", ts.VLA, ts.Block, len(ts.SingularValues))
		}
		for i, v := range ts.SingularValues {
			if diff := math.Abs(v - want[i]); diff > 1e-6*want[0] {
				t.Errorf("%s %s: σ%d = %.12g, dense SVD %.12g", ts.VLA, ts.Block, i+1, v, want[i])
			}
		}
	}
	// 24 DINOv2 blocks, each a whole qkv weight and its three thirds.
	if blocks[""] != 24 || blocks["q"] != 24 || blocks["k"] != 24 || blocks["v"] != 24 {
		t.Errorf("fused qkv spectra: %v", blocks)
	}
}
