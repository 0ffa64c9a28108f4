//go:build !(goexperiment.simd && amd64)

package analysis

// sumWordsVector is nil where there is no vector path (see
// fingerprint_simd_amd64.go): sumWords runs sumWordsScalar.
var sumWordsVector func(sum *wordSum, k uint64, data []byte)
