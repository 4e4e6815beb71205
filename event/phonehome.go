package event

import "net/netip"

// Phonehome holds the fields ECS has no name for, under "phonehome.*".
type Phonehome struct {
	// FlowID ties a flow's flow, dns, tls, http and alert events together
	// (like Suricata's flow_id).
	FlowID string
	// VLANIDs is the whole 802.1Q stack when it is deeper than ECS's two
	// levels (network.vlan, network.inner.vlan).
	VLANIDs []uint16
	Flow    *FlowInfo
	Tunnel  *TunnelInfo
	DNS     *DNSExtra
	TLS     *TLSExtra
	HTTP    *HTTPExtra

	// Attribution of the flow to a vendor's telemetry (issue: signatures).
	Vendor   string
	Product  string
	Purpose  []string
	Evidence []Evidence
	Policy   []Policy
	// Alert is an alert's deduplication figures (dataset phonehome.alert).
	Alert *AlertInfo

	// Exfil is an exfiltration detector's verdict and figures; it is
	// encoded as a JSON object (any JSON-marshalable value with the kind
	// and score inside).
	Exfil any
	// Inventory is a host inventory summary (dataset phonehome.inventory).
	Inventory *Inventory
	// Stats is the sensor's counters (dataset phonehome.stats), any
	// JSON-marshalable value.
	Stats any
	// Anomalies lists parse anomalies met while dissecting this event.
	Anomalies []string
}

// FlowInfo is phonehome.flow.*.
type FlowInfo struct {
	Final       bool
	State       string // TCP state
	ClientFlags string // TCP flags seen from the client, e.g. "SAF"
	ServerFlags string
	Interims    int
	// Payload bytes per direction (transport payload, as Zeek's orig_bytes).
	ClientPayload uint64
	ServerPayload uint64
	// Dissection, per direction: why it stopped early (gap, limit...).
	ClientStream string
	ServerStream string
}

// TunnelInfo is phonehome.tunnel.*: the encapsulation around the flow.
type TunnelInfo struct {
	Types       []string
	Source      netip.Addr
	Destination netip.Addr
	ID          uint32
}

// DNSExtra is phonehome.dns.*.
type DNSExtra struct {
	RTT       int64 // ns between query and response, 0 when unanswered
	Answered  bool
	Truncated bool
}

// TLSExtra is phonehome.tls.*: handshake details ECS has no field for.
type TLSExtra struct {
	JA3String           string
	JA3SString          string
	JA4Raw              string
	ClientVersion       string   // legacy ClientHello version, e.g. "1.2"
	SupportedVersions   []string // from the supported_versions extension
	ALPN                []string // client's offer, in order
	Extensions          []uint16 // client's, in wire order
	SupportedGroups     []uint16
	PointFormats        []uint8
	SignatureAlgorithms []uint16
	ECH                 bool // encrypted_client_hello present: SNI is the provider's outer name
	ServerExtensions    []uint16
	HelloRetry          bool
	Certificates        int // chain length seen (TLS 1.2 and older)
	QUICVersion         string
	Incomplete          string // why the handshake was not fully seen
}

// HTTPExtra is phonehome.http.*.
type HTTPExtra struct {
	RequestIndex int    // 1-based position on a keep-alive connection
	Outcome      string // complete, no_response, incomplete, unmatched
}

// Evidence is one element of phonehome.evidence.
type Evidence struct {
	Type  string `json:"type"`  // domain, sni, quic_sni, http_host, http_path, content_type, user_agent, certificate, ja3, ja4, ip, asn, dns_correlation
	Value string `json:"value"` // what matched
	Field string `json:"field"` // the event field it came from
	Weak  bool   `json:"weak,omitempty"`
}

// Policy is one element of phonehome.policy: who restricts the vendor.
type Policy struct {
	Jurisdiction string `json:"jurisdiction"`
	Instrument   string `json:"instrument"`
	Since        string `json:"since"`
	Reference    string `json:"reference,omitempty"`
}

// Inventory is phonehome.inventory.*: one client host's contact with a vendor.
type Inventory struct {
	FirstSeen int64    `json:"-"`
	LastSeen  int64    `json:"-"`
	Flows     uint64   `json:"flows"`
	Bytes     uint64   `json:"bytes"`
	Purposes  []string `json:"purposes"`
	Rules     []string `json:"rules"`
	// Lookups counts DNS transactions for the vendor's names (Flows and
	// Bytes count the other flows: contact with the vendor itself).
	Lookups uint64 `json:"lookups"`
	// Evidence summarises what attributed the flows, "type:value".
	Evidence []string `json:"evidence"`
}

// AlertInfo is phonehome.alert.*: how many repeats of the same (client host,
// rule) the deduplication window folded into this alert.
type AlertInfo struct {
	// Suppressed counts the repeats since the previous alert of the same
	// (client host, rule) that were not emitted.
	Suppressed uint64
	// Window is the deduplication window in ns (0: every flow alerts).
	Window int64
}
