package event

import (
	"net/netip"
	"strconv"
	"time"

	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"
)

// Encoder turns events into JSON lines with zap's JSON encoder. It is not
// safe for concurrent use; each worker owns one.
type Encoder struct {
	enc    zapcore.Encoder
	fields [1]zapcore.Field // EncodeEntry's argument, kept to spare an allocation per event
}

// NewEncoder returns an encoder whose lines start with "@timestamp" in RFC
// 3339 UTC with nanoseconds.
func NewEncoder() *Encoder {
	cfg := zapcore.EncoderConfig{
		TimeKey:        "@timestamp",
		EncodeTime:     encodeTime,
		LineEnding:     "\n",
		EncodeDuration: zapcore.NanosDurationEncoder,
	}
	return &Encoder{enc: zapcore.NewJSONEncoder(cfg)}
}

// TimeLayout is RFC 3339 with a fixed nine-digit fraction, so lines sort
// lexically and Elasticsearch's date_nanos keeps full precision.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

func encodeTime(t time.Time, enc zapcore.PrimitiveArrayEncoder) {
	var b [len(TimeLayout) + 8]byte
	enc.AppendByteString(appendTime(b[:0], t.UTC()))
}

// appendTime appends t (in UTC) in TimeLayout. Every event carries one to
// three times, and the general formatter, which parses its layout on each
// call, took a tenth of the encoding.
func appendTime(b []byte, t time.Time) []byte {
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, TimeLayout)
	}
	hour, minute, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond(), 9)
	return append(b, 'Z')
}

// appendDigits appends v (>= 0) zero-padded to width digits.
func appendDigits(b []byte, v, width int) []byte {
	var d [9]byte
	for i := width - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[:width]...)
}

func nsTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// Encode returns the event as one JSON line ending in '\n'. The caller owns
// the returned buffer and must Free it.
func (e *Encoder) Encode(ev *Event) (*buffer.Buffer, error) {
	e.fields[0] = zapcore.Field{Type: zapcore.InlineMarshalerType, Interface: ev}
	buf, err := e.enc.EncodeEntry(zapcore.Entry{Time: nsTime(ev.Timestamp)}, e.fields[:])
	e.fields[0] = zapcore.Field{}
	return buf, err
}

// MarshalLogObject writes the event's ECS fields.
func (ev *Event) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	_ = enc.AddObject("ecs", objFunc(func(o zapcore.ObjectEncoder) error {
		o.AddString("version", ECSVersion)
		return nil
	}))
	_ = enc.AddObject("event", (*eventFields)(ev))
	if ev.Source.IP.IsValid() {
		_ = enc.AddObject("source", &ev.Source)
	}
	if ev.Destination.IP.IsValid() {
		_ = enc.AddObject("destination", &ev.Destination)
	}
	if ev.Network.Transport != "" || ev.Network.Protocol != "" || ev.Network.CommunityID != "" {
		_ = enc.AddObject("network", &ev.Network)
	}
	if ev.Observer != nil {
		_ = enc.AddObject("observer", ev.Observer)
	}
	if ev.DNS != nil {
		_ = enc.AddObject("dns", ev.DNS)
	}
	if ev.TLS != nil {
		_ = enc.AddObject("tls", ev.TLS)
	}
	if ev.HTTP != nil {
		ev.HTTP.marshalTop(enc)
	}
	if ev.Rule != nil {
		_ = enc.AddObject("rule", ev.Rule)
	}
	if ev.Threat != nil {
		_ = enc.AddObject("threat", ev.Threat)
	}
	if len(ev.Related.IP) > 0 || len(ev.Related.Hosts) > 0 || len(ev.Related.Hash) > 0 {
		_ = enc.AddObject("related", &ev.Related)
	}
	_ = enc.AddObject("phonehome", &ev.Phonehome)
	return nil
}

type objFunc func(zapcore.ObjectEncoder) error

func (f objFunc) MarshalLogObject(enc zapcore.ObjectEncoder) error { return f(enc) }

type strs []string

func (s *strs) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for _, v := range *s {
		enc.AppendString(v)
	}
	return nil
}

type addrs []netip.Addr

func (s addrs) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for _, v := range s {
		enc.AppendString(v.String())
	}
	return nil
}

type uint16s []uint16

func (s uint16s) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for _, v := range s {
		enc.AppendUint16(v)
	}
	return nil
}

type uint8s []uint8

func (s uint8s) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for _, v := range s {
		enc.AppendUint8(v)
	}
	return nil
}

// addStrings takes the slice's address, which fits an interface as it is:
// a slice would be copied to the heap on every call.
func addStrings(enc zapcore.ObjectEncoder, key string, v *[]string) {
	if len(*v) > 0 {
		_ = enc.AddArray(key, (*strs)(v))
	}
}

func addString(enc zapcore.ObjectEncoder, key, v string) {
	if v != "" {
		enc.AddString(key, v)
	}
}

func addTime(enc zapcore.ObjectEncoder, key string, ns int64) {
	var b [len(TimeLayout) + 8]byte
	enc.AddByteString(key, appendTime(b[:0], nsTime(ns)))
}

// eventFields writes event.*: a named type rather than a method value,
// which would be allocated for every event.
type eventFields Event

func (ev *eventFields) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	addString(enc, "kind", ev.Kind)
	addStrings(enc, "category", &ev.Category)
	addStrings(enc, "type", &ev.Type)
	addString(enc, "dataset", ev.Dataset)
	enc.AddString("module", "phonehome")
	addString(enc, "action", ev.Action)
	addString(enc, "reason", ev.Reason)
	if ev.Severity != 0 {
		enc.AddInt("severity", ev.Severity)
	}
	if ev.Start != 0 {
		addTime(enc, "start", ev.Start)
		addTime(enc, "end", ev.End)
		enc.AddInt64("duration", ev.Duration)
	}
	return nil
}

// MarshalLogObject writes source.* or destination.*.
func (e *Endpoint) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("ip", e.IP.String())
	if e.HasPort {
		enc.AddUint16("port", e.Port)
	}
	if e.HasCounters {
		enc.AddUint64("bytes", e.Bytes)
		enc.AddUint64("packets", e.Packets)
	}
	addString(enc, "domain", e.Domain)
	if e.Geo.CountryISOCode != "" {
		_ = enc.AddObject("geo", objFunc(func(o zapcore.ObjectEncoder) error {
			o.AddString("country_iso_code", e.Geo.CountryISOCode)
			return nil
		}))
	}
	if e.Geo.ASNumber != 0 || e.Geo.ASOrg != "" {
		_ = enc.AddObject("as", objFunc(func(o zapcore.ObjectEncoder) error {
			if e.Geo.ASNumber != 0 {
				o.AddUint32("number", e.Geo.ASNumber)
			}
			if e.Geo.ASOrg != "" {
				_ = o.AddObject("organization", objFunc(func(o zapcore.ObjectEncoder) error {
					o.AddString("name", e.Geo.ASOrg)
					return nil
				}))
			}
			return nil
		}))
	}
	return nil
}

func vlanObj(id uint16) zapcore.ObjectMarshaler {
	return objFunc(func(o zapcore.ObjectEncoder) error {
		o.AddString("id", strconv.Itoa(int(id)))
		return nil
	})
}

// MarshalLogObject writes network.*.
func (n *Network) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	addString(enc, "transport", n.Transport)
	addString(enc, "type", n.Type)
	addString(enc, "iana_number", n.IANANumber)
	addString(enc, "protocol", n.Protocol)
	addString(enc, "community_id", n.CommunityID)
	if n.HasCounters {
		enc.AddUint64("bytes", n.Bytes)
		enc.AddUint64("packets", n.Packets)
	}
	if n.NumVLANs > 0 {
		_ = enc.AddObject("vlan", vlanObj(n.VLANs[0]))
	}
	if n.NumVLANs > 1 {
		_ = enc.AddObject("inner", objFunc(func(o zapcore.ObjectEncoder) error {
			return o.AddObject("vlan", vlanObj(n.VLANs[1]))
		}))
	}
	return nil
}

// MarshalLogObject writes observer.*.
func (o *Observer) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	addString(enc, "hostname", o.Hostname)
	addString(enc, "name", o.Name)
	enc.AddString("type", "sensor")
	enc.AddString("vendor", "phonehome")
	enc.AddString("product", "phonehome")
	addString(enc, "version", o.Version)
	if o.Interface != "" {
		_ = enc.AddObject("ingress", objFunc(func(e zapcore.ObjectEncoder) error {
			return e.AddObject("interface", objFunc(func(e zapcore.ObjectEncoder) error {
				e.AddString("name", o.Interface)
				return nil
			}))
		}))
	}
	return nil
}

// MarshalLogObject writes dns.*.
func (d *DNS) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	addString(enc, "type", d.Type)
	enc.AddString("id", strconv.Itoa(int(d.ID)))
	addString(enc, "op_code", d.OpCode)
	addStrings(enc, "header_flags", &d.HeaderFlags)
	addString(enc, "response_code", d.ResponseCode)
	_ = enc.AddObject("question", objFunc(func(q zapcore.ObjectEncoder) error {
		q.AddString("name", d.QuestionName)
		addString(q, "type", d.QuestionType)
		addString(q, "class", d.QuestionClass)
		addString(q, "registered_domain", d.RegisteredDomain)
		addString(q, "subdomain", d.Subdomain)
		addString(q, "top_level_domain", d.TopLevelDomain)
		return nil
	}))
	if len(d.Answers) > 0 {
		_ = enc.AddArray("answers", zapcore.ArrayMarshalerFunc(func(a zapcore.ArrayEncoder) error {
			for i := range d.Answers {
				ans := &d.Answers[i]
				_ = a.AppendObject(objFunc(func(o zapcore.ObjectEncoder) error {
					o.AddString("name", ans.Name)
					o.AddString("type", ans.Type)
					addString(o, "class", ans.Class)
					o.AddUint32("ttl", ans.TTL)
					o.AddString("data", ans.Data)
					return nil
				}))
			}
			return nil
		}))
	}
	if len(d.ResolvedIP) > 0 {
		_ = enc.AddArray("resolved_ip", addrs(d.ResolvedIP))
	}
	return nil
}

// MarshalLogObject writes tls.*.
func (t *TLS) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	addString(enc, "version", t.Version)
	addString(enc, "version_protocol", t.VersionProtocol)
	addString(enc, "cipher", t.Cipher)
	addString(enc, "next_protocol", t.NextProtocol)
	if t.HasEstablished {
		enc.AddBool("established", t.Established)
		enc.AddBool("resumed", t.Resumed)
	}
	if t.ClientServerName != "" || t.ClientJA3 != "" || t.ClientJA4 != "" {
		_ = enc.AddObject("client", objFunc(func(c zapcore.ObjectEncoder) error {
			addString(c, "server_name", t.ClientServerName)
			addString(c, "ja3", t.ClientJA3)
			addString(c, "ja4", t.ClientJA4)
			addStrings(c, "supported_ciphers", &t.ClientCiphers)
			return nil
		}))
	}
	if t.ServerJA3S != "" || t.ServerHashSHA256 != "" || t.ServerX509 != nil {
		_ = enc.AddObject("server", objFunc(func(s zapcore.ObjectEncoder) error {
			addString(s, "ja3s", t.ServerJA3S)
			if t.ServerHashSHA256 != "" {
				_ = s.AddObject("hash", objFunc(func(h zapcore.ObjectEncoder) error {
					h.AddString("sha256", t.ServerHashSHA256)
					return nil
				}))
			}
			if t.ServerX509 != nil {
				_ = s.AddObject("x509", t.ServerX509)
			}
			return nil
		}))
	}
	return nil
}

// MarshalLogObject writes tls.server.x509.*.
func (x *X509) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	_ = enc.AddObject("subject", &x.Subject)
	_ = enc.AddObject("issuer", &x.Issuer)
	addStrings(enc, "alternative_names", &x.AlternativeNames)
	addString(enc, "serial_number", x.SerialNumber)
	if !x.NotBefore.IsZero() {
		addTime(enc, "not_before", x.NotBefore.UnixNano())
	}
	if !x.NotAfter.IsZero() {
		addTime(enc, "not_after", x.NotAfter.UnixNano())
	}
	addString(enc, "signature_algorithm", x.SignatureAlg)
	addString(enc, "public_key_algorithm", x.PublicKeyAlg)
	addString(enc, "version_number", x.VersionNumber)
	return nil
}

// MarshalLogObject writes a distinguished name.
func (d *DN) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	addString(enc, "distinguished_name", d.DistinguishedName)
	addStrings(enc, "common_name", &d.CommonName)
	addStrings(enc, "country", &d.Country)
	addStrings(enc, "organization", &d.Organization)
	addStrings(enc, "organizational_unit", &d.OrganizationalUnit)
	addStrings(enc, "locality", &d.Locality)
	addStrings(enc, "state_or_province", &d.StateOrProvince)
	return nil
}

func (h *HTTP) marshalTop(enc zapcore.ObjectEncoder) {
	_ = enc.AddObject("http", objFunc(func(o zapcore.ObjectEncoder) error {
		addString(o, "version", h.Version)
		_ = o.AddObject("request", objFunc(func(r zapcore.ObjectEncoder) error {
			addString(r, "method", h.Method)
			addString(r, "mime_type", h.RequestMIMEType)
			_ = r.AddObject("body", objFunc(func(b zapcore.ObjectEncoder) error {
				b.AddUint64("bytes", h.RequestBytes)
				return nil
			}))
			return nil
		}))
		if h.StatusCode != 0 {
			_ = o.AddObject("response", objFunc(func(r zapcore.ObjectEncoder) error {
				r.AddInt("status_code", h.StatusCode)
				addString(r, "mime_type", h.MIMEType)
				_ = r.AddObject("body", objFunc(func(b zapcore.ObjectEncoder) error {
					b.AddUint64("bytes", h.ResponseBytes)
					return nil
				}))
				return nil
			}))
		}
		return nil
	}))
	_ = enc.AddObject("url", objFunc(func(u zapcore.ObjectEncoder) error {
		addString(u, "domain", h.URLDomain)
		if h.URLPort != 0 {
			u.AddUint16("port", h.URLPort)
		}
		addString(u, "path", h.URLPath)
		addString(u, "query", h.URLQuery)
		addString(u, "original", h.URLOriginal)
		return nil
	}))
	if h.UserAgent != "" {
		_ = enc.AddObject("user_agent", objFunc(func(u zapcore.ObjectEncoder) error {
			u.AddString("original", h.UserAgent)
			return nil
		}))
	}
}

// MarshalLogObject writes rule.*.
func (r *Rule) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	addString(enc, "id", r.ID)
	addString(enc, "name", r.Name)
	addString(enc, "category", r.Category)
	addString(enc, "description", r.Description)
	addString(enc, "reference", r.Reference)
	addString(enc, "ruleset", r.Ruleset)
	addString(enc, "version", r.Version)
	return nil
}

// MarshalLogObject writes threat.*.
func (t *Threat) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	return enc.AddObject("indicator", objFunc(func(i zapcore.ObjectEncoder) error {
		addString(i, "type", t.IndicatorType)
		addString(i, "confidence", t.Confidence)
		return nil
	}))
}

// MarshalLogObject writes related.*.
func (r *Related) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	if len(r.IP) > 0 {
		_ = enc.AddArray("ip", addrs(r.IP))
	}
	addStrings(enc, "hosts", &r.Hosts)
	addStrings(enc, "hash", &r.Hash)
	return nil
}

// MarshalLogObject writes phonehome.*.
func (p *Phonehome) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	addString(enc, "flow_id", p.FlowID)
	if len(p.VLANIDs) > 0 {
		_ = enc.AddArray("vlan_ids", uint16s(p.VLANIDs))
	}
	if f := p.Flow; f != nil {
		_ = enc.AddObject("flow", objFunc(func(o zapcore.ObjectEncoder) error {
			o.AddBool("final", f.Final)
			addString(o, "state", f.State)
			addString(o, "client_flags", f.ClientFlags)
			addString(o, "server_flags", f.ServerFlags)
			if f.Interims > 0 {
				o.AddInt("interims", f.Interims)
			}
			o.AddUint64("client_payload_bytes", f.ClientPayload)
			o.AddUint64("server_payload_bytes", f.ServerPayload)
			addString(o, "client_stream", f.ClientStream)
			addString(o, "server_stream", f.ServerStream)
			return nil
		}))
	}
	if t := p.Tunnel; t != nil {
		_ = enc.AddObject("tunnel", objFunc(func(o zapcore.ObjectEncoder) error {
			addStrings(o, "types", &t.Types)
			if t.Source.IsValid() {
				o.AddString("source_ip", t.Source.String())
				o.AddString("destination_ip", t.Destination.String())
			}
			if t.ID != 0 {
				o.AddUint32("id", t.ID)
			}
			return nil
		}))
	}
	if d := p.DNS; d != nil {
		_ = enc.AddObject("dns", objFunc(func(o zapcore.ObjectEncoder) error {
			o.AddBool("answered", d.Answered)
			if d.Answered {
				o.AddInt64("rtt", d.RTT)
			}
			if d.Truncated {
				o.AddBool("truncated", true)
			}
			return nil
		}))
	}
	if t := p.TLS; t != nil {
		_ = enc.AddObject("tls", t)
	}
	if h := p.HTTP; h != nil {
		_ = enc.AddObject("http", objFunc(func(o zapcore.ObjectEncoder) error {
			o.AddInt("request_index", h.RequestIndex)
			addString(o, "outcome", h.Outcome)
			return nil
		}))
	}
	addString(enc, "vendor", p.Vendor)
	addString(enc, "product", p.Product)
	addStrings(enc, "purpose", &p.Purpose)
	if len(p.Evidence) > 0 {
		_ = enc.AddReflected("evidence", p.Evidence)
	}
	if len(p.Policy) > 0 {
		_ = enc.AddReflected("policy", p.Policy)
	}
	if a := p.Alert; a != nil {
		_ = enc.AddObject("alert", objFunc(func(o zapcore.ObjectEncoder) error {
			o.AddUint64("suppressed", a.Suppressed)
			o.AddInt64("window", a.Window)
			return nil
		}))
	}
	if p.Exfil != nil {
		_ = enc.AddReflected("exfil", p.Exfil)
	}
	if inv := p.Inventory; inv != nil {
		_ = enc.AddObject("inventory", objFunc(func(o zapcore.ObjectEncoder) error {
			addTime(o, "first_seen", inv.FirstSeen)
			addTime(o, "last_seen", inv.LastSeen)
			o.AddUint64("flows", inv.Flows)
			o.AddUint64("bytes", inv.Bytes)
			addStrings(o, "purposes", &inv.Purposes)
			addStrings(o, "rules", &inv.Rules)
			o.AddUint64("lookups", inv.Lookups)
			addStrings(o, "evidence", &inv.Evidence)
			return nil
		}))
	}
	if p.Stats != nil {
		_ = enc.AddReflected("stats", p.Stats)
	}
	addStrings(enc, "anomalies", &p.Anomalies)
	return nil
}

// MarshalLogObject writes phonehome.tls.*.
func (t *TLSExtra) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	addString(enc, "ja3_string", t.JA3String)
	addString(enc, "ja3s_string", t.JA3SString)
	addString(enc, "ja4_r", t.JA4Raw)
	addString(enc, "client_version", t.ClientVersion)
	addStrings(enc, "supported_versions", &t.SupportedVersions)
	addStrings(enc, "alpn", &t.ALPN)
	if len(t.Extensions) > 0 {
		_ = enc.AddArray("extensions", uint16s(t.Extensions))
	}
	if len(t.SupportedGroups) > 0 {
		_ = enc.AddArray("supported_groups", uint16s(t.SupportedGroups))
	}
	if len(t.PointFormats) > 0 {
		_ = enc.AddArray("ec_point_formats", uint8s(t.PointFormats))
	}
	if len(t.SignatureAlgorithms) > 0 {
		_ = enc.AddArray("signature_algorithms", uint16s(t.SignatureAlgorithms))
	}
	if t.ECH {
		enc.AddBool("ech", true)
	}
	if len(t.ServerExtensions) > 0 {
		_ = enc.AddArray("server_extensions", uint16s(t.ServerExtensions))
	}
	if t.HelloRetry {
		enc.AddBool("hello_retry_request", true)
	}
	if t.Certificates > 0 {
		enc.AddInt("certificates", t.Certificates)
	}
	addString(enc, "quic_version", t.QUICVersion)
	addString(enc, "incomplete", t.Incomplete)
	return nil
}
