// Package event is phonehome's output schema: one Event per JSON line, with
// Elastic Common Schema (ECS) field names as nested objects, encoded through
// zap's JSON encoder. Every field is documented in docs/events.md; fields
// that ECS lacks live under "phonehome.*" or are documented extensions
// (tls.client.ja4). Field names are an API: keep them stable.
package event

import (
	"net/netip"
	"time"
)

// ECSVersion is the ECS release whose field names and types the events follow.
const ECSVersion = "9.1.0"

// Datasets (event.dataset values).
const (
	DatasetFlow      = "phonehome.flow"
	DatasetDNS       = "phonehome.dns"
	DatasetTLS       = "phonehome.tls"
	DatasetHTTP      = "phonehome.http"
	DatasetAlert     = "phonehome.alert"
	DatasetInventory = "phonehome.inventory"
	DatasetStats     = "phonehome.stats"
)

// Event is one output record. Zero-valued optional sections are omitted.
type Event struct {
	Timestamp int64 // unix ns: the packet time the event describes

	Kind     string   // event.kind: event, alert, state, metric
	Category []string // event.category
	Type     []string // event.type
	Dataset  string   // event.dataset
	Action   string   // event.action
	Reason   string   // event.reason
	Severity int      // event.severity (0: omitted)
	Start    int64    // event.start (unix ns, 0: omitted)
	End      int64    // event.end
	Duration int64    // event.duration (ns), emitted when Start is set

	Source, Destination Endpoint
	Network             Network
	Observer            *Observer

	DNS    *DNS
	TLS    *TLS
	HTTP   *HTTP
	Rule   *Rule
	Threat *Threat

	Phonehome Phonehome
	Related   Related
}

// Endpoint is ECS source.* / destination.*.
type Endpoint struct {
	IP      netip.Addr
	Port    uint16
	HasPort bool
	Bytes   uint64
	Packets uint64
	// HasCounters emits bytes and packets (flow records).
	HasCounters bool
	Domain      string
	Geo         Geo
}

// Geo is the GeoIP/ASN enrichment of an endpoint.
type Geo struct {
	CountryISOCode string
	ASNumber       uint32
	ASOrg          string
}

// Network is ECS network.*.
type Network struct {
	Transport   string // tcp, udp, icmp, ipv6-icmp, sctp, or the protocol number
	Type        string // ipv4, ipv6
	IANANumber  string
	Protocol    string // application protocol when known: dns, tls, quic, http
	CommunityID string
	Bytes       uint64
	Packets     uint64
	HasCounters bool
	VLANs       [3]uint16 // 802.1Q ids, outermost first: network.vlan.id, network.inner.vlan.id, then phonehome.vlan_ids
	NumVLANs    uint8
}

// Observer is ECS observer.*: the sensor that saw the traffic.
type Observer struct {
	Hostname  string
	Name      string
	Version   string
	Interface string // observer.ingress.interface.name
}

// DNS is ECS dns.*: one query/response transaction.
type DNS struct {
	Type             string // query, answer
	ID               uint16
	OpCode           string
	HeaderFlags      []string
	ResponseCode     string
	QuestionName     string
	QuestionType     string
	QuestionClass    string
	RegisteredDomain string
	Subdomain        string
	TopLevelDomain   string
	Answers          []DNSAnswer
	ResolvedIP       []netip.Addr
}

// DNSAnswer is one element of dns.answers.
type DNSAnswer struct {
	Name  string
	Type  string
	Class string
	TTL   uint32
	Data  string
}

// TLS is ECS tls.*.
type TLS struct {
	Version          string // "1.2"
	VersionProtocol  string // "tls"
	Cipher           string
	NextProtocol     string // ALPN chosen by the server, else the client's first offer
	Established      bool
	HasEstablished   bool
	Resumed          bool
	ClientServerName string
	ClientJA3        string
	ClientJA4        string // documented extension: tls.client.ja4
	ClientCiphers    []string
	ServerJA3S       string
	ServerHashSHA256 string
	ServerX509       *X509
}

// X509 is ECS tls.server.x509.*.
type X509 struct {
	Subject          DN
	Issuer           DN
	AlternativeNames []string
	SerialNumber     string
	NotBefore        time.Time
	NotAfter         time.Time
	SignatureAlg     string
	PublicKeyAlg     string
	VersionNumber    string
}

// DN is a distinguished name split as ECS does.
type DN struct {
	DistinguishedName  string
	CommonName         []string
	Country            []string
	Organization       []string
	OrganizationalUnit []string
	Locality           []string
	StateOrProvince    []string
}

// HTTP is ECS http.*, url.* and user_agent.* for one request/response.
type HTTP struct {
	Method          string
	Version         string
	RequestMIMEType string
	RequestBytes    uint64 // body bytes
	StatusCode      int
	MIMEType        string
	ResponseBytes   uint64
	URLDomain       string
	URLPort         uint16
	URLPath         string
	URLQuery        string
	URLOriginal     string
	UserAgent       string
}

// Rule is ECS rule.* for alerts.
type Rule struct {
	ID          string
	Name        string
	Category    string
	Description string
	Reference   string
	Ruleset     string
	Version     string
}

// Threat is the subset of ECS threat.* used by vendor alerts.
type Threat struct {
	IndicatorType string // domain-name, ipv4-addr, ...
	Confidence    string
}

// Related is ECS related.*.
type Related struct {
	IP    []netip.Addr
	Hosts []string
	Hash  []string
}
