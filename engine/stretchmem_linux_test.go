package engine

import (
	"testing"
	"unsafe"
)

// TestStretchMemory: a stretch-sized buffer is mapped off the heap, 2 MiB
// aligned and writable end to end; a small one comes from the heap.
func TestStretchMemory(t *testing.T) {
	n := hugePage/2 + 12345
	buf, free := stretchMemory(n)
	if len(buf) != n || cap(buf) != n {
		t.Fatalf("len %d cap %d, want %d", len(buf), cap(buf), n)
	}
	if free == nil {
		t.Skip("mapping failed: the buffer came from the heap")
	}
	if p := uintptr(unsafe.Pointer(&buf[0])); p%hugePage != 0 {
		t.Errorf("buffer at %#x is not 2 MiB aligned", p)
	}
	for i := range buf {
		buf[i] = byte(i)
	}
	if buf[n-1] != byte(n-1) {
		t.Fatal("last byte not written")
	}
	free()

	small, free := stretchMemory(4096)
	if len(small) != 4096 || free != nil {
		t.Fatalf("small buffer: len %d, free func %v", len(small), free != nil)
	}
}
