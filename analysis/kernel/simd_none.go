//go:build !(goexperiment.simd && amd64)

package kernel

// detectSIMD: without GOEXPERIMENT=simd on amd64 there is no SIMD path.
func detectSIMD() []impl { return nil }
