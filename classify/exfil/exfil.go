// Package exfil holds streaming detectors for exfiltration-like traffic:
// beaconing and strobes, DNS tunnelling, upload-heavy flows and long
// connections. Scoring follows RITA v5 (anchors.md §1a). All state is
// bounded by named limits, and time comes only from the timestamps passed
// in (unix nanoseconds), so a replayed capture raises the same alerts as
// live traffic.
package exfil

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// FlowRecord is one flow (or an interim snapshot of a long flow) as the flow
// table reports it. Byte and packet counters are cumulative since flow start.
type FlowRecord struct {
	Client     netip.Addr
	Server     netip.Addr
	ServerPort uint16
	Transport  string // "tcp", "udp", ...
	// ServerName is the SNI, HTTP Host or DNS-correlated name; "" if unknown.
	ServerName    string
	StartNS       int64
	EndNS         int64 // time of the last packet so far
	ClientBytes   uint64
	ClientPackets uint64
	ServerBytes   uint64
	ServerPackets uint64
	// ServerReplied is false for a TCP attempt the server never answered.
	ServerReplied bool
	// Final is true for the closing record; interim records of a long flow
	// have Final=false and share its FlowID.
	Final  bool
	FlowID string
}

// DNSQuery is one DNS question seen from a client (with answer figures when
// the response was matched).
type DNSQuery struct {
	Client netip.Addr
	// Name is lower case without the trailing dot.
	Name string
	// RegisteredDomain is eTLD+1 from the public suffix list; "" if unknown.
	RegisteredDomain string
	QType            uint16
	TimeNS           int64
	NameLen          int // wire length of the query name; len(Name) when 0
	AnswerBytes      int
	AnswerCount      int
	RCode            uint8
}

// Kind names an alert type.
type Kind string

// Alert kinds.
const (
	KindBeacon         Kind = "beacon"
	KindStrobe         Kind = "strobe"
	KindDNSTunnel      Kind = "dns_tunnel"
	KindUploadHeavy    Kind = "upload_heavy"
	KindLongConnection Kind = "long_connection"
)

// Alert is one detection. Score is in 0..1.
type Alert struct {
	Kind        Kind       `json:"kind"`
	Score       float64    `json:"score"`
	Client      netip.Addr `json:"client"`
	Destination string     `json:"destination"` // server name when known, else server IP
	Server      netip.Addr `json:"server,omitzero"`
	ServerPort  uint16     `json:"server_port,omitempty"`
	FlowIDs     []string   `json:"flow_ids,omitempty"`
	TimeNS      int64      `json:"time_ns"`
	Reason      string     `json:"reason"`
	Figures     Figures    `json:"figures"`
}

// Figures are the numbers behind an alert, for phonehome.exfil.*.
type Figures struct {
	// Beacon and strobe.
	Connections       int     `json:"connections,omitempty"`
	UniqueTimestamps  int     `json:"unique_timestamps,omitempty"`
	MeanIntervalSec   float64 `json:"mean_interval_s,omitempty"`
	MedianIntervalSec float64 `json:"median_interval_s,omitempty"`
	IntervalMADSec    float64 `json:"interval_mad_s,omitempty"` // jitter
	IntervalSkew      float64 `json:"interval_skew,omitempty"`
	MedianBytes       float64 `json:"median_bytes,omitempty"`
	BytesMAD          float64 `json:"bytes_mad,omitempty"`
	BytesSkew         float64 `json:"bytes_skew,omitempty"`
	TSScore           float64 `json:"ts_score,omitempty"`
	DSScore           float64 `json:"ds_score,omitempty"`
	HistScore         float64 `json:"hist_score,omitempty"`
	DurScore          float64 `json:"dur_score,omitempty"`
	HistBars          int     `json:"hist_bars,omitempty"`
	LongestRunBins    int     `json:"longest_run_bins,omitempty"`
	Coverage          float64 `json:"coverage,omitempty"`
	DatasetSpanSec    float64 `json:"dataset_span_s,omitempty"`
	ConnsPerDay       float64 `json:"conns_per_day,omitempty"`
	// RITAThreatScore is RITA's bucketed category score (0.2..0.8).
	RITAThreatScore float64 `json:"rita_threat_score,omitempty"`

	// Volume (upload-heavy, long connection).
	BytesOut    uint64  `json:"bytes_out,omitempty"`
	BytesIn     uint64  `json:"bytes_in,omitempty"`
	Ratio       float64 `json:"ratio,omitempty"`
	DurationSec float64 `json:"duration_s,omitempty"`
	Flows       int     `json:"flows,omitempty"`
	// ThresholdSec is the long-connection threshold crossed.
	ThresholdSec float64 `json:"threshold_s,omitempty"`

	// DNS tunnel.
	UniqueSubdomains   uint64  `json:"unique_subdomains,omitempty"`
	UniqueApprox       bool    `json:"unique_approx,omitempty"`
	Queries            uint64  `json:"queries,omitempty"`
	QueriesPerMin      float64 `json:"queries_per_min,omitempty"`
	MeanEntropy        float64 `json:"mean_entropy,omitempty"`
	MeanSubdomainLen   float64 `json:"mean_subdomain_len,omitempty"`
	MaxLabelLen        int     `json:"max_label_len,omitempty"`
	SuspiciousQTypePct float64 `json:"suspicious_qtype_pct,omitempty"`
	NameBytes          uint64  `json:"name_bytes,omitempty"`
	AnswerBytes        uint64  `json:"answer_bytes,omitempty"`
	Evidence           float64 `json:"evidence,omitempty"`
}

// Stats counts what the detectors saw, skipped and evicted.
type Stats struct {
	Flows         uint64 `json:"flows"`
	FlowsInterim  uint64 `json:"flows_interim"`
	FlowsFailed   uint64 `json:"flows_failed"`    // TCP attempts without reply, never beacons
	FlowsBadTimes uint64 `json:"flows_bad_times"` // end before start or negative times

	BeaconPairs         int    `json:"beacon_pairs"`
	BeaconPairEvictions uint64 `json:"beacon_pair_evictions"`
	BeaconConnsDropped  uint64 `json:"beacon_conns_dropped"` // oldest connections overwritten in a full pair
	BeaconEvaluations   uint64 `json:"beacon_evaluations"`
	BeaconUnscorable    uint64 `json:"beacon_unscorable"` // RITA preconditions not met at evaluation

	DNSQueries          uint64 `json:"dns_queries"`
	DNSIgnoredSuffix    uint64 `json:"dns_ignored_suffix"`    // .arpa, .local, ...
	DNSKnownBenign      uint64 `json:"dns_known_benign"`      // listed DNSBL/CDN domains
	DNSReversedIP       uint64 `json:"dns_reversed_ip"`       // DNSBL-style reversed-IP names
	DNSNoRegistered     uint64 `json:"dns_no_registered"`     // caller gave no registered domain
	DNSPairs            int    `json:"dns_pairs"`             //
	DNSPairEvictions    uint64 `json:"dns_pair_evictions"`    //
	DNSPairsApproximate uint64 `json:"dns_pairs_approximate"` // switched from exact set to HyperLogLog
	DNSWindowResets     uint64 `json:"dns_window_resets"`

	UploadPairs         int    `json:"upload_pairs"`
	UploadPairEvictions uint64 `json:"upload_pair_evictions"`
	UploadFlowEvictions uint64 `json:"upload_flow_evictions"`

	LongFlows         int    `json:"long_flows"`
	LongFlowEvictions uint64 `json:"long_flow_evictions"`

	Alerts map[Kind]uint64 `json:"alerts"`
}

// Config holds every threshold; DefaultConfig documents the defaults.
type Config struct {
	Beacon    BeaconConfig    `yaml:"beacon"`
	DNSTunnel DNSTunnelConfig `yaml:"dns_tunnel"`
	Upload    UploadConfig    `yaml:"upload_heavy"`
	LongConn  LongConnConfig  `yaml:"long_connection"`
}

// DefaultConfig returns the documented defaults (see README.md).
func DefaultConfig() Config {
	return Config{
		Beacon:    defaultBeaconConfig(),
		DNSTunnel: defaultDNSTunnelConfig(),
		Upload:    defaultUploadConfig(),
		LongConn:  defaultLongConnConfig(),
	}
}

// Validate reports the first unusable setting.
func (c Config) Validate() error {
	if err := c.Beacon.validate(); err != nil {
		return fmt.Errorf("exfil: beacon: %w", err)
	}
	if err := c.DNSTunnel.validate(); err != nil {
		return fmt.Errorf("exfil: dns_tunnel: %w", err)
	}
	if err := c.Upload.validate(); err != nil {
		return fmt.Errorf("exfil: upload_heavy: %w", err)
	}
	if err := c.LongConn.validate(); err != nil {
		return fmt.Errorf("exfil: long_connection: %w", err)
	}
	return nil
}

func (t Thresholds) validate() error {
	if !(t.Base < t.Low && t.Low < t.Med && t.Med < t.High) {
		return errors.New("thresholds must rise strictly: base < low < med < high")
	}
	return nil
}

func checkScore(name string, v float64) error {
	if v < 0 || v > 1 {
		return fmt.Errorf("%s %v outside 0..1", name, v)
	}
	return nil
}

// Detectors runs all four detectors. It is not safe for concurrent use;
// shard by client address if several goroutines feed it.
type Detectors struct {
	cfg    Config
	beacon *beaconDetector
	dns    *dnsDetector
	upload *uploadDetector
	long   *longDetector
	stats  Stats
}

// New builds the detectors after validating cfg.
func New(cfg Config) (*Detectors, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Detectors{cfg: cfg, stats: Stats{Alerts: make(map[Kind]uint64)}}
	d.beacon = newBeaconDetector(cfg.Beacon, &d.stats)
	d.dns = newDNSDetector(cfg.DNSTunnel, &d.stats)
	d.upload = newUploadDetector(cfg.Upload, &d.stats)
	d.long = newLongDetector(cfg.LongConn, &d.stats)
	return d, nil
}

// ObserveFlow feeds one flow record and appends any alerts to out.
func (d *Detectors) ObserveFlow(r *FlowRecord, out []Alert) []Alert {
	d.stats.Flows++
	if !r.Final {
		d.stats.FlowsInterim++
	} else if r.Transport == "tcp" && !r.ServerReplied {
		d.stats.FlowsFailed++
	}
	if r.StartNS < 0 || r.EndNS < r.StartNS {
		d.stats.FlowsBadTimes++
		return out
	}
	n := len(out)
	if d.cfg.Beacon.Enabled {
		out = d.beacon.observe(r, out)
	}
	if d.cfg.Upload.Enabled {
		out = d.upload.observe(r, out)
	}
	if d.cfg.LongConn.Enabled {
		out = d.long.observe(r, out)
	}
	d.count(out[n:])
	return out
}

// ObserveDNS feeds one DNS query and appends any alerts to out.
func (d *Detectors) ObserveDNS(q *DNSQuery, out []Alert) []Alert {
	d.stats.DNSQueries++
	if !d.cfg.DNSTunnel.Enabled {
		return out
	}
	n := len(out)
	out = d.dns.observe(q, out)
	d.count(out[n:])
	return out
}

// Flush runs the final evaluation at the end of a capture (or on shutdown):
// every beacon pair that reached RITA's minimum is scored against the
// dataset ending at nowNS, and DNS pairs are re-scored with exact counts.
func (d *Detectors) Flush(nowNS int64, out []Alert) []Alert {
	n := len(out)
	if d.cfg.Beacon.Enabled {
		out = d.beacon.flush(nowNS, out)
	}
	if d.cfg.DNSTunnel.Enabled {
		out = d.dns.flush(nowNS, out)
	}
	d.count(out[n:])
	return out
}

func (d *Detectors) count(alerts []Alert) {
	for i := range alerts {
		d.stats.Alerts[alerts[i].Kind]++
	}
}

// Stats returns a snapshot of the counters.
func (d *Detectors) Stats() Stats {
	s := d.stats
	s.Alerts = make(map[Kind]uint64, len(d.stats.Alerts))
	for k, v := range d.stats.Alerts {
		s.Alerts[k] = v
	}
	s.BeaconPairs = d.beacon.pairs.len()
	s.BeaconPairEvictions = d.beacon.pairs.evictions
	s.DNSPairs = d.dns.pairs.len()
	s.DNSPairEvictions = d.dns.pairs.evictions
	s.UploadPairs = d.upload.pairs.len()
	s.UploadPairEvictions = d.upload.pairs.evictions
	s.UploadFlowEvictions = d.upload.flows.evictions
	s.LongFlows = d.long.flows.len()
	s.LongFlowEvictions = d.long.flows.evictions
	return s
}

// pairKey identifies client -> destination. When the server name is known
// the destination is the name (server left zero) so that a beacon rotating
// through CDN addresses stays one pair, as in RITA's sni beacons.
type pairKey struct {
	client netip.Addr
	server netip.Addr
	name   string
}

func keyOf(r *FlowRecord) pairKey {
	if r.ServerName != "" {
		return pairKey{client: r.Client, name: r.ServerName}
	}
	return pairKey{client: r.Client, server: r.Server}
}

func (k pairKey) destination() string {
	if k.name != "" {
		return k.name
	}
	return k.server.String()
}

func secs(ns int64) float64 { return float64(ns) / float64(time.Second) }
