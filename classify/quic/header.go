package quic

import (
	"encoding/binary"
	"errors"
)

// Errors wrapped by this package; test with errors.Is.
var (
	ErrTruncated          = errors.New("truncated")
	ErrUnsupportedVersion = errors.New("unsupported version")
	ErrBadHeader          = errors.New("malformed long header")
	ErrUnexpectedFrame    = errors.New("frame type not allowed in Initial")
	ErrBadFrame           = errors.New("malformed frame")
	ErrTooLarge           = errors.New("datagram larger than a UDP payload")
)

// minInitialDatagram is the smallest datagram a client may carry its first
// Initial in (RFC 9000 14.1); LooksLikeInitial rejects anything shorter.
const minInitialDatagram = 1200

// readVarint decodes a QUIC variable-length integer (RFC 9000 16) and returns
// the value and the bytes consumed, or n == 0 when b is too short.
func readVarint(b []byte) (v uint64, n int) {
	if len(b) == 0 {
		return 0, 0
	}
	n = 1 << (b[0] >> 6)
	if len(b) < n {
		return 0, 0
	}
	v = uint64(b[0] & 0x3f)
	for i := 1; i < n; i++ {
		v = v<<8 | uint64(b[i])
	}
	return v, n
}

// longHeader is a parsed long header. Slices point into the datagram.
type longHeader struct {
	first   byte
	version uint32
	dcid    []byte
	scid    []byte
	ptype   int    // v1 numbering; meaningful only for supported versions
	token   []byte // Initial token, or Retry token (without the integrity tag)
	// pnOffset is the offset of the packet number from the packet start and
	// length the Length field (packet number + payload); 0 for Retry.
	pnOffset int
	length   int
	// size is the whole packet's size within the datagram.
	size int
}

// parseLongHeader parses the long-header packet at the start of b. On
// ErrTruncated, the fields parsed before the cut are set. For
// version 0 (Version Negotiation) and unsupported versions only the
// invariant fields are filled and the packet extends to the datagram's end.
func parseLongHeader(b []byte) (longHeader, error) {
	var h longHeader
	if len(b) < 7 {
		return h, ErrTruncated
	}
	h.first = b[0]
	h.version = binary.BigEndian.Uint32(b[1:5])
	off := 5
	dl := int(b[off])
	off++
	if len(b) < off+dl+1 {
		return h, ErrTruncated
	}
	h.dcid = b[off : off+dl]
	off += dl
	sl := int(b[off])
	off++
	if len(b) < off+sl {
		return h, ErrTruncated
	}
	h.scid = b[off : off+sl]
	off += sl
	p := params(h.version)
	if h.version == 0 || p == nil {
		h.size = len(b)
		return h, nil
	}
	if dl > MaxConnIDLen || sl > MaxConnIDLen {
		return h, ErrBadHeader
	}
	h.ptype = p.longType(h.first)
	if h.ptype == typeRetry {
		if len(b) < off+tagLen {
			return h, ErrTruncated
		}
		h.token = b[off : len(b)-tagLen]
		h.size = len(b)
		return h, nil
	}
	if h.ptype == typeInitial {
		tl, n := readVarint(b[off:])
		if n == 0 {
			return h, ErrTruncated
		}
		off += n
		if uint64(len(b)-off) < tl {
			return h, ErrTruncated
		}
		h.token = b[off : off+int(tl)]
		off += int(tl)
	}
	length, n := readVarint(b[off:])
	if n == 0 {
		return h, ErrTruncated
	}
	off += n
	if uint64(len(b)-off) < length {
		// Cut short (snaplen, lost tail, or a lie): the header fields above
		// are still filled in, so a client Initial can yield its DCID.
		return h, ErrTruncated
	}
	h.pnOffset = off
	h.length = int(length)
	h.size = off + int(length)
	return h, nil
}

// LooksLikeInitial is a cheap sniff for a client's first QUIC datagram on any
// port: long header with the fixed bit, a version this package decrypts, the
// Initial type for that version, a DCID of at least 8 bytes (RFC 9000 7.2),
// CIDs within 20 bytes, a Length that fits, and the 1200-byte minimum size.
// It does no cryptography.
func LooksLikeInitial(b []byte) (version uint32, ok bool) {
	if len(b) < minInitialDatagram || b[0]&0xc0 != 0xc0 {
		return 0, false
	}
	h, err := parseLongHeader(b)
	if err != nil || !Supported(h.version) || h.ptype != typeInitial {
		return 0, false
	}
	if len(h.dcid) < 8 || h.length < 4+sampleLen {
		return 0, false
	}
	return h.version, true
}

// decodePacketNumber recovers a full packet number from its truncated form
// (RFC 9000 A.3). largest is -1 before any packet was decrypted.
func decodePacketNumber(largest int64, truncated uint64, pnLen int) uint64 {
	expected := uint64(largest + 1)
	win := uint64(1) << (8 * pnLen)
	hwin := win / 2
	mask := win - 1
	candidate := (expected &^ mask) | truncated
	const maxPN = 1<<62 - 1
	switch {
	case candidate+hwin <= expected && candidate < (maxPN+1)-win:
		return candidate + win
	case candidate > expected+hwin && candidate >= win:
		return candidate - win
	}
	return candidate
}
