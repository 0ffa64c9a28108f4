//go:build !linux

package checkpoint

// WillNeed is a hint that only Linux takes (see willneed_linux.go).
func (t *Tensor) WillNeed(off, n int64) {}
