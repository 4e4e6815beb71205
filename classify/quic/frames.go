package quic

import "fmt"

// Frame types allowed in Initial packets (RFC 9000 12.4, table 3).
const (
	framePadding         = 0x00
	framePing            = 0x01
	frameAck             = 0x02
	frameAckECN          = 0x03
	frameCrypto          = 0x06
	frameConnectionClose = 0x1c
)

// frameSink receives what frame parsing finds in one decrypted payload.
type frameSink interface {
	crypto(offset uint64, data []byte)
	connectionClose(code uint64)
}

// parseFrames walks the frames of a decrypted Initial payload. It stops at
// the first malformed or disallowed frame and returns why; frames before it
// have already been delivered to sink.
func parseFrames(p []byte, sink frameSink) error {
	off := 0
	for off < len(p) {
		ft, n := readVarint(p[off:])
		if n == 0 {
			return fmt.Errorf("quic: frame type at %d: %w", off, ErrBadFrame)
		}
		start := off
		off += n
		switch ft {
		case framePadding:
			for off < len(p) && p[off] == 0 {
				off++
			}
		case framePing:
		case frameAck, frameAckECN:
			fields := 4 // largest acknowledged, delay, range count, first range
			var rangeCount uint64
			for i := 0; i < fields; i++ {
				v, n := readVarint(p[off:])
				if n == 0 {
					return fmt.Errorf("quic: ACK frame at %d: %w", start, ErrBadFrame)
				}
				off += n
				if i == 2 {
					rangeCount = v
				}
			}
			// Each range is two varints of at least one byte: a count that
			// cannot fit is a lie, caught before looping over it.
			if rangeCount > uint64(len(p)-off)/2 {
				return fmt.Errorf("quic: ACK frame at %d: %d ranges: %w", start, rangeCount, ErrBadFrame)
			}
			extra := int(2 * rangeCount)
			if ft == frameAckECN {
				extra += 3 // ECT0, ECT1, ECN-CE counts
			}
			for i := 0; i < extra; i++ {
				_, n := readVarint(p[off:])
				if n == 0 {
					return fmt.Errorf("quic: ACK frame at %d: %w", start, ErrBadFrame)
				}
				off += n
			}
		case frameCrypto:
			o, n1 := readVarint(p[off:])
			if n1 == 0 {
				return fmt.Errorf("quic: CRYPTO frame at %d: offset: %w", start, ErrBadFrame)
			}
			off += n1
			l, n2 := readVarint(p[off:])
			if n2 == 0 {
				return fmt.Errorf("quic: CRYPTO frame at %d: length: %w", start, ErrBadFrame)
			}
			off += n2
			if l > uint64(len(p)-off) {
				return fmt.Errorf("quic: CRYPTO frame at %d: length %d beyond payload: %w", start, l, ErrBadFrame)
			}
			sink.crypto(o, p[off:off+int(l)])
			off += int(l)
		case frameConnectionClose:
			code, n := readVarint(p[off:])
			if n == 0 {
				return fmt.Errorf("quic: CONNECTION_CLOSE at %d: %w", start, ErrBadFrame)
			}
			off += n
			if _, n = readVarint(p[off:]); n == 0 { // offending frame type
				return fmt.Errorf("quic: CONNECTION_CLOSE at %d: %w", start, ErrBadFrame)
			}
			off += n
			rl, n := readVarint(p[off:])
			if n == 0 || rl > uint64(len(p)-off-n) {
				return fmt.Errorf("quic: CONNECTION_CLOSE at %d: reason: %w", start, ErrBadFrame)
			}
			off += n + int(rl)
			sink.connectionClose(code)
		default:
			return fmt.Errorf("quic: frame type 0x%x at %d: %w", ft, start, ErrUnexpectedFrame)
		}
	}
	return nil
}
