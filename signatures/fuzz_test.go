package signatures

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func FuzzParseFile(f *testing.F) {
	f.Add([]byte(validHead))
	f.Add([]byte(allKinds))
	f.Add([]byte(kasperskyMerge))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("format: phonehome-signatures/v1\nvendor: {name: V}\nsignatures: [{match: [{ip: ::/0}]}]\n"))
	if entries, err := defaultFS.ReadDir("defaults"); err == nil {
		for _, e := range entries {
			if b, err := defaultFS.ReadFile(filepath.ToSlash(filepath.Join("defaults", e.Name()))); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, errs := ParseFile("fuzz.yaml", data)
		if (file == nil) == (errs == nil) {
			t.Fatalf("ParseFile must return a file or errors, got %v %v", file, errs)
		}
		if file == nil {
			for _, e := range errs {
				if !strings.HasPrefix(e.Error(), "fuzz.yaml") {
					t.Fatalf("error not located: %v", e)
				}
			}
			return
		}
		s, err := Build([]*File{file})
		if err != nil {
			return
		}
		for _, sig := range s.Signatures() {
			for _, m := range sig.Matchers {
				var hits []Hit
				switch m.Kind {
				case KindDomain, KindDomainSuffix:
					hits = s.MatchDomain(m.Value, nil)
				case KindIP:
					hits = s.MatchIP(m.Prefix().Addr(), nil)
				case KindASN:
					hits = s.MatchASN(m.ASN(), nil)
				case KindJA3:
					hits = s.MatchJA3(m.Value, nil)
				case KindJA4:
					hits = s.MatchJA4(m.Value, nil)
				case KindContentType:
					hits = s.MatchContentType(m.Value, nil)
				case KindHTTPPathPrefix:
					hits = s.MatchHTTPPath(m.Value, nil)
				default:
					continue
				}
				if !slices.ContainsFunc(hits, func(h Hit) bool { return h.Sig == sig }) {
					t.Fatalf("%s: own %s value %q does not match", sig.ID, m.Kind, m.Value)
				}
			}
		}
	})
}

func FuzzMatch(f *testing.F) {
	s, err := LoadDefault()
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{"dnl-03.geo.kaspersky.com", "KASPERSKY.COM.", "notkaspersky.com", "", ".", "..",
		"/updates/kdb/i386/base001e.kdc.klzu", "http://1.2.3.4/index/u1313g.xml.klz?x", "application/x-kaspavdb; a=b",
		"CN=Kaspersky Anti-Virus Personal Root Certificate,O=AO Kaspersky Lab,C=RU", "185.85.12.1", "2a03:2480:8036::1"} {
		f.Add(seed)
	}
	if b, err := os.ReadFile(filepath.Join("..", "..", "shared", "research", "kaspersky-updater", "update-servers-resolved.txt")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f.Add(line)
		}
	}
	f.Fuzz(func(t *testing.T, in string) {
		buf := make([]Hit, 0, 8)
		a := s.MatchDomain(in, buf)
		b := s.MatchDomain(asciiCase(in, 'a', 'z', 'A'-'a')+".", nil)
		if !strings.HasSuffix(in, ".") && len(in) < maxNameLen && !hitsEqual(a, b) {
			t.Fatalf("case/trailing-dot changed hits for %q: %v vs %v", in, ids(a), ids(b))
		}
		for _, h := range a {
			name := strings.TrimSuffix(asciiCase(in, 'A', 'Z', 'a'-'A'), ".")
			ok := name == h.Value || (h.Kind == KindDomainSuffix && strings.HasSuffix(name, "."+h.Value))
			if !ok {
				t.Fatalf("%q hit %s %q off a label boundary", in, h.Kind, h.Value)
			}
		}
		_ = s.MatchHTTPPath(in, buf[:0])
		_ = s.MatchContentType(in, buf[:0])
		_ = s.MatchJA3(in, buf[:0])
		_ = s.MatchJA4(in, buf[:0])
		_ = s.MatchUserAgent(in, buf[:0])
		_ = s.MatchCertSubject(in, buf[:0])
		_ = s.MatchCertIssuer(in, buf[:0])
		if addr, err := netip.ParseAddr(in); err == nil {
			for _, h := range s.MatchIP(addr, buf[:0]) {
				if !h.Matcher.Prefix().Contains(addr.Unmap().WithZone("")) {
					t.Fatalf("%s hit %s", addr, h.Value)
				}
			}
		}
	})
}

func hitsEqual(a, b []Hit) bool {
	return slices.EqualFunc(a, b, func(x, y Hit) bool { return x.Matcher == y.Matcher })
}

// asciiCase shifts ASCII letters in [lo, hi] by delta, leaving other bytes
// alone (MatchDomain folds ASCII case only, as DNS does).
func asciiCase(s string, lo, hi byte, delta int) string {
	b := []byte(s)
	for i, c := range b {
		if c >= lo && c <= hi {
			b[i] = byte(int(c) + delta)
		}
	}
	return string(b)
}
