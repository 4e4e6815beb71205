package flow

import (
	"encoding/binary"
	"net/netip"
	"unsafe"
)

// addrWords returns the 128 bits of a and b (IPv4 in its IPv4-mapped form)
// as big-endian word pairs. It reads them from netip.Addr's own
// representation (a uint128, high word first) because As16 costs about
// 10 ns a call (its array is returned through memory), more than the rest
// of ShardHash, which runs for every packet on the goroutine that hands
// packets to the workers. Callers check addrLayoutOK first, which compares
// that layout with As16 once, and call addrWordsAs16 when it does not hold
// (should a Go release change it).
func addrWords(a, b *netip.Addr) (ahi, alo, bhi, blo uint64) {
	wa, wb := (*[2]uint64)(unsafe.Pointer(a)), (*[2]uint64)(unsafe.Pointer(b))
	return wa[0], wa[1], wb[0], wb[1]
}

//go:noinline
func addrWordsAs16(a, b *netip.Addr) (ahi, alo, bhi, blo uint64) {
	x, y := a.As16(), b.As16()
	return binary.BigEndian.Uint64(x[:8]), binary.BigEndian.Uint64(x[8:]),
		binary.BigEndian.Uint64(y[:8]), binary.BigEndian.Uint64(y[8:])
}

// addrLayoutOK is set once at start-up and never changed.
var addrLayoutOK = checkAddrLayout()

func checkAddrLayout() bool {
	if unsafe.Sizeof(netip.Addr{}) < 16 {
		return false
	}
	for _, s := range []string{"::", "10.1.2.3", "::ffff:10.1.2.3", "2001:db8:1:2:3:4:5:6", "ffee:ddcc:bbaa:9988:7766:5544:3322:1100", "fe80::1%eth0"} {
		a := netip.MustParseAddr(s)
		w := (*[2]uint64)(unsafe.Pointer(&a))
		b := a.As16()
		if w[0] != binary.BigEndian.Uint64(b[:8]) || w[1] != binary.BigEndian.Uint64(b[8:]) {
			return false
		}
	}
	return true
}
