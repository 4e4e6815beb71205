// Package quic decrypts QUIC Initial packets (RFC 9000/9001 for v1, RFC 9369
// for v2, and the wire-compatible drafts 29-32) seen passively on a UDP flow
// and reassembles the CRYPTO stream of each direction so that the TLS
// ClientHello and ServerHello can be handed to a TLS parser.
//
// Only Initial packets are decrypted: their keys derive from the client's
// Destination Connection ID, which is on the wire. Handshake, 0-RTT and
// 1-RTT packets are walked over and counted, never decrypted.
package quic

// Versions this package can decrypt.
const (
	Version1       uint32 = 0x00000001 // RFC 9000
	Version2       uint32 = 0x6b3343cf // RFC 9369
	versionDraft29 uint32 = 0xff00001d
	versionDraft32 uint32 = 0xff000020
)

// Long-header packet types in v1 numbering; v2 permutes the two type bits on
// the wire and longType maps them back.
const (
	typeInitial   = 0
	typeZeroRTT   = 1
	typeHandshake = 2
	typeRetry     = 3
)

// MaxConnIDLen is the longest connection ID QUIC v1/v2 allow (RFC 9000 17.2).
const MaxConnIDLen = 20

// versionParams holds what differs between the supported versions.
type versionParams struct {
	salt      []byte
	keyLabel  string
	ivLabel   string
	hpLabel   string
	retryKey  []byte
	retryIV   []byte
	isV2Types bool
}

var (
	saltV1      = []byte{0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a}
	saltV2      = []byte{0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9}
	saltDraft29 = []byte{0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0, 0x43, 0x90, 0xa8, 0x99}

	paramsV1 = versionParams{
		salt: saltV1, keyLabel: "quic key", ivLabel: "quic iv", hpLabel: "quic hp",
		retryKey: []byte{0xbe, 0x0c, 0x69, 0x0b, 0x9f, 0x66, 0x57, 0x5a, 0x1d, 0x76, 0x6b, 0x54, 0xe3, 0x68, 0xc8, 0x4e},
		retryIV:  []byte{0x46, 0x15, 0x99, 0xd3, 0x5d, 0x63, 0x2b, 0xf2, 0x23, 0x98, 0x25, 0xbb},
	}
	paramsV2 = versionParams{
		salt: saltV2, keyLabel: "quicv2 key", ivLabel: "quicv2 iv", hpLabel: "quicv2 hp",
		retryKey:  []byte{0x8f, 0xb4, 0xb0, 0x1b, 0x56, 0xac, 0x48, 0xe2, 0x60, 0xfb, 0xcb, 0xce, 0xad, 0x7c, 0xcc, 0x92},
		retryIV:   []byte{0xd8, 0x69, 0x69, 0xbc, 0x2d, 0x7c, 0x6d, 0x99, 0x90, 0xef, 0xb0, 0x4a},
		isV2Types: true,
	}
	paramsDraft29 = versionParams{
		salt: saltDraft29, keyLabel: "quic key", ivLabel: "quic iv", hpLabel: "quic hp",
		retryKey: []byte{0xcc, 0xce, 0x18, 0x7e, 0xd0, 0x9a, 0x09, 0xd0, 0x57, 0x28, 0x15, 0x5a, 0x6c, 0xb9, 0x6b, 0xe1},
		retryIV:  []byte{0xe5, 0x49, 0x30, 0xf9, 0x7f, 0x21, 0x36, 0xf0, 0x53, 0x0a, 0x8c, 0x1c},
	}
)

// params returns the parameters of a supported version, or nil.
func params(version uint32) *versionParams {
	switch {
	case version == Version1:
		return &paramsV1
	case version == Version2:
		return &paramsV2
	case version >= versionDraft29 && version <= versionDraft32:
		return &paramsDraft29
	}
	return nil
}

// Supported reports whether Initial packets of this version can be decrypted.
func Supported(version uint32) bool { return params(version) != nil }

// longType returns the v1-numbered packet type from the first byte.
func (p *versionParams) longType(first byte) int {
	t := int(first>>4) & 3
	if p.isV2Types {
		// RFC 9369 3.2: Initial 0b01, 0-RTT 0b10, Handshake 0b11, Retry 0b00.
		return (t + 3) & 3
	}
	return t
}
