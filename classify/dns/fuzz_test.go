package dns

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
	"github.com/phonehome/phonehome/internal/testcorpus"
)

// seedCaptures hold the DNS the fuzz targets start from: compression edge
// cases, malformed messages, TCP, mDNS, EDNS and DNSSEC.
var seedCaptures = []string{
	"tcpdump/dns_fwdptr.pcap",
	"suricata-verify/dns__dns-forward-pointer.pcap",
	"zeek/dns__max-compression-depth.pcap",
	"zeek/dns__dns-invalid-names.pcap",
	"tcpdump/dns-badlabel.pcap",
	"suricata-verify/dns__dns-corrupt-additionals.pcap",
	"suricata-verify/dns__dns-truncated-rname.pcap",
	"suricata-verify/dns-udp-junkrequest-first.pcap",
	"zeek/dns__mdns.pcap",
	"tcpdump/edns-opts.pcap",
	"tcpdump/dnssec.pcap",
	"tcpdump/dns_tcp.pcap",
	"zeek/dns__dynamic-update.pcap",
	"zeek/dns-svcb.pcap",
}

// corpusPayloads returns the DNS messages of the seed captures.
func corpusPayloads(tb testing.TB) [][]byte {
	var out [][]byte
	for _, rel := range seedCaptures {
		_, _, err := captureDNS(tb, testcorpus.Path(tb, rel), func(p []byte) { out = append(out, bytes.Clone(p)) })
		if err != nil {
			tb.Fatalf("%s: %v", rel, err)
		}
	}
	return out
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7E {
			return false
		}
	}
	return true
}

func checkParse(t *testing.T, b []byte) {
	m, anomalies, err := Parse(b)
	if err != nil {
		if m != nil || len(b) >= headerLen {
			t.Fatalf("err %v with %d bytes", err, len(b))
		}
		return
	}
	if len(m.Questions) > int(m.QDCount) || len(m.Answers) > int(m.ANCount) ||
		len(m.Authorities) > int(m.NSCount) || len(m.Additionals) > int(m.ARCount) {
		t.Fatalf("more entries than counted: %+v", m)
	}
	for _, q := range m.Questions {
		if !printable(q.Name) || q.Name == "" {
			t.Fatalf("question name %q", q.Name)
		}
	}
	for _, sec := range [][]Record{m.Answers, m.Authorities, m.Additionals} {
		for _, rr := range sec {
			if !printable(rr.Name) || !printable(rr.Data) {
				t.Fatalf("record %+v not printable", rr)
			}
		}
	}
	if len(anomalies) > 0 {
		return
	}
	// A message we accept whole must be one miekg accepts whole, with the
	// same records.
	var ref mdns.Msg
	if err := ref.Unpack(b); err != nil {
		t.Fatalf("Parse accepted, miekg Unpack: %v", err)
	}
	if len(ref.Question) != len(m.Questions) || len(ref.Answer) != len(m.Answers) || len(ref.Ns) != len(m.Authorities) {
		t.Fatalf("sections differ from miekg: %d/%d %d/%d %d/%d", len(m.Questions), len(ref.Question),
			len(m.Answers), len(ref.Answer), len(m.Authorities), len(ref.Ns))
	}
	if int(m.Rcode) != ref.Rcode {
		t.Fatalf("rcode %d, miekg %d", m.Rcode, ref.Rcode)
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range corpusPayloads(f) {
		f.Add(p)
	}
	f.Add(typicalResponse(f))
	f.Add(chainMsg(MaxCompressionPointers))
	f.Add(cat(header(1, 0, 1, 0, 0, 0), []byte{0xC0, 14, 0}, typeA))
	f.Add(cat(header(1, 0x8000, 65535, 65535, 65535, 65535), qname, typeA))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkParse(t, b)
	})
}

// frameAll frames stream in one call, copying the messages out.
func frameAll(stream []byte) ([][]byte, int) {
	var f TCPFramer
	var got [][]byte
	for _, m := range f.Feed(stream, nil) {
		got = append(got, bytes.Clone(m))
	}
	return got, f.Buffered()
}

func FuzzTCPFramer(f *testing.F) {
	payloads := corpusPayloads(f)
	f.Add(frame(payloads...), []byte{1, 7, 200, 3})
	f.Add(frame(typicalResponse(f), nil, header(2, 0, 0, 0, 0, 0)), []byte{0, 1, 2})
	f.Add([]byte{0xFF, 0xFF, 1, 2, 3}, []byte{1})
	f.Fuzz(func(t *testing.T, stream, cuts []byte) {
		want, wantBuffered := frameAll(stream)
		var fr TCPFramer
		var got [][]byte
		rest := stream
		for _, c := range cuts {
			n := min(int(c), len(rest))
			for _, m := range fr.Feed(rest[:n], nil) {
				got = append(got, bytes.Clone(m))
			}
			rest = rest[n:]
			if fr.Buffered() > MaxTCPBuffered {
				t.Fatalf("buffered %d", fr.Buffered())
			}
		}
		for _, m := range fr.Feed(rest, nil) {
			got = append(got, bytes.Clone(m))
		}
		if len(got) != len(want) || fr.Buffered() != wantBuffered {
			t.Fatalf("split framing: %d messages (%d buffered), whole: %d (%d)", len(got), fr.Buffered(), len(want), wantBuffered)
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("message %d differs", i)
			}
		}
		// The whole-stream framing must match a direct walk of the prefixes.
		off, n := 0, 0
		for off+2 <= len(stream) {
			l := int(binary.BigEndian.Uint16(stream[off:]))
			if off+2+l > len(stream) {
				break
			}
			if l > 0 {
				if n >= len(want) || !bytes.Equal(want[n], stream[off+2:off+2+l]) {
					t.Fatalf("message %d at %d wrong", n, off)
				}
				n++
			}
			off += 2 + l
		}
		if n != len(want) || wantBuffered != len(stream)-off {
			t.Fatalf("walk found %d messages, %d left; framer %d, %d", n, len(stream)-off, len(want), wantBuffered)
		}
	})
}

// TestCompressionEdgeCaptures checks the captures built to attack name
// decompression: each message is refused with the expected reason or read
// whole, within bounded work (the test would hang or time out otherwise).
func TestCompressionEdgeCaptures(t *testing.T) {
	want := map[string]string{
		"tcpdump/dns_fwdptr.pcap":                       AnomalyForwardPointer,
		"suricata-verify/dns__dns-forward-pointer.pcap": AnomalyForwardPointer,
		"zeek/dns__dns-invalid-names.pcap":              AnomalyPointerLoop,
		"tcpdump/dns-badlabel.pcap":                     AnomalyNameTooLong,
	}
	for rel, reason := range want {
		found := false
		_, _, err := captureDNS(t, testcorpus.Path(t, rel), func(p []byte) {
			_, anomalies, _ := Parse(p)
			for _, a := range anomalies {
				if strings.Contains(a, reason) {
					found = true
				}
			}
		})
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if !found {
			t.Errorf("%s: no message flagged %q", rel, reason)
		}
	}
	// Zeek's max-compression-depth trace stays within our pointer limit: read
	// whole, as Zeek and tshark read it.
	n := 0
	_, _, err := captureDNS(t, testcorpus.Path(t, "zeek/dns__max-compression-depth.pcap"), func(p []byte) {
		m, anomalies, err := Parse(p)
		if err != nil || len(anomalies) != 0 || len(m.Answers) != 7 {
			t.Errorf("max-compression-depth: %v %q %+v", err, anomalies, m)
		}
		n++
	})
	if err != nil || n == 0 {
		t.Fatalf("max-compression-depth: %d messages, %v", n, err)
	}
}
