package attribute

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/phonehome/phonehome/event"
	"github.com/phonehome/phonehome/signatures"
)

// Evidence types (phonehome.evidence.type).
const (
	EvDomain         = "domain" // a DNS question or answer name
	EvSNI            = "sni"
	EvQUICSNI        = "quic_sni"
	EvHTTPHost       = "http_host"
	EvHTTPPath       = "http_path"
	EvContentType    = "content_type"
	EvUserAgent      = "user_agent"
	EvCertificate    = "certificate"
	EvJA3            = "ja3"
	EvJA4            = "ja4"
	EvIP             = "ip"
	EvASN            = "asn"
	EvDNSCorrelation = "dns_correlation"
)

// maxNamesPerEvent bounds the answer records and certificate names one
// event contributes, so a hostile answer or certificate costs a bounded
// number of lookups.
const maxNamesPerEvent = 32

// add records hits found in one event field. ports says whether the flow's
// destination port corroborates them (not for names inside DNS messages).
func (a *Attributor) add(hits []signatures.Hit, typ, value, field string, port uint16, ports bool) {
next:
	for _, h := range hits {
		if ports {
			h.ApplyPort(port)
		}
		for i := range a.found {
			o := &a.found[i]
			if o.hit.Sig == h.Sig && o.ev.Type == typ && o.ev.Value == value {
				continue next
			}
		}
		a.found = append(a.found, match{hit: h, ev: event.Evidence{Type: typ, Value: value, Field: field, Weak: h.Weak}})
	}
}

func (a *Attributor) matchName(name, typ, field string, port uint16, ports bool) {
	if name == "" {
		return
	}
	a.hits = a.set.MatchDomain(name, a.hits[:0])
	if len(a.hits) > 0 {
		a.add(a.hits, typ, normName(name), field, port, ports)
	}
}

// dnsEvidence matches the question and answer names of a DNS transaction
// and records its address records for later correlation.
func (a *Attributor) dnsEvidence(ev *event.Event) {
	d := ev.DNS
	if d == nil {
		return
	}
	a.matchName(d.QuestionName, EvDomain, "dns.question.name", 0, false)
	n := min(len(d.Answers), maxNamesPerEvent)
	for i := range n {
		a.matchName(d.Answers[i].Name, EvDomain, "dns.answers.name", 0, false)
	}
	// CNAME targets without an address record of their own.
	for i := range n {
		if ans := &d.Answers[i]; ans.Type == "CNAME" {
			a.matchName(ans.Data, EvDomain, "dns.answers.data", 0, false)
		}
	}
	at := ev.Timestamp
	if x := ev.Phonehome.DNS; x != nil && x.RTT > 0 {
		at += x.RTT
	}
	a.dns.add(d, at)
}

// destination enriches a flow, tls or http event's destination with the
// name it was resolved from (or the name the client sent), its geo and AS,
// and matches the resolved names (dns_correlation).
func (a *Attributor) destination(ev *event.Event) {
	dst := &ev.Destination
	if !dst.IP.IsValid() {
		return
	}
	if a.cfg.Geo != nil && dst.Geo == (event.Geo{}) {
		dst.Geo = a.cfg.Geo.Lookup(dst.IP)
	}
	if e, ok := a.dns.lookup(dst.IP, ev.Timestamp); ok {
		if dst.Domain == "" {
			dst.Domain = e.asked
		}
		for i := 0; i < int(e.nchain); i++ {
			a.matchName(e.chain[i], EvDNSCorrelation, "destination.ip", dst.Port, dst.HasPort)
		}
	}
	if dst.Domain == "" {
		switch {
		case ev.TLS != nil && ev.TLS.ClientServerName != "":
			dst.Domain = normName(ev.TLS.ClientServerName)
		case ev.HTTP != nil && ev.HTTP.URLDomain != "" && !isIPLiteral(ev.HTTP.URLDomain):
			dst.Domain = normName(ev.HTTP.URLDomain)
		}
	}
}

func isIPLiteral(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	_, err := netip.ParseAddr(host)
	return err == nil
}

func (a *Attributor) tlsEvidence(ev *event.Event) {
	t := ev.TLS
	port, ports := ev.Destination.Port, ev.Destination.HasPort
	typ := EvSNI
	if ev.Network.Protocol == "quic" {
		typ = EvQUICSNI
	}
	a.matchName(t.ClientServerName, typ, "tls.client.server_name", port, ports)
	if t.ClientJA3 != "" {
		a.hits = a.set.MatchJA3(t.ClientJA3, a.hits[:0])
		a.add(a.hits, EvJA3, t.ClientJA3, "tls.client.ja3", port, ports)
	}
	if t.ClientJA4 != "" {
		a.hits = a.set.MatchJA4(t.ClientJA4, a.hits[:0])
		a.add(a.hits, EvJA4, t.ClientJA4, "tls.client.ja4", port, ports)
	}
	x := t.ServerX509
	if x == nil {
		return
	}
	for i, san := range x.AlternativeNames {
		if i == maxNamesPerEvent {
			break
		}
		// A wildcard covers names below its parent: match the parent.
		a.matchName(strings.TrimPrefix(san, "*."), EvCertificate, "tls.server.x509.alternative_names", port, ports)
	}
	for i, cn := range x.Subject.CommonName {
		if i == maxNamesPerEvent {
			break
		}
		a.matchName(strings.TrimPrefix(cn, "*."), EvCertificate, "tls.server.x509.subject.common_name", port, ports)
	}
	if dn := x.Subject.DistinguishedName; dn != "" {
		a.hits = a.set.MatchCertSubject(dn, a.hits[:0])
		a.add(a.hits, EvCertificate, dn, "tls.server.x509.subject.distinguished_name", port, ports)
	}
	if dn := x.Issuer.DistinguishedName; dn != "" {
		a.hits = a.set.MatchCertIssuer(dn, a.hits[:0])
		a.add(a.hits, EvCertificate, dn, "tls.server.x509.issuer.distinguished_name", port, ports)
	}
}

func (a *Attributor) httpEvidence(ev *event.Event) {
	h := ev.HTTP
	port, ports := ev.Destination.Port, ev.Destination.HasPort
	if h.URLDomain != "" && !isIPLiteral(h.URLDomain) {
		a.matchName(h.URLDomain, EvHTTPHost, "url.domain", port, ports)
	}
	path, field := h.URLPath, "url.path"
	if path == "" {
		path, field = h.URLOriginal, "url.original"
	}
	if path != "" {
		a.hits = a.set.MatchHTTPPath(path, a.hits[:0])
		a.add(a.hits, EvHTTPPath, path, field, port, ports)
	}
	if h.MIMEType != "" {
		a.hits = a.set.MatchContentType(h.MIMEType, a.hits[:0])
		a.add(a.hits, EvContentType, h.MIMEType, "http.response.mime_type", port, ports)
	}
	if h.RequestMIMEType != "" {
		a.hits = a.set.MatchContentType(h.RequestMIMEType, a.hits[:0])
		a.add(a.hits, EvContentType, h.RequestMIMEType, "http.request.mime_type", port, ports)
	}
	if h.UserAgent != "" {
		a.hits = a.set.MatchUserAgent(h.UserAgent, a.hits[:0])
		a.add(a.hits, EvUserAgent, h.UserAgent, "user_agent.original", port, ports)
	}
}

// addressEvidence matches the destination address (every event: the
// fallback-resolver signatures are about DNS traffic) and, for flows, its
// AS number.
func (a *Attributor) addressEvidence(ev *event.Event, isDNS bool) {
	dst := &ev.Destination
	if !dst.IP.IsValid() {
		return
	}
	a.hits = a.set.MatchIP(dst.IP, a.hits[:0])
	if len(a.hits) > 0 {
		a.add(a.hits, EvIP, dst.IP.String(), "destination.ip", dst.Port, dst.HasPort)
	}
	if !isDNS && dst.Geo.ASNumber != 0 {
		a.hits = a.set.MatchASN(dst.Geo.ASNumber, a.hits[:0])
		if len(a.hits) > 0 {
			a.add(a.hits, EvASN, "AS"+strconv.FormatUint(uint64(dst.Geo.ASNumber), 10), "destination.as.number", dst.Port, dst.HasPort)
		}
	}
}
