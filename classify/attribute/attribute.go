// Package attribute is the engine's cross-flow classifier for vendor
// telemetry: it matches every dns, tls, http and flow event against the
// compiled signature set, correlates later connections with earlier DNS
// answers, tags the events of attributed flows, raises one deduplicated
// alert per attributed flow when its final record arrives, and keeps a
// per-(client host, vendor) inventory.
package attribute

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/phonehome/phonehome/engine"
	"github.com/phonehome/phonehome/event"
	"github.com/phonehome/phonehome/signatures"
)

// Defaults of Config.
const (
	// DefaultRuleset is rule.ruleset for signatures of the embedded set.
	DefaultRuleset = "phonehome-default"
	// DefaultUploadFloor is the client→server payload above which vendor
	// traffic counts as a large upload (1 MB).
	DefaultUploadFloor = 1 << 20
	// DefaultUploadRatio is how many times the reply the upload must be.
	DefaultUploadRatio = 10
	// DefaultMaxFlows bounds attributed flows whose final record has not
	// arrived yet.
	DefaultMaxFlows = 65_536
	// DefaultMaxAlertKeys bounds the (client host, rule) pairs the
	// deduplication remembers.
	DefaultMaxAlertKeys = 65_536
	// DefaultMaxInventory bounds the (client host, vendor) inventory rows.
	DefaultMaxInventory = 65_536
	// maxFlowEvidence bounds the evidence kept per flow; more is counted.
	maxFlowEvidence = 32
	// maxInventoryList bounds each list (purposes, rules, evidence) of an
	// inventory row; more is counted.
	maxInventoryList = 16
)

// RuleCategory is rule.category of every vendor attribution.
const RuleCategory = "vendor_telemetry"

// Config configures an Attributor. Zero values take the defaults above.
type Config struct {
	// Signatures is the compiled set (required).
	Signatures *signatures.Set
	// Geo, if set, adds destination.geo and destination.as to flow, tls,
	// http and alert events, and its AS numbers are matched as evidence.
	Geo GeoLookup
	// AlertWindow folds repeats of the same (client host, rule) within the
	// window into the next alert; 0 alerts on every attributed flow.
	AlertWindow time.Duration
	// UploadFloor and UploadRatio define a large upload: client payload
	// above the floor and at least ratio times the server's.
	UploadFloor uint64
	UploadRatio uint64
	// InventoryEvery, if positive, emits the inventory rows that changed
	// every so much packet time (the daemon); Finish always emits all.
	InventoryEvery time.Duration
	// DNS correlation cache: entries and the TTL clamp.
	DNSCacheEntries      int
	DNSMinTTL, DNSMaxTTL time.Duration
	MaxFlows             int
	MaxAlertKeys         int
	MaxInventory         int
	// Ruleset is rule.ruleset for signatures of the embedded defaults;
	// other signatures report their file.
	Ruleset string
}

func (c Config) withDefaults() Config {
	if c.UploadFloor == 0 {
		c.UploadFloor = DefaultUploadFloor
	}
	if c.UploadRatio == 0 {
		c.UploadRatio = DefaultUploadRatio
	}
	if c.DNSCacheEntries <= 0 {
		c.DNSCacheEntries = DefaultDNSCacheEntries
	}
	if c.DNSMinTTL <= 0 {
		c.DNSMinTTL = DefaultDNSMinTTL
	}
	if c.DNSMaxTTL <= 0 {
		c.DNSMaxTTL = DefaultDNSMaxTTL
	}
	c.DNSMaxTTL = max(c.DNSMaxTTL, c.DNSMinTTL)
	if c.MaxFlows <= 0 {
		c.MaxFlows = DefaultMaxFlows
	}
	if c.MaxAlertKeys <= 0 {
		c.MaxAlertKeys = DefaultMaxAlertKeys
	}
	if c.MaxInventory <= 0 {
		c.MaxInventory = DefaultMaxInventory
	}
	if c.Ruleset == "" {
		c.Ruleset = DefaultRuleset
	}
	return c
}

// Stats are the Attributor's counters.
type Stats struct {
	Events          uint64 // events processed
	Reloads         uint64 // signature sets swapped in by Reload
	Attributed      uint64 // events tagged with a vendor
	Alerts          uint64 // alerts emitted
	Suppressed      uint64 // alerts folded into a later one by the window
	Escalated       uint64 // alerts emitted inside the window because severity rose
	Uploads         uint64 // alerts raised a step for a large upload
	DNSInserted     uint64 // addresses recorded from answers
	DNSEvicted      uint64 // addresses dropped at the cache limit
	DNSExpired      uint64 // addresses dropped when their TTL ran out
	DNSEntries      int    // addresses cached now
	FlowsEvicted    uint64 // attributed flows dropped at MaxFlows before their final record
	AlertKeysEvict  uint64 // dedup pairs dropped at MaxAlertKeys
	InventoryEvict  uint64 // inventory rows dropped at MaxInventory
	EvidenceDropped uint64 // evidence beyond the per-flow or per-row bound
}

// match is one signature hit and what it was found in.
type match struct {
	hit signatures.Hit
	ev  event.Evidence
}

// flowState is an attributed flow's evidence so far.
type flowState struct {
	matches []match
}

// hostKey is a client host: its address and VLAN stack (private space is
// reused across VLANs).
type hostKey struct {
	ip    netip.Addr
	vlans [3]uint16
	nvlan uint8
}

func (h hostKey) String() string {
	s := h.ip.String()
	if h.nvlan > 0 {
		parts := make([]string, h.nvlan)
		for i := range parts {
			parts[i] = strconv.Itoa(int(h.vlans[i]))
		}
		s += " (vlan " + strings.Join(parts, "/") + ")"
	}
	return s
}

type alertKey struct {
	host   hostKey
	rule   string
	lookup bool // the flow is a DNS lookup, not a connection to the vendor
}

type alertState struct {
	last       int64 // when the last alert was emitted
	severity   signatures.Severity
	suppressed uint64
}

// sigInfo is what a signature contributes to events, built once.
type sigInfo struct {
	rule     *event.Rule
	policies []event.Policy
}

// Attributor is the vendor attribution Classifier. One instance serves one
// run on one goroutine; it is not safe for concurrent use.
type Attributor struct {
	cfg    Config
	set    *signatures.Set
	dns    *dnsCache
	flows  *lru[string, flowState]
	alerts *lru[alertKey, alertState]
	inv    *lru[invKey, invState]
	info   map[*signatures.Signature]*sigInfo
	// policies are each vendor's restrictions, by lower-cased name.
	policies map[string][]event.Policy
	hits     []signatures.Hit // scratch for one Match call
	found    []match          // scratch for one event
	lastInv  int64
	stats    Stats
	// pending is a set handed over by Reload from another goroutine.
	pending atomic.Pointer[signatures.Set]
}

var _ engine.Classifier = (*Attributor)(nil)

// New builds an Attributor over cfg.Signatures.
func New(cfg Config) (*Attributor, error) {
	if cfg.Signatures == nil {
		return nil, fmt.Errorf("attribute: no signature set")
	}
	if cfg.AlertWindow < 0 {
		return nil, fmt.Errorf("attribute: negative alert window %v", cfg.AlertWindow)
	}
	cfg = cfg.withDefaults()
	a := &Attributor{
		cfg:    cfg,
		set:    cfg.Signatures,
		dns:    newDNSCache(cfg.DNSCacheEntries, cfg.DNSMinTTL, cfg.DNSMaxTTL),
		flows:  newLRU[string, flowState](cfg.MaxFlows),
		alerts: newLRU[alertKey, alertState](cfg.MaxAlertKeys),
		inv:    newLRU[invKey, invState](cfg.MaxInventory),
		info:   map[*signatures.Signature]*sigInfo{},
	}
	a.install(cfg.Signatures)
	return a, nil
}

// install makes set the one matched against. Rule and policy information of
// earlier sets stays in a.info, because flows in progress still hold hits
// on their signatures.
func (a *Attributor) install(set *signatures.Set) {
	a.set = set
	policies := map[string][]event.Policy{}
	a.policies = policies
	for _, v := range set.Vendors() {
		var ps []event.Policy
		for _, p := range v.Policies {
			ep := event.Policy{Jurisdiction: p.Jurisdiction, Instrument: p.Instrument, Since: p.Date}
			if len(p.References) > 0 {
				ep.Reference = p.References[0]
			}
			ps = append(ps, ep)
		}
		policies[strings.ToLower(v.Name)] = ps
	}
	for _, s := range set.Signatures() {
		r := &event.Rule{
			ID:          s.ID,
			Name:        fmt.Sprintf("%s %s: %s", s.Vendor, s.Purpose, s.Product),
			Category:    RuleCategory,
			Description: s.Description,
			Reference:   firstURL(s.References),
			Ruleset:     a.cfg.Ruleset,
		}
		if !strings.HasPrefix(s.File, "embedded:") && s.File != "" {
			r.Ruleset = s.File
		}
		a.info[s] = &sigInfo{rule: r, policies: policies[strings.ToLower(s.Vendor)]}
	}
}

// Reload swaps in a new signature set (the daemon's SIGHUP). It is safe to
// call from any goroutine: the set is taken up before the next event, so
// every event is matched against one whole set, old or new.
func (a *Attributor) Reload(set *signatures.Set) {
	a.pending.Store(set)
}

// takeReload installs a set handed over by Reload.
func (a *Attributor) takeReload() {
	if set := a.pending.Swap(nil); set != nil {
		a.install(set)
		a.stats.Reloads++
	}
}

func firstURL(refs []string) string {
	for _, r := range refs {
		if strings.HasPrefix(r, "https://") || strings.HasPrefix(r, "http://") {
			return r
		}
	}
	if len(refs) > 0 {
		return refs[0]
	}
	return ""
}

// Stats returns the counters.
func (a *Attributor) Stats() Stats {
	s := a.stats
	s.DNSInserted = a.dns.inserted
	s.DNSEvicted = a.dns.entries.evicted
	s.DNSExpired = a.dns.expired
	s.DNSEntries = a.dns.entries.len()
	s.FlowsEvicted = a.flows.evicted
	s.AlertKeysEvict = a.alerts.evicted
	s.InventoryEvict = a.inv.evicted
	return s
}

// Process implements engine.Classifier: it enriches ev (destination.domain,
// geo, and for attributed flows phonehome.vendor/product/purpose/evidence
// and rule.*) and, on an attributed flow's final record, emits its alert.
func (a *Attributor) Process(ev *event.Event, emit func(*event.Event)) {
	a.takeReload()
	a.stats.Events++
	isDNS := false
	switch ev.Dataset {
	case event.DatasetDNS:
		isDNS = true
	case event.DatasetFlow, event.DatasetTLS, event.DatasetHTTP:
	default:
		return // alerts, stats, inventories: not traffic
	}
	a.found = a.found[:0]
	if isDNS {
		a.dnsEvidence(ev)
	} else {
		a.destination(ev)
		if ev.TLS != nil {
			a.tlsEvidence(ev)
		}
		if ev.HTTP != nil {
			a.httpEvidence(ev)
		}
	}
	a.addressEvidence(ev, isDNS)

	id := ev.Phonehome.FlowID
	var st *flowState
	if id != "" {
		if len(a.found) > 0 {
			st, _ = a.flows.put(id)
			a.merge(st, a.found)
		} else if s, ok := a.flows.get(id); ok {
			st = s
		}
	}
	// DNS events speak only for their own question: a resolver flow that
	// asked for a vendor name once does not make its next lookup vendor
	// traffic.
	ms := a.found
	if st != nil && !isDNS {
		ms = st.matches
	}
	final := ev.Dataset == event.DatasetFlow && ev.Phonehome.Flow != nil && ev.Phonehome.Flow.Final
	if p := best(ms); p >= 0 {
		a.tag(ev, ms, p)
		a.stats.Attributed++
		a.noteInventory(ev, ms, p, isDNS)
		if final {
			a.alert(ev, ms, p, emit)
		}
	}
	if final && st != nil {
		a.flows.delete(id)
	}
}

// Tick implements engine.Classifier: with InventoryEvery set it emits the
// inventory rows that changed since the last report.
func (a *Attributor) Tick(now int64, emit func(*event.Event)) {
	a.takeReload()
	every := int64(a.cfg.InventoryEvery)
	if every <= 0 {
		return
	}
	if a.lastInv == 0 {
		a.lastInv = now
		return
	}
	if now-a.lastInv < every {
		return
	}
	a.lastInv = now
	a.emitInventory(now, true, emit)
}

// Finish implements engine.Classifier: it emits every inventory row.
func (a *Attributor) Finish(now int64, emit func(*event.Event)) {
	a.emitInventory(now, false, emit)
}

// merge adds new matches to a flow's evidence, once per (signature, type,
// value), up to maxFlowEvidence.
func (a *Attributor) merge(st *flowState, found []match) {
next:
	for _, m := range found {
		for i := range st.matches {
			o := &st.matches[i]
			if o.hit.Sig == m.hit.Sig && o.ev.Type == m.ev.Type && o.ev.Value == m.ev.Value {
				continue next
			}
		}
		if len(st.matches) >= maxFlowEvidence {
			a.stats.EvidenceDropped++
			continue
		}
		st.matches = append(st.matches, m)
	}
}

// best returns the index of the match that attributes the flow: non-weak
// before weak, then the higher effective severity, then confidence, then
// the more specific kind (exact domain before suffix), then the first.
// It returns -1 for no matches.
func best(ms []match) int {
	b := -1
	for i := range ms {
		if b < 0 || better(&ms[i], &ms[b]) {
			b = i
		}
	}
	return b
}

func better(mx, my *match) bool {
	x, y := &mx.hit, &my.hit
	if x.Weak != y.Weak {
		return !x.Weak
	}
	if sx, sy := x.Severity(), y.Severity(); sx != sy {
		return sx > sy
	}
	if cx, cy := x.Confidence(), y.Confidence(); cx != cy {
		return cx > cy
	}
	if kx, ky := specificity(x.Kind), specificity(y.Kind); kx != ky {
		return kx > ky
	}
	// What the flow itself said beats what an earlier answer implied.
	return mx.ev.Type != EvDNSCorrelation && my.ev.Type == EvDNSCorrelation
}

// specificity ranks matcher kinds by how narrowly they name an endpoint.
func specificity(k signatures.Kind) int {
	switch k {
	case signatures.KindDomain, signatures.KindJA3, signatures.KindJA4, signatures.KindCertSubject:
		return 3
	case signatures.KindDomainSuffix, signatures.KindHTTPPathPrefix, signatures.KindHTTPPathRegex, signatures.KindContentType, signatures.KindCertIssuer, signatures.KindUserAgent:
		return 2
	}
	return 1
}

// vendorMatches returns the matches of the primary's vendor (other vendors'
// hits on the same flow are left out of its alert).
func vendorMatches(ms []match, p int) []match {
	v := ms[p].hit.Sig.Vendor
	same := true
	for i := range ms {
		if ms[i].hit.Sig.Vendor != v {
			same = false
			break
		}
	}
	if same {
		return ms
	}
	out := make([]match, 0, len(ms))
	for _, m := range ms {
		if m.hit.Sig.Vendor == v {
			out = append(out, m)
		}
	}
	return out
}

// purposes lists the distinct purposes of ms, the primary's first.
func purposes(ms []match, p int) []string {
	out := []string{ms[p].hit.Sig.Purpose.String()}
	for _, m := range ms {
		s := m.hit.Sig.Purpose.String()
		dup := false
		for _, o := range out {
			if o == s {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, s)
		}
	}
	return out
}

// evidenceOf lists each observation once, whichever signatures it hit
// (the rule says which one attributed the flow). It is weak only when
// every hit on it is.
func evidenceOf(ms []match) []event.Evidence {
	out := make([]event.Evidence, 0, len(ms))
next:
	for i := range ms {
		e := ms[i].ev
		for j := range out {
			o := &out[j]
			if o.Type == e.Type && o.Value == e.Value && o.Field == e.Field {
				o.Weak = o.Weak && e.Weak
				continue next
			}
		}
		out = append(out, e)
	}
	return out
}

// tag writes the attribution into an event of the flow.
func (a *Attributor) tag(ev *event.Event, ms []match, p int) {
	ms = vendorMatches(ms, p)
	p = best(ms)
	sig := ms[p].hit.Sig
	ev.Phonehome.Vendor = sig.Vendor
	ev.Phonehome.Product = sig.Product
	ev.Phonehome.Purpose = purposes(ms, p)
	ev.Phonehome.Evidence = evidenceOf(ms)
	if ev.Rule == nil {
		ev.Rule = a.info[sig].rule
	}
}
