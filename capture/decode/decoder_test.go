package decode

import (
	"encoding/binary"
	"testing"
	"time"
)

// ipv4 builds an IPv4 packet (no options) around payload.
func ipv4(id uint16, fragOff int, more bool, proto uint8, payload []byte, totalOverride int) []byte {
	b := make([]byte, 20+len(payload))
	b[0] = 0x45
	total := 20 + len(payload)
	if totalOverride > 0 {
		total = totalOverride
	}
	binary.BigEndian.PutUint16(b[2:], uint16(total))
	binary.BigEndian.PutUint16(b[4:], id)
	fl := uint16(fragOff / 8)
	if more {
		fl |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:], fl)
	b[8], b[9] = 64, proto
	copy(b[12:], []byte{192, 0, 2, 1})
	copy(b[16:], []byte{198, 51, 100, 2})
	copy(b[20:], payload)
	return b
}

func udpDatagram(sport, dport uint16, data []byte) []byte {
	b := make([]byte, 8+len(data))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
	copy(b[8:], data)
	return b
}

func TestSnappedFrameKeepsRealLength(t *testing.T) {
	d := NewDecoder(DefragLimits{})
	pkt := ipv4(1, 0, false, ProtoUDP, udpDatagram(1234, 53, make([]byte, 1000)), 0)
	var p Packet
	// Captured 64 bytes of a 1028-byte datagram.
	if r := d.Decode(&p, LinkTypeRaw, pkt[:64], 0, len(pkt)); r != OK {
		t.Fatalf("reason %v", r)
	}
	if p.IPLength != 1028 || p.PayloadLength != 1000 || len(p.Payload) != 36 || !p.Truncated() {
		t.Fatalf("ip length %d payload length %d captured %d", p.IPLength, p.PayloadLength, len(p.Payload))
	}
	// Cut inside the IP header: skipped and counted as truncated_ip.
	if r := d.Decode(&p, LinkTypeRaw, pkt[:12], 0, len(pkt)); r != SkipTruncatedIP {
		t.Fatalf("reason %v", r)
	}
}

func TestDefragOutOfOrderOverlapFirstWins(t *testing.T) {
	d := NewDecoder(DefragLimits{})
	data := make([]byte, 40)
	for i := range data {
		data[i] = byte(i)
	}
	dg := udpDatagram(1111, 2222, data) // 48 bytes
	f1 := ipv4(9, 0, true, ProtoUDP, dg[:24], 0)
	f2 := ipv4(9, 24, false, ProtoUDP, dg[24:], 0)
	// An overlapping fragment that tries to rewrite bytes 16..32.
	evil := make([]byte, 16)
	for i := range evil {
		evil[i] = 0xee
	}
	f3 := ipv4(9, 16, true, ProtoUDP, evil, 0)
	var p Packet
	for _, f := range [][]byte{f2, f1} {
		r := d.Decode(&p, LinkTypeRaw, f, 0, len(f))
		if f[6]&0x20 == 0 && r != SkipFragmentHeld {
			t.Fatalf("last fragment first: %v", r)
		}
		if r == OK {
			break
		}
	}
	if p.SrcPort != 1111 || p.DstPort != 2222 || len(p.Payload) != 40 || p.Payload[39] != 39 || !p.Reassembled {
		t.Fatalf("reassembled %+v", p)
	}
	// Same again with the overlap arriving between: the first bytes win.
	d = NewDecoder(DefragLimits{})
	d.Decode(&p, LinkTypeRaw, f1, 0, len(f1))
	d.Decode(&p, LinkTypeRaw, f3, 0, len(f3))
	if r := d.Decode(&p, LinkTypeRaw, f2, 0, len(f2)); r != OK {
		t.Fatalf("reason %v", r)
	}
	// Datagram bytes 16..24 arrived first in f1 and stay; 24..32 arrived
	// first in the overlapping fragment, before f2, and stay too.
	for i, c := range p.Payload {
		off := i + 8 // payload index to datagram offset (UDP header)
		want := byte(i)
		if off >= 24 && off < 32 {
			want = 0xee
		}
		if c != want {
			t.Fatalf("datagram byte %d = %#x, want %#x (first arrival wins)", off, c, want)
		}
	}
}

func TestDefragBoundsAndTimeouts(t *testing.T) {
	d := NewDecoder(DefragLimits{MaxDatagrams: 4, Timeout: time.Second})
	var p Packet
	for i := 0; i < 10; i++ {
		f := ipv4(uint16(100+i), 0, true, ProtoUDP, make([]byte, 16), 0)
		if r := d.Decode(&p, LinkTypeRaw, f, int64(i), len(f)); r != SkipFragmentHeld {
			t.Fatalf("reason %v", r)
		}
	}
	st := d.Defrag.Stats()
	if st.Pending != 4 || st.Evicted != 6 {
		t.Fatalf("stats %+v", st)
	}
	// Two seconds later the held datagrams time out.
	f := ipv4(999, 0, true, ProtoUDP, make([]byte, 16), 0)
	d.Decode(&p, LinkTypeRaw, f, 2*int64(time.Second), len(f))
	if st := d.Defrag.Stats(); st.Timeouts != 4 || st.Pending != 1 {
		t.Fatalf("stats %+v", st)
	}
	d.Defrag.Flush()
	if st := d.Defrag.Stats(); st.Pending != 0 || st.BytesHeld != 0 || st.Timeouts != 5 {
		t.Fatalf("after flush %+v", st)
	}
}

func TestLinkTypesAndStacks(t *testing.T) {
	inner := ipv4(1, 0, false, ProtoUDP, udpDatagram(5353, 53, []byte("x")), 0)
	eth := func(et uint16, body []byte) []byte {
		b := make([]byte, 14, 14+len(body))
		binary.BigEndian.PutUint16(b[12:], et)
		return append(b, body...)
	}
	vlan := func(id, et uint16, body []byte) []byte {
		b := []byte{byte(id >> 8), byte(id), byte(et >> 8), byte(et)}
		return append(b, body...)
	}
	null := append([]byte{2, 0, 0, 0}, inner...)
	sll2 := append(make([]byte, 20), inner...)
	binary.BigEndian.PutUint16(sll2[0:], 0x0800)
	qinq := eth(0x88a8, vlan(100, 0x8100, vlan(20, 0x0800, inner)))
	mpls := eth(0x8847, append([]byte{0, 0x01, 0x01, 64}, inner...)) // one label, bottom of stack
	for name, tc := range map[string]struct {
		link  uint32
		frame []byte
		vlans int
	}{
		"null": {LinkTypeNull, null, 0}, "sll2": {LinkTypeSLL2, sll2, 0}, "qinq": {LinkTypeEthernet, qinq, 2}, "mpls": {LinkTypeEthernet, mpls, 0},
	} {
		var p Packet
		d := NewDecoder(DefragLimits{})
		if r := d.Decode(&p, tc.link, tc.frame, 0, len(tc.frame)); r != OK {
			t.Errorf("%s: %v", name, r)
			continue
		}
		if p.SrcPort != 5353 || p.DstPort != 53 || int(p.NumVLANs) != tc.vlans {
			t.Errorf("%s: %+v", name, p)
		}
		if tc.vlans == 2 && (p.VLANs[0] != 100 || p.VLANs[1] != 20) {
			t.Errorf("%s: vlans %v", name, p.VLANs)
		}
	}
	var p Packet
	if r := NewDecoder(DefragLimits{}).Decode(&p, 147, inner, 0, len(inner)); r != SkipUnknownLink {
		t.Errorf("unknown link type: %v", r)
	}
}

// nflogFrame builds an NFLOG frame: the header, a prefix attribute, a
// 5-byte attribute (padded) and the payload attribute, with lengths and
// types in the given byte order.
func nflogFrame(order binary.ByteOrder, ip []byte) []byte {
	b := []byte{2, 0, 0, 20} // AF_INET, version 0, resource id 20
	attr := func(typ uint16, v []byte) {
		var h [4]byte
		order.PutUint16(h[0:], uint16(4+len(v)))
		order.PutUint16(h[2:], typ)
		b = append(append(b, h[:]...), v...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	attr(1, []byte{0x08, 0x00, 1, 0}) // packet header
	attr(10, []byte("drop\x00"))      // log prefix, padded
	attr(nflogPayload, ip)
	return b
}

func TestNFLOG(t *testing.T) {
	inner := ipv4(1, 0, false, ProtoUDP, udpDatagram(5353, 53, []byte("query")), 0)
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		frame := nflogFrame(order, inner)
		var p Packet
		if r := NewDecoder(DefragLimits{}).Decode(&p, LinkTypeNFLOG, frame, 0, len(frame)); r != OK {
			t.Fatalf("%v: %v", order, r)
		}
		if p.SrcPort != 5353 || p.DstPort != 53 || string(p.Payload) != "query" || p.IPLength != len(inner) {
			t.Fatalf("%v: %+v", order, p)
		}
		// Cut by the snap length inside the payload: decoded as far as
		// captured, with the real IP length.
		snapped := frame[:len(frame)-5] // 3 bytes of padding, 2 of the payload
		if r := NewDecoder(DefragLimits{}).Decode(&p, LinkTypeNFLOG, snapped, 0, len(frame)); r != OK || p.IPLength != len(inner) || !p.Truncated() {
			t.Fatalf("%v snapped: %v %+v", order, r, p)
		}
	}
	for name, frame := range map[string][]byte{
		"short header":   {2, 0},
		"no payload":     nflogFrame(binary.LittleEndian, nil)[:20],
		"zero length":    {2, 0, 0, 20, 0, 0, 9, 0},
		"overrun":        {2, 0, 0, 20, 0xff, 0x7f, 1, 0, 0, 0, 0, 0},
		"payload not IP": nflogFrame(binary.LittleEndian, []byte{0x15, 0, 0, 0}),
	} {
		var p Packet
		if r := NewDecoder(DefragLimits{}).Decode(&p, LinkTypeNFLOG, frame, 0, len(frame)); r == OK {
			t.Errorf("%s: decoded %+v", name, p)
		}
	}
}

// TestFragmentMarkWithoutDefrag: a decoder without a defragmenter marks IP
// fragments (first or not, v4 or v6) so that a caller can hand them to one
// that has it; a whole packet is not marked.
func TestFragmentMarkWithoutDefrag(t *testing.T) {
	udp := udpDatagram(5353, 53, make([]byte, 40))
	first := ipv4(7, 0, true, ProtoUDP, udp[:24], 0)
	later := ipv4(7, 24, false, ProtoUDP, udp[24:], 0)
	whole := ipv4(8, 0, false, ProtoUDP, udp, 0)
	v6frag := make([]byte, 40+8+16)
	v6frag[0], v6frag[6], v6frag[7] = 0x60, 44, 64 // next header: fragment
	binary.BigEndian.PutUint16(v6frag[4:], 8+16)
	v6frag[40] = ProtoUDP
	binary.BigEndian.PutUint16(v6frag[42:], 0x0001) // offset 0, more fragments
	copy(v6frag[48:], udp[:16])
	for name, tc := range map[string]struct {
		frame []byte
		link  uint32
		frag  bool
	}{
		"first v4 fragment": {first, LinkTypeRaw, true},
		"later v4 fragment": {later, LinkTypeRaw, true},
		"v6 fragment":       {v6frag, LinkTypeRaw, true},
		"whole datagram":    {whole, LinkTypeRaw, false},
	} {
		var p Packet
		(&Decoder{}).Decode(&p, tc.link, tc.frame, 0, len(tc.frame))
		if p.Fragment != tc.frag {
			t.Errorf("%s: Fragment %v", name, p.Fragment)
		}
		// With a defragmenter the first fragment is held, not marked.
		if tc.frag && name != "later v4 fragment" {
			if r := NewDecoder(DefragLimits{}).Decode(&p, tc.link, tc.frame, 0, len(tc.frame)); r == OK || p.Fragment {
				t.Errorf("%s with a defragmenter: %v, Fragment %v", name, r, p.Fragment)
			}
		}
	}
}
