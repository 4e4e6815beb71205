package engine

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePage is the size of a transparent huge page (x86-64, arm64 with 4 KiB
// pages).
const hugePage = 2 << 20

// stretchMemory returns a buffer of n bytes for a stretch and the function
// that gives it back. Buffers of a stretch's usual size are mapped outside
// the Go heap, in 2 MiB huge pages where the kernel allows them
// (MADV_HUGEPAGE; transparent huge pages are often "madvise" only): the
// kernel's copy into a fresh 4 KiB page faults once per page, which on a
// virtual machine costs about 3 µs, while a huge page faults once; and off
// the heap, buffers that are only ever read into do not bring garbage
// collections on sooner. Small buffers, or a failed mapping, come from the
// heap.
func stretchMemory(n int) (buf []byte, free func()) {
	if n < hugePage/2 {
		return make([]byte, n), nil
	}
	size := (n + hugePage - 1) &^ (hugePage - 1)
	// Map a huge page more than needed and keep the aligned part: the
	// kernel only backs aligned 2 MiB ranges with a huge page.
	m, err := unix.Mmap(-1, 0, size+hugePage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return make([]byte, n), nil
	}
	start := 0
	if off := int(uintptrOf(m) & (hugePage - 1)); off != 0 {
		start = hugePage - off
	}
	if start > 0 {
		_ = unix.Munmap(m[:start])
	}
	if tail := m[start+size:]; len(tail) > 0 {
		_ = unix.Munmap(tail)
	}
	m = m[start : start+size : start+size]
	_ = unix.Madvise(m, unix.MADV_HUGEPAGE) // advice: without it, 4 KiB pages
	return m[:n:n], func() { _ = unix.Munmap(m) }
}

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
