package synth

import (
	"encoding/binary"
	"net/netip"
)

// Endpoint is an address and port.
type Endpoint struct {
	Addr netip.Addr
	Port uint16
}

// EP parses "addr:port" or "[v6]:port" and panics on error (for literals in
// generators and tests).
func EP(s string) Endpoint {
	ap := netip.MustParseAddrPort(s)
	return Endpoint{ap.Addr(), ap.Port()}
}

// L2 describes the link layer and encapsulation of generated frames.
type L2 struct {
	VLANs []uint16 // 802.1Q tags, outermost first (802.1ad TPID for the outer when two)
}

// TCP flag bits.
const (
	FIN = 0x01
	SYN = 0x02
	RST = 0x04
	PSH = 0x08
	ACK = 0x10
)

func csumAdd(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func csumFold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// Builder assembles frames into a reused buffer.
type Builder struct {
	buf []byte
}

// Ethernet/IP/transport frame. proto is 6 or 17; l4hdr is the transport
// header without checksum; payload follows it.
func (b *Builder) frame(l2 L2, src, dst netip.Addr, proto uint8, l4hdr, payload []byte) []byte {
	out := b.buf[:0]
	out = append(out, 0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01) // dst, src MAC (locally administered)
	for i, v := range l2.VLANs {
		tpid := uint16(0x8100)
		if i == 0 && len(l2.VLANs) > 1 {
			tpid = 0x88a8
		}
		out = binary.BigEndian.AppendUint16(out, tpid)
		out = binary.BigEndian.AppendUint16(out, v&0x0fff)
	}
	l4len := len(l4hdr) + len(payload)
	ipStart := 0
	if src.Is4() {
		out = binary.BigEndian.AppendUint16(out, 0x0800)
		ipStart = len(out)
		out = append(out, 0x45, 0)
		out = binary.BigEndian.AppendUint16(out, uint16(20+l4len))
		out = append(out, 0, 0, 0x40, 0, 64, proto, 0, 0)
		s, d := src.As4(), dst.As4()
		out = append(out, s[:]...)
		out = append(out, d[:]...)
		binary.BigEndian.PutUint16(out[ipStart+10:], csumFold(csumAdd(0, out[ipStart:ipStart+20])))
	} else {
		out = binary.BigEndian.AppendUint16(out, 0x86dd)
		out = append(out, 0x60, 0, 0, 0)
		out = binary.BigEndian.AppendUint16(out, uint16(l4len))
		out = append(out, proto, 64)
		s, d := src.As16(), dst.As16()
		out = append(out, s[:]...)
		out = append(out, d[:]...)
	}
	l4Start := len(out)
	out = append(out, l4hdr...)
	out = append(out, payload...)
	// Transport checksum over the pseudo-header, so tools that verify it
	// (tshark with checksum validation, Suricata) accept the frames.
	var sum uint32
	sum = csumAdd(sum, src.AsSlice())
	sum = csumAdd(sum, dst.AsSlice())
	sum += uint32(proto) + uint32(l4len)
	sum = csumAdd(sum, out[l4Start:])
	ck := csumFold(sum)
	if proto == 17 && ck == 0 {
		ck = 0xffff
	}
	off := 16
	if proto == 17 {
		off = 6
	}
	binary.BigEndian.PutUint16(out[l4Start+off:], ck)
	b.buf = out
	return out
}

// TCP builds a TCP segment frame.
func (b *Builder) TCP(l2 L2, src, dst Endpoint, seq, ack uint32, flags uint8, payload []byte) []byte {
	var h [20]byte
	binary.BigEndian.PutUint16(h[0:], src.Port)
	binary.BigEndian.PutUint16(h[2:], dst.Port)
	binary.BigEndian.PutUint32(h[4:], seq)
	binary.BigEndian.PutUint32(h[8:], ack)
	h[12] = 5 << 4
	h[13] = flags
	binary.BigEndian.PutUint16(h[14:], 65535)
	return b.frame(l2, src.Addr, dst.Addr, 6, h[:], payload)
}

// UDP builds a UDP datagram frame.
func (b *Builder) UDP(l2 L2, src, dst Endpoint, payload []byte) []byte {
	var h [8]byte
	binary.BigEndian.PutUint16(h[0:], src.Port)
	binary.BigEndian.PutUint16(h[2:], dst.Port)
	binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	return b.frame(l2, src.Addr, dst.Addr, 17, h[:], payload)
}
