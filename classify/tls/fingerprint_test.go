package tls

import (
	"strings"
	"testing"
)

func mustParse(t testing.TB, msg []byte) *ClientHello {
	t.Helper()
	c, err := ParseClientHello(msg)
	if err != nil {
		t.Fatalf("ParseClientHello: %v", err)
	}
	return c
}

func TestIsGREASE(t *testing.T) {
	n := 0
	for v := 0; v <= 0xffff; v++ {
		if IsGREASE(uint16(v)) {
			n++
			if v != int(v>>12)<<12|0x0a0a|int(v>>12)<<4 {
				t.Errorf("IsGREASE(%#04x) = true", v)
			}
		}
	}
	if n != 16 {
		t.Errorf("%d GREASE values, want 16", n)
	}
	for _, v := range []uint16{0x0a0a, 0x1a1a, 0xfafa} {
		if !IsGREASE(v) {
			t.Errorf("IsGREASE(%#04x) = false", v)
		}
	}
	for _, v := range []uint16{0x0a1a, 0x0b0b, 0x0000, 0xaaab} {
		if IsGREASE(v) {
			t.Errorf("IsGREASE(%#04x) = true", v)
		}
	}
}

// anchors.md 4.2: salesforce/ja3 vectors.
func TestJA3Vectors(t *testing.T) {
	c := mustParse(t, buildClientHello(helloSpec{
		version: 769,
		ciphers: []uint16{47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4},
		exts:    []ext{extSNI("a.example"), extGroups(23, 24, 25), extFormats(0)},
	}))
	raw, sum := c.JA3()
	if raw != "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0" || sum != "ada70206e40642a3e4461f35503241d5" {
		t.Errorf("JA3 = %q %s", raw, sum)
	}

	c = mustParse(t, buildClientHello(helloSpec{
		version: 769,
		ciphers: []uint16{4, 5, 10, 9, 100, 98, 3, 6, 19, 18, 99},
		noExts:  true,
	}))
	raw, sum = c.JA3()
	if raw != "769,4-5-10-9-100-98-3-6-19-18-99,,," || sum != "de350869b8c85de67a350c8d186f11e6" {
		t.Errorf("JA3 = %q %s", raw, sum)
	}

	// GREASE in ciphers, extensions and groups is dropped.
	c = mustParse(t, buildClientHello(helloSpec{
		version: 769,
		ciphers: []uint16{0x1a1a, 47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4},
		exts:    []ext{{0x2a2a, nil}, extSNI("a.example"), extGroups(0x3a3a, 23, 24, 25), extFormats(0), {0xfafa, []byte{0}}},
	}))
	if _, sum = c.JA3(); sum != "ada70206e40642a3e4461f35503241d5" {
		t.Errorf("JA3 with GREASE = %s", sum)
	}
}

// anchors.md 4.2: suricata-verify tls-ja3s.
func TestJA3SVector(t *testing.T) {
	msg := buildServerHello(serverSpec{version: 771, cipher: 49199, exts: []ext{
		{0xff01, []byte{0}}, {0x0000, nil}, {0x000b, []byte{1, 0}}, extALPN("h2"), {0x0017, nil},
	}})
	s, err := ParseServerHello(msg)
	if err != nil {
		t.Fatal(err)
	}
	raw, sum := s.JA3S()
	if raw != "771,49199,65281-0-11-16-23" || sum != "5d79edf64e03689ff559a54e9d9487bc" {
		t.Errorf("JA3S = %q %s", raw, sum)
	}
	if s.ALPN != "h2" || s.HelloRetryRequest || s.Version() != 0x0303 {
		t.Errorf("ServerHello = %+v", s)
	}
}

// anchors.md 4.3 / JA4.md: the specification's worked example.
func TestJA4SpecVector(t *testing.T) {
	c := mustParse(t, buildClientHello(specHello()))
	cases := []struct{ name, got, want string }{
		{"JA4", c.JA4(false), "t13d1516h2_8daaf6152771_e5627efa2ab1"},
		{"JA4_o", c.JA4O(false), "t13d1516h2_acb858a92679_18f69afefd3d"},
		{"JA4_r", c.JA4R(false), "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601"},
		{"JA4_ro", c.JA4RO(false), "t13d1516h2_1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035_001b,0000,0033,0010,4469,0017,002d,000d,0005,0023,0012,002b,ff01,000b,000a,0015_0403,0804,0401,0503,0805,0501,0806,0601"},
		{"JA4 quic", c.JA4(true), "q13d1516h2_8daaf6152771_e5627efa2ab1"},
	}
	for _, tc := range cases {
		if tc.got != tc.want {
			t.Errorf("%s = %s\n want %s", tc.name, tc.got, tc.want)
		}
	}
	if c.ServerName != "example.com" {
		t.Errorf("ServerName = %q", c.ServerName)
	}

	// Signature algorithms extension present but empty: no '_' (spec).
	h := specHello()
	for i, e := range h.exts {
		if e.typ == ExtSignatureAlgorithms {
			h.exts[i] = extSigAlgs()
		}
	}
	c = mustParse(t, buildClientHello(h))
	if got := c.JA4(false); got != "t13d1516h2_8daaf6152771_6d807ffa2a79" {
		t.Errorf("JA4 without signature algorithms = %s", got)
	}

	// GREASE in signature_algorithms is ignored ("ignore GREASE values
	// anywhere"); the FoxIO Rust tool would keep it.
	for i, e := range h.exts {
		if e.typ == ExtSignatureAlgorithms {
			h.exts[i] = extSigAlgs(0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601, 0x5a5a)
		}
	}
	c = mustParse(t, buildClientHello(h))
	if got := c.JA4(false); got != "t13d1516h2_8daaf6152771_e5627efa2ab1" {
		t.Errorf("JA4 with GREASE signature algorithm = %s", got)
	}
}

func TestJA4ALPNMarker(t *testing.T) {
	cases := []struct {
		alpn []string // nil: no ALPN extension
		want string
	}{
		{nil, "00"},
		{[]string{}, "00"},
		{[]string{"", "h2"}, "00"},
		{[]string{"h2"}, "h2"},
		{[]string{"http/1.1", "h2"}, "h1"},
		{[]string{"b"}, "bb"}, // spec; FoxIO Rust gives b0, Python b
		{[]string{"\xab"}, "ab"},
		{[]string{"\xab\xcd"}, "ad"},
		{[]string{"\x30\xab"}, "3b"},
		{[]string{"\x30\x31\xab\xcd"}, "3d"},
		{[]string{"\x30\xab\xcd\x31"}, "01"},
		{[]string{"h3-29"}, "h9"},
		{[]string{"-x"}, "28"}, // '-' (0x2d) is not alphanumeric
	}
	for _, tc := range cases {
		h := helloSpec{version: 0x0303, ciphers: []uint16{0x1301}, exts: []ext{extSigAlgs(0x0403)}}
		if tc.alpn != nil {
			h.exts = append(h.exts, extALPN(tc.alpn...))
		}
		c, err := ParseClientHello(buildClientHello(h))
		if err != nil {
			t.Fatalf("%q: %v", tc.alpn, err)
		}
		got := c.JA4(false)[8:10]
		if got != tc.want {
			t.Errorf("ALPN %q: marker %q, want %q (%s)", tc.alpn, got, tc.want, c.JA4(false))
		}
	}
}

func TestJA4Edges(t *testing.T) {
	many := make([]uint16, 120)
	for i := range many {
		many[i] = uint16(0x0100 + i)
	}
	manyExts := make([]ext, 120)
	for i := range manyExts {
		manyExts[i] = ext{uint16(0x1000 + i), nil}
	}
	cases := []struct {
		name string
		h    helloSpec
		want string
	}{
		{"no ciphers no extensions", helloSpec{version: 0x0301, noExts: true},
			"t10i000000_000000000000_000000000000"},
		{"only SNI and ALPN", helloSpec{version: 0x0303, ciphers: []uint16{0x002f}, exts: []ext{extSNI("x"), extALPN("h2")}},
			"t12d0102h2_" + sha12("002f") + "_000000000000"},
		{"counts capped at 99", helloSpec{version: 0x0302, ciphers: many, exts: manyExts}, "t11i9999"},
		{"supported_versions beats legacy", helloSpec{version: 0x0303, ciphers: []uint16{1}, exts: []ext{extVersions(0x0a0a, 0x0303, 0x0304)}}, "t13i0101"},
		{"only GREASE versions falls back", helloSpec{version: 0x0301, ciphers: []uint16{1}, exts: []ext{extVersions(0x0a0a)}}, "t10i0101"},
		{"unknown version", helloSpec{version: 0x7f1c, ciphers: []uint16{1}, noExts: true}, "t00i0100"},
		{"ssl3", helloSpec{version: 0x0300, ciphers: []uint16{1}, noExts: true}, "t" + "s3" + "i0100"},
		{"SCSV counts as cipher", helloSpec{version: 0x0303, ciphers: []uint16{0x00ff, 0x5600, 0xfe00, 0x0a0a}, noExts: true}, "t12i0300"},
	}
	for _, tc := range cases {
		c, err := ParseClientHello(buildClientHello(tc.h))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := c.JA4(false); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: JA4 = %s, want prefix %s", tc.name, got, tc.want)
		}
	}
}

func TestNames(t *testing.T) {
	if p, v := VersionString(0x0303); p != "tls" || v != "1.2" {
		t.Errorf("VersionString(0x0303) = %s %s", p, v)
	}
	if p, v := VersionString(0x0300); p != "ssl" || v != "3.0" {
		t.Errorf("VersionString(0x0300) = %s %s", p, v)
	}
	if p, v := VersionString(0x1234); p != "" || v != "" {
		t.Errorf("VersionString(0x1234) = %s %s", p, v)
	}
	for id, want := range map[uint16]string{
		0x1301: "TLS_AES_128_GCM_SHA256",
		0xc02f: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
		0x00ff: "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
		0x009e: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
		0x1234: "0x1234",
		0xabcd: "0xabcd",
	} {
		if got := CipherName(id); got != want {
			t.Errorf("CipherName(%#04x) = %s, want %s", id, got, want)
		}
	}
	if got := Sanitize("h2\x00\n\\"); got != `h2\x00\x0a\\` {
		t.Errorf("Sanitize = %q", got)
	}
}
