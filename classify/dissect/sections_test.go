package dissect_test

import (
	"bufio"
	"bytes"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/ip4defrag"
	"github.com/gopacket/gopacket/ip6defrag"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	mdns "github.com/miekg/dns"
)

// answerSection is what the answer section of one DNS frame holds, read by
// an independent decoder (gopacket for the frame, miekg/dns for the
// message). tshark's dns.a, dns.aaaa and dns.cname list the records of
// every section; our events list the answer section only.
type answerSection map[string]bool

// answerSections reads the answer sections of the given frames (1-based
// frame numbers, as tshark counts); a frame it cannot decode is absent.
func answerSections(path string, frames map[int]bool) map[int]answerSection {
	out := map[int]answerSection{}
	if len(frames) == 0 {
		return out
	}
	fh, err := os.Open(path)
	if err != nil {
		return out
	}
	defer fh.Close()
	br := bufio.NewReader(fh)
	magic, err := br.Peek(4)
	if err != nil {
		return out
	}
	var next func() ([]byte, layers.LinkType, error)
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		r, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return out
		}
		next = func() ([]byte, layers.LinkType, error) {
			d, ci, err := r.ReadPacketData()
			if err != nil {
				return nil, 0, err
			}
			lt := r.LinkType()
			if ifc, err := r.Interface(ci.InterfaceIndex); err == nil {
				lt = ifc.LinkType
			}
			return d, lt, nil
		}
	} else {
		r, err := pcapgo.NewReader(br)
		if err != nil {
			return out
		}
		next = func() ([]byte, layers.LinkType, error) {
			d, _, err := r.ReadPacketData()
			return d, r.LinkType(), err
		}
	}
	// Every frame goes through the defragmenters: a fragmented response
	// is read from the frame that completes it, as tshark shows it there.
	d4, d6 := ip4defrag.NewIPv4Defragmenter(), ip6defrag.NewIPv6Defragmenter()
	for n := 1; len(out) < len(frames); n++ {
		data, lt, err := next()
		if err == io.EOF || err != nil {
			break
		}
		pkt := defragment(frameLayers(data, lt), d4, d6)
		if !frames[n] || pkt == nil {
			continue
		}
		if s := packetAnswers(pkt); s != nil {
			out[n] = s
		}
	}
	return out
}

// defragment returns the reassembled datagram when p completes one, p
// itself when it is no fragment, and nil while fragments are missing.
func defragment(p gopacket.Packet, d4 *ip4defrag.IPv4Defragmenter, d6 *ip6defrag.IPv6Defragmenter) gopacket.Packet {
	if ip4, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok && (ip4.Flags&layers.IPv4MoreFragments != 0 || ip4.FragOffset != 0) {
		out, err := d4.DefragIPv4(ip4)
		if err != nil || out == nil {
			return nil
		}
		return gopacket.NewPacket(out.Payload, out.NextLayerType(), gopacket.Default)
	}
	ip6, ok1 := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	fg, ok2 := p.Layer(layers.LayerTypeIPv6Fragment).(*layers.IPv6Fragment)
	if ok1 && ok2 {
		out := d6.DefragIPv6(ip6, fg)
		if out == nil {
			return nil
		}
		return gopacket.NewPacket(out.Payload, out.NextLayerType(), gopacket.Default)
	}
	return p
}

func frameLayers(data []byte, lt layers.LinkType) gopacket.Packet {
	var first gopacket.Decoder = lt
	switch lt {
	case 12, 14, 101, 228, 229: // raw IP in its several link-type numbers
		first = layers.LayerTypeIPv4
		if len(data) > 0 && data[0]>>4 == 6 {
			first = layers.LayerTypeIPv6
		}
	}
	return gopacket.NewPacket(data, first, gopacket.Default)
}

// icmpv4Error are the ICMP types that quote the offending packet.
var icmpv4Error = map[uint8]bool{3: true, 4: true, 5: true, 11: true, 12: true}

// quoted returns the packet an ICMP or ICMPv6 error quotes, or p itself.
// tshark dissects the quote, DNS included.
func quoted(p gopacket.Packet) gopacket.Packet {
	if ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok && len(ic.Payload) > 0 && icmpv4Error[ic.TypeCode.Type()] {
		return gopacket.NewPacket(ic.Payload, layers.LayerTypeIPv4, gopacket.Default)
	}
	if ic, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); ok && ic.TypeCode.Type() < 128 && len(ic.Payload) > 4 {
		// Error messages: 4 bytes (unused, MTU or pointer), then the quote.
		return gopacket.NewPacket(ic.Payload[4:], layers.LayerTypeIPv6, gopacket.Default)
	}
	return p
}

func packetAnswers(pkt gopacket.Packet) answerSection {
	pkt = quoted(pkt)
	var payload []byte
	for _, l := range pkt.Layers() {
		switch l := l.(type) {
		case *layers.UDP:
			payload = l.Payload
		case *layers.TCP:
			if len(l.Payload) > 2 {
				payload = l.Payload[2:]
			}
		}
	}
	if len(payload) == 0 {
		// gopacket leaves the transport payload empty once it decoded
		// the DNS layer itself on some link types.
		if dl, ok := pkt.Layer(layers.LayerTypeDNS).(*layers.DNS); ok {
			payload = dl.Contents
		}
	}
	var m mdns.Msg
	if payload == nil || m.Unpack(payload) != nil {
		return nil
	}
	s := answerSection{}
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *mdns.A:
			s["A "+rr.A.String()] = true
		case *mdns.AAAA:
			if a, ok := netip.AddrFromSlice(rr.AAAA); ok {
				s["AAAA "+a.Unmap().String()] = true
			}
		case *mdns.CNAME:
			s["CNAME "+strings.ToLower(strings.TrimSuffix(rr.Target, "."))] = true
		}
	}
	return s
}
