package signatures

import (
	"bufio"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/phonehome/phonehome/internal/testcorpus"
)

// research holds the research notes' text and the names they cite.
type research struct {
	text   string
	names  map[string]bool  // literal, brace- and range-expanded domain names
	finite []*regexp.Regexp // draft-table name regexes with a finite language
	paths  []string         // kaspersky-updater/update-paths.txt
	mimes  map[string]bool  // kaspersky-updater/mime-types.txt
}

var (
	nameToken  = regexp.MustCompile(`[A-Za-z0-9_{}.,…-]+\.[A-Za-z0-9_{}.,-]*[A-Za-z]`)
	braceExpr  = regexp.MustCompile(`\{([^{}]*)\}`)
	rangeExpr  = regexp.MustCompile("([a-z]+-?)([0-9]{2})(?:\\.([a-z0-9.-]+))?`?\\s*(?:…|\\.\\.\\.)\\s*`?([a-z]+-?)([0-9]{2})\\.([a-z0-9.-]+)")
	draftRegex = regexp.MustCompile(`match: regex, on: [a-z|]*(?:qname|sni)[a-z|]*, value: '([^']+)'`)
)

func loadResearch(t *testing.T) *research {
	t.Helper()
	dir := testcorpus.Research(t)
	r := &research{names: map[string]bool{}, mimes: map[string]bool{}}
	var all strings.Builder
	for _, name := range []string{"signatures.md", "kaspersky-updater/update-servers-resolved.txt",
		"kaspersky-updater/update-paths.txt", "kaspersky-updater/mime-types.txt"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("research: %v", err)
		}
		all.Write(b)
		all.WriteByte('\n')
		switch name {
		case "kaspersky-updater/update-paths.txt":
			sc := bufio.NewScanner(strings.NewReader(string(b)))
			for sc.Scan() {
				if p := strings.TrimSpace(sc.Text()); p != "" {
					r.paths = append(r.paths, p)
				}
			}
		case "kaspersky-updater/mime-types.txt":
			for _, f := range strings.FieldsFunc(string(b), func(c rune) bool { return c == ' ' || c == ',' || c == '\n' }) {
				if strings.Contains(f, "/") {
					r.mimes[strings.ReplaceAll(f, `\/`, "/")] = true
				}
			}
		}
	}
	r.text = all.String()
	for _, tok := range nameToken.FindAllString(r.text, -1) {
		for _, part := range strings.Split(tok, "…") {
			for _, n := range expandBraces(part) {
				for _, piece := range strings.Split(n, ",") {
					r.names[strings.ToLower(strings.Trim(piece, ".,"))] = true
				}
			}
		}
	}
	for _, m := range rangeExpr.FindAllStringSubmatch(r.text, -1) {
		lo, _ := strconv.Atoi(m[2])
		hi, _ := strconv.Atoi(m[5])
		if m[1] != m[4] || (m[3] != "" && m[3] != m[6]) || hi < lo || hi-lo > 100 {
			continue
		}
		for i := lo; i <= hi; i++ {
			r.names[m[1]+twoDigits(i)+"."+m[6]] = true
		}
	}
	for _, m := range draftRegex.FindAllStringSubmatch(r.text, -1) {
		if strings.ContainsAny(m[1], "[*+{") { // not a finite, explicit list of names
			continue
		}
		r.finite = append(r.finite, regexp.MustCompile(m[1]))
	}
	return r
}

func twoDigits(i int) string {
	s := strconv.Itoa(i)
	if len(s) < 2 {
		s = "0" + s
	}
	return s
}

// expandBraces expands the first {a,b,...} group recursively.
func expandBraces(s string) []string {
	m := braceExpr.FindStringSubmatchIndex(s)
	if m == nil {
		return []string{s}
	}
	var out []string
	for _, alt := range strings.Split(s[m[2]:m[3]], ",") {
		out = append(out, expandBraces(s[:m[0]]+alt+s[m[1]:])...)
	}
	return out
}

// cited says whether the research names this domain: spelled out literally,
// in a {a,b} list or an NN…NN range, or matched by a draft-table regex whose
// language is an explicit finite list (no classes or repetition, so
// `ksn-[a-z0-9-]+-geo` or `s[0-9]{2}` cannot vouch for invented names).
func (r *research) cited(domain string) bool {
	if r.names[domain] {
		return true
	}
	for _, re := range r.finite {
		if re.MatchString(domain) {
			return true
		}
	}
	return false
}

func TestDefaultsAreCitedInResearch(t *testing.T) {
	r := loadResearch(t)
	// The test itself must be able to fail: uncited look-alikes are rejected.
	for _, bogus := range []string{"ksn-foo-geo.kaspersky-labs.com", "s20.upd.kaspersky.com", "telemetry.kaspersky.com", "dnl-20.geo.kaspersky.com"} {
		if r.cited(bogus) {
			t.Errorf("research extraction too loose: %q counts as cited", bogus)
		}
	}
	for _, real := range []string{"s13.upd.kaspersky.com", "p07.upd.kaspersky.com", "ksn-crypto-wifiplus-geo.kaspersky-labs.com", "ksn-kas.geoksn.kaspersky.com"} {
		if !r.cited(real) {
			t.Errorf("research extraction too strict: %q not found", real)
		}
	}
	s, err := LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[Kind]int{}
	for _, sig := range s.Signatures() {
		for _, m := range sig.Matchers {
			counts[m.Kind]++
			switch m.Kind {
			case KindDomain, KindDomainSuffix:
				if !r.cited(m.Value) {
					t.Errorf("%s: domain %q is not in the research notes", sig.ID, m.Value)
				}
			case KindIP:
				p := m.Prefix()
				if p.Addr().Is4() {
					v := p.String()
					if p.Bits() == 32 && !strings.Contains(r.text, v) {
						v = p.Addr().String()
					}
					if !strings.Contains(r.text, v) {
						t.Errorf("%s: prefix %s is not in the research notes", sig.ID, p)
					}
				} else if !netip.MustParsePrefix("2a03:2480::/32").Overlaps(p) || !strings.Contains(r.text, "2a03:2480") {
					// IPv6 /48s come from idx:56509838787, which the research cites for 2a03:2480::.
					t.Errorf("%s: IPv6 prefix %s outside the cited 2a03:2480::/32", sig.ID, p)
				}
			case KindASN:
				if !strings.Contains(r.text, "AS"+m.Value) {
					t.Errorf("%s: AS%s is not in the research notes", sig.ID, m.Value)
				}
			case KindContentType:
				if !r.mimes[m.Value] {
					t.Errorf("%s: content type %q not in kaspersky-updater/mime-types.txt", sig.ID, m.Value)
				}
			case KindHTTPPathPrefix:
				if !strings.Contains(r.text, m.Value) {
					t.Errorf("%s: path prefix %q not in the research", sig.ID, m.Value)
				}
			case KindJA3, KindJA4, KindUserAgent:
				t.Errorf("%s: the research found no %s for any vendor; %q is uncited", sig.ID, m.Kind, m.Value)
			case KindCertSubject, KindCertIssuer:
				cn := regexp.MustCompile(`CN=([^\\(|)]+)`).FindStringSubmatch(m.Value)
				if cn != nil && !strings.Contains(r.text, strings.TrimSpace(cn[1])) {
					t.Errorf("%s: certificate name %q not in the research", sig.ID, cn[1])
				}
			}
		}
	}
	for _, k := range []Kind{KindDomain, KindDomainSuffix, KindHTTPPathPrefix, KindHTTPPathRegex, KindContentType,
		KindIP, KindASN, KindCertSubject, KindCertIssuer} {
		if counts[k] == 0 {
			t.Errorf("default set has no %s matcher although the research supports one", k)
		}
	}
}

func TestDefaultsUpdaterPaths(t *testing.T) {
	r := loadResearch(t)
	s, err := LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.paths) < 100 {
		t.Fatalf("update-paths.txt has %d paths", len(r.paths))
	}
	for _, p := range r.paths {
		hits := s.MatchHTTPPath(p, nil)
		if len(hits) == 0 {
			t.Errorf("updater path %s matches no default signature", p)
			continue
		}
		for _, h := range hits {
			if h.Sig.Vendor != "Kaspersky" || h.Sig.Purpose != PurposeUpdate {
				t.Errorf("%s: hit %s (%s)", p, h.Sig.ID, h.Sig.Purpose)
			}
		}
	}
	for _, p := range []string{"/", "/updates/", "/updates/readme.txt", "/index.html", "/updaters/", "/index/u1313g.xml",
		"/wp-content/updates/x.xml.dif", "/updates/bin/x.zip"} {
		if hits := s.MatchHTTPPath(p, nil); len(hits) != 0 {
			t.Errorf("generic path %s matched %v", p, ids(hits))
		}
	}
	for m := range r.mimes {
		if len(s.MatchContentType(strings.ToUpper(m)+"; charset=binary", nil)) != 1 {
			t.Errorf("content type %s not matched", m)
		}
	}
	for _, line := range strings.Split(r.text, "\n") {
		if name, addr, ok := strings.Cut(line, " has address "); ok {
			if len(s.MatchDomain(name, nil)) == 0 {
				t.Errorf("%s not matched", name)
			}
			hits := s.MatchIP(netip.MustParseAddr(strings.TrimSpace(addr)), nil)
			if len(hits) != 1 || !hits[0].Weak || hits[0].Severity() != SeverityLow {
				t.Errorf("CDN address %s: want one weak low hit, got %v", addr, ids(hits))
			}
		}
	}
}

func TestDefaultsPolicyAndShape(t *testing.T) {
	s, err := LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range s.Signatures() {
		if len(sig.References) == 0 || sig.Description == "" || sig.Product == "" {
			t.Errorf("%s: missing references/description/product", sig.ID)
		}
		for _, m := range sig.Matchers {
			if (m.Kind == KindASN || m.Kind == KindIP) && !m.Weak {
				t.Errorf("%s: %s evidence must be weak (shared infrastructure)", sig.ID, m.Kind)
			}
		}
	}
	for _, id := range []string{"KL-DOM-005", "KL-ASN-003", "KL-NET-018"} {
		if sig := s.Signature(id); sig == nil || !sig.Matchers[0].Weak || sig.Severity != SeverityLow {
			t.Errorf("%s must be weak/low", id)
		}
	}
	for _, name := range []string{"ksn-url-geo.kaspersky-labs.com", "s00.upd.kaspersky.com", "activate.activation-v2.kaspersky.com",
		"x.ksc.kaspersky.com", "dc1-file.ksn.kaspersky-labs.com", "ksn-info.geoksn.kaspersky.com"} {
		hits := s.MatchDomain(name, nil)
		if len(hits) == 0 || hits[0].Severity() != SeverityHigh {
			t.Errorf("%s: want a high first hit, got %v", name, ids(hits))
		}
	}
	if hits := s.MatchDomain("www.securelist.com", nil); len(hits) != 1 || hits[0].Severity() != SeverityLow {
		t.Errorf("securelist: %v", ids(hits))
	}
	if hits := s.MatchCertIssuer("CN=Kaspersky Anti-Virus Personal Root Certificate,O=AO Kaspersky Lab,C=RU", nil); len(hits) != 2 ||
		hits[0].Sig.ID != "KL-CERT-001" {
		t.Errorf("interception root: %v", ids(hits))
	}
	if hits := s.MatchCertIssuer("CN=Kaspersky Anti-Virus Personal Root Certificate Fake,O=Other", nil); len(hits) != 0 {
		t.Errorf("look-alike issuer matched: %v", ids(hits))
	}
	kl := s.Vendor("Kaspersky")
	want := map[string]string{"DHS Binding Operational Directive 17-01": "2017-09-13", "BSI warning under §7 BSIG": "2022-03-15"}
	var cutoff bool
	for _, p := range kl.Policies {
		if d, ok := want[p.Instrument]; ok && d != p.Date {
			t.Errorf("%s dated %s, want %s", p.Instrument, p.Date, d)
		}
		delete(want, p.Instrument)
		for _, m := range p.Milestones {
			if m.Date == "2024-09-29" && strings.Contains(m.Event, "KSN") {
				cutoff = true
			}
		}
		if len(p.References) == 0 {
			t.Errorf("policy %s has no references", p.Instrument)
		}
	}
	if len(want) != 0 || !cutoff {
		t.Errorf("missing policies %v or the 2024-09-29 KSN cut-off", want)
	}
	if len(s.Vendors()) < 2 || s.Vendors()[0].Name > s.Vendors()[1].Name {
		t.Error("vendors not sorted")
	}
}
