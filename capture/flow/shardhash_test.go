package flow_test

import (
	"hash/maphash"
	"net/netip"
	"testing"

	"github.com/phonehome/phonehome/capture/decode"
	"github.com/phonehome/phonehome/capture/flow"
)

// reversed returns the packet of the same flow in the other direction.
func reversed(p decode.Packet) decode.Packet {
	q := p
	q.Src, q.Dst = p.Dst, p.Src
	q.SrcPort, q.DstPort = p.DstPort, p.SrcPort
	switch {
	case p.Proto == decode.ProtoICMP && p.ICMPType == 8:
		q.ICMPType = 0
	case p.Proto == decode.ProtoICMP && p.ICMPType == 0:
		q.ICMPType = 8
	case p.Proto == decode.ProtoICMPv6 && p.ICMPType == 128:
		q.ICMPType = 129
	}
	return q
}

func shardPackets() []decode.Packet {
	ps := benchPackets(512)
	v4a, v4b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.7")
	ps = append(ps,
		decode.Packet{Src: v4a, Dst: v4b, Proto: decode.ProtoICMP, ICMPType: 8, ICMPID: 77},
		decode.Packet{Src: v4a, Dst: v4b, Proto: decode.ProtoICMP, ICMPType: 3, ICMPCode: 1},
		decode.Packet{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2"), Proto: decode.ProtoICMPv6, ICMPType: 128, ICMPID: 9},
		decode.Packet{Src: v4a, Dst: v4b, Proto: 47},
		decode.Packet{Src: v4a, Dst: v4b, Proto: decode.ProtoUDP, SrcPort: 53, DstPort: 53, VLANs: [decode.MaxVLANs]uint16{10, 20, 30}, NumVLANs: 3},
		decode.Packet{Src: v4a, Dst: v4a, Proto: decode.ProtoUDP, SrcPort: 5000, DstPort: 5001},
	)
	return ps
}

// TestShardHashSymmetric checks that both directions of a flow, and every
// packet KeyOf maps to the same key, land on the same shard.
func TestShardHashSymmetric(t *testing.T) {
	seed := uint64(0x1234_5678_9abc_def0)
	byKey := map[flow.Key]uint64{}
	for i, p := range shardPackets() {
		q := reversed(p)
		for _, x := range []decode.Packet{p, q} {
			k, _ := flow.KeyOf(&x)
			h := flow.ShardHash(&x, seed)
			if prev, ok := byKey[k]; ok && prev != h {
				t.Fatalf("packet %d: key %+v hashes to %#x and %#x", i, k, prev, h)
			}
			byKey[k] = h
		}
		kp, _ := flow.KeyOf(&p)
		kq, _ := flow.KeyOf(&q)
		if kp != kq {
			continue // one-way ICMP: the reverse is another flow
		}
		if a, b := flow.ShardHash(&p, seed), flow.ShardHash(&q, seed); a != b {
			t.Errorf("packet %d: directions hash apart: %#x vs %#x", i, a, b)
		}
	}
}

// TestShardHashSeparates checks that fields of the key change the hash
// (a constant hash would pass the symmetry test) and that shards balance.
func TestShardHashSeparates(t *testing.T) {
	seed := uint64(42)
	base := decode.Packet{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), Proto: decode.ProtoTCP, SrcPort: 1000, DstPort: 443}
	variants := map[string]func(p *decode.Packet){
		"src port":                      func(p *decode.Packet) { p.SrcPort++ },
		"dst addr":                      func(p *decode.Packet) { p.Dst = netip.MustParseAddr("10.0.0.3") },
		"proto":                         func(p *decode.Packet) { p.Proto = decode.ProtoUDP },
		"vlan":                          func(p *decode.Packet) { p.VLANs[0] = 5 },
		"vlan 3":                        func(p *decode.Packet) { p.VLANs[2] = 5 },
		"v4-in-6":                       func(p *decode.Packet) { p.Src = netip.AddrFrom16(p.Src.As16()) },
		"ports swapped within endpoint": func(p *decode.Packet) { p.SrcPort, p.DstPort = p.DstPort, p.SrcPort },
	}
	h0 := flow.ShardHash(&base, seed)
	for name, change := range variants {
		p := base
		change(&p)
		if flow.ShardHash(&p, seed) == h0 {
			t.Errorf("%s: hash unchanged", name)
		}
	}
	if flow.ShardHash(&base, seed+1) == h0 {
		t.Error("seed does not change the hash")
	}
	const shards = 3
	var counts [shards]int
	ps := benchPackets(3000)
	for i := 0; i < len(ps); i += 2 {
		counts[flow.Shard(flow.ShardHash(&ps[i], seed), shards)]++
	}
	for i, c := range counts {
		if c < 800 || c > 1200 {
			t.Errorf("shard %d holds %d of 3000 flows: %v", i, c, counts)
		}
	}
}

func BenchmarkShardHash(b *testing.B) {
	ps := benchPackets(benchFlows)
	var sink uint64
	for b.Loop() {
		for i := range ps {
			sink += flow.ShardHash(&ps[i], 1)
		}
	}
	_ = sink
}

func BenchmarkKeyOfHash(b *testing.B) {
	ps := benchPackets(benchFlows)
	seed := maphash.MakeSeed()
	var sink uint64
	for b.Loop() {
		for i := range ps {
			k, _ := flow.KeyOf(&ps[i])
			sink += k.Hash(seed)
		}
	}
	_ = sink
}

// TestShardRange: Shard stays within [0, n) for extreme hashes and covers
// every shard.
func TestShardRange(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 64} {
		seen := make([]bool, n)
		for _, h := range []uint64{0, 1, 1 << 63, ^uint64(0), ^uint64(0) - 1} {
			if s := flow.Shard(h, n); s < 0 || s >= n {
				t.Fatalf("Shard(%#x, %d) = %d", h, n, s)
			}
		}
		for i := range uint64(64 * n) {
			seen[flow.Shard(i*(^uint64(0)/uint64(64*n)), n)] = true
		}
		for s, ok := range seen {
			if !ok {
				t.Errorf("n=%d: shard %d never chosen", n, s)
			}
		}
	}
}
