// Package testfixtures locates the real checkpoint fixtures kept in the
// repository's top-level testdata/fixtures folder, so every package's tests
// read the same files from any checkout, wherever the clone lives.
package testfixtures

import (
	"path/filepath"
	"runtime"
)

// root is the repository root, found from this file's own location: tests run
// from source, so the path compiled in here is the checkout being tested.
var root = func() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("testfixtures: no caller information")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}()

// Dir is the absolute path of testdata/fixtures (see its README for how the
// files were written).
func Dir() string { return filepath.Join(root, "testdata", "fixtures") }

// Path joins elem onto Dir: Path("pi05", "vla", "model.safetensors").
func Path(elem ...string) string { return filepath.Join(append([]string{Dir()}, elem...)...) }
