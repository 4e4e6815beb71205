package signatures

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// syntheticSet builds n signatures for vendorN-xyz.example with an exact
// name, a suffix, a /24, a JA3 and a path prefix each (benchmark data only).
func syntheticSet(tb testing.TB, n int) *Set {
	tb.Helper()
	var b strings.Builder
	b.WriteString("format: phonehome-signatures/v1\nvendor: {name: Synthetic}\nsignatures:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `  - id: SYN-%d
    product: p
    purpose: telemetry
    severity: medium
    confidence: low
    description: synthetic
    references: [https://vendor%d-xyz.example/]
    match:
      - domain: api.vendor%d-xyz.example
      - domain_suffix: vendor%d-xyz.example
      - ip: 10.%d.%d.0/24
      - ja3: %s
      - http_path_prefix: /v%d/upd/
`, i, i, i, i, i/256%256, i%256, synthJA3(i), i)
	}
	f, errs := ParseFile("synthetic.yaml", []byte(b.String()))
	if errs != nil {
		tb.Fatal(errs)
	}
	s, err := Build([]*File{f})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func synthJA3(i int) string {
	sum := md5.Sum([]byte(fmt.Sprint(i)))
	return hex.EncodeToString(sum[:])
}

type benchSets struct {
	name string
	set  *Set
	// inputs that hit in this set
	domain, ja3, path string
	ip                netip.Addr
}

func sets(b *testing.B) []benchSets {
	def, err := LoadDefault()
	if err != nil {
		b.Fatal(err)
	}
	syn := syntheticSet(b, 10000)
	return []benchSets{
		{"default", def, "dnl-03.geo.kaspersky.com", "0123456789abcdef0123456789abcdef",
			"/updates/kdb/i386/kdb-i386-1313g.xml.dif", netip.MustParseAddr("185.85.12.9")},
		{"synthetic10k", syn, "a.api.vendor7777-xyz.example", synthJA3(7777), "/v7777/upd/x",
			netip.MustParseAddr("10.30.97.1")},
	}
}

func BenchmarkMatch(b *testing.B) {
	for _, bs := range sets(b) {
		buf := make([]Hit, 0, 16)
		b.Run("domain/"+bs.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf = bs.set.MatchDomain(bs.domain, buf[:0])
			}
		})
		b.Run("domain-miss/"+bs.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf = bs.set.MatchDomain("www.unrelated-site.example.org", buf[:0])
			}
		})
		b.Run("ip/"+bs.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf = bs.set.MatchIP(bs.ip, buf[:0])
			}
		})
		b.Run("ja3/"+bs.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf = bs.set.MatchJA3(bs.ja3, buf[:0])
			}
		})
		b.Run("http_path/"+bs.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf = bs.set.MatchHTTPPath(bs.path, buf[:0])
			}
		})
		b.Run("http_path-miss/"+bs.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf = bs.set.MatchHTTPPath("/static/js/app.3f9c2a.js?v=20260301", buf[:0])
			}
		})
		if len(bs.set.MatchDomain(bs.domain, nil)) == 0 || len(bs.set.MatchIP(bs.ip, nil)) == 0 ||
			len(bs.set.MatchHTTPPath(bs.path, nil)) == 0 {
			b.Fatalf("%s: benchmark inputs do not hit", bs.name)
		}
	}
}

func TestSyntheticSetHits(t *testing.T) {
	s := syntheticSet(t, 300)
	if got := ids(s.MatchDomain("a.api.vendor257-xyz.example", nil)); len(got) != 1 || got[0] != "SYN-257/domain_suffix=vendor257-xyz.example" {
		t.Errorf("got %v", got)
	}
	if got := ids(s.MatchIP(netip.MustParseAddr("10.1.1.9"), nil)); len(got) != 1 || got[0] != "SYN-257/ip=10.1.1.0/24" {
		t.Errorf("got %v", got)
	}
	if got := s.MatchJA3(synthJA3(299), nil); len(got) != 1 || got[0].Sig.ID != "SYN-299" {
		t.Errorf("got %v", ids(got))
	}
	if got := ids(s.MatchHTTPPath("/v25/upd/a", nil)); len(got) != 1 || got[0] != "SYN-25/http_path_prefix=/v25/upd/" {
		t.Errorf("got %v", got)
	}
}
