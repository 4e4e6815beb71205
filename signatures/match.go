package signatures

import (
	"net/netip"
	"regexp"
	"regexp/syntax"
	"sort"
	"strings"
)

// PortFit says how a flow's destination port relates to a matcher's ports.
type PortFit uint8

// Port fits.
const (
	// PortUnchecked: ApplyPort was not called (DNS queries, offline lookups).
	PortUnchecked PortFit = iota
	// PortAny: the matcher lists no ports.
	PortAny
	// PortMatch: the port is one the matcher lists.
	PortMatch
	// PortMismatch: the matcher lists ports and this is not one of them.
	PortMismatch
)

// Hit is one matcher that matched. It is a small value so match methods can
// append it into a caller's buffer without allocating.
type Hit struct {
	Sig     *Signature
	Matcher *Matcher
	Kind    Kind
	// Value is the matcher's value that matched (the suffix, CIDR, regex...).
	Value string
	// Weak is true for weak evidence (see Severity).
	Weak bool
	Port PortFit
}

// ApplyPort records a flow's destination port. Call it for flows (TLS, HTTP,
// IP); not for DNS queries, whose port says nothing about the service.
func (h *Hit) ApplyPort(port uint16) {
	if len(h.Matcher.Ports) == 0 {
		h.Port = PortAny
		return
	}
	for _, r := range h.Matcher.Ports {
		if port >= r.Lo && port <= r.Hi {
			h.Port = PortMatch
			return
		}
	}
	h.Port = PortMismatch
}

// Severity is the hit's effective severity: low for weak evidence; one step
// below the signature's for a port mismatch (never below low); otherwise the
// signature's.
func (h Hit) Severity() Severity {
	s := h.Sig.Severity
	switch {
	case h.Weak:
		return SeverityLow
	case h.Port == PortMismatch && s > SeverityLow:
		return s - 1
	}
	return s
}

// Confidence is the signature's confidence, one step lower (never below low)
// for a port mismatch.
func (h Hit) Confidence() Confidence {
	c := h.Sig.Confidence
	if h.Port == PortMismatch && c > ConfidenceLow {
		return c - 1
	}
	return c
}

// reEntry is one compiled regex matcher. lit is a literal the input must
// start with for the regex to match (from a leading ^literal), checked first
// so most inputs skip the regex engine.
type reEntry struct {
	re  *regexp.Regexp
	lit string
	hit Hit
}

func newREEntry(re *regexp.Regexp, h Hit) reEntry {
	return reEntry{re: re, lit: anchoredLiteral(re.String()), hit: h}
}

// anchoredLiteral returns the case-sensitive literal that follows a leading
// ^ (begin of text) in expr, or "" when the regex is not of that shape.
func anchoredLiteral(expr string) string {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return ""
	}
	re = re.Simplify()
	if re.Op != syntax.OpConcat || len(re.Sub) < 2 || re.Sub[0].Op != syntax.OpBeginText {
		return ""
	}
	lit := re.Sub[1]
	if lit.Op != syntax.OpLiteral || lit.Flags&syntax.FoldCase != 0 {
		return ""
	}
	return string(lit.Rune)
}

// index is the compiled matcher. Every exact-value kind is a map lookup;
// domains walk the name's label-boundary suffixes (one lookup per label),
// IPs one lookup per distinct prefix length present, HTTP path prefixes one
// lookup per distinct prefix length. Only regexes scan, and only the
// matchers that are regexes.
type index struct {
	exact          map[string][]Hit
	suffix         map[string][]Hit
	v4, v6         map[netip.Prefix][]Hit
	v4Lens, v6Lens []int // distinct prefix lengths, longest first
	asn            map[uint32][]Hit
	ja3            map[[16]byte][]Hit
	ja4            map[string][]Hit
	ctype          map[string][]Hit
	pathPrefix     map[string][]Hit
	pathLens       []int // distinct prefix lengths, longest first
	pathRe         []reEntry
	uaRe           []reEntry
	subjRe         []reEntry
	issuerRe       []reEntry
}

func (x *index) build(sigs []*Signature) {
	x.exact = map[string][]Hit{}
	x.suffix = map[string][]Hit{}
	x.v4 = map[netip.Prefix][]Hit{}
	x.v6 = map[netip.Prefix][]Hit{}
	x.asn = map[uint32][]Hit{}
	x.ja3 = map[[16]byte][]Hit{}
	x.ja4 = map[string][]Hit{}
	x.ctype = map[string][]Hit{}
	x.pathPrefix = map[string][]Hit{}
	v4Lens, v6Lens, pathLens := map[int]bool{}, map[int]bool{}, map[int]bool{}
	for _, s := range sigs {
		for i := range s.Matchers {
			m := &s.Matchers[i]
			h := Hit{Sig: s, Matcher: m, Kind: m.Kind, Value: m.Value, Weak: m.Weak}
			switch m.Kind {
			case KindDomain:
				x.exact[m.Value] = append(x.exact[m.Value], h)
			case KindDomainSuffix:
				x.suffix[m.Value] = append(x.suffix[m.Value], h)
			case KindIP:
				if m.prefix.Addr().Is4() {
					x.v4[m.prefix] = append(x.v4[m.prefix], h)
					v4Lens[m.prefix.Bits()] = true
				} else {
					x.v6[m.prefix] = append(x.v6[m.prefix], h)
					v6Lens[m.prefix.Bits()] = true
				}
			case KindASN:
				x.asn[m.asn] = append(x.asn[m.asn], h)
			case KindJA3:
				x.ja3[m.ja3] = append(x.ja3[m.ja3], h)
			case KindJA4:
				x.ja4[m.Value] = append(x.ja4[m.Value], h)
			case KindContentType:
				x.ctype[m.Value] = append(x.ctype[m.Value], h)
			case KindHTTPPathPrefix:
				x.pathPrefix[m.Value] = append(x.pathPrefix[m.Value], h)
				pathLens[len(m.Value)] = true
			case KindHTTPPathRegex:
				x.pathRe = append(x.pathRe, newREEntry(m.re, h))
			case KindUserAgent:
				x.uaRe = append(x.uaRe, newREEntry(m.re, h))
			case KindCertSubject:
				x.subjRe = append(x.subjRe, newREEntry(m.re, h))
			case KindCertIssuer:
				x.issuerRe = append(x.issuerRe, newREEntry(m.re, h))
			}
		}
	}
	x.v4Lens, x.v6Lens, x.pathLens = descending(v4Lens), descending(v6Lens), descending(pathLens)
}

func descending(set map[int]bool) []int {
	out := make([]int, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(out)))
	return out
}

// maxNameLen is the longest DNS name in presentation form (253) plus a
// trailing dot; longer inputs cannot be valid names and match nothing.
const maxNameLen = 254

// MatchDomain appends the hits for a DNS name (query name, SNI, Host): exact
// matchers on the whole name, then suffix matchers from the longest suffix to
// the shortest, so the most specific hit comes first. Suffixes match on label
// boundaries only; case is ignored and one trailing dot is dropped.
func (s *Set) MatchDomain(name string, dst []Hit) []Hit {
	if len(name) > maxNameLen {
		return dst
	}
	var buf [maxNameLen]byte
	b := buf[:len(name)]
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	if n := len(b); n > 0 && b[n-1] == '.' {
		b = b[:n-1]
	}
	if len(b) == 0 {
		return dst
	}
	dst = append(dst, s.idx.exact[string(b)]...)
	dst = append(dst, s.idx.suffix[string(b)]...)
	for i := 0; i < len(b); i++ {
		if b[i] == '.' {
			dst = append(dst, s.idx.suffix[string(b[i+1:])]...)
		}
	}
	return dst
}

// MatchIP appends the hits for an address, longest prefix first. IPv4-mapped
// IPv6 addresses match as IPv4.
func (s *Set) MatchIP(a netip.Addr, dst []Hit) []Hit {
	a = a.Unmap().WithZone("")
	m, lens := s.idx.v6, s.idx.v6Lens
	if a.Is4() {
		m, lens = s.idx.v4, s.idx.v4Lens
	} else if !a.Is6() {
		return dst
	}
	for _, bits := range lens {
		p, err := a.Prefix(bits)
		if err == nil {
			dst = append(dst, m[p]...)
		}
	}
	return dst
}

// MatchASN appends the hits for an AS number.
func (s *Set) MatchASN(asn uint32, dst []Hit) []Hit { return append(dst, s.idx.asn[asn]...) }

// MatchJA3 appends the hits for a JA3 hash (32 hex digits, any case); a
// malformed hash matches nothing.
func (s *Set) MatchJA3(hash string, dst []Hit) []Hit {
	var key [16]byte
	if len(hash) != 32 {
		return dst
	}
	for i := 0; i < 16; i++ {
		hi, ok1 := unhex(hash[2*i])
		lo, ok2 := unhex(hash[2*i+1])
		if !ok1 || !ok2 {
			return dst
		}
		key[i] = hi<<4 | lo
	}
	return append(dst, s.idx.ja3[key]...)
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// MatchJA4 appends the hits for a JA4 fingerprint (exact, case-sensitive).
func (s *Set) MatchJA4(fp string, dst []Hit) []Hit { return append(dst, s.idx.ja4[fp]...) }

// maxContentTypeLen bounds a type/subtype (RFC 6838: 127 + 1 + 127).
const maxContentTypeLen = 255

// MatchContentType appends the hits for a Content-Type header value:
// parameters after ';' and surrounding spaces are ignored, case is ignored.
func (s *Set) MatchContentType(ct string, dst []Hit) []Hit {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	if len(ct) == 0 || len(ct) > maxContentTypeLen {
		return dst
	}
	var buf [maxContentTypeLen]byte
	b := buf[:len(ct)]
	for i := 0; i < len(ct); i++ {
		c := ct[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	return append(dst, s.idx.ctype[string(b)]...)
}

// MatchHTTPPath appends the hits for an HTTP request target. An absolute-form
// target (http://host/path) is reduced to its path; the query and fragment
// are dropped. Prefixes match longest first, then regexes (at most one hit
// per signature from its regexes). Paths are case-sensitive.
func (s *Set) MatchHTTPPath(target string, dst []Hit) []Hit {
	p := requestPath(target)
	for _, n := range s.idx.pathLens {
		if n <= len(p) {
			dst = append(dst, s.idx.pathPrefix[p[:n]]...)
		}
	}
	return matchRegexes(s.idx.pathRe, p, dst)
}

func requestPath(target string) string {
	for _, scheme := range [...]string{"http://", "https://"} {
		if len(target) >= len(scheme) && strings.EqualFold(target[:len(scheme)], scheme) {
			rest := target[len(scheme):]
			i := strings.IndexByte(rest, '/')
			if i < 0 {
				return "/"
			}
			target = rest[i:]
			break
		}
	}
	if i := strings.IndexAny(target, "?#"); i >= 0 {
		target = target[:i]
	}
	return target
}

// MatchUserAgent appends the hits for a User-Agent header value.
func (s *Set) MatchUserAgent(ua string, dst []Hit) []Hit { return matchRegexes(s.idx.uaRe, ua, dst) }

// MatchCertSubject appends the hits for a certificate subject written as an
// RDN string, e.g. "CN=Kaspersky Anti-Virus Personal Root Certificate,O=AO
// Kaspersky Lab,C=RU" (Go's pkix.Name.String form).
func (s *Set) MatchCertSubject(rdn string, dst []Hit) []Hit {
	return matchRegexes(s.idx.subjRe, rdn, dst)
}

// MatchCertIssuer appends the hits for a certificate issuer RDN string.
func (s *Set) MatchCertIssuer(rdn string, dst []Hit) []Hit {
	return matchRegexes(s.idx.issuerRe, rdn, dst)
}

// matchRegexes scans regex entries (grouped by signature in build order) and
// reports at most one hit per signature.
func matchRegexes(entries []reEntry, v string, dst []Hit) []Hit {
	var last *Signature
	for i := range entries {
		e := &entries[i]
		if e.hit.Sig == last || !strings.HasPrefix(v, e.lit) {
			continue
		}
		if e.re.MatchString(v) {
			dst = append(dst, e.hit)
			last = e.hit.Sig
		}
	}
	return dst
}
