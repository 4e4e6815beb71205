package flow

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/phonehome/phonehome/capture/decode"
)

// TestAddrWordsLayout checks the reading of netip.Addr's representation
// against As16, so a Go release that changes it fails here (ShardHash
// would then fall back to As16 on its own).
func TestAddrWordsLayout(t *testing.T) {
	if !addrLayoutOK {
		t.Fatal("netip.Addr is no longer a uint128 followed by the zone: ShardHash runs on its As16 fallback")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 10_000 {
		var a, b netip.Addr
		if i%2 == 0 {
			a = netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
		} else {
			var x [16]byte
			for j := range x {
				x[j] = byte(rng.Uint32())
			}
			a = netip.AddrFrom16(x)
		}
		b = netip.AddrFrom16(a.As16()) // IPv4 as its v4-mapped twin
		ahi, alo, bhi, blo := addrWords(&a, &b)
		whi, wlo, xhi, xlo := addrWordsAs16(&a, &b)
		if ahi != whi || alo != wlo || bhi != xhi || blo != xlo {
			t.Fatalf("%v, %v: words %x %x %x %x, As16 %x %x %x %x", a, b, ahi, alo, bhi, blo, whi, wlo, xhi, xlo)
		}
	}
}

// TestShardHashFallback checks that both ways of reading addresses give
// the same shard hash.
func TestShardHashFallback(t *testing.T) {
	p := decode.Packet{Src: netip.MustParseAddr("192.0.2.9"), Dst: netip.MustParseAddr("2001:db8::7"), Proto: decode.ProtoTCP, SrcPort: 40000, DstPort: 443}
	fast := ShardHash(&p, 99)
	addrLayoutOK = false
	defer func() { addrLayoutOK = checkAddrLayout() }()
	if slow := ShardHash(&p, 99); slow != fast {
		t.Fatalf("words %#x, As16 %#x", fast, slow)
	}
}
