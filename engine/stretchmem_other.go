//go:build !linux

package engine

// stretchMemory returns a buffer of n bytes for a stretch (from the heap;
// on Linux, stretch-sized buffers are mapped in huge pages).
func stretchMemory(n int) (buf []byte, free func()) { return make([]byte, n), nil }
