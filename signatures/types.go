// Package signatures holds the vendor signature set: a versioned YAML format
// (one file per vendor, with the vendor's legal restrictions), its validator,
// the embedded default set and a matcher compiled once per Set so lookups cost
// the same for ten signatures or ten thousand.
package signatures

import (
	"fmt"
	"net/netip"
	"regexp"
)

// FormatV1 is the only accepted value of a file's top-level `format` key.
const FormatV1 = "phonehome-signatures/v1"

// Purpose says what a vendor endpoint does for the product.
type Purpose uint8

// Purposes, in the order the format documents them.
const (
	PurposeUpdate Purpose = iota + 1
	PurposeReputation
	PurposeActivation
	PurposeTelemetry
	PurposeManagement
	PurposeWeb
	PurposeBrand
)

var purposeNames = [...]string{"", "update", "reputation", "activation", "telemetry", "management", "web", "brand"}

func (p Purpose) String() string {
	if int(p) < len(purposeNames) && p != 0 {
		return purposeNames[p]
	}
	return fmt.Sprintf("purpose(%d)", uint8(p))
}

// Severity orders how much a hit matters. The zero value is invalid.
type Severity uint8

// Severities, weakest first.
const (
	SeverityLow Severity = iota + 1
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"", "low", "medium", "high", "critical"}

// ecsSeverity maps to ECS event.severity using the Elastic risk-score bands
// (low ≤21, medium ≤47, high ≤73, critical ≤100), taking each band's top.
var ecsSeverity = [...]int{0, 21, 47, 73, 99}

func (s Severity) String() string {
	if int(s) < len(severityNames) && s != 0 {
		return severityNames[s]
	}
	return fmt.Sprintf("severity(%d)", uint8(s))
}

// ECS returns the numeric ECS event.severity for s (0 when s is invalid).
func (s Severity) ECS() int {
	if int(s) < len(ecsSeverity) {
		return ecsSeverity[s]
	}
	return 0
}

// Confidence says how well the research supports a signature.
type Confidence uint8

// Confidences, weakest first.
const (
	ConfidenceLow Confidence = iota + 1
	ConfidenceMedium
	ConfidenceHigh
)

var confidenceNames = [...]string{"", "low", "medium", "high"}

func (c Confidence) String() string {
	if int(c) < len(confidenceNames) && c != 0 {
		return confidenceNames[c]
	}
	return fmt.Sprintf("confidence(%d)", uint8(c))
}

// Kind is the kind of evidence a matcher inspects.
type Kind uint8

// Matcher kinds. DomainSuffix and HTTPPathRegex are variants reported under
// their own kind so a Hit says exactly which rule matched.
const (
	KindDomain Kind = iota + 1
	KindDomainSuffix
	KindHTTPPathPrefix
	KindHTTPPathRegex
	KindContentType
	KindUserAgent
	KindIP
	KindASN
	KindJA3
	KindJA4
	KindCertSubject
	KindCertIssuer
)

// kindKeys are the YAML keys of the matcher kinds, indexed by Kind.
var kindKeys = [...]string{"", "domain", "domain_suffix", "http_path_prefix", "http_path_regex",
	"http_content_type", "user_agent", "ip", "asn", "ja3", "ja4", "cert_subject", "cert_issuer"}

func (k Kind) String() string {
	if int(k) < len(kindKeys) && k != 0 {
		return kindKeys[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// PortRange is an inclusive destination-port range.
type PortRange struct{ Lo, Hi uint16 }

func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return fmt.Sprint(r.Lo)
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// Matcher is one piece of evidence of a signature. Exactly one of the value
// fields applies, chosen by Kind. Matchers are read-only once loaded.
type Matcher struct {
	Kind Kind
	// Value is the matcher's value as written (normalised: domains and
	// content types lower-cased, domains without a trailing dot, ASN as
	// digits).
	Value string
	// Ports are optional destination ports that corroborate the evidence;
	// empty means any port. See Hit.ApplyPort.
	Ports []PortRange
	// Weak marks evidence that is shared with unrelated services (an ASN, a
	// research blog). Weak hits are reported at low severity.
	Weak bool
	// Line is the 1-based line of the value in its file (0 if built in code).
	Line int

	prefix netip.Prefix   // KindIP
	asn    uint32         // KindASN
	ja3    [16]byte       // KindJA3
	re     *regexp.Regexp // regex kinds
}

// Prefix returns the CIDR of a KindIP matcher.
func (m *Matcher) Prefix() netip.Prefix { return m.prefix }

// ASN returns the AS number of a KindASN matcher.
func (m *Matcher) ASN() uint32 { return m.asn }

// Signature is one attributable behaviour of a vendor's product. Signatures
// are read-only once loaded; a Set shares them between readers.
type Signature struct {
	ID          string
	Vendor      string
	Product     string
	Purpose     Purpose
	Severity    Severity
	Confidence  Confidence
	Description string
	References  []string
	Matchers    []Matcher
	// File and Line locate the signature's `id` in its source file.
	File string
	Line int
}

// Policy is one legal restriction on a vendor.
type Policy struct {
	Jurisdiction string
	Instrument   string
	// Date is when the instrument was issued: YYYY, YYYY-MM or YYYY-MM-DD.
	Date       string
	Scope      string
	Milestones []Milestone
	Note       string
	References []string
}

// Milestone is a later dated step of a policy (publication, cut-off).
type Milestone struct {
	Date  string
	Event string
}

// Vendor is a vendor's metadata and its policies.
type Vendor struct {
	Name       string
	LegalNames []string
	Country    string
	Notes      string
	Policies   []Policy
}

// Mode says how a file combines with files loaded before it for the same
// vendor.
type Mode uint8

// Modes.
const (
	// ModeMerge adds the file's signatures, replacing any loaded signature of
	// the same id, and adds its policies.
	ModeMerge Mode = iota
	// ModeReplace discards everything loaded before for the same vendor.
	ModeReplace
)

// File is one parsed and validated signature file.
type File struct {
	Path       string
	Mode       Mode
	Vendor     Vendor
	Disable    []string
	Signatures []*Signature
}
