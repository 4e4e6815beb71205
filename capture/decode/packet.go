// Package decode turns raw link-layer frames into the innermost IP
// conversation's addresses, ports and payload, walking stacked VLAN tags, MPLS,
// PPPoE, GRE (with ERSPAN I/II/III), VXLAN, Geneve and IP-in-IP tunnels, and
// IPv6 extension headers. Like gopacket's DecodingLayerParser it writes into a
// caller-owned, preallocated Packet and never allocates per frame; it is
// hand-written rather than built on DecodingLayerParser because tunnels nest
// layers of the same type (gopacket's parser overwrites the outer header) and
// the flow table needs the IP header's total length even when the snap length
// cut the frame short.
package decode

import (
	"net/netip"
)

// Link types from the tcpdump LINKTYPE registry (the values pcap and pcapng carry).
const (
	LinkTypeNull     uint32 = 0   // BSD loopback: 4-byte host-order address family
	LinkTypeEthernet uint32 = 1   //
	LinkTypePPP      uint32 = 9   //
	LinkTypeRawOld   uint32 = 12  // raw IP on some BSDs (DLT_RAW)
	LinkTypeRawOld2  uint32 = 14  // raw IP on OpenBSD
	LinkTypePPPHDLC  uint32 = 50  //
	LinkTypeRaw      uint32 = 101 // raw IPv4 or IPv6
	LinkTypeLoop     uint32 = 108 // OpenBSD loopback: network-order family
	LinkTypeSLL      uint32 = 113 // Linux cooked capture v1
	LinkTypeIPv4     uint32 = 228 //
	LinkTypeIPv6     uint32 = 229 //
	LinkTypeNFLOG    uint32 = 239 // Linux netfilter log (iptables NFLOG target, tcpdump -i nflog)
	LinkTypeSLL2     uint32 = 276 // Linux cooked capture v2 (tcpdump -i any)
)

// IP protocol numbers used by the flow table.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
	ProtoSCTP   uint8 = 132
)

// TCP flag bits as they appear in the header's flags byte.
const (
	TCPFin uint8 = 0x01
	TCPSyn uint8 = 0x02
	TCPRst uint8 = 0x04
	TCPPsh uint8 = 0x08
	TCPAck uint8 = 0x10
	TCPUrg uint8 = 0x20
	TCPEce uint8 = 0x40
	TCPCwr uint8 = 0x80
)

// MaxVLANs is how many 802.1Q/802.1ad tags a packet records; deeper tags are
// walked but not kept (QinQinQ exists in the wild, a fourth tag does not).
const MaxVLANs = 3

// MaxEncapDepth bounds nested encapsulations (GRE in GRE in VXLAN...) so a
// hostile frame cannot make the decoder loop.
const MaxEncapDepth = 8

// Tunnel kinds, recorded as a bit set so a packet can carry several.
type Tunnel uint16

const (
	TunnelGRE Tunnel = 1 << iota
	TunnelERSPAN
	TunnelVXLAN
	TunnelGeneve
	TunnelIPinIP
	TunnelMPLS
	TunnelPPPoE
	TunnelTeredo
	TunnelGTP
)

var tunnelNames = [...]string{"gre", "erspan", "vxlan", "geneve", "ip-in-ip", "mpls", "pppoe", "teredo", "gtp"}

// Names lists the tunnel kinds in t, outermost-agnostic, in a fixed order.
func (t Tunnel) Names(dst []string) []string {
	for i, n := range tunnelNames {
		if t&(1<<i) != 0 {
			dst = append(dst, n)
		}
	}
	return dst
}

// Packet is one decoded frame. The decoder overwrites it on every call;
// Payload aliases the frame (or the defragmenter's buffer) and is valid only
// until the next call.
type Packet struct {
	Timestamp     int64 // unix nanoseconds, from the capture
	CaptureLength int   // bytes captured
	WireLength    int   // bytes on the wire (frame length)
	Interface     int   // capture interface index

	VLANs    [MaxVLANs]uint16 // outermost first
	NumVLANs uint8

	Tunnels     Tunnel     // encapsulations crossed to reach the inner IP packet
	TunnelSrc   netip.Addr // outermost tunnel endpoint addresses
	TunnelDst   netip.Addr
	TunnelID    uint32 // VNI, GRE key or ERSPAN session id of the outermost tunnel
	TunnelDepth uint8

	IPVersion uint8
	Src, Dst  netip.Addr
	IPLength  int // IP total length from the header (wire bytes, as Zeek's ip_bytes)
	TTL       uint8
	Proto     uint8
	// Reassembled is set when the packet was rebuilt from IP fragments.
	Reassembled bool
	// Fragment is set, by a Decoder without a defragmenter, when the packet
	// is an IP fragment (so a decoder with one would have held it).
	Fragment bool

	SrcPort, DstPort uint16
	TCPFlags         uint8
	Seq, Ack         uint32
	Window           uint16
	ICMPType         uint8
	ICMPCode         uint8
	ICMPID           uint16

	// Payload is the transport payload as captured; PayloadLength is its
	// length according to the IP header, which is larger when the snap
	// length cut the frame.
	Payload       []byte
	PayloadLength int
}

// Truncated reports whether the snap length cut the transport payload.
func (p *Packet) Truncated() bool { return len(p.Payload) < p.PayloadLength }

func (p *Packet) reset() {
	// Assigning a zero value is cheaper than field by field and keeps the
	// reset in one place when fields are added.
	*p = Packet{}
}
