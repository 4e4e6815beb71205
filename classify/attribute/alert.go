package attribute

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/phonehome/phonehome/event"
	"github.com/phonehome/phonehome/signatures"
)

func hostOf(ev *event.Event) hostKey {
	return hostKey{ip: ev.Source.IP.Unmap(), vlans: ev.Network.VLANs, nvlan: min(ev.Network.NumVLANs, 3)}
}

// payloads returns the flow's client→server and server→client bytes:
// transport payload when the record has it, else bytes on the wire.
func payloads(ev *event.Event) (up, down uint64) {
	if f := ev.Phonehome.Flow; f != nil && (f.ClientPayload > 0 || f.ServerPayload > 0) {
		return f.ClientPayload, f.ServerPayload
	}
	return ev.Source.Bytes, ev.Destination.Bytes
}

// indicatorType is threat.indicator.type for an evidence type.
func indicatorType(evType string, dst netip.Addr) string {
	switch evType {
	case EvIP:
		if dst.Unmap().Is4() {
			return "ipv4-addr"
		}
		return "ipv6-addr"
	case EvASN:
		return "autonomous-system"
	case EvCertificate:
		return "x509-certificate"
	case EvHTTPPath, EvContentType:
		return "url"
	case EvJA3, EvJA4, EvUserAgent:
		return "software"
	}
	return "domain-name"
}

// confidenceName is threat.indicator.confidence (ECS: Low, Medium, High).
func confidenceName(c signatures.Confidence) string {
	switch c {
	case signatures.ConfidenceHigh:
		return "High"
	case signatures.ConfidenceMedium:
		return "Medium"
	}
	return "Low"
}

// alert handles an attributed flow's final record: it applies the upload
// bump and the deduplication window, and emits the alert.
func (a *Attributor) alert(ev *event.Event, ms []match, p int, emit func(*event.Event)) {
	ms = vendorMatches(ms, p)
	p = best(ms)
	prim := ms[p]
	sig := prim.hit.Sig
	sev := prim.hit.Severity()
	var reason strings.Builder
	fmt.Fprintf(&reason, "%s %s matched %s (%s %s, %s)", prim.ev.Field, prim.ev.Value, sig.ID, sig.Vendor, sig.Purpose, sev)
	if prim.hit.Weak {
		reason.WriteString("; weak evidence only")
	}
	evidence := evidenceOf(ms)
	if n := len(evidence) - 1; n > 0 {
		fmt.Fprintf(&reason, "; %d more piece(s) of evidence", n)
	}
	up, down := payloads(ev)
	if up >= a.cfg.UploadFloor && up/a.cfg.UploadRatio >= down {
		// Weak evidence alone never reaches high, even for an upload.
		top := signatures.SeverityCritical
		if prim.hit.Weak {
			top = signatures.SeverityMedium
		}
		if sev < top {
			sev++
		}
		a.stats.Uploads++
		fmt.Fprintf(&reason, "; large upload: %d bytes sent, %d received: severity raised to %s", up, down, sev)
	}

	// A name lookup and the connection it leads to are deduplicated
	// apart: the lookup ends first (its record is older) and must not hide
	// the connection, which is what the analyst acts on.
	key := alertKey{host: hostOf(ev), rule: sig.ID, lookup: ev.Network.Protocol == "dns"}
	st, created := a.alerts.put(key)
	if w := int64(a.cfg.AlertWindow); !created && w > 0 && ev.Timestamp-st.last < w {
		if sev <= st.severity {
			st.suppressed++
			a.stats.Suppressed++
			return
		}
		// A repeat that is worse than what was reported (an upload) is
		// not folded away.
		a.stats.Escalated++
		reason.WriteString("; severity above the last alert in the window")
	}
	suppressed := st.suppressed
	st.last, st.severity, st.suppressed = ev.Timestamp, sev, 0
	a.stats.Alerts++

	info := a.info[sig]
	al := &event.Event{
		Timestamp:   ev.Timestamp,
		Kind:        "alert",
		Category:    []string{"network", "intrusion_detection"},
		Type:        []string{"info"},
		Dataset:     event.DatasetAlert,
		Action:      "vendor_telemetry",
		Reason:      reason.String(),
		Severity:    sev.ECS(),
		Start:       ev.Start,
		End:         ev.End,
		Duration:    ev.Duration,
		Source:      ev.Source,
		Destination: ev.Destination,
		Network:     ev.Network,
		Observer:    ev.Observer,
		Rule:        info.rule,
		Threat:      &event.Threat{IndicatorType: indicatorType(prim.ev.Type, ev.Destination.IP), Confidence: confidenceName(prim.hit.Confidence())},
	}
	ph := &al.Phonehome
	ph.FlowID = ev.Phonehome.FlowID
	ph.VLANIDs = ev.Phonehome.VLANIDs
	ph.Tunnel = ev.Phonehome.Tunnel
	ph.Vendor, ph.Product = sig.Vendor, sig.Product
	ph.Purpose = purposes(ms, p)
	ph.Evidence = evidence
	ph.Policy = info.policies
	ph.Alert = &event.AlertInfo{Suppressed: suppressed, Window: int64(a.cfg.AlertWindow)}
	al.Related.IP = []netip.Addr{ev.Source.IP, ev.Destination.IP}
	for _, m := range ms {
		switch m.ev.Type {
		case EvDomain, EvSNI, EvQUICSNI, EvHTTPHost, EvDNSCorrelation:
			if !contains(al.Related.Hosts, m.ev.Value) {
				al.Related.Hosts = append(al.Related.Hosts, m.ev.Value)
			}
		}
	}
	emit(al)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
