package decode_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/phonehome/phonehome/capture/decode"
	"github.com/phonehome/phonehome/capture/pcapfile"
	"github.com/phonehome/phonehome/internal/testcorpus"
)

// fuzzLinkTypes are the link types Decode reads; the fuzzer picks one with
// the input's first byte.
var fuzzLinkTypes = []uint32{
	decode.LinkTypeEthernet, decode.LinkTypeRaw, decode.LinkTypeRawOld, decode.LinkTypeRawOld2,
	decode.LinkTypeIPv4, decode.LinkTypeIPv6, decode.LinkTypeNull, decode.LinkTypeLoop,
	decode.LinkTypeSLL, decode.LinkTypeSLL2, decode.LinkTypePPP, decode.LinkTypePPPHDLC,
	decode.LinkTypeNFLOG,
}

// fuzzSeedCaptures hold encapsulations, fragments and the usual protocols.
var fuzzSeedCaptures = []string{
	"ja4/gre-erspan-vxlan.pcap", "ja4/tcpdump-geneve.pcap", "arkime/gtp-iphone.pcap", "zeek/tunnels__Teredo.pcap",
	"zeek/pppoe-over-qinq.pcap", "arkime/mpls-basic.pcap", "zeek/ipv6-fragmented-dns.pcap",
	"suricata-verify/defrag__bug-6887-defrag-ipv4-tcp-syn.pcap", "zeek/linux_dlt_sll2.pcap", "arkime/ssl-selfsign.pcap",
	"suricata-verify/decode-sll2-01.pcap", "ja4/tls12.pcap", "tcpdump/nflog.pcap",
}

func linkIndex(lt uint32) byte {
	for i, v := range fuzzLinkTypes {
		if v == lt {
			return byte(i)
		}
	}
	return 0
}

// FuzzDecode decodes arbitrary bytes as a frame of each link type, twice
// with the same decoder so the defragmenter holds state: Decode must not
// panic, an unreassembled packet's payload must lie within the frame, and a
// TCP or UDP payload must not exceed the length the IP header gives.
func FuzzDecode(f *testing.F) {
	ip4udp := []byte{0x45, 0, 0, 36, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0, 53, 0, 16, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}
	f.Add(linkIndex(decode.LinkTypeRaw), ip4udp)
	f.Add(linkIndex(decode.LinkTypeEthernet), append([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0}, ip4udp...))
	frag := bytes.Clone(ip4udp)
	frag[6] = 0x20 // more fragments
	f.Add(linkIndex(decode.LinkTypeRaw), frag)
	f.Add(linkIndex(decode.LinkTypeNull), append([]byte{2, 0, 0, 0}, ip4udp...))
	for _, rel := range fuzzSeedCaptures {
		r, err := pcapfile.Open(testcorpus.Path(f, rel))
		if err != nil {
			continue
		}
		for i := 0; i < 40; i++ {
			p, err := r.Next()
			if err != nil {
				break
			}
			f.Add(linkIndex(uint32(p.LinkType)), bytes.Clone(p.Data))
		}
		r.Close()
	}
	f.Fuzz(func(t *testing.T, sel byte, frame []byte) {
		lt := fuzzLinkTypes[int(sel)%len(fuzzLinkTypes)]
		d := decode.NewDecoder(decode.DefragLimits{})
		var p decode.Packet
		for i := 0; i < 2; i++ {
			r := d.Decode(&p, lt, frame, int64(i+1)*1e9, len(frame)+int(binary.BigEndian.Uint16(append(frame, 0, 0)[:2])%64))
			if r != decode.OK {
				continue
			}
			if p.CaptureLength != len(frame) {
				t.Fatalf("CaptureLength %d, frame %d", p.CaptureLength, len(frame))
			}
			if (p.Proto == decode.ProtoTCP || p.Proto == decode.ProtoUDP) && p.PayloadLength < len(p.Payload) {
				t.Fatalf("proto %d: PayloadLength %d < captured payload %d", p.Proto, p.PayloadLength, len(p.Payload))
			}
			if !p.Reassembled && !bytes.Contains(frame, p.Payload) {
				t.Fatalf("payload of %d bytes is not within the %d-byte frame", len(p.Payload), len(frame))
			}
		}
	})
}
