package analysis

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/deltascope/deltascope/analysis/checkpoint"
)

// tinyllamaPair is the 2×2.2 GB BF16 pair `task bench` generates
// (`go run . gen --preset tinyllama --scale 1 --out .bench-data/tinyllama`).
const tinyllamaPair = "../.bench-data/tinyllama"

// BenchmarkAnalyzeTinyllama analyses the generated TinyLlama pair, reporting the
// bytes of both checkpoints per second. It is skipped when the pair has not
// been generated: it is 4.4 GB, too big for the repository.
func BenchmarkAnalyzeTinyllama(b *testing.B) {
	for _, mode := range []struct {
		name string
		opt  checkpoint.Options
	}{{"pread", checkpoint.Options{}}, {"mmap", checkpoint.Options{Map: true}}} {
		b.Run(mode.name, func(b *testing.B) {
			base, vla := openTinyllama(b, mode.opt)
			b.SetBytes(base.Bytes() + vla.Bytes())
			for b.Loop() {
				if _, err := Analyze(context.Background(), base, vla, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func openTinyllama(b *testing.B, opt checkpoint.Options) (base, vla *checkpoint.Side) {
	b.Helper()
	paths := [2]string{filepath.Join(tinyllamaPair, "base", "model.safetensors"), filepath.Join(tinyllamaPair, "vla", "model.safetensors")}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			b.Skipf("%s missing: run `go tool task bench` to generate the pair", p)
		}
	}
	var sides [2]*checkpoint.Side
	for i, p := range paths {
		s, err := checkpoint.OpenSide([]string{p}, opt)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		sides[i] = s
	}
	return sides[0], sides[1]
}
