package dissect

import (
	"strconv"
	"strings"

	"github.com/phonehome/phonehome/classify/dns"
	"github.com/phonehome/phonehome/classify/http"
	"github.com/phonehome/phonehome/classify/quic"
	"github.com/phonehome/phonehome/classify/tls"
	"github.com/phonehome/phonehome/event"
)

func (st *state) emitDNS(tx *dns.Transaction) {
	ts := tx.QueryTime
	if tx.Query == nil {
		ts = tx.ResponseTime
	}
	ev := st.newEvent(event.DatasetDNS, ts)
	ev.Network.Protocol = "dns"
	d := &event.DNS{QuestionName: tx.Name, QuestionType: dns.TypeName(tx.Type)}
	ev.DNS = d
	d.RegisteredDomain, d.Subdomain, d.TopLevelDomain = dns.Split(tx.Name)
	hdr := tx.Query
	if tx.Response != nil {
		hdr = tx.Response
		d.Type = "answer"
	} else {
		d.Type = "query"
	}
	if hdr != nil {
		d.ID = hdr.ID
		d.OpCode = dns.OpCodeString(hdr.Opcode)
		d.HeaderFlags = dns.HeaderFlags(nil, hdr)
		if len(hdr.Questions) > 0 {
			d.QuestionClass = dns.ClassName(hdr.Questions[0].Class)
		}
	}
	if r := tx.Response; r != nil {
		d.ResponseCode = dns.ResponseCodeString(r.Rcode)
		for _, a := range r.Answers {
			d.Answers = append(d.Answers, event.DNSAnswer{Name: a.Name, Type: dns.TypeName(a.Type), Class: dns.ClassName(a.Class), TTL: a.TTL, Data: a.Data})
			if a.Type == 1 || a.Type == 28 {
				if ip, err := parseAddr(a.Data); err == nil {
					d.ResolvedIP = append(d.ResolvedIP, ip)
				}
			}
		}
	}
	ev.Phonehome.DNS = &event.DNSExtra{Answered: tx.Answered(), RTT: tx.RTT, Truncated: hdr != nil && hdr.Truncated}
	if an := st.pendingAnomalies[tx.ID]; len(an) > 0 {
		ev.Phonehome.Anomalies = an
		delete(st.pendingAnomalies, tx.ID)
	}
	if tx.Name != "" {
		ev.Related.Hosts = []string{tx.Name}
	}
	st.d.emit.Emit(ev)
}

// emitTLS emits the TCP flow's handshake event once.
func (st *state) emitTLS() {
	t := st.tls
	if t.emitted || (t.client == nil && t.server == nil) {
		return
	}
	t.emitted = true
	st.d.stats.TLSHandshakes.Add(1)
	ev := st.newEvent(event.DatasetTLS, t.clientTS)
	if ev.Timestamp == 0 {
		ev.Timestamp = st.f.First
	}
	fillTLS(ev, t.client, t.server, t.certs, false)
	ev.Phonehome.TLS.HelloRetry = ev.Phonehome.TLS.HelloRetry || t.helloRetry
	if t.server == nil {
		ev.Phonehome.TLS.Incomplete = "no server hello seen"
	}
	ev.Phonehome.Anomalies = t.anomalies
	st.d.emit.Emit(ev)
}

// emitQUIC emits the QUIC flow's handshake event once.
func (st *state) emitQUIC() {
	if st.quicDone {
		return
	}
	st.quicDone = true
	q := st.quic
	qs := q.Stats()
	if qs.DecryptFailed > 0 {
		st.d.stats.QUICUndecrypt.Add(qs.DecryptFailed)
	}
	var ch *tls.ClientHello
	var sh *tls.ServerHello
	var anomalies []string
	if b := q.ClientHello(); b != nil {
		c, err := tls.ParseClientHello(b)
		if err != nil {
			anomalies = append(anomalies, "quic: client hello: "+err.Error())
		}
		ch = c
	}
	if b := q.ServerHello(); b != nil {
		s, err := tls.ParseServerHello(b)
		if err != nil {
			anomalies = append(anomalies, "quic: server hello: "+err.Error())
		}
		sh = s
	}
	if ch == nil && sh == nil {
		return // nothing decrypted: counted, not logged
	}
	st.d.stats.QUICHandshakes.Add(1)
	ts := st.quicTS
	if ts == 0 {
		ts = st.f.First
	}
	ev := st.newEvent(event.DatasetTLS, ts)
	ev.Network.Protocol = "quic"
	fillTLS(ev, ch, sh, nil, true)
	ev.Phonehome.TLS.QUICVersion = quicVersion(q.Version())
	if ch == nil {
		ev.Phonehome.TLS.Incomplete = "no client hello decrypted"
	} else if sh == nil {
		ev.Phonehome.TLS.Incomplete = "no server hello decrypted"
	}
	ev.Phonehome.Anomalies = anomalies
	st.d.emit.Emit(ev)
}

func quicVersion(v uint32) string {
	switch v {
	case quic.Version1:
		return "1"
	case quic.Version2:
		return "2"
	case 0:
		return ""
	}
	return "0x" + strconv.FormatUint(uint64(v), 16)
}

func fillTLS(ev *event.Event, ch *tls.ClientHello, sh *tls.ServerHello, certs []tls.Certificate, isQUIC bool) {
	t := &event.TLS{}
	x := &event.TLSExtra{}
	ev.TLS, ev.Phonehome.TLS = t, x
	if ch != nil {
		t.ClientServerName = ch.ServerName
		raw, hash := ch.JA3()
		t.ClientJA3, x.JA3String = hash, raw
		t.ClientJA4 = ch.JA4(isQUIC)
		x.JA4Raw = ch.JA4R(isQUIC)
		for _, c := range ch.CipherSuites {
			if !tls.IsGREASE(c) {
				t.ClientCiphers = append(t.ClientCiphers, tls.CipherName(c))
			}
		}
		_, x.ClientVersion = tls.VersionString(ch.LegacyVersion)
		for _, v := range ch.SupportedVersions {
			if !tls.IsGREASE(v) {
				if _, s := tls.VersionString(v); s != "" {
					x.SupportedVersions = append(x.SupportedVersions, s)
				}
			}
		}
		x.ALPN = ch.ALPN
		x.Extensions = ch.Extensions
		x.SupportedGroups = ch.SupportedGroups
		x.PointFormats = ch.ECPointFormats
		x.SignatureAlgorithms = ch.SignatureAlgorithms
		x.ECH = ch.HasECH
		if ch.ServerName != "" {
			ev.Related.Hosts = []string{ch.ServerName}
		}
		if len(ch.ALPN) > 0 {
			t.NextProtocol = strings.ToLower(ch.ALPN[0])
		}
	}
	if sh != nil {
		t.VersionProtocol, t.Version = tls.VersionString(sh.Version())
		t.Cipher = tls.CipherName(sh.CipherSuite)
		if sh.ALPN != "" {
			t.NextProtocol = strings.ToLower(sh.ALPN)
		}
		raw, hash := sh.JA3S()
		t.ServerJA3S, x.JA3SString = hash, raw
		x.ServerExtensions = sh.Extensions
		x.HelloRetry = sh.HelloRetryRequest
		t.HasEstablished, t.Established = true, !sh.HelloRetryRequest
	} else if ch != nil {
		// Only the client spoke: report the highest version it offered.
		v := ch.LegacyVersion
		for _, sv := range ch.SupportedVersions {
			if !tls.IsGREASE(sv) && sv > v && sv <= 0x0304 {
				v = sv
			}
		}
		t.VersionProtocol, t.Version = tls.VersionString(v)
	}
	if len(certs) > 0 {
		leaf := &certs[0]
		t.ServerHashSHA256 = leaf.SHA256
		t.ServerX509 = &event.X509{
			Subject:          dnOf(leaf.Subject),
			Issuer:           dnOf(leaf.Issuer),
			AlternativeNames: leaf.AlternativeNames,
			SerialNumber:     leaf.SerialNumber,
			NotBefore:        leaf.NotBefore,
			NotAfter:         leaf.NotAfter,
			SignatureAlg:     leaf.SignatureAlgorithm,
			PublicKeyAlg:     leaf.PublicKeyAlgorithm,
			VersionNumber:    strconv.Itoa(leaf.VersionNumber),
		}
		x.Certificates = len(certs)
		ev.Related.Hash = []string{leaf.SHA256}
	}
}

func dnOf(n tls.Name) event.DN {
	return event.DN{
		DistinguishedName:  n.DistinguishedName,
		CommonName:         n.CommonName,
		Country:            n.Country,
		Organization:       n.Organization,
		OrganizationalUnit: n.OrganizationalUnit,
		Locality:           n.Locality,
		StateOrProvince:    n.StateOrProvince,
	}
}

func (st *state) httpEvent(tx *http.Transaction, index int) *event.Event {
	ev := st.newEvent(event.DatasetHTTP, tx.RequestTime)
	if ev.Timestamp == 0 {
		ev.Timestamp = tx.ResponseTime
	}
	ev.Network.Protocol = "http"
	h := &event.HTTP{
		Method:          tx.Method,
		Version:         tx.Version,
		RequestMIMEType: mimeOnly(tx.RequestContentType),
		RequestBytes:    uint64(max(tx.RequestBodyBytes, 0)),
		StatusCode:      tx.Status,
		MIMEType:        tx.MimeType,
		ResponseBytes:   uint64(max(tx.ResponseBodyBytes, 0)),
		URLDomain:       tx.Host,
		URLPort:         tx.Port,
		URLPath:         tx.Path,
		URLQuery:        tx.Query,
		URLOriginal:     tx.Target,
		UserAgent:       tx.UserAgent,
	}
	ev.HTTP = h
	ev.Phonehome.HTTP = &event.HTTPExtra{RequestIndex: index, Outcome: tx.Outcome.String()}
	if tx.Anomaly != http.AnomalyNone {
		ev.Phonehome.Anomalies = []string{"http: " + tx.Anomaly.String()}
	}
	if tx.Host != "" {
		ev.Related.Hosts = []string{tx.Host}
	}
	return ev
}

func mimeOnly(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}
