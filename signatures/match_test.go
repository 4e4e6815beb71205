package signatures

import (
	"net/netip"
	"slices"
	"testing"
)

// allKinds is a synthetic file using every matcher kind (vendor domains are
// .example, addresses documentation ranges).
const allKinds = `format: phonehome-signatures/v1
vendor:
  name: Acme
  policies:
    - {jurisdiction: US, instrument: Test Act, date: 2020-01-02, references: [https://acme.example/law]}
signatures:
  - id: ACME-DOM
    product: Acme AV
    purpose: update
    severity: high
    confidence: high
    description: update hosts
    references: [https://acme.example/doc]
    match:
      - domain: upd.acme.example
        ports: [443, 8000-8010]
      - domain_suffix: cdn.acme.example
  - id: ACME-HTTP
    product: Acme AV
    purpose: update
    severity: medium
    confidence: medium
    description: updater
    references: [idx:1]
    match:
      - http_path_prefix: /acme/upd/
      - http_path_regex: '^/bases/[a-z]+\.avc$'
      - http_path_regex: '^/bases/'
      - http_content_type: Application/X-Acme-Update
      - user_agent: '^AcmeUpdater/[0-9]+'
  - id: ACME-NET
    product: Acme AV
    purpose: reputation
    severity: high
    confidence: low
    description: nets
    references: [idx:2]
    match:
      - ip: [192.0.2.0/24, 192.0.2.128/25, 2001:db8:1::/48, 198.51.100.7]
      - asn: AS64500
        weak: true
      - ja3: 0123456789ABCDEF0123456789abcdef
      - ja4: t13d1516h2_8daaf6152771_b186095e22b6
      - cert_subject: '(^|,)CN=Acme Root(,|$)'
      - cert_issuer: '(^|,)O=Acme Ltd(,|$)'
  - id: ACME-BRAND
    product: Acme web
    purpose: brand
    severity: low
    weak: true
    confidence: high
    description: brand
    references: [https://acme.example/]
    match:
      - domain_suffix: acme.example
`

func mustSet(t testing.TB, yamls ...string) *Set {
	t.Helper()
	var files []*File
	for i, y := range yamls {
		f, errs := ParseFile("test"+string(rune('a'+i))+".yaml", []byte(y))
		if errs != nil {
			t.Fatalf("parse: %v", errs)
		}
		files = append(files, f)
	}
	s, err := Build(files)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return s
}

// ids lists hit signature ids with their kind, in hit order.
func ids(hits []Hit) []string {
	var out []string
	for _, h := range hits {
		out = append(out, h.Sig.ID+"/"+h.Kind.String()+"="+h.Value)
	}
	return out
}

func TestDomainLabelBoundaries(t *testing.T) {
	s, err := LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	brand := s.Signature("KL-DOM-002")
	has := func(name string, sig *Signature) bool {
		for _, h := range s.MatchDomain(name, nil) {
			if h.Sig == sig {
				return true
			}
		}
		return false
	}
	for _, name := range []string{"kaspersky.com", "dnl-03.geo.kaspersky.com", "DNL-03.Geo.Kaspersky.COM.", "www.kaspersky.com"} {
		if !has(name, brand) {
			t.Errorf("%q: want KL-DOM-002 (kaspersky.com suffix)", name)
		}
	}
	for _, name := range []string{"notkaspersky.com", "kaspersky.com.example.net", "kaspersky.co", "xkaspersky.com",
		"kaspersky.comx", "com", "", ".", "kaspersky..com"} {
		if got := s.MatchDomain(name, nil); len(got) != 0 && has(name, brand) {
			t.Errorf("%q: must not match kaspersky.com suffix, got %v", name, ids(got))
		}
	}
	if got := s.MatchDomain("notkaspersky.com", nil); len(got) != 0 {
		t.Errorf("notkaspersky.com: got %v", ids(got))
	}
	if got := s.MatchDomain("kaspersky.com.example.net", nil); len(got) != 0 {
		t.Errorf("kaspersky.com.example.net: got %v", ids(got))
	}
	// Most specific first: exact dnl-03, then geo.kaspersky.com, then kaspersky.com.
	got := ids(s.MatchDomain("dnl-03.geo.kaspersky.com", nil))
	want := []string{"KL-UPD-006/domain=dnl-03.geo.kaspersky.com", "KL-UPD-008/domain_suffix=geo.kaspersky.com",
		"KL-DOM-002/domain_suffix=kaspersky.com"}
	if !slices.Equal(got, want) {
		t.Errorf("dnl-03 hits = %v, want %v", got, want)
	}
	// Over-long input matches nothing rather than failing.
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'a'
	}
	if got := s.MatchDomain(string(long)+".kaspersky.com", nil); len(got) != 0 {
		t.Errorf("over-long name matched %v", ids(got))
	}
}

func TestMatchEveryKind(t *testing.T) {
	s := mustSet(t, allKinds)
	cases := []struct {
		name string
		got  []Hit
		want []string
	}{
		{"exact domain", s.MatchDomain("UPD.acme.example.", nil),
			[]string{"ACME-DOM/domain=upd.acme.example", "ACME-BRAND/domain_suffix=acme.example"}},
		{"exact is not suffix", s.MatchDomain("x.upd.acme.example", nil),
			[]string{"ACME-BRAND/domain_suffix=acme.example"}},
		{"suffix self", s.MatchDomain("cdn.acme.example", nil),
			[]string{"ACME-DOM/domain_suffix=cdn.acme.example", "ACME-BRAND/domain_suffix=acme.example"}},
		{"lookalike", s.MatchDomain("notacme.example", nil), nil},
		{"path prefix", s.MatchHTTPPath("/acme/upd/x.bin?v=1", nil), []string{"ACME-HTTP/http_path_prefix=/acme/upd/"}},
		{"path prefix absolute-form", s.MatchHTTPPath("HTTP://10.0.0.1:8080/acme/upd/", nil),
			[]string{"ACME-HTTP/http_path_prefix=/acme/upd/"}},
		{"path prefix shorter", s.MatchHTTPPath("/acme/upd", nil), nil},
		{"path case-sensitive", s.MatchHTTPPath("/ACME/upd/x", nil), nil},
		{"path regex once per signature", s.MatchHTTPPath("/bases/av.avc", nil),
			[]string{`ACME-HTTP/http_path_regex=^/bases/[a-z]+\.avc$`}},
		{"path regex second", s.MatchHTTPPath("/bases/AV.avc", nil), []string{"ACME-HTTP/http_path_regex=^/bases/"}},
		{"content type", s.MatchContentType(" application/x-acme-UPDATE ; charset=binary", nil),
			[]string{"ACME-HTTP/http_content_type=application/x-acme-update"}},
		{"content type other", s.MatchContentType("application/x-acme-updates", nil), nil},
		{"user agent", s.MatchUserAgent("AcmeUpdater/12 (win)", nil), []string{"ACME-HTTP/user_agent=^AcmeUpdater/[0-9]+"}},
		{"user agent miss", s.MatchUserAgent("Mozilla/5.0 AcmeUpdater/12", nil), nil},
		{"ip longest first", s.MatchIP(netip.MustParseAddr("192.0.2.200"), nil),
			[]string{"ACME-NET/ip=192.0.2.128/25", "ACME-NET/ip=192.0.2.0/24"}},
		{"ip mapped", s.MatchIP(netip.MustParseAddr("::ffff:192.0.2.5"), nil), []string{"ACME-NET/ip=192.0.2.0/24"}},
		{"ip host", s.MatchIP(netip.MustParseAddr("198.51.100.7"), nil), []string{"ACME-NET/ip=198.51.100.7/32"}},
		{"ip host miss", s.MatchIP(netip.MustParseAddr("198.51.100.8"), nil), nil},
		{"ip6", s.MatchIP(netip.MustParseAddr("2001:db8:1:ffff::1"), nil), []string{"ACME-NET/ip=2001:db8:1::/48"}},
		{"ip6 miss", s.MatchIP(netip.MustParseAddr("2001:db8:2::1"), nil), nil},
		{"ip invalid", s.MatchIP(netip.Addr{}, nil), nil},
		{"asn", s.MatchASN(64500, nil), []string{"ACME-NET/asn=64500"}},
		{"asn miss", s.MatchASN(64501, nil), nil},
		{"ja3 any case", s.MatchJA3("0123456789abcdef0123456789ABCDEF", nil),
			[]string{"ACME-NET/ja3=0123456789abcdef0123456789abcdef"}},
		{"ja3 malformed", s.MatchJA3("0123456789abcdef0123456789abcdeg", nil), nil},
		{"ja4", s.MatchJA4("t13d1516h2_8daaf6152771_b186095e22b6", nil),
			[]string{"ACME-NET/ja4=t13d1516h2_8daaf6152771_b186095e22b6"}},
		{"ja4 case-sensitive", s.MatchJA4("T13d1516h2_8daaf6152771_b186095e22b6", nil), nil},
		{"cert subject", s.MatchCertSubject("CN=Acme Root,O=Acme Ltd,C=US", nil),
			[]string{"ACME-NET/cert_subject=(^|,)CN=Acme Root(,|$)"}},
		{"cert subject is not issuer", s.MatchCertSubject("CN=x,O=Acme Ltd", nil), nil},
		{"cert issuer", s.MatchCertIssuer("CN=x,O=Acme Ltd", nil), []string{"ACME-NET/cert_issuer=(^|,)O=Acme Ltd(,|$)"}},
	}
	for _, c := range cases {
		if got := ids(c.got); !slices.Equal(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestWeakAndPorts(t *testing.T) {
	s := mustSet(t, allKinds)
	h := s.MatchASN(64500, nil)[0]
	if !h.Weak || h.Severity() != SeverityLow || h.Sig.Severity != SeverityHigh {
		t.Errorf("weak matcher in a high signature: weak=%v severity=%v", h.Weak, h.Severity())
	}
	brand := s.MatchDomain("acme.example", nil)[0]
	if !brand.Weak || brand.Severity() != SeverityLow {
		t.Errorf("weak signature: %+v", brand)
	}
	dom := s.MatchDomain("upd.acme.example", nil)[0]
	if dom.Port != PortUnchecked || dom.Severity() != SeverityHigh {
		t.Fatalf("unchecked: %+v", dom)
	}
	for _, c := range []struct {
		port uint16
		fit  PortFit
		sev  Severity
		conf Confidence
	}{{443, PortMatch, SeverityHigh, ConfidenceHigh}, {8005, PortMatch, SeverityHigh, ConfidenceHigh},
		{8011, PortMismatch, SeverityMedium, ConfidenceMedium}, {80, PortMismatch, SeverityMedium, ConfidenceMedium}} {
		h := dom
		h.ApplyPort(c.port)
		if h.Port != c.fit || h.Severity() != c.sev || h.Confidence() != c.conf {
			t.Errorf("port %d: fit=%v sev=%v conf=%v, want %v %v %v", c.port, h.Port, h.Severity(), h.Confidence(), c.fit, c.sev, c.conf)
		}
	}
	suffix := s.MatchDomain("a.cdn.acme.example", nil)[0]
	suffix.ApplyPort(1)
	if suffix.Port != PortAny || suffix.Severity() != SeverityHigh {
		t.Errorf("no ports listed: %+v", suffix)
	}
	if SeverityLow.ECS() != 21 || SeverityMedium.ECS() != 47 || SeverityHigh.ECS() != 73 || SeverityCritical.ECS() != 99 {
		t.Error("ECS severity mapping changed")
	}
}

func TestMatchAppendsWithoutAllocating(t *testing.T) {
	s, err := LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]Hit, 0, 16)
	addr := netip.MustParseAddr("185.85.12.9")
	allocs := testing.AllocsPerRun(200, func() {
		buf = s.MatchDomain("DNL-03.geo.Kaspersky.com.", buf[:0])
		buf = s.MatchIP(addr, buf[:0])
		buf = s.MatchASN(200107, buf[:0])
		buf = s.MatchJA3("0123456789abcdef0123456789abcdef", buf[:0])
		buf = s.MatchJA4("t13d1516h2_8daaf6152771_b186095e22b6", buf[:0])
		buf = s.MatchHTTPPath("/updates/kdb/i386/kdb-i386-1313g.xml.dif", buf[:0])
		buf = s.MatchContentType("Application/X-KaspavDB; q=1", buf[:0])
		buf = s.MatchCertIssuer("CN=Kaspersky Anti-Virus Personal Root Certificate,O=AO Kaspersky Lab,C=RU", buf[:0])
	})
	if allocs != 0 && !raceEnabled {
		t.Errorf("match path allocates %.1f times per run", allocs)
	}
	if len(s.MatchIP(addr, nil)) == 0 || len(s.MatchContentType("Application/X-KaspavDB; q=1", nil)) == 0 {
		t.Error("allocation test inputs no longer match the defaults")
	}
}

func TestAnchoredLiteral(t *testing.T) {
	for expr, want := range map[string]string{
		`^/updates/[a-z]+$`: "/updates/",
		`^/index/u[0-9]+g`:  "/index/u",
		`/updates/x`:        "",
		`(?i)^/updates/`:    "",
		`^/a|^/b`:           "",
		`^(/a|/b)`:          "",
		`^[a-z]`:            "",
		`^/\w`:              "/",
	} {
		if got := anchoredLiteral(expr); got != want {
			t.Errorf("anchoredLiteral(%q) = %q, want %q", expr, got, want)
		}
	}
}
