package analysis

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/tensor"
)

func openPi05(t *testing.T, opt checkpoint.Options, vlaPath string) (base, vla *checkpoint.Side) {
	t.Helper()
	var err error
	if base, err = checkpoint.OpenSide([]string{filepath.Join(fixtures, "pi05", "base")}, opt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { base.Close() })
	if vla, err = checkpoint.OpenSide([]string{vlaPath}, opt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vla.Close() })
	return base, vla
}

// Reading mapped files and reading with pread give the same statistics and
// fingerprints, bit for bit, whatever the block size and worker count.
func TestMappedSameAsPread(t *testing.T) {
	vlaPath := filepath.Join(fixtures, "pi05", "vla", "model.safetensors")
	for _, opt := range []Options{{Fingerprint: true}, {Fingerprint: true, Workers: 3, BlockElems: 1000}} {
		t.Run("block "+itoa(opt.BlockElems), func(t *testing.T) {
			var results [2]*Result
			for i, copt := range []checkpoint.Options{{}, {Map: true}} {
				base, vla := openPi05(t, copt, vlaPath)
				res, err := Analyze(context.Background(), base, vla, opt)
				if err != nil {
					t.Fatal(err)
				}
				results[i] = res
			}
			pread, mapped := results[0], results[1]
			if !reflect.DeepEqual(pread.Tensors, mapped.Tensors) {
				t.Error("mapped files give different statistics from pread")
			}
			if pread.BaseFingerprint != mapped.BaseFingerprint || pread.VLAFingerprint != mapped.VLAFingerprint || pread.VLAFingerprint == "" {
				t.Errorf("fingerprints differ: pread %s/%s, mapped %s/%s", pread.BaseFingerprint, pread.VLAFingerprint,
					mapped.BaseFingerprint, mapped.VLAFingerprint)
			}
		})
	}
}

func itoa(n int64) string {
	if n == 0 {
		return "default"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// A checkpoint truncated after it was opened gives an error naming the file,
// on both read paths; a mapped one faults (SIGBUS) inside a worker, which must
// become that error rather than crash the process.
func TestTruncatedWhileReading(t *testing.T) {
	for _, c := range []struct {
		name string
		opt  checkpoint.Options
	}{{"pread", checkpoint.Options{}}, {"mapped", checkpoint.Options{Map: true}}} {
		t.Run(c.name, func(t *testing.T) {
			vlaPath := copyFile(t, filepath.Join(fixtures, "pi05", "vla", "model.safetensors"))
			base, vla := openPi05(t, c.opt, vlaPath)
			info, err := os.Stat(vlaPath)
			if err != nil {
				t.Fatal(err)
			}
			// Keep the header and a little data: most tensors now lie past the end.
			if err := os.Truncate(vlaPath, info.Size()/3); err != nil {
				t.Fatal(err)
			}
			_, err = Analyze(context.Background(), base, vla, Options{})
			var te *tensor.Error
			if !errors.As(err, &te) {
				t.Fatalf("got %v, want a *tensor.Error", err)
			}
			if te.Path != vlaPath || te.Tensor == "" || !strings.Contains(te.Msg, "truncated") {
				t.Errorf("error %q should name %s, a tensor, and say it was truncated", err, vlaPath)
			}
		})
	}
}

func copyFile(t *testing.T, src string) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}
