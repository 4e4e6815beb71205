package tls

import "fmt"

// Extension type codes used by the parsers and the fingerprints.
const (
	ExtServerName          = 0x0000
	ExtSupportedGroups     = 0x000a
	ExtECPointFormats      = 0x000b
	ExtSignatureAlgorithms = 0x000d
	ExtALPN                = 0x0010
	ExtSupportedVersions   = 0x002b
	ExtQUICTransportParams = 0x0039
	ExtECH                 = 0xfe0d
)

// maxSessionIDLen is the largest legacy_session_id (RFC 8446 section 4.1.2).
const maxSessionIDLen = 32

// ClientHello is the cleartext content of a TLS ClientHello. Lists are in
// wire order with GREASE values kept; the fingerprint methods filter them.
// Strings are copies: the ClientHello does not alias the parsed message.
type ClientHello struct {
	// RecordVersion is the record-layer version of the record that carried
	// the message; zero when parsed from a bare handshake message (see
	// Message.ClientHello).
	RecordVersion uint16
	// LegacyVersion is the ClientHello's legacy_version (client_version).
	LegacyVersion uint16
	// SupportedVersions is the list of extension 0x002b.
	SupportedVersions []uint16
	SessionIDLen      int
	CipherSuites      []uint16
	// CompressionMethods is kept for completeness (JA3 ignores it).
	CompressionMethods int
	// Extensions holds every extension type in wire order.
	Extensions []uint16
	// ServerName is the first host_name of extension 0x0000, lower-cased,
	// with non-printable bytes and '\' escaped as \xNN / \\ so that it cannot
	// break a log line. With HasECH it is the provider's public (outer) name.
	ServerName string
	// ALPN holds the protocol ids of extension 0x0010, escaped like
	// ServerName (but not lower-cased).
	ALPN                []string
	SupportedGroups     []uint16
	ECPointFormats      []uint8
	SignatureAlgorithms []uint16 // only from extension 0x000d
	// HasECH: extension 0xfe0d (encrypted_client_hello) is present.
	HasECH bool
	// HasQUICTransportParams: extension 0x0039 is present (a QUIC hello).
	HasQUICTransportParams bool
	// Truncated: the message ended before a declared length was met.
	Truncated bool
	// Anomaly is the first defect found (truncation or a lying length), ""
	// for a well-formed message. It is set exactly when ParseClientHello
	// returned an error together with this partial ClientHello.
	Anomaly string

	// Presence flags and the raw first ALPN value's first and last bytes,
	// kept for JA4 (ALPN above is escaped and so unusable for it).
	hasSNIExt, hasVersionsExt bool
	alpnFirstLen              int
	alpnFirst, alpnLast       byte
}

// ParseClientHello decodes msg, one whole handshake message (type 1, 24-bit
// length, body). It never reads outside msg and never panics.
//
// The error is nil for a well-formed message. When msg is not a ClientHello
// or is too short for its 4-byte header, the ClientHello is nil. Otherwise a
// truncated or inconsistent message yields the fields parsed before the
// defect together with an error wrapping ErrTruncated or ErrMalformed (also
// recorded in Truncated and Anomaly); its fingerprints describe only the
// part that was read. Bytes after the declared handshake length are ignored.
func ParseClientHello(msg []byte) (*ClientHello, error) {
	return parseHello(msg, TypeClientHello, "client hello", &ClientHello{})
}

func (c *ClientHello) noteProblem(p *problem) { c.Truncated, c.Anomaly = p.truncated, p.reason }

// overrun records that a length field asked for more than remains: a
// truncation if the message was already known to be short, else a lie.
// skipSessionID reads past the legacy_session_id vector of a hello and
// returns its declared length; false when it lies (reported in p).
func skipSessionID(cur *cursor, p *problem) (int, bool) {
	sid, ok := cur.u8()
	if !ok {
		overrun(p, "session_id length", 1, cur.len())
		return 0, false
	}
	if sid > maxSessionIDLen {
		p.set(false, ErrMalformed, "session_id length %d exceeds %d", sid, maxSessionIDLen)
		return int(sid), false
	}
	if _, ok = cur.bytes(int(sid)); !ok {
		overrun(p, "session_id", int(sid), cur.len())
		return int(sid), false
	}
	return int(sid), true
}

func overrun(p *problem, what string, want, have int) {
	p.set(false, ErrMalformed, "%s length %d exceeds the %d bytes left", what, want, have)
}

func (c *ClientHello) parse(body []byte, p *problem) {
	// One backing array for every uint16 list: each value takes at least two
	// bytes of body, so len(body)/2 is (nearly) always enough and the lists
	// cost one allocation. Sub-slices are capped so appends never overlap.
	vals := make([]uint16, 0, len(body)/2+1)
	cur := cursor{body}
	var ok bool
	if c.LegacyVersion, ok = cur.u16(); !ok {
		overrun(p, "legacy_version", 2, cur.len())
		return
	}
	if _, ok = cur.bytes(32); !ok {
		overrun(p, "random", 32, cur.len())
		return
	}
	if c.SessionIDLen, ok = skipSessionID(&cur, p); !ok {
		return
	}
	n, ok := cur.u16()
	if !ok {
		overrun(p, "cipher_suites length", 2, cur.len())
		return
	}
	if n%2 != 0 {
		p.set(false, ErrMalformed, "cipher_suites length %d is odd", n)
		return
	}
	suites, ok := cur.bytes(int(n))
	if !ok {
		// Keep the suites that are there: they still say something.
		suites = cur.b[:cur.len()&^1]
		overrun(p, "cipher_suites", int(n), cur.len())
	}
	vals = u16s(vals, suites)
	c.CipherSuites = vals[0:len(vals):len(vals)]
	if p.err != nil {
		return
	}
	comp, ok := cur.u8()
	if !ok {
		overrun(p, "compression_methods length", 1, cur.len())
		return
	}
	c.CompressionMethods = int(comp)
	if _, ok = cur.bytes(int(comp)); !ok {
		overrun(p, "compression_methods", int(comp), cur.len())
		return
	}
	if cur.len() == 0 {
		return // no extensions: legal before TLS 1.2
	}
	extLen, ok := cur.u16()
	if !ok {
		overrun(p, "extensions length", 2, cur.len())
		return
	}
	exts, ok := cur.bytes(int(extLen))
	if !ok {
		exts = cur.b
		overrun(p, "extensions", int(extLen), cur.len())
	} else if cur.len() != 0 {
		p.set(false, ErrMalformed, "%d bytes after the extensions", cur.len())
	}

	// First pass: the extension types, so that Extensions is contiguous.
	start := len(vals)
	walkExtensions(exts, p, func(typ uint16, _ []byte) { vals = append(vals, typ) })
	c.Extensions = vals[start:len(vals):len(vals)]

	// Second pass: the contents of the extensions we read.
	var strs []byte // escaped SNI and ALPN values, made into one string
	var scratch [256]byte
	strs = scratch[:0]
	sniStart, sniEnd := 0, -1
	// ALPN values as [start, end) pairs into strs; extension order varies
	// (Chrome shuffles it), so SNI may come before or after them.
	var alpnSpans [][2]int
	var alpnScratch [8][2]int
	alpnSpans = alpnScratch[:0]
	seen := uint8(0) // bit per list extension already taken (first one wins)
	const (
		seenGroups = 1 << iota
		seenFormats
		seenSigAlgs
		seenVersions
		seenSNI
		seenALPN
	)
	walkExtensions(exts, nil, func(typ uint16, data []byte) {
		d := cursor{data}
		switch typ {
		case ExtServerName:
			c.hasSNIExt = true
			if seen&seenSNI != 0 {
				return
			}
			seen |= seenSNI
			name, ok := parseServerName(&d, p)
			if ok {
				sniStart = len(strs)
				strs = appendEscaped(strs, name, true)
				sniEnd = len(strs)
			}
		case ExtALPN:
			if seen&seenALPN != 0 {
				return
			}
			seen |= seenALPN
			list, ok := vector16(&d, p, "alpn", false)
			if !ok {
				return
			}
			lc := cursor{list}
			for lc.len() > 0 {
				l, _ := lc.u8()
				v, ok := lc.bytes(int(l))
				if !ok {
					overrun(p, "alpn protocol", int(l), lc.len())
					return
				}
				if len(alpnSpans) == 0 {
					c.alpnFirstLen = len(v)
					if len(v) > 0 {
						c.alpnFirst, c.alpnLast = v[0], v[len(v)-1]
					}
				}
				from := len(strs)
				strs = appendEscaped(strs, v, false)
				alpnSpans = append(alpnSpans, [2]int{from, len(strs)})
			}
		case ExtSupportedGroups:
			if seen&seenGroups != 0 {
				return
			}
			seen |= seenGroups
			if list, ok := vector16(&d, p, "supported_groups", true); ok {
				s := len(vals)
				vals = u16s(vals, list)
				c.SupportedGroups = vals[s:len(vals):len(vals)]
			}
		case ExtECPointFormats:
			if seen&seenFormats != 0 {
				return
			}
			seen |= seenFormats
			l, ok := d.u8()
			if !ok {
				overrun(p, "ec_point_formats length", 1, 0)
				return
			}
			list, ok := d.bytes(int(l))
			if !ok {
				overrun(p, "ec_point_formats", int(l), d.len())
				return
			}
			c.ECPointFormats = append([]uint8(nil), list...)
		case ExtSignatureAlgorithms:
			if seen&seenSigAlgs != 0 {
				return
			}
			seen |= seenSigAlgs
			if list, ok := vector16(&d, p, "signature_algorithms", true); ok {
				s := len(vals)
				vals = u16s(vals, list)
				c.SignatureAlgorithms = vals[s:len(vals):len(vals)]
			}
		case ExtSupportedVersions:
			c.hasVersionsExt = true
			if seen&seenVersions != 0 {
				return
			}
			seen |= seenVersions
			l, ok := d.u8()
			if !ok {
				overrun(p, "supported_versions length", 1, 0)
				return
			}
			list, ok := d.bytes(int(l))
			if !ok || l%2 != 0 {
				p.set(false, ErrMalformed, "supported_versions length %d bad for %d bytes", l, d.len())
				return
			}
			s := len(vals)
			vals = u16s(vals, list)
			c.SupportedVersions = vals[s:len(vals):len(vals)]
		case ExtECH:
			c.HasECH = true
		case ExtQUICTransportParams:
			c.HasQUICTransportParams = true
		}
	})
	if sniEnd < 0 && len(alpnSpans) == 0 {
		return
	}
	all := string(strs)
	if sniEnd >= 0 {
		c.ServerName = all[sniStart:sniEnd]
	}
	if len(alpnSpans) > 0 {
		c.ALPN = make([]string, len(alpnSpans))
		for i, sp := range alpnSpans {
			c.ALPN[i] = all[sp[0]:sp[1]]
		}
	}
}

// walkExtensions calls fn for each complete extension in exts. With p
// non-nil it records a header or body that overruns exts; the second pass
// passes nil because the first already reported it.
func walkExtensions(exts []byte, p *problem, fn func(typ uint16, data []byte)) {
	cur := cursor{exts}
	for cur.len() > 0 {
		typ, ok1 := cur.u16()
		l, ok2 := cur.u16()
		if !ok1 || !ok2 {
			if p != nil {
				overrun(p, "extension header", 4, cur.len())
			}
			return
		}
		data, ok := cur.bytes(int(l))
		if !ok {
			if p != nil {
				// The type was announced: count it, as the wire shows it.
				fn(typ, nil)
				overrun(p, fmt.Sprintf("extension 0x%04x", typ), int(l), cur.len())
			}
			return
		}
		fn(typ, data)
	}
}

// vector16 reads a 16-bit-length-prefixed list; with even set its items are
// uint16 values, so an odd length is a lie.
func vector16(d *cursor, p *problem, what string, even bool) ([]byte, bool) {
	l, ok := d.u16()
	if !ok {
		overrun(p, what+" list length", 2, d.len())
		return nil, false
	}
	list, ok := d.bytes(int(l))
	if !ok {
		overrun(p, what+" list", int(l), d.len())
		return nil, false
	}
	if even && l%2 != 0 {
		p.set(false, ErrMalformed, "%s list length %d is odd", what, l)
		return nil, false
	}
	return list, true
}

// parseServerName returns the first host_name entry of a server_name list.
func parseServerName(d *cursor, p *problem) ([]byte, bool) {
	list, ok := vector16(d, p, "server_name", false)
	if !ok {
		return nil, false
	}
	lc := cursor{list}
	for lc.len() > 0 {
		typ, ok1 := lc.u8()
		l, ok2 := lc.u16()
		if !ok1 || !ok2 {
			overrun(p, "server_name entry header", 3, lc.len())
			return nil, false
		}
		name, ok := lc.bytes(int(l))
		if !ok {
			overrun(p, "server_name entry", int(l), lc.len())
			return nil, false
		}
		if typ == 0 {
			return name, true
		}
	}
	return nil, false
}
