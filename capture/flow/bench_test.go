package flow_test

import (
	"hash/maphash"
	"net/netip"
	"testing"

	"github.com/phonehome/phonehome/capture/decode"
	"github.com/phonehome/phonehome/capture/flow"
)

// countingHandler counts records; the benchmarks want no flow to end.
type countingHandler struct{ started, ended int }

var _ flow.Handler = (*countingHandler)(nil)

func (h *countingHandler) FlowStarted(*flow.Flow)                     { h.started++ }
func (h *countingHandler) FlowEnded(*flow.Flow, flow.EndReason, bool) { h.ended++ }

// benchFlows is how many established flows the lookup benchmarks cycle
// through: enough that the map is not a single bucket, few enough to stay in
// cache like the hot flows of a real link.
const benchFlows = 1024

// benchPackets returns two packets (client→server, server→client) for each
// of n established TCP flows, mixing IPv4, IPv6 and VLAN-tagged flows.
func benchPackets(n int) []decode.Packet {
	ps := make([]decode.Packet, 0, 2*n)
	for i := range n {
		var cl, sv netip.Addr
		if i%5 == 0 {
			cl = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
			sv = netip.MustParseAddr("2001:db8:20::1")
		} else {
			cl = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
			sv = netip.AddrFrom4([4]byte{198, 18, 0, byte(i % 7)})
		}
		c := decode.Packet{IPVersion: 4, Src: cl, Dst: sv, SrcPort: uint16(20000 + i), DstPort: 443, Proto: decode.ProtoTCP,
			TCPFlags: decode.TCPAck, IPLength: 1040, PayloadLength: 1000}
		if cl.Is6() {
			c.IPVersion = 6
		}
		if i%4 == 0 {
			c.VLANs[0], c.NumVLANs = 10, 1
		}
		s := c
		s.Src, s.Dst, s.SrcPort, s.DstPort = c.Dst, c.Src, c.DstPort, c.SrcPort
		ps = append(ps, c, s)
	}
	return ps
}

// warmTable creates the flows of ps (each through its handshake, so they
// are established) and returns the table and the time of the last packet.
func warmTable(tb testing.TB, ps []decode.Packet) (*flow.Table, *countingHandler, int64) {
	h := &countingHandler{}
	t := flow.NewTable(flow.Config{}, h)
	ts := int64(1_700_000_000_000_000_000)
	for i := 0; i < len(ps); i += 2 {
		syn, synack, ack := ps[i], ps[i+1], ps[i]
		syn.TCPFlags, synack.TCPFlags = decode.TCPSyn, decode.TCPSyn|decode.TCPAck
		for _, p := range []*decode.Packet{&syn, &synack, &ack} {
			ts++
			p.Timestamp = ts
			t.Packet(p)
		}
	}
	if h.started != len(ps)/2 || t.Stats().Active != len(ps)/2 {
		tb.Fatalf("warm-up: %d flows started, %d active, want %d", h.started, t.Stats().Active, len(ps)/2)
	}
	return t, h, ts
}

// TestLookupZeroAllocs: a packet of an existing flow allocates nothing.
func TestLookupZeroAllocs(t *testing.T) {
	ps := benchPackets(benchFlows)
	tab, h, ts := warmTable(t, ps)
	i := 0
	allocs := testing.AllocsPerRun(10000, func() {
		p := &ps[i%len(ps)]
		i++
		ts++
		p.Timestamp = ts
		tab.Packet(p)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per packet of an existing flow", allocs)
	}
	if h.started != benchFlows || h.ended != 0 {
		t.Errorf("lookups started %d and ended %d flows, want %d and 0", h.started, h.ended, benchFlows)
	}
}

// BenchmarkLookup times Table.Packet for packets of established flows; one
// op is one packet.
func BenchmarkLookup(b *testing.B) {
	ps := benchPackets(benchFlows)
	tab, h, ts := warmTable(b, ps)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p := &ps[i]
		if i++; i == len(ps) {
			i = 0
		}
		ts += 100 // 100 ns of packet time: no flow can time out within b.N
		p.Timestamp = ts
		tab.Packet(p)
	}
	b.StopTimer()
	if h.started != benchFlows || h.ended != 0 {
		b.Fatalf("lookups started %d and ended %d flows, want %d and 0", h.started, h.ended, benchFlows)
	}
}

// BenchmarkKeyHash times what the sharded engine does per packet to pick a
// worker: the canonical key and its hash.
func BenchmarkKeyHash(b *testing.B) {
	ps := benchPackets(benchFlows)
	seed := maphash.MakeSeed()
	b.ReportAllocs()
	var sum uint64
	i := 0
	for b.Loop() {
		k, _ := flow.KeyOf(&ps[i])
		sum += k.Hash(seed)
		if i++; i == len(ps) {
			i = 0
		}
	}
	if sum == 0 {
		b.Fatal("every hash was zero")
	}
}
