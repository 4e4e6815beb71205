package signatures

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/net/publicsuffix"
)

// Limits on hostile or mistaken input; a file beyond them is rejected.
const (
	// MaxFileSize bounds one signature file.
	MaxFileSize = 4 << 20
	// MaxRegexLen bounds one regular expression's source.
	MaxRegexLen = 4096
	// MaxErrorsPerFile stops reporting after this many errors in one file.
	MaxErrorsPerFile = 100
	maxPathPrefixLen = 1024
	maxTextLen       = 8192
)

// Error is a validation error located in a file.
type Error struct {
	File   string
	Line   int
	Column int
	Msg    string
}

func (e *Error) Error() string {
	switch {
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	default:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
}

var (
	idPattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	datePattern = regexp.MustCompile(`^[0-9]{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?)?$`)
	ja3Pattern  = regexp.MustCompile(`^[0-9a-f]{32}$`)
	// JA4 (FoxIO): proto, 2-char version, SNI d/i, 2-digit cipher and
	// extension counts, 2-char ALPN, then two 12-hex truncated hashes.
	ja4Pattern   = regexp.MustCompile(`^[a-z][0-9a-z]{2}[di][0-9]{4}[0-9a-zA-Z]{2}_[0-9a-f]{12}_[0-9a-f]{12}$`)
	mimePattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$`)
	yamlLineExpr = regexp.MustCompile(`line ([0-9]+)`)
	idxCitation  = regexp.MustCompile(`^idx:[0-9]{1,20}$`)
)

// parser decodes one file from YAML nodes so every error carries a line.
type parser struct {
	path string
	errs []error
}

func (p *parser) errf(n *yaml.Node, format string, args ...any) {
	if len(p.errs) >= MaxErrorsPerFile {
		return
	}
	e := &Error{File: p.path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	p.errs = append(p.errs, e)
	if len(p.errs) == MaxErrorsPerFile {
		p.errs = append(p.errs, &Error{File: p.path, Msg: "too many errors; stopping"})
	}
}

// ParseFile parses and validates one file's bytes. path names the file in
// errors. On any error the File is nil and every error found is returned.
func ParseFile(path string, data []byte) (*File, []error) {
	p := &parser{path: path}
	if len(data) > MaxFileSize {
		p.errf(nil, "file is %d bytes, larger than the %d-byte limit", len(data), MaxFileSize)
		return nil, p.errs
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errf(nil, "empty file")
		} else {
			p.yamlErr(err)
		}
		return nil, p.errs
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.errf(&extra, "more than one YAML document; use one file per vendor")
	} else if !errors.Is(err, io.EOF) {
		p.yamlErr(err)
	}
	f := p.file(&doc)
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	for _, s := range f.Signatures {
		s.Vendor = f.Vendor.Name
	}
	return f, nil
}

// yamlErr turns a yaml syntax error into a located Error.
func (p *parser) yamlErr(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &Error{File: p.path, Msg: "YAML syntax: " + msg}
	if m := yamlLineExpr.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = "YAML syntax: " + strings.TrimPrefix(strings.TrimPrefix(msg, m[0]), ": ")
	}
	p.errs = append(p.errs, e)
}

// pair is a mapping entry.
type pair struct{ key, val *yaml.Node }

// mapping returns n's entries, reporting keys outside allowed, duplicates,
// and a non-mapping node.
func (p *parser) mapping(n *yaml.Node, what string, allowed ...string) []pair {
	if n.Kind != yaml.MappingNode {
		p.errf(n, "%s must be a mapping", what)
		return nil
	}
	seen := make(map[string]bool, len(n.Content)/2)
	out := make([]pair, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errf(k, "%s: keys must be plain strings", what)
			continue
		}
		if v.Kind == yaml.AliasNode || k.Kind == yaml.AliasNode {
			p.errf(v, "%s: YAML aliases are not supported", what)
			continue
		}
		if seen[k.Value] {
			p.errf(k, "%s: duplicate key %q", what, k.Value)
			continue
		}
		seen[k.Value] = true
		if !contains(allowed, k.Value) {
			p.errf(k, "%s: unknown key %q (allowed: %s)", what, k.Value, strings.Join(allowed, ", "))
			continue
		}
		out = append(out, pair{k, v})
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// str returns a scalar's text; maps, sequences and nulls are errors.
func (p *parser) str(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errf(n, "%s must be a string", what)
		return "", false
	}
	if len(n.Value) > maxTextLen {
		p.errf(n, "%s is longer than %d characters", what, maxTextLen)
		return "", false
	}
	return n.Value, true
}

// text returns a non-empty, trimmed scalar.
func (p *parser) text(n *yaml.Node, what string) (string, bool) {
	s, ok := p.str(n, what)
	if !ok {
		return "", false
	}
	s = strings.TrimSpace(s)
	if s == "" {
		p.errf(n, "%s must not be empty", what)
		return "", false
	}
	return s, true
}

func (p *parser) boolean(n *yaml.Node, what string) bool {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		p.errf(n, "%s must be true or false", what)
		return false
	}
	return n.Value == "true"
}

func (p *parser) seq(n *yaml.Node, what string) []*yaml.Node {
	if n.Kind != yaml.SequenceNode {
		p.errf(n, "%s must be a list", what)
		return nil
	}
	return n.Content
}

func (p *parser) strList(n *yaml.Node, what string) []string {
	var out []string
	for _, item := range p.seq(n, what) {
		if s, ok := p.text(item, what+" entry"); ok {
			out = append(out, s)
		}
	}
	return out
}

// references checks citations: http(s) URLs with a host, or idx:NNN (a public
// code index id, the form the research notes use when no URL was recorded).
func (p *parser) references(n *yaml.Node, what string) []string {
	items := p.seq(n, what)
	if n.Kind == yaml.SequenceNode && len(items) == 0 {
		p.errf(n, "%s must list at least one source", what)
	}
	seen := make(map[string]bool, len(items))
	var out []string
	for _, item := range items {
		s, ok := p.text(item, what+" entry")
		if !ok {
			continue
		}
		if seen[s] {
			p.errf(item, "%s: duplicate reference %q", what, s)
			continue
		}
		seen[s] = true
		if idxCitation.MatchString(s) {
			out = append(out, s)
			continue
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.ContainsAny(s, " \t") {
			p.errf(item, "%s: %q is neither an http(s) URL nor an idx:NNN citation", what, s)
			continue
		}
		out = append(out, s)
	}
	return out
}

func (p *parser) date(n *yaml.Node, what string) string {
	s, ok := p.text(n, what)
	if ok && !datePattern.MatchString(s) {
		p.errf(n, "%s %q is not YYYY, YYYY-MM or YYYY-MM-DD", what, s)
		return ""
	}
	return s
}

func (p *parser) file(doc *yaml.Node) *File {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		p.errf(doc, "expected one YAML document")
		return nil
	}
	root := doc.Content[0]
	f := &File{Path: p.path}
	var haveFormat, haveVendor, haveSigs bool
	for _, kv := range p.mapping(root, "file", "format", "mode", "vendor", "disable", "signatures") {
		switch kv.key.Value {
		case "format":
			haveFormat = true
			if s, ok := p.text(kv.val, "format"); ok && s != FormatV1 {
				p.errf(kv.val, "unsupported format %q (this build reads %q)", s, FormatV1)
			}
		case "mode":
			s, _ := p.text(kv.val, "mode")
			switch s {
			case "merge":
				f.Mode = ModeMerge
			case "replace":
				f.Mode = ModeReplace
			case "":
			default:
				p.errf(kv.val, "mode must be merge or replace, not %q", s)
			}
		case "vendor":
			haveVendor = true
			p.vendor(kv.val, &f.Vendor)
		case "disable":
			for _, item := range p.seq(kv.val, "disable") {
				if s, ok := p.text(item, "disable entry"); ok {
					if !idPattern.MatchString(s) {
						p.errf(item, "disable: %q is not a signature id", s)
					}
					f.Disable = append(f.Disable, s)
				}
			}
		case "signatures":
			haveSigs = true
			f.Signatures = p.signatures(kv.val, f)
		}
	}
	if root.Kind == yaml.MappingNode {
		if !haveFormat {
			p.errf(root, "missing required key %q (use %q)", "format", FormatV1)
		}
		if !haveVendor {
			p.errf(root, "missing required key %q", "vendor")
		}
		if !haveSigs && len(f.Disable) == 0 {
			p.errf(root, "missing required key %q", "signatures")
		}
	}
	return f
}

func (p *parser) vendor(n *yaml.Node, v *Vendor) {
	haveName := false
	for _, kv := range p.mapping(n, "vendor", "name", "legal_names", "country", "notes", "policies") {
		switch kv.key.Value {
		case "name":
			v.Name, haveName = p.text(kv.val, "vendor.name")
		case "legal_names":
			v.LegalNames = p.strList(kv.val, "vendor.legal_names")
		case "country":
			v.Country, _ = p.text(kv.val, "vendor.country")
		case "notes":
			v.Notes, _ = p.text(kv.val, "vendor.notes")
		case "policies":
			for _, item := range p.seq(kv.val, "vendor.policies") {
				v.Policies = append(v.Policies, p.policy(item))
			}
		}
	}
	if n.Kind == yaml.MappingNode && !haveName {
		p.errf(n, "vendor: missing required key %q", "name")
	}
}

func (p *parser) policy(n *yaml.Node) Policy {
	var pol Policy
	have := map[string]bool{}
	for _, kv := range p.mapping(n, "policy", "jurisdiction", "instrument", "date", "scope", "milestones", "note", "references") {
		have[kv.key.Value] = true
		switch kv.key.Value {
		case "jurisdiction":
			pol.Jurisdiction, _ = p.text(kv.val, "policy.jurisdiction")
		case "instrument":
			pol.Instrument, _ = p.text(kv.val, "policy.instrument")
		case "date":
			pol.Date = p.date(kv.val, "policy.date")
		case "scope":
			pol.Scope, _ = p.text(kv.val, "policy.scope")
		case "note":
			pol.Note, _ = p.text(kv.val, "policy.note")
		case "references":
			pol.References = p.references(kv.val, "policy.references")
		case "milestones":
			for _, item := range p.seq(kv.val, "policy.milestones") {
				var m Milestone
				got := map[string]bool{}
				for _, mkv := range p.mapping(item, "milestone", "date", "event") {
					got[mkv.key.Value] = true
					if mkv.key.Value == "date" {
						m.Date = p.date(mkv.val, "milestone.date")
					} else {
						m.Event, _ = p.text(mkv.val, "milestone.event")
					}
				}
				if item.Kind == yaml.MappingNode && (!got["date"] || !got["event"]) {
					p.errf(item, "milestone needs both date and event")
				}
				pol.Milestones = append(pol.Milestones, m)
			}
		}
	}
	if n.Kind == yaml.MappingNode {
		for _, k := range []string{"jurisdiction", "instrument", "date", "references"} {
			if !have[k] {
				p.errf(n, "policy: missing required key %q", k)
			}
		}
	}
	return pol
}

func (p *parser) signatures(n *yaml.Node, f *File) []*Signature {
	items := p.seq(n, "signatures")
	ids := make(map[string]int, len(items))
	out := make([]*Signature, 0, len(items))
	for _, item := range items {
		s := p.signature(item)
		if s == nil {
			continue
		}
		s.File = p.path
		if prev, dup := ids[s.ID]; dup {
			p.errf(item, "duplicate signature id %q (first at line %d)", s.ID, prev)
			continue
		}
		if s.ID != "" {
			ids[s.ID] = s.Line
		}
		out = append(out, s)
	}
	return out
}

var signatureKeys = []string{"id", "product", "purpose", "severity", "confidence", "description", "references", "weak", "match"}

func (p *parser) signature(n *yaml.Node) *Signature {
	s := &Signature{Line: n.Line}
	have := map[string]bool{}
	weak := false
	var sevNode, matchNode *yaml.Node
	for _, kv := range p.mapping(n, "signature", signatureKeys...) {
		have[kv.key.Value] = true
		switch kv.key.Value {
		case "id":
			if id, ok := p.text(kv.val, "id"); ok {
				if !idPattern.MatchString(id) {
					p.errf(kv.val, "id %q must match %s", id, idPattern)
				}
				s.ID, s.Line = id, kv.val.Line
			}
		case "product":
			s.Product, _ = p.text(kv.val, "product")
		case "purpose":
			s.Purpose = Purpose(p.enum(kv.val, "purpose", purposeNames[:]))
		case "severity":
			sevNode = kv.val
			s.Severity = Severity(p.enum(kv.val, "severity", severityNames[:]))
		case "confidence":
			s.Confidence = Confidence(p.enum(kv.val, "confidence", confidenceNames[:]))
		case "description":
			s.Description, _ = p.text(kv.val, "description")
		case "references":
			s.References = p.references(kv.val, "references")
		case "weak":
			weak = p.boolean(kv.val, "weak")
		case "match":
			matchNode = kv.val
		}
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for _, k := range []string{"id", "product", "purpose", "severity", "confidence", "description", "references", "match"} {
		if !have[k] {
			where := ""
			if s.ID != "" {
				where = " in " + s.ID
			}
			p.errf(n, "signature: missing required key %q%s", k, where)
		}
	}
	if matchNode != nil {
		items := p.seq(matchNode, "match")
		if matchNode.Kind == yaml.SequenceNode && len(items) == 0 {
			p.errf(matchNode, "match must list at least one matcher")
		}
		for _, item := range items {
			s.Matchers = p.matcher(item, weak, s.Matchers)
		}
		seen := make(map[[2]string]int, len(s.Matchers))
		for _, m := range s.Matchers {
			k := [2]string{m.Kind.String(), m.Value}
			if prev, dup := seen[k]; dup {
				p.errf(&yaml.Node{Line: m.Line}, "duplicate %s matcher %q (first at line %d)", m.Kind, m.Value, prev)
			}
			seen[k] = m.Line
		}
	}
	if weak && s.Severity > SeverityLow {
		p.errf(sevNode, "weak signature %s must have severity low: weak evidence is never reported above low", s.ID)
	}
	return s
}

func (p *parser) enum(n *yaml.Node, what string, names []string) int {
	s, ok := p.text(n, what)
	if !ok {
		return 0
	}
	for i, name := range names {
		if i > 0 && name == s {
			return i
		}
	}
	p.errf(n, "%s %q is not one of %s", what, s, strings.Join(names[1:], ", "))
	return 0
}

// matcher decodes one `match` entry: exactly one kind key whose value is a
// scalar or a list of scalars, plus the modifiers ports and weak. It appends
// one Matcher per value.
func (p *parser) matcher(n *yaml.Node, sigWeak bool, out []Matcher) []Matcher {
	allowed := append(append([]string{}, kindKeys[1:]...), "ports", "weak")
	var kindNode, valNode *yaml.Node
	kind := Kind(0)
	weak := sigWeak
	var ports []PortRange
	for _, kv := range p.mapping(n, "matcher", allowed...) {
		switch kv.key.Value {
		case "ports":
			ports = p.ports(kv.val)
		case "weak":
			if p.boolean(kv.val, "weak") {
				weak = true
			} else if sigWeak {
				p.errf(kv.val, "weak: false cannot override a weak signature")
			}
		default:
			if kindNode != nil {
				p.errf(kv.key, "matcher has two kinds (%s and %s); use one entry per kind", kindNode.Value, kv.key.Value)
				continue
			}
			kindNode, valNode = kv.key, kv.val
			for i, k := range kindKeys {
				if k == kv.key.Value {
					kind = Kind(i)
				}
			}
		}
	}
	if n.Kind != yaml.MappingNode {
		return out
	}
	if kindNode == nil {
		p.errf(n, "matcher needs one of: %s", strings.Join(kindKeys[1:], ", "))
		return out
	}
	values := []*yaml.Node{valNode}
	if valNode.Kind == yaml.SequenceNode {
		values = valNode.Content
		if len(values) == 0 {
			p.errf(valNode, "%s: empty list", kind)
		}
	}
	for _, v := range values {
		m := Matcher{Kind: kind, Ports: ports, Weak: weak, Line: v.Line}
		if p.matcherValue(v, &m) {
			out = append(out, m)
		}
	}
	return out
}

func (p *parser) ports(n *yaml.Node) []PortRange {
	var out []PortRange
	items := p.seq(n, "ports")
	if n.Kind == yaml.SequenceNode && len(items) == 0 {
		p.errf(n, "ports: empty list (omit the key to allow any port)")
	}
	for _, item := range items {
		s, ok := p.text(item, "port")
		if !ok {
			continue
		}
		lo, hi, isRange := strings.Cut(s, "-")
		if !isRange {
			hi = lo
		}
		l, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
		h, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
		if err1 != nil || err2 != nil || l == 0 || h < l {
			p.errf(item, "port %q must be 1-65535 or an ascending range lo-hi", s)
			continue
		}
		out = append(out, PortRange{uint16(l), uint16(h)})
	}
	return out
}

// matcherValue validates and normalises one value into m.
func (p *parser) matcherValue(n *yaml.Node, m *Matcher) bool {
	what := m.Kind.String()
	s, ok := p.text(n, what)
	if !ok {
		return false
	}
	switch m.Kind {
	case KindDomain, KindDomainSuffix:
		d, err := normaliseDomain(s)
		if err != nil {
			p.errf(n, "%s %q: %v", what, s, err)
			return false
		}
		if m.Kind == KindDomainSuffix {
			if !strings.Contains(d, ".") {
				p.errf(n, "%s %q: a suffix needs at least two labels", what, s)
				return false
			}
			if ps, _ := publicsuffix.PublicSuffix(d); ps == d {
				p.errf(n, "%s %q is a public suffix; it would match unrelated registrants", what, s)
				return false
			}
		}
		m.Value = d
	case KindHTTPPathPrefix:
		if !strings.HasPrefix(s, "/") || strings.ContainsAny(s, " \t\r\n?#") || len(s) > maxPathPrefixLen {
			p.errf(n, "%s %q must start with / and hold no spaces, '?' or '#' (max %d bytes)", what, s, maxPathPrefixLen)
			return false
		}
		m.Value = s
	case KindHTTPPathRegex, KindUserAgent, KindCertSubject, KindCertIssuer:
		if len(s) > MaxRegexLen {
			p.errf(n, "%s: regex longer than %d bytes", what, MaxRegexLen)
			return false
		}
		re, err := regexp.Compile(s)
		if err != nil {
			p.errf(n, "%s: bad RE2 regex %q: %v", what, s, err)
			return false
		}
		m.Value, m.re = s, re
	case KindContentType:
		ct := strings.ToLower(s)
		if strings.Contains(ct, ";") {
			p.errf(n, "%s %q: parameters are ignored when matching; write the bare type/subtype", what, s)
			return false
		}
		if !mimePattern.MatchString(ct) {
			p.errf(n, "%s %q is not a type/subtype", what, s)
			return false
		}
		m.Value = ct
	case KindIP:
		pfx, err := parsePrefix(s)
		if err != nil {
			p.errf(n, "%s %q: %v", what, s, err)
			return false
		}
		m.Value, m.prefix = pfx.String(), pfx
	case KindASN:
		digits := strings.TrimPrefix(strings.TrimPrefix(s, "AS"), "as")
		v, err := strconv.ParseUint(digits, 10, 32)
		if err != nil || v == 0 || v == 1<<32-1 {
			p.errf(n, "%s %q must be an AS number 1-4294967294 (optionally written AS123)", what, s)
			return false
		}
		m.Value, m.asn = strconv.FormatUint(v, 10), uint32(v)
	case KindJA3:
		h := strings.ToLower(s)
		if !ja3Pattern.MatchString(h) {
			p.errf(n, "%s %q must be 32 hex digits (an MD5)", what, s)
			return false
		}
		_, _ = hex.Decode(m.ja3[:], []byte(h))
		m.Value = h
	case KindJA4:
		if !ja4Pattern.MatchString(s) {
			p.errf(n, "%s %q is not a JA4 fingerprint (e.g. t13d1516h2_8daaf6152771_b186095e22b6)", what, s)
			return false
		}
		m.Value = s
	default:
		p.errf(n, "unknown matcher kind")
		return false
	}
	return true
}

// normaliseDomain lower-cases, drops one trailing dot and checks the syntax.
func normaliseDomain(s string) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(s, "."))
	if d == "" || len(d) > 253 {
		return "", errors.New("length must be 1-253")
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return "", errors.New("empty or over-long label")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("invalid character %q", c)
			}
		}
	}
	return d, nil
}

// parsePrefix accepts a CIDR or a bare address (a host route) and requires
// no host bits set, so a typo never silently widens or narrows a range.
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, errors.New("not an IP address or CIDR")
		}
		if a.Zone() != "" {
			return netip.Prefix{}, errors.New("zones are not allowed")
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, errors.New("bad CIDR")
	}
	if pfx.Addr().Is4In6() {
		return netip.Prefix{}, errors.New("IPv4-mapped IPv6; write the IPv4 CIDR")
	}
	if m := pfx.Masked(); m != pfx {
		return netip.Prefix{}, fmt.Errorf("host bits set; did you mean %s", m)
	}
	return pfx, nil
}
