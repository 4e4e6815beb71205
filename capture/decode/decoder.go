package decode

import (
	"encoding/binary"
	"net/netip"
)

// Reason says why a frame produced no packet. Every skipped frame is counted
// under exactly one reason so that nothing is lost silently.
type Reason uint8

const (
	OK                  Reason = iota
	SkipUnknownLink            // link type the decoder does not know
	SkipTruncatedLink          // frame shorter than its link-layer header
	SkipNonIP                  // ARP, LLDP, STP and other non-IP payloads
	SkipTruncatedIP            // IP header cut short
	SkipBadIP                  // IP header that lies (version, header length, total length)
	SkipTruncatedL4            // transport header cut short (ports unreadable)
	SkipUnknownEncap           // tunnel or protocol inside a tunnel that is not decoded
	SkipEncapTooDeep           // more than MaxEncapDepth nested encapsulations
	SkipFragmentHeld           // an IP fragment kept until its datagram completes (not a loss)
	SkipFragmentDropped        // an IP fragment refused: overlap conflict, limit, bad offsets
	numReasons
)

var reasonNames = [numReasons]string{
	"ok", "unknown_link_type", "truncated_link", "non_ip", "truncated_ip", "bad_ip_header",
	"truncated_transport", "unknown_encapsulation", "encapsulation_too_deep", "fragment_held", "fragment_dropped",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// NumReasons is the size of an array indexed by Reason.
const NumReasons = int(numReasons)

// Ethernet types.
const (
	etherIPv4      = 0x0800
	etherARP       = 0x0806
	etherIPv6      = 0x86dd
	etherVLAN      = 0x8100
	etherQinQ      = 0x88a8
	etherQinQOld   = 0x9100
	etherMPLS      = 0x8847
	etherMPLSMcast = 0x8848
	etherPPPoESess = 0x8864
	etherTEB       = 0x6558 // transparent Ethernet bridging (GRE, Geneve)
	etherERSPAN2   = 0x88be
	etherERSPAN3   = 0x22eb
	etherPPP       = 0x880b
)

// UDP ports of tunnels decoded by port, as Suricata and Zeek do by default.
const (
	portVXLAN    = 4789
	portVXLANGPE = 4790
	portGeneve   = 6081
	portGREUDP   = 4754
	portTeredo   = 3544
	portGTPUser  = 2152
)

// Decoder decodes frames into a Packet. It is not safe for concurrent use:
// each capture goroutine owns one (the defragmenter is per decoder).
type Decoder struct {
	Defrag *Defragmenter // nil: fragments are passed through unreassembled
}

// NewDecoder returns a decoder with a defragmenter using the given limits.
func NewDecoder(limits DefragLimits) *Decoder {
	return &Decoder{Defrag: NewDefragmenter(limits)}
}

// Decode decodes one frame of the given link type into p. The frame must stay
// unchanged while p is in use. wireLen is the original frame length.
func (d *Decoder) Decode(p *Packet, linkType uint32, frame []byte, ts int64, wireLen int) Reason {
	p.reset()
	p.Timestamp = ts
	p.CaptureLength = len(frame)
	p.WireLength = wireLen
	switch linkType {
	case LinkTypeEthernet:
		return d.ethernet(p, frame, 0)
	case LinkTypeRaw, LinkTypeRawOld, LinkTypeRawOld2:
		return d.rawIP(p, frame, 0)
	case LinkTypeIPv4:
		return d.ipv4(p, frame, 0)
	case LinkTypeIPv6:
		return d.ipv6(p, frame, 0)
	case LinkTypeNull, LinkTypeLoop:
		if len(frame) < 4 {
			return SkipTruncatedLink
		}
		// The family is in host byte order of the capturing machine for
		// DLT_NULL; try both orders. AF_INET is 2 everywhere; AF_INET6 is
		// 10, 24, 28 or 30 depending on the OS.
		fam := binary.LittleEndian.Uint32(frame)
		if fam > 0xffff {
			fam = binary.BigEndian.Uint32(frame)
		}
		switch fam {
		case 2:
			return d.ipv4(p, frame[4:], 0)
		case 10, 24, 28, 30:
			return d.ipv6(p, frame[4:], 0)
		}
		return SkipNonIP
	case LinkTypeSLL:
		if len(frame) < 16 {
			return SkipTruncatedLink
		}
		return d.etherType(p, binary.BigEndian.Uint16(frame[14:]), frame[16:], 0)
	case LinkTypeSLL2:
		if len(frame) < 20 {
			return SkipTruncatedLink
		}
		return d.etherType(p, binary.BigEndian.Uint16(frame[0:]), frame[20:], 0)
	case LinkTypePPP, LinkTypePPPHDLC:
		return d.ppp(p, frame, 0)
	case LinkTypeNFLOG:
		return d.nflog(p, frame)
	}
	return SkipUnknownLink
}

// nflogPayload is the NFLOG attribute type (NFULA_PAYLOAD) that holds the
// logged packet, from its IP header on.
const nflogPayload = 9

// nflog reads a Linux NFLOG frame: a 4-byte header (address family,
// version, resource id), then type-length-value attributes padded to 4
// bytes. Attribute lengths and types are in the byte order of the machine
// that captured (libpcap does not convert them), so little-endian, the
// common case, is tried first and big-endian second: a length read in the
// wrong order overruns the frame.
func (d *Decoder) nflog(p *Packet, b []byte) Reason {
	if len(b) < 4 {
		return SkipTruncatedLink
	}
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		if ip, ok := nflogAttr(b[4:], order, nflogPayload); ok {
			// The family (b[0]) is AF_INET or AF_INET6; the IP version
			// nibble says the same and also serves AF_UNSPEC.
			return d.rawIP(p, ip, 0)
		}
	}
	return SkipNonIP
}

// nflogAttr returns the value of the first attribute of type want. A value
// cut short by the snap length is returned as far as it was captured.
func nflogAttr(b []byte, order binary.ByteOrder, want uint16) ([]byte, bool) {
	for len(b) >= 4 {
		l, typ := int(order.Uint16(b)), order.Uint16(b[2:])&0x7fff // top bit: nested
		if l < 4 {
			return nil, false
		}
		if typ == want {
			return b[4:min(l, len(b))], true
		}
		if l > len(b) {
			return nil, false
		}
		b = b[min((l+3)&^3, len(b)):]
	}
	return nil, false
}

func (d *Decoder) rawIP(p *Packet, b []byte, depth int) Reason {
	if len(b) < 1 {
		return SkipTruncatedIP
	}
	switch b[0] >> 4 {
	case 4:
		return d.ipv4(p, b, depth)
	case 6:
		return d.ipv6(p, b, depth)
	}
	return SkipBadIP
}

func (d *Decoder) ethernet(p *Packet, b []byte, depth int) Reason {
	if len(b) < 14 {
		return SkipTruncatedLink
	}
	et := binary.BigEndian.Uint16(b[12:])
	if et <= 1500 {
		// 802.3 length field: LLC/SNAP (STP, CDP...), not IP for our purposes.
		return SkipNonIP
	}
	return d.etherType(p, et, b[14:], depth)
}

func (d *Decoder) etherType(p *Packet, et uint16, b []byte, depth int) Reason {
	for {
		switch et {
		case etherIPv4:
			return d.ipv4(p, b, depth)
		case etherIPv6:
			return d.ipv6(p, b, depth)
		case etherVLAN, etherQinQ, etherQinQOld:
			if len(b) < 4 {
				return SkipTruncatedLink
			}
			if p.NumVLANs < MaxVLANs {
				p.VLANs[p.NumVLANs] = binary.BigEndian.Uint16(b) & 0x0fff
				p.NumVLANs++
			}
			et = binary.BigEndian.Uint16(b[2:])
			b = b[4:]
		case etherMPLS, etherMPLSMcast:
			return d.mpls(p, b, depth)
		case etherPPPoESess:
			if len(b) < 6 {
				return SkipTruncatedLink
			}
			p.Tunnels |= TunnelPPPoE
			return d.ppp(p, b[6:], depth)
		case etherARP:
			return SkipNonIP
		default:
			return SkipNonIP
		}
	}
}

func (d *Decoder) mpls(p *Packet, b []byte, depth int) Reason {
	p.Tunnels |= TunnelMPLS
	for i := 0; ; i++ {
		if len(b) < 4 || i > 16 {
			return SkipTruncatedLink
		}
		bottom := b[2]&0x01 != 0
		b = b[4:]
		if bottom {
			break
		}
	}
	if len(b) < 1 {
		return SkipTruncatedIP
	}
	switch b[0] >> 4 {
	case 4:
		return d.ipv4(p, b, depth)
	case 6:
		return d.ipv6(p, b, depth)
	case 0:
		// Pseudowire control word, then an Ethernet frame (RFC 4385).
		if len(b) < 4 {
			return SkipTruncatedLink
		}
		return d.ethernet(p, b[4:], depth)
	}
	return d.ethernet(p, b, depth)
}

func (d *Decoder) ppp(p *Packet, b []byte, depth int) Reason {
	if len(b) >= 2 && b[0] == 0xff && b[1] == 0x03 {
		b = b[2:] // HDLC address and control
	}
	if len(b) < 1 {
		return SkipTruncatedLink
	}
	var proto uint16
	if b[0]&0x01 != 0 { // protocol field compressed to one byte
		proto, b = uint16(b[0]), b[1:]
	} else {
		if len(b) < 2 {
			return SkipTruncatedLink
		}
		proto, b = binary.BigEndian.Uint16(b), b[2:]
	}
	switch proto {
	case 0x0021:
		return d.ipv4(p, b, depth)
	case 0x0057:
		return d.ipv6(p, b, depth)
	}
	return SkipNonIP
}

// enterTunnel records an outer IP conversation before the decoder descends
// into the tunnel it carries, and bounds the depth.
func (d *Decoder) enterTunnel(p *Packet, kind Tunnel, id uint32, depth int) bool {
	if depth >= MaxEncapDepth {
		return false
	}
	if p.TunnelDepth == 0 {
		p.TunnelSrc, p.TunnelDst, p.TunnelID = p.Src, p.Dst, id
	}
	p.Tunnels |= kind
	p.TunnelDepth++
	// The inner packet's VLANs, ports and flags start afresh; the outer
	// VLAN tags stay recorded.
	p.SrcPort, p.DstPort, p.TCPFlags = 0, 0, 0
	return true
}

func (d *Decoder) ipv4(p *Packet, b []byte, depth int) Reason {
	if len(b) < 20 {
		return SkipTruncatedIP
	}
	if b[0]>>4 != 4 {
		return SkipBadIP
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 {
		return SkipBadIP
	}
	if len(b) < ihl {
		return SkipTruncatedIP
	}
	total := int(binary.BigEndian.Uint16(b[2:]))
	if total == 0 {
		// TCP segmentation offload captures carry 0; trust the capture.
		total = len(b)
	}
	if total < ihl {
		return SkipBadIP
	}
	p.IPVersion = 4
	p.Src = netip.AddrFrom4([4]byte(b[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	p.IPLength = total
	p.TTL = b[8]
	p.Proto = b[9]
	payload := b[ihl:]
	plen := total - ihl
	if len(payload) > plen {
		payload = payload[:plen] // Ethernet padding
	}
	frag := binary.BigEndian.Uint16(b[6:])
	if frag&0x3fff != 0 { // MF set or offset non-zero
		if d.Defrag == nil {
			p.Fragment = true
			// Without reassembly only the first fragment carries ports.
			if frag&0x1fff != 0 {
				p.Payload, p.PayloadLength = nil, 0
				return OK
			}
		} else {
			data, r := d.Defrag.addV4(p, b[:ihl], frag, payload, plen)
			if r != OK {
				return r
			}
			p.Reassembled = true
			payload, plen = data, len(data)
			p.IPLength = ihl + plen
		}
	}
	return d.transport(p, p.Proto, payload, plen, depth)
}

func (d *Decoder) ipv6(p *Packet, b []byte, depth int) Reason {
	if len(b) < 40 {
		return SkipTruncatedIP
	}
	if b[0]>>4 != 6 {
		return SkipBadIP
	}
	plen := int(binary.BigEndian.Uint16(b[4:]))
	if plen == 0 {
		plen = len(b) - 40 // jumbogram or offload: trust the capture
	}
	p.IPVersion = 6
	p.Src = netip.AddrFrom16([16]byte(b[8:24]))
	p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	p.IPLength = 40 + plen
	p.TTL = b[7]
	next := b[6]
	payload := b[40:]
	if len(payload) > plen {
		payload = payload[:plen]
	}
	// Walk extension headers. Each consumed header shrinks the declared
	// payload length too, so PayloadLength stays the transport's length.
	for i := 0; i < 16; i++ {
		switch next {
		case 0, 43, 60, 135, 139, 140: // hop-by-hop, routing, destination, mobility, HIP, shim6
			if len(payload) < 8 {
				return SkipTruncatedIP
			}
			n := (int(payload[1]) + 1) * 8
			if n > len(payload) || n > plen {
				return SkipTruncatedIP
			}
			next = payload[0]
			payload, plen = payload[n:], plen-n
			continue
		case 51: // authentication header: length in 4-byte units, minus 2
			if len(payload) < 8 {
				return SkipTruncatedIP
			}
			n := (int(payload[1]) + 2) * 4
			if n > len(payload) || n > plen {
				return SkipTruncatedIP
			}
			next = payload[0]
			payload, plen = payload[n:], plen-n
			continue
		case 44: // fragment
			if len(payload) < 8 {
				return SkipTruncatedIP
			}
			inner := payload[0]
			off := binary.BigEndian.Uint16(payload[2:])
			id := binary.BigEndian.Uint32(payload[4:])
			fragData := payload[8:]
			fragLen := plen - 8
			if fragLen < 0 {
				return SkipBadIP
			}
			if off&0xfff9 == 0 {
				// Atomic fragment (offset 0, no MF): RFC 6946 says process as is.
				next, payload, plen = inner, fragData, fragLen
				continue
			}
			if d.Defrag == nil {
				p.Fragment = true
				p.Proto = inner
				if off>>3 != 0 {
					return OK
				}
				next, payload, plen = inner, fragData, fragLen
				continue
			}
			data, r := d.Defrag.addV6(p, id, off, inner, fragData, fragLen)
			if r != OK {
				return r
			}
			p.Reassembled = true
			next, payload, plen = inner, data, len(data)
			p.IPLength = 40 + plen
			continue
		}
		break
	}
	p.Proto = next
	return d.transport(p, next, payload, plen, depth)
}

func (d *Decoder) transport(p *Packet, proto uint8, b []byte, plen int, depth int) Reason {
	switch proto {
	case ProtoTCP:
		if len(b) < 14 {
			return SkipTruncatedL4
		}
		p.SrcPort = binary.BigEndian.Uint16(b)
		p.DstPort = binary.BigEndian.Uint16(b[2:])
		p.Seq = binary.BigEndian.Uint32(b[4:])
		p.Ack = binary.BigEndian.Uint32(b[8:])
		off := int(b[12]>>4) * 4
		p.TCPFlags = b[13]
		if len(b) >= 16 {
			p.Window = binary.BigEndian.Uint16(b[14:])
		}
		if off < 20 {
			return SkipTruncatedL4
		}
		p.PayloadLength = plen - off
		if p.PayloadLength < 0 {
			p.PayloadLength = 0
		}
		// Reset: inside a UDP tunnel, Payload still holds the outer
		// datagram's payload.
		p.Payload = nil
		if len(b) > off {
			// Bytes past the IP length (Ethernet padding) are no payload.
			p.Payload = b[off:min(len(b), off+p.PayloadLength)]
		}
		return OK
	case ProtoUDP:
		if len(b) < 8 {
			if len(b) >= 4 { // snapped: ports are still usable
				p.SrcPort = binary.BigEndian.Uint16(b)
				p.DstPort = binary.BigEndian.Uint16(b[2:])
				p.Payload, p.PayloadLength = nil, max(plen-8, 0)
				return OK
			}
			return SkipTruncatedL4
		}
		p.SrcPort = binary.BigEndian.Uint16(b)
		p.DstPort = binary.BigEndian.Uint16(b[2:])
		p.PayloadLength = plen - 8
		if p.PayloadLength < 0 {
			p.PayloadLength = 0
		}
		// Bytes past the IP length (Ethernet padding) are no payload.
		p.Payload = b[8:min(len(b), 8+p.PayloadLength)]
		return d.udpTunnel(p, depth)
	case ProtoICMP, ProtoICMPv6:
		if len(b) < 4 {
			return SkipTruncatedL4
		}
		p.ICMPType, p.ICMPCode = b[0], b[1]
		if len(b) >= 8 {
			p.ICMPID = binary.BigEndian.Uint16(b[4:])
		}
		p.Payload = b[4:]
		p.PayloadLength = max(plen-4, 0)
		return OK
	case ProtoSCTP:
		if len(b) < 4 {
			return SkipTruncatedL4
		}
		p.SrcPort = binary.BigEndian.Uint16(b)
		p.DstPort = binary.BigEndian.Uint16(b[2:])
		p.Payload, p.PayloadLength = b, plen
		return OK
	case 4: // IPv4 in IP
		if !d.enterTunnel(p, TunnelIPinIP, 0, depth) {
			return SkipEncapTooDeep
		}
		return d.ipv4(p, b, depth+1)
	case 41: // IPv6 in IP
		if !d.enterTunnel(p, TunnelIPinIP, 0, depth) {
			return SkipEncapTooDeep
		}
		return d.ipv6(p, b, depth+1)
	case 47:
		return d.gre(p, b, depth)
	}
	// Other IP protocols get flows keyed by protocol number.
	p.Payload, p.PayloadLength = b, plen
	return OK
}

// udpTunnel descends into UDP-encapsulated tunnels on their IANA ports. A
// payload that does not parse as the tunnel stays a plain UDP packet.
func (d *Decoder) udpTunnel(p *Packet, depth int) Reason {
	b := p.Payload
	switch {
	case p.DstPort == portVXLAN || (p.SrcPort == portVXLAN && p.DstPort != portVXLAN && p.DstPort < 1024):
		if len(b) < 16 || b[0]&0x08 == 0 {
			return OK
		}
		vni := uint32(b[4])<<16 | uint32(b[5])<<8 | uint32(b[6])
		if !d.enterTunnel(p, TunnelVXLAN, vni, depth) {
			return SkipEncapTooDeep
		}
		return d.ethernet(p, b[8:], depth+1)
	case p.DstPort == portVXLANGPE:
		// VXLAN-GPE (RFC draft-ietf-nvo3-vxlan-gpe): next protocol in byte 3
		// when the P bit is set, else Ethernet.
		if len(b) < 16 || b[0]&0x08 == 0 {
			return OK
		}
		vni := uint32(b[4])<<16 | uint32(b[5])<<8 | uint32(b[6])
		if !d.enterTunnel(p, TunnelVXLAN, vni, depth) {
			return SkipEncapTooDeep
		}
		if b[0]&0x04 != 0 {
			switch b[3] {
			case 1:
				return d.ipv4(p, b[8:], depth+1)
			case 2:
				return d.ipv6(p, b[8:], depth+1)
			case 3:
				return d.ethernet(p, b[8:], depth+1)
			}
			return SkipUnknownEncap
		}
		return d.ethernet(p, b[8:], depth+1)
	case p.DstPort == portGeneve:
		if len(b) < 8 || b[0]>>6 != 0 {
			return OK
		}
		optLen := int(b[0]&0x3f) * 4
		if len(b) < 8+optLen {
			return OK
		}
		proto := binary.BigEndian.Uint16(b[2:])
		vni := uint32(b[4])<<16 | uint32(b[5])<<8 | uint32(b[6])
		if !d.enterTunnel(p, TunnelGeneve, vni, depth) {
			return SkipEncapTooDeep
		}
		inner := b[8+optLen:]
		if proto == etherTEB {
			return d.ethernet(p, inner, depth+1)
		}
		return d.etherType(p, proto, inner, depth+1)
	case p.DstPort == portGREUDP:
		return d.gre(p, b, depth)
	case p.DstPort == portGTPUser || p.SrcPort == portGTPUser:
		return d.gtpu(p, b, depth)
	case p.DstPort == portTeredo || p.SrcPort == portTeredo:
		return d.teredo(p, b, depth)
	}
	return OK
}

func (d *Decoder) gtpu(p *Packet, b []byte, depth int) Reason {
	// GTPv1-U, message type 255 (G-PDU) carries user IP packets.
	if len(b) < 8 || b[0]>>5 != 1 || b[1] != 0xff {
		return OK
	}
	teid := binary.BigEndian.Uint32(b[4:])
	n := 8
	if b[0]&0x07 != 0 { // sequence, N-PDU or extension present: 4 more bytes
		if len(b) < 12 {
			return OK
		}
		n = 12
		next := b[11]
		for next != 0 { // extension headers, length in 4-byte units
			if len(b) < n+1 || b[n] == 0 {
				return OK
			}
			l := int(b[n]) * 4
			if len(b) < n+l {
				return OK
			}
			next = b[n+l-1]
			n += l
		}
	}
	inner := b[n:]
	if len(inner) < 1 || (inner[0]>>4 != 4 && inner[0]>>4 != 6) {
		return OK
	}
	if !d.enterTunnel(p, TunnelGTP, teid, depth) {
		return SkipEncapTooDeep
	}
	return d.rawIP(p, inner, depth+1)
}

func (d *Decoder) teredo(p *Packet, b []byte, depth int) Reason {
	// Optional authentication (0x0001) and origin indication (0x0000) headers
	// precede the IPv6 packet (RFC 4380 section 5.1.1).
	for i := 0; i < 2 && len(b) >= 2 && b[0] == 0; i++ {
		switch b[1] {
		case 0x01:
			if len(b) < 4 {
				return OK
			}
			n := 4 + int(b[2]) + int(b[3]) + 9
			if len(b) < n {
				return OK
			}
			b = b[n:]
		case 0x00:
			if len(b) < 8 {
				return OK
			}
			b = b[8:]
		default:
			return OK
		}
	}
	if len(b) < 40 || b[0]>>4 != 6 {
		return OK
	}
	if !d.enterTunnel(p, TunnelTeredo, 0, depth) {
		return SkipEncapTooDeep
	}
	return d.ipv6(p, b, depth+1)
}

func (d *Decoder) gre(p *Packet, b []byte, depth int) Reason {
	if len(b) < 4 {
		return SkipTruncatedL4
	}
	flags := binary.BigEndian.Uint16(b)
	proto := binary.BigEndian.Uint16(b[2:])
	version := flags & 0x0007
	n := 4
	var key uint32
	seq := false
	if flags&0x8000 != 0 || flags&0x4000 != 0 { // checksum or routing: 4 bytes
		n += 4
	}
	if flags&0x2000 != 0 {
		if len(b) < n+4 {
			return SkipTruncatedL4
		}
		key = binary.BigEndian.Uint32(b[n:])
		n += 4
	}
	if flags&0x1000 != 0 {
		seq = true
		n += 4
	}
	if version == 1 && flags&0x0080 != 0 { // PPTP acknowledgment number
		n += 4
	}
	if len(b) < n {
		return SkipTruncatedL4
	}
	b = b[n:]
	switch proto {
	case etherIPv4, etherIPv6, etherTEB, etherPPP:
		if !d.enterTunnel(p, TunnelGRE, key, depth) {
			return SkipEncapTooDeep
		}
		switch proto {
		case etherIPv4:
			return d.ipv4(p, b, depth+1)
		case etherIPv6:
			return d.ipv6(p, b, depth+1)
		case etherTEB:
			return d.ethernet(p, b, depth+1)
		default:
			if len(b) == 0 {
				return OK // PPTP keep-alive/ack without payload
			}
			return d.ppp(p, b, depth+1)
		}
	case etherERSPAN2:
		// Type II has the sequence bit set and an 8-byte header; type I has
		// neither and carries the mirrored frame directly.
		if seq {
			if len(b) < 8 {
				return SkipTruncatedL4
			}
			session := uint32(binary.BigEndian.Uint16(b[2:]) & 0x03ff)
			if !d.enterTunnel(p, TunnelGRE|TunnelERSPAN, session, depth) {
				return SkipEncapTooDeep
			}
			return d.ethernet(p, b[8:], depth+1)
		}
		if !d.enterTunnel(p, TunnelGRE|TunnelERSPAN, 0, depth) {
			return SkipEncapTooDeep
		}
		return d.ethernet(p, b, depth+1)
	case etherERSPAN3:
		if len(b) < 12 {
			return SkipTruncatedL4
		}
		session := uint32(binary.BigEndian.Uint16(b[2:]) & 0x03ff)
		h := 12
		if b[11]&0x01 != 0 { // optional platform-specific subheader
			h += 8
		}
		if len(b) < h {
			return SkipTruncatedL4
		}
		if !d.enterTunnel(p, TunnelGRE|TunnelERSPAN, session, depth) {
			return SkipEncapTooDeep
		}
		return d.ethernet(p, b[h:], depth+1)
	}
	// GRE with a payload we do not decode: the GRE packet is the flow.
	p.Payload, p.PayloadLength = b, len(b)
	return OK
}
