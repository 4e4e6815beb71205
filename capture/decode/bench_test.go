package decode_test

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/phonehome/phonehome/capture/decode"
	"github.com/phonehome/phonehome/synth"
)

// benchFrame is one Ethernet frame for the per-packet benchmarks, with what
// its decoding must yield so a benchmark cannot time a decoder that skips it.
type benchFrame struct {
	name    string
	frame   []byte
	src     netip.Addr
	dport   uint16
	proto   uint8
	vlans   uint8
	tunnels decode.Tunnel
}

// vxlanHeader is an 8-byte VXLAN header (I flag, VNI vni).
func vxlanHeader(vni uint32) []byte {
	return []byte{0x08, 0, 0, 0, byte(vni >> 16), byte(vni >> 8), byte(vni), 0}
}

func benchFrames() []benchFrame {
	var b synth.Builder
	payload := bytes.Repeat([]byte("x"), 1000)
	tcp4 := bytes.Clone(b.TCP(synth.L2{}, synth.EP("10.0.0.1:51000"), synth.EP("198.18.0.1:443"), 1000, 2000, synth.ACK|synth.PSH, payload))
	udp6 := bytes.Clone(b.UDP(synth.L2{VLANs: []uint16{10}}, synth.EP("[2001:db8::1]:53000"), synth.EP("[2001:db8::53]:53"), payload[:60]))
	inner := bytes.Clone(b.TCP(synth.L2{}, synth.EP("10.1.0.1:40000"), synth.EP("198.18.0.2:443"), 1, 1, synth.ACK, payload[:500]))
	vxlan := bytes.Clone(b.UDP(synth.L2{}, synth.EP("192.0.2.1:49152"), synth.EP("192.0.2.2:4789"), append(vxlanHeader(42), inner...)))
	return []benchFrame{
		{"TCPv4", tcp4, netip.MustParseAddr("10.0.0.1"), 443, decode.ProtoTCP, 0, 0},
		{"VLANv6UDP", udp6, netip.MustParseAddr("2001:db8::1"), 53, decode.ProtoUDP, 1, 0},
		{"VXLAN", vxlan, netip.MustParseAddr("10.1.0.1"), 443, decode.ProtoTCP, 0, decode.TunnelVXLAN},
	}
}

// check fails unless p is what f decodes to.
func (f *benchFrame) check(tb testing.TB, r decode.Reason, p *decode.Packet) {
	tb.Helper()
	if r != decode.OK || p.Src != f.src || p.DstPort != f.dport || p.Proto != f.proto || p.NumVLANs != f.vlans || p.Tunnels != f.tunnels || len(p.Payload) == 0 {
		tb.Fatalf("%s: decoded %v: src %v dport %d proto %d vlans %d tunnels %v payload %d", f.name, r, p.Src, p.DstPort, p.Proto, p.NumVLANs, p.Tunnels, len(p.Payload))
	}
}

// TestDecodeZeroAllocs: decoding a frame allocates nothing, with or without
// tunnels and VLAN tags.
func TestDecodeZeroAllocs(t *testing.T) {
	d := decode.NewDecoder(decode.DefragLimits{})
	var p decode.Packet
	for _, f := range benchFrames() {
		f.check(t, d.Decode(&p, decode.LinkTypeEthernet, f.frame, 1, len(f.frame)), &p)
		allocs := testing.AllocsPerRun(1000, func() {
			d.Decode(&p, decode.LinkTypeEthernet, f.frame, 1, len(f.frame))
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per frame", f.name, allocs)
		}
	}
}

// BenchmarkDecode times one frame's decoding; one op is one frame.
func BenchmarkDecode(b *testing.B) {
	for _, f := range benchFrames() {
		b.Run(f.name, func(b *testing.B) {
			d := decode.NewDecoder(decode.DefragLimits{})
			var p decode.Packet
			f.check(b, d.Decode(&p, decode.LinkTypeEthernet, f.frame, 1, len(f.frame)), &p)
			b.SetBytes(int64(len(f.frame)))
			b.ReportAllocs()
			var ts int64
			for b.Loop() {
				ts++
				if d.Decode(&p, decode.LinkTypeEthernet, f.frame, ts, len(f.frame)) != decode.OK {
					b.Fatal("decode failed")
				}
			}
		})
	}
}
