package tls

import "bytes"

// helloRetryRandom is the fixed ServerHello.random that marks a TLS 1.3
// HelloRetryRequest: SHA-256("HelloRetryRequest") (RFC 8446 section 4.1.3).
var helloRetryRandom = [32]byte{
	0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
	0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
}

// ServerHello is the cleartext content of a TLS ServerHello.
type ServerHello struct {
	// RecordVersion: as ClientHello.RecordVersion.
	RecordVersion uint16
	LegacyVersion uint16
	// SupportedVersion is the selected_version of extension 0x002b (TLS 1.3),
	// zero when absent.
	SupportedVersion uint16
	SessionIDLen     int
	CipherSuite      uint16
	Compression      uint8
	// Extensions holds every extension type in wire order.
	Extensions []uint16
	// ALPN is the protocol the server selected (ECS tls.next_protocol),
	// escaped like ClientHello.ALPN; "" when absent.
	ALPN string
	// HelloRetryRequest: the random is the RFC 8446 HelloRetryRequest
	// value, so this message asks the client for a second ClientHello.
	HelloRetryRequest bool
	Truncated         bool
	Anomaly           string
}

// Version is the negotiated version: SupportedVersion when the server sent
// one, else LegacyVersion.
func (s *ServerHello) Version() uint16 {
	if s.SupportedVersion != 0 {
		return s.SupportedVersion
	}
	return s.LegacyVersion
}

// ParseServerHello decodes one whole ServerHello handshake message with the
// same contract as ParseClientHello: nil result only when the header is
// missing or the type is wrong; otherwise partial fields plus an error
// wrapping ErrTruncated or ErrMalformed.
func ParseServerHello(msg []byte) (*ServerHello, error) {
	return parseHello(msg, TypeServerHello, "server hello", &ServerHello{})
}

func (s *ServerHello) noteProblem(p *problem) { s.Truncated, s.Anomaly = p.truncated, p.reason }

func (s *ServerHello) parse(body []byte, p *problem) {
	cur := cursor{body}
	var ok bool
	if s.LegacyVersion, ok = cur.u16(); !ok {
		overrun(p, "legacy_version", 2, cur.len())
		return
	}
	random, ok := cur.bytes(32)
	if !ok {
		overrun(p, "random", 32, cur.len())
		return
	}
	s.HelloRetryRequest = bytes.Equal(random, helloRetryRandom[:])
	if isEarlyTLS13Draft(s.LegacyVersion) {
		// Drafts before -22 had no session id and no compression method.
		if s.CipherSuite, ok = cur.u16(); !ok {
			overrun(p, "cipher_suite", 2, cur.len())
			return
		}
		s.parseExtensions(&cur, p)
		return
	}
	if s.SessionIDLen, ok = skipSessionID(&cur, p); !ok {
		return
	}
	if s.CipherSuite, ok = cur.u16(); !ok {
		overrun(p, "cipher_suite", 2, cur.len())
		return
	}
	if s.Compression, ok = cur.u8(); !ok {
		overrun(p, "compression_method", 1, cur.len())
		return
	}
	s.parseExtensions(&cur, p)
}

// isEarlyTLS13Draft reports a TLS 1.3 draft version (0x7fXX) older than
// draft 22, whose ServerHello is version, random, cipher suite, extensions.
func isEarlyTLS13Draft(v uint16) bool { return v>>8 == 0x7f && v&0xff < 22 }

func (s *ServerHello) parseExtensions(cur *cursor, p *problem) {
	if cur.len() == 0 {
		return
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
	// A server sends few extensions; size the list from the block length.
	s.Extensions = make([]uint16, 0, len(exts)/4+1)
	walkExtensions(exts, p, func(typ uint16, data []byte) {
		s.Extensions = append(s.Extensions, typ)
		d := cursor{data}
		switch typ {
		case ExtSupportedVersions:
			if v, ok := d.u16(); ok && data != nil {
				s.SupportedVersion = v
			}
		case ExtALPN:
			if data == nil || s.ALPN != "" {
				return
			}
			list, ok := vector16(&d, p, "alpn", false)
			if !ok {
				return
			}
			lc := cursor{list}
			l, _ := lc.u8()
			v, ok := lc.bytes(int(l))
			if !ok {
				overrun(p, "alpn protocol", int(l), lc.len())
				return
			}
			s.ALPN = string(appendEscaped(nil, v, false))
		}
	})
}
