// Package tls decodes the cleartext part of a TLS handshake seen passively on
// the wire (ClientHello, ServerHello, TLS 1.2-and-older Certificate), and
// computes the JA3, JA3S and JA4 fingerprints from it. gopacket leaves TLS
// handshake decoding undone, so the parser is written here by hand; every
// length field is checked against the bytes actually present.
//
// JA4S and JA4X are deliberately absent: they are under the FoxIO licence.
package tls

import (
	gotls "crypto/tls"
)

// IsGREASE reports whether v is one of the 16 GREASE values of RFC 8701
// (0x0a0a, 0x1a1a, ... 0xfafa): both bytes equal and the low nibble 0xa.
func IsGREASE(v uint16) bool {
	return v>>8 == v&0xff && v&0x0f == 0x0a
}

// VersionString maps a TLS protocol version to the ECS pair
// tls.version_protocol / tls.version, e.g. 0x0303 -> ("tls", "1.2").
// Unknown values give ("", "") so that callers leave the fields out.
func VersionString(v uint16) (protocol, version string) {
	switch v {
	case 0x0304:
		return "tls", "1.3"
	case 0x0303:
		return "tls", "1.2"
	case 0x0302:
		return "tls", "1.1"
	case 0x0301:
		return "tls", "1.0"
	case 0x0300:
		return "ssl", "3.0"
	case 0x0002:
		return "ssl", "2.0"
	case 0xfeff:
		return "dtls", "1.0"
	case 0xfefd:
		return "dtls", "1.2"
	case 0xfefc:
		return "dtls", "1.3"
	}
	return "", ""
}

// extraCipherNames holds IANA names of suites that crypto/tls does not
// implement (and so cannot name) but that are common in real ClientHellos.
var extraCipherNames = map[uint16]string{
	0x0000: "TLS_NULL_WITH_NULL_NULL",
	0x0004: "TLS_RSA_WITH_RC4_128_MD5",
	0x0009: "TLS_RSA_WITH_DES_CBC_SHA",
	0x0013: "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA",
	0x0016: "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA",
	0x0032: "TLS_DHE_DSS_WITH_AES_128_CBC_SHA",
	0x0033: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
	0x0038: "TLS_DHE_DSS_WITH_AES_256_CBC_SHA",
	0x0039: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
	0x003d: "TLS_RSA_WITH_AES_256_CBC_SHA256",
	0x0040: "TLS_DHE_DSS_WITH_AES_128_CBC_SHA256",
	0x0041: "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA",
	0x0067: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
	0x006a: "TLS_DHE_DSS_WITH_AES_256_CBC_SHA256",
	0x006b: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
	0x0084: "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA",
	0x008c: "TLS_PSK_WITH_AES_128_CBC_SHA",
	0x008d: "TLS_PSK_WITH_AES_256_CBC_SHA",
	0x009e: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
	0x009f: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
	0x00a2: "TLS_DHE_DSS_WITH_AES_128_GCM_SHA256",
	0x00a3: "TLS_DHE_DSS_WITH_AES_256_GCM_SHA384",
	0x00ff: "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
	0x1304: "TLS_AES_128_CCM_SHA256",
	0x1305: "TLS_AES_128_CCM_8_SHA256",
	0x5600: "TLS_FALLBACK_SCSV",
	0xc003: "TLS_ECDH_ECDSA_WITH_3DES_EDE_CBC_SHA",
	0xc004: "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA",
	0xc005: "TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA",
	0xc008: "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA",
	0xc00d: "TLS_ECDH_RSA_WITH_3DES_EDE_CBC_SHA",
	0xc00e: "TLS_ECDH_RSA_WITH_AES_128_CBC_SHA",
	0xc00f: "TLS_ECDH_RSA_WITH_AES_256_CBC_SHA",
	0xc024: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
	0xc028: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
	0xc025: "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA256",
	0xc026: "TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA384",
	0xc029: "TLS_ECDH_RSA_WITH_AES_128_CBC_SHA256",
	0xc02a: "TLS_ECDH_RSA_WITH_AES_256_CBC_SHA384",
	0xc02d: "TLS_ECDH_ECDSA_WITH_AES_128_GCM_SHA256",
	0xc02e: "TLS_ECDH_ECDSA_WITH_AES_256_GCM_SHA384",
	0xc031: "TLS_ECDH_RSA_WITH_AES_128_GCM_SHA256",
	0xc032: "TLS_ECDH_RSA_WITH_AES_256_GCM_SHA384",
	0xc09c: "TLS_RSA_WITH_AES_128_CCM",
	0xc09d: "TLS_RSA_WITH_AES_256_CCM",
	0xc0ac: "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
	0xc0ad: "TLS_ECDHE_ECDSA_WITH_AES_256_CCM",
	0xccaa: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}

const hexDigits = "0123456789abcdef"

// CipherName returns the IANA name of a cipher suite for ECS tls.cipher and
// tls.client.supported_ciphers, or "0x" and four lower-case hex digits when
// the suite is unknown (GREASE values included).
func CipherName(id uint16) string {
	if n, ok := cipherNames[id]; ok {
		return n
	}
	return string([]byte{'0', 'x', hexDigits[id>>12], hexDigits[id>>8&0xf], hexDigits[id>>4&0xf], hexDigits[id&0xf]})
}

// cipherNames is crypto/tls's names (what it implements) and ours, built
// once: crypto/tls.CipherSuiteName allocates its suite lists on every call,
// and this runs for every offered cipher of every handshake. Read-only after
// package initialisation.
var cipherNames = func() map[uint16]string {
	m := make(map[uint16]string, len(extraCipherNames)+64)
	for _, cs := range gotls.CipherSuites() {
		m[cs.ID] = cs.Name
	}
	for _, cs := range gotls.InsecureCipherSuites() {
		m[cs.ID] = cs.Name
	}
	for id, n := range extraCipherNames {
		m[id] = n
	}
	return m
}()

// appendEscaped appends s to dst with every byte outside printable ASCII,
// and the backslash itself, written as \xNN (backslash as \\), so that a
// hostile value cannot break a log line or a terminal. lower folds ASCII
// upper case (host names are case-insensitive).
func appendEscaped(dst []byte, s []byte, lower bool) []byte {
	for _, c := range s {
		switch {
		case c == '\\':
			dst = append(dst, '\\', '\\')
		case c > 0x20 && c < 0x7f:
			if lower && c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
		default:
			dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		}
	}
	return dst
}

// Sanitize returns s with non-printable bytes escaped as appendEscaped does.
// It is meant for values such as ALPN protocol ids before they are logged.
func Sanitize(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f || c == '\\' {
			return string(appendEscaped(make([]byte, 0, len(s)+8), []byte(s), false))
		}
	}
	return s
}
