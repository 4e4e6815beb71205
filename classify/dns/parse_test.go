package dns

import (
	"encoding/binary"
	"errors"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
)

func mustRR(t testing.TB, s string) mdns.RR {
	t.Helper()
	rr, err := mdns.NewRR(s)
	if err != nil {
		t.Fatalf("NewRR(%q): %v", s, err)
	}
	return rr
}

func pack(t testing.TB, m *mdns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatalf("pack: %v", err)
	}
	return b
}

// typicalResponse is a compressed response with a CNAME chain, A and AAAA
// answers, an NS authority and an OPT record with an extended rcode.
func typicalResponse(t testing.TB) []byte {
	q := new(mdns.Msg)
	q.SetQuestion("WWW.Example.COM.", mdns.TypeA)
	r := new(mdns.Msg)
	r.SetReply(q)
	r.Id = 0xBEEF
	r.Authoritative = true
	r.RecursionAvailable = true
	r.AuthenticatedData = true
	r.Compress = true
	r.Answer = []mdns.RR{
		mustRR(t, "WWW.Example.COM. 300 IN CNAME edge.Example.NET."),
		mustRR(t, "edge.example.net. 60 IN A 192.0.2.10"),
		mustRR(t, "edge.example.net. 60 IN A 192.0.2.11"),
		mustRR(t, "edge.example.net. 60 IN AAAA 2001:db8::1"),
		mustRR(t, "example.com. 60 IN MX 10 mail.example.com."),
		mustRR(t, `example.com. 60 IN TXT "v=spf1 -all" "a\009b"`),
	}
	r.Ns = []mdns.RR{mustRR(t, "example.net. 3600 IN NS ns1.example.net.")}
	r.Extra = []mdns.RR{mustRR(t, "ns1.example.net. 3600 IN A 198.51.100.1")}
	r.SetEdns0(1232, true)
	r.IsEdns0().SetExtendedRcode(mdns.RcodeBadVers) // 16: high bits in OPT, low bits 0 in header
	r.Rcode = mdns.RcodeBadVers
	return pack(t, r)
}

func TestParseTypicalResponse(t *testing.T) {
	b := typicalResponse(t)
	m, anomalies, err := Parse(b)
	if err != nil || len(anomalies) != 0 {
		t.Fatalf("Parse: err=%v anomalies=%v", err, anomalies)
	}
	if m.ID != 0xBEEF || !m.Response || !m.Authoritative || !m.RecursionDesired || !m.RecursionAvailable ||
		!m.AuthenticatedData || m.Truncated || m.CheckingDisabled || m.Opcode != mdns.OpcodeQuery {
		t.Errorf("header = %+v", m)
	}
	if !m.EDNS || !m.DNSSECOK || m.UDPSize != 1232 || m.Rcode != mdns.RcodeBadVers || m.HeaderRcode != 0 {
		t.Errorf("edns: EDNS=%v DO=%v size=%d rcode=%d header=%d", m.EDNS, m.DNSSECOK, m.UDPSize, m.Rcode, m.HeaderRcode)
	}
	if m.QDCount != 1 || m.ANCount != 6 || m.NSCount != 1 || m.ARCount != 2 {
		t.Errorf("counts %d %d %d %d", m.QDCount, m.ANCount, m.NSCount, m.ARCount)
	}
	wantQ := []Question{{Name: "www.example.com", Type: mdns.TypeA, Class: mdns.ClassINET}}
	if !reflect.DeepEqual(m.Questions, wantQ) {
		t.Errorf("questions = %+v", m.Questions)
	}
	wantA := []Record{
		{"www.example.com", mdns.TypeCNAME, mdns.ClassINET, 300, "edge.example.net"},
		{"edge.example.net", mdns.TypeA, mdns.ClassINET, 60, "192.0.2.10"},
		{"edge.example.net", mdns.TypeA, mdns.ClassINET, 60, "192.0.2.11"},
		{"edge.example.net", mdns.TypeAAAA, mdns.ClassINET, 60, "2001:db8::1"},
		{"example.com", mdns.TypeMX, mdns.ClassINET, 60, "10 mail.example.com."},
		{"example.com", mdns.TypeTXT, mdns.ClassINET, 60, `"v=spf1 -all" "a\009b"`},
	}
	if !reflect.DeepEqual(m.Answers, wantA) {
		t.Errorf("answers:\n got %+v\nwant %+v", m.Answers, wantA)
	}
	if len(m.Authorities) != 1 || m.Authorities[0].Data != "ns1.example.net" {
		t.Errorf("authorities = %+v", m.Authorities)
	}
	if len(m.Additionals) != 1 || m.Additionals[0].Data != "198.51.100.1" {
		t.Errorf("additionals (OPT must be excluded) = %+v", m.Additionals)
	}
	if got := HeaderFlags(nil, m); !slices.Equal(got, []string{"AA", "RD", "RA", "AD", "DO"}) {
		t.Errorf("HeaderFlags = %v", got)
	}
	if got := ResponseCodeString(m.Rcode); got != "BADVERS" {
		t.Errorf("ResponseCodeString = %q", got)
	}
}

func TestParseUnknownTypeAndNonASCIIName(t *testing.T) {
	r := new(mdns.Msg)
	r.SetQuestion("caf\\195\\169.Example.", 123)
	r.Response = true
	r.Answer = []mdns.RR{&mdns.RFC3597{Hdr: mdns.RR_Header{Name: "caf\\195\\169.Example.", Rrtype: 123, Class: mdns.ClassINET, Ttl: 5}, Rdata: "0a0b"}}
	m, anomalies, err := Parse(pack(t, r))
	if err != nil || len(anomalies) != 0 {
		t.Fatalf("Parse: %v %v", err, anomalies)
	}
	if m.Questions[0].Name != `caf\195\169.example` || m.Questions[0].Type != 123 {
		t.Errorf("question = %+v", m.Questions[0])
	}
	if a := m.Answers[0]; a.Data != `\# 2 0a0b` || TypeName(a.Type) != "TYPE123" {
		t.Errorf("answer = %+v", a)
	}
}

// header builds a 12-byte header.
func header(id, flags, qd, an, ns, ar uint16) []byte {
	b := make([]byte, 12)
	for i, v := range []uint16{id, flags, qd, an, ns, ar} {
		binary.BigEndian.PutUint16(b[2*i:], v)
	}
	return b
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

var (
	qname   = []byte("\x03www\x07example\x03com\x00") // at offset 12 when first
	typeA   = []byte{0, 1, 0, 1}
	ttlA    = []byte{0, 0, 0, 60, 0, 4, 192, 0, 2, 1}
	ptrTo12 = []byte{0xC0, 12}
)

// chainMsg builds a response whose first answer (a private type) carries the
// name "x" followed by n pointers, each to the previous one, and whose second
// answer's owner name points at the last of them: that name follows n+1
// pointers, all backward.
func chainMsg(n int) []byte {
	msg := cat(header(1, 0x8000, 0, 2, 0, 0), []byte{0, 0xFF, 0x00, 0, 1, 0, 0, 0, 1})
	rdlen := 3 + 2*n
	msg = append(msg, byte(rdlen>>8), byte(rdlen))
	x := len(msg)
	msg = append(msg, 1, 'x', 0)
	prev := x
	for range n {
		here := len(msg)
		msg = append(msg, 0xC0|byte(prev>>8), byte(prev))
		prev = here
	}
	return cat(msg, []byte{0xC0 | byte(prev>>8), byte(prev)}, typeA, ttlA)
}

func TestParseHostile(t *testing.T) {
	tooLong := header(1, 0, 1, 0, 0, 0)
	for range 5 {
		tooLong = append(tooLong, 63)
		tooLong = append(tooLong, strings.Repeat("a", 63)...)
	}
	tooLong = append(tooLong, 0)
	tooLong = append(tooLong, typeA...)

	cases := []struct {
		name       string
		msg        []byte
		wantReason string
		wantQ      int // questions expected in the partial result
		wantAns    int
	}{
		{"forward pointer in question", cat(header(1, 0, 1, 0, 0, 0), []byte{0xC0, 14, 0}, typeA), AnomalyForwardPointer, 0, 0},
		{"self pointer", cat(header(1, 0, 1, 0, 0, 0), []byte{0xC0, 12}, typeA), AnomalyPointerLoop, 0, 0},
		{"pointer loop via forward pointer", cat(header(1, 0, 1, 0, 0, 0), []byte{1, 'a', 0xC0, 16, 0xC0, 12}, typeA), AnomalyForwardPointer, 0, 0},
		{"depth beyond limit", chainMsg(MaxCompressionPointers), AnomalyTooManyPointers, 0, 1},
		{"name too long", tooLong, AnomalyNameTooLong, 0, 0},
		{"reserved label type", cat(header(1, 0, 1, 0, 0, 0), []byte{0x40, 'a', 0}, typeA), AnomalyBadLabelType, 0, 0},
		{"truncated label", cat(header(1, 0, 1, 0, 0, 0), []byte{10, 'a', 'b'}), AnomalyTruncatedName, 0, 0},
		{"truncated question", cat(header(1, 0, 1, 0, 0, 0), qname, []byte{0, 1}), AnomalyTruncatedQuestion, 0, 0},
		{"absurd counts", cat(header(1, 0x8000, 65535, 65535, 65535, 65535), qname, typeA), AnomalyCountsExceedSize, 1, 0},
		{"answer forward pointer keeps question", cat(header(1, 0x8000, 1, 1, 0, 0), qname, typeA, []byte{0xC0, 60}, typeA, ttlA), AnomalyForwardPointer, 1, 0},
		{"truncated record keeps question", cat(header(1, 0x8000, 1, 1, 0, 0), qname, typeA, ptrTo12, typeA, ttlA[:6]), AnomalyTruncatedRecord, 1, 0},
		{"rdlength beyond message", cat(header(1, 0x8000, 1, 1, 0, 0), qname, typeA, ptrTo12, typeA, []byte{0, 0, 0, 60, 0, 40, 1, 2, 3, 4}), AnomalyTruncatedRecord, 1, 0},
		{"A with 3-byte rdata", cat(header(1, 0x8000, 1, 1, 0, 0), qname, typeA, ptrTo12, typeA, []byte{0, 0, 0, 60, 0, 3, 1, 2, 3}), AnomalyBadRdata, 1, 0},
		{"CNAME target forward pointer", cat(header(1, 0x8000, 1, 2, 0, 0), qname, typeA, ptrTo12, []byte{0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xC0, 50}, ptrTo12, typeA, ttlA), AnomalyForwardPointer, 1, 0},
		{"second answer bad keeps first", cat(header(1, 0x8000, 1, 2, 0, 0), qname, typeA, ptrTo12, typeA, ttlA, []byte{0x80, 0}), AnomalyBadLabelType, 1, 1},
		{"trailing bytes", cat(header(1, 0x8000, 1, 1, 0, 0), qname, typeA, ptrTo12, typeA, ttlA, []byte{1, 2, 3}), AnomalyTrailingBytes, 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, anomalies, err := Parse(tc.msg)
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			found := false
			for _, a := range anomalies {
				if strings.Contains(a, tc.wantReason) {
					found = true
				}
			}
			if !found {
				t.Errorf("anomalies %q lack %q", anomalies, tc.wantReason)
			}
			if len(m.Questions) != tc.wantQ || len(m.Answers) != tc.wantAns {
				t.Errorf("partial result: %d questions, %d answers; want %d, %d", len(m.Questions), len(m.Answers), tc.wantQ, tc.wantAns)
			}
			if tc.wantQ > 0 && m.Questions[0].Name != "www.example.com" && m.Questions[0].Name != "." {
				t.Errorf("question = %+v", m.Questions[0])
			}
		})
	}
}

func TestParseDepthWithinLimit(t *testing.T) {
	m, anomalies, err := Parse(chainMsg(MaxCompressionPointers - 1))
	if err != nil || len(anomalies) != 0 {
		t.Fatalf("err=%v anomalies=%q", err, anomalies)
	}
	if len(m.Answers) != 2 || m.Answers[1].Name != "x" || m.Answers[1].Data != "192.0.2.1" {
		t.Fatalf("answers = %+v", m.Answers)
	}
}

func TestParseShort(t *testing.T) {
	for n := range headerLen {
		if m, _, err := Parse(make([]byte, n)); m != nil || !errors.Is(err, ErrShortHeader) {
			t.Fatalf("len %d: m=%v err=%v", n, m, err)
		}
	}
	m, anomalies, err := Parse(header(7, 0x0100, 0, 0, 0, 0))
	if err != nil || len(anomalies) != 0 || m.ID != 7 || !m.RecursionDesired {
		t.Fatalf("empty query: %+v %v %v", m, anomalies, err)
	}
}

// TestParseAgreesWithMiekg checks that for well-formed messages Parse reports
// what miekg's own Msg.Unpack reports.
func TestParseAgreesWithMiekg(t *testing.T) {
	b := typicalResponse(t)
	var ref mdns.Msg
	if err := ref.Unpack(b); err != nil {
		t.Fatal(err)
	}
	m, _, _ := Parse(b)
	if int(m.Rcode) != ref.Rcode || len(m.Answers) != len(ref.Answer) {
		t.Fatalf("rcode %d/%d answers %d/%d", m.Rcode, ref.Rcode, len(m.Answers), len(ref.Answer))
	}
	for i, rr := range ref.Answer {
		if m.Answers[i].Type != rr.Header().Rrtype || m.Answers[i].TTL != rr.Header().Ttl {
			t.Errorf("answer %d: %+v vs %v", i, m.Answers[i], rr)
		}
		if a, ok := rr.(*mdns.A); ok && !net.ParseIP(m.Answers[i].Data).Equal(a.A) {
			t.Errorf("answer %d: %s vs %s", i, m.Answers[i].Data, a.A)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	msg := typicalResponse(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, _, err := Parse(msg); err != nil {
			b.Fatal(err)
		}
	}
}
