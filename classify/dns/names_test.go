package dns

import (
	"encoding/json"
	"testing"
)

func TestSanitizeName(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},
		{".", "."},
		{"WWW.Example.COM.", "www.example.com"},
		{"www.example.com", "www.example.com"},
		{"a\\.b.", "a\\.b"}, // escaped dot inside a label stays
		{"a\\.", "a\\."},    // the only dot is escaped: nothing to trim
		{"a\\\\.", "a\\\\"}, // escaped backslash then a real dot
		{"caf\xc3\xa9.fr", "caf\\195\\169.fr"},
		{"evil\n\x1b[31m.com.", "evil\\010\\027[31m.com"},
		{"del\x7f", "del\\127"},
		{"\\065BC.", "\\065bc"}, // existing \DDD escapes kept as they are
		{"..", "."},
	}
	for _, tc := range cases {
		got := SanitizeName(tc.in)
		if got != tc.want {
			t.Errorf("SanitizeName(%q) = %q, want %q", tc.in, got, tc.want)
		}
		for i := 0; i < len(got); i++ {
			if got[i] < 0x20 || got[i] > 0x7E {
				t.Errorf("SanitizeName(%q) = %q holds byte %#x", tc.in, got, got[i])
			}
		}
		if j, _ := json.Marshal(got); len(j) != len(got)+2+countJSONEscapes(got) {
			t.Errorf("SanitizeName(%q) = %q needs unexpected JSON escaping %s", tc.in, got, j)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = SanitizeName("www.example.com") }); n != 0 {
		t.Errorf("clean name allocates %v times", n)
	}
}

// countJSONEscapes counts the bytes encoding/json escapes with one extra byte
// (backslash and double quote); anything else would mean a control byte.
func countJSONEscapes(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' || s[i] == '"' {
			n++
		}
	}
	return n
}

func TestSplit(t *testing.T) {
	cases := []struct{ in, reg, sub, tld string }{
		{"www.example.co.uk", "example.co.uk", "www", "co.uk"},
		{"WWW.Example.CO.UK.", "example.co.uk", "www", "co.uk"},
		{"a.b.example.com", "example.com", "a.b", "com"},
		{"example.com", "example.com", "", "com"},
		{"co.uk", "", "", "co.uk"},
		{"com", "", "", "com"},
		{"", "", "", ""},
		{".", "", "", ""},
		{"a..com", "", "", ""},
		{"192.0.2.1", "", "", ""},
		{"2001:db8::1", "", "", ""},
		{"4.3.2.1.in-addr.arpa", "1.in-addr.arpa", "4.3.2", "in-addr.arpa"},
		{"in-addr.arpa", "", "", "in-addr.arpa"},
		{"1.0.0.0.ip6.arpa", "0.ip6.arpa", "1.0.0", "ip6.arpa"},
		{"printer.lan", "printer.lan", "", "lan"},
		{"host.local", "host.local", "", "local"},
		{"localhost", "", "", "localhost"},
		{"foo.blogspot.com", "foo.blogspot.com", "", "blogspot.com"},
	}
	for _, tc := range cases {
		reg, sub, tld := Split(tc.in)
		if reg != tc.reg || sub != tc.sub || tld != tc.tld {
			t.Errorf("Split(%q) = (%q, %q, %q), want (%q, %q, %q)", tc.in, reg, sub, tld, tc.reg, tc.sub, tc.tld)
		}
	}
}

func TestECSNames(t *testing.T) {
	if s := OpCodeString(0); s != "QUERY" {
		t.Errorf("op 0 = %q", s)
	}
	if s := OpCodeString(5); s != "UPDATE" {
		t.Errorf("op 5 = %q", s)
	}
	if s := OpCodeString(15); s != "OPCODE15" {
		t.Errorf("op 15 = %q", s)
	}
	for rc, want := range map[uint16]string{0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED", 16: "BADVERS", 23: "BADCOOKIE", 4000: "RCODE4000"} {
		if s := ResponseCodeString(rc); s != want {
			t.Errorf("rcode %d = %q, want %q", rc, s, want)
		}
	}
	for ty, want := range map[uint16]string{1: "A", 28: "AAAA", 16: "TXT", 10: "NULL", 65: "HTTPS", 123: "TYPE123"} {
		if s := TypeName(ty); s != want {
			t.Errorf("type %d = %q, want %q", ty, s, want)
		}
	}
	if s := ClassName(3); s != "CH" {
		t.Errorf("class 3 = %q", s)
	}
	all := &Message{Authoritative: true, Truncated: true, RecursionDesired: true, RecursionAvailable: true,
		AuthenticatedData: true, CheckingDisabled: true, DNSSECOK: true}
	got := HeaderFlags(nil, all)
	want := []string{"AA", "TC", "RD", "RA", "AD", "CD", "DO"}
	if len(got) != len(want) {
		t.Fatalf("HeaderFlags = %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("HeaderFlags = %v", got)
		}
	}
	if got := HeaderFlags(nil, &Message{}); len(got) != 0 {
		t.Errorf("no flags: %v", got)
	}
}

func TestPorts(t *testing.T) {
	cases := []struct {
		tr       Transport
		src, dst uint16
		dns, m   bool
	}{
		{UDP, 53000, 53, true, false},
		{UDP, 53, 53000, true, false},
		{TCP, 40000, 53, true, false},
		{UDP, 5353, 5353, true, true},
		{TCP, 5353, 40000, false, false},
		{UDP, 5355, 40000, false, false},
		{UDP, 443, 40000, false, false},
		{Transport(9), 53, 53, false, false},
	}
	for _, tc := range cases {
		if got := IsDNS(tc.tr, tc.src, tc.dst); got != tc.dns {
			t.Errorf("IsDNS(%v,%d,%d) = %v", tc.tr, tc.src, tc.dst, got)
		}
		if got := IsMDNS(tc.tr, tc.src, tc.dst); got != tc.m {
			t.Errorf("IsMDNS(%v,%d,%d) = %v", tc.tr, tc.src, tc.dst, got)
		}
	}
}
