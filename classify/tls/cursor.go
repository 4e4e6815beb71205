package tls

import (
	"errors"
	"fmt"
)

// Errors returned by the parsers. They are wrapped with context; test with
// errors.Is.
var (
	// ErrTruncated: the bytes ended before a declared length was satisfied.
	ErrTruncated = errors.New("truncated")
	// ErrMalformed: a length or value is inconsistent with its container.
	ErrMalformed = errors.New("malformed")
	// ErrWrongType: the handshake message is not of the expected type.
	ErrWrongType = errors.New("unexpected handshake message type")
)

// Handshake message types (RFC 8446 section 4, RFC 5246 section 7.4).
const (
	TypeClientHello = 1
	TypeServerHello = 2
	TypeCertificate = 11
)

// handshakeHeaderLen is the msg_type byte plus the 24-bit length.
const handshakeHeaderLen = 4

// cursor reads big-endian fields from a byte slice without ever reading past
// its end: every accessor reports whether the bytes were there.
type cursor struct {
	b []byte
}

func (c *cursor) len() int { return len(c.b) }

func (c *cursor) u8() (uint8, bool) {
	if len(c.b) < 1 {
		return 0, false
	}
	v := c.b[0]
	c.b = c.b[1:]
	return v, true
}

func (c *cursor) u16() (uint16, bool) {
	if len(c.b) < 2 {
		return 0, false
	}
	v := uint16(c.b[0])<<8 | uint16(c.b[1])
	c.b = c.b[2:]
	return v, true
}

func (c *cursor) u24() (int, bool) {
	if len(c.b) < 3 {
		return 0, false
	}
	v := int(c.b[0])<<16 | int(c.b[1])<<8 | int(c.b[2])
	c.b = c.b[3:]
	return v, true
}

func (c *cursor) bytes(n int) ([]byte, bool) {
	if n < 0 || len(c.b) < n {
		return nil, false
	}
	v := c.b[:n:n]
	c.b = c.b[n:]
	return v, true
}

// u16s appends the big-endian uint16 values of b to dst (len(b) must be
// even; the caller checks).
func u16s(dst []uint16, b []byte) []uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		dst = append(dst, uint16(b[i])<<8|uint16(b[i+1]))
	}
	return dst
}

// problem records the first defect found while parsing a message.
type problem struct {
	truncated bool
	reason    string
	err       error
}

func (p *problem) set(truncated bool, kind error, format string, args ...any) {
	if p.err != nil {
		return
	}
	p.truncated = truncated
	p.reason = fmt.Sprintf(format, args...)
	p.err = fmt.Errorf("%s: %w", p.reason, kind)
}

// handshakeBody checks the 4-byte handshake header of msg against want and
// returns the body, cut to the declared length. A body shorter than declared
// is returned as far as it goes, with the problem noted.
// hello is a ClientHello or ServerHello being parsed.
type hello interface {
	*ClientHello | *ServerHello
	parse(body []byte, p *problem)
	noteProblem(p *problem)
}

// parseHello parses the hello message msg of type typ into h: nil when the
// header is missing or the type is wrong, else h with any defect recorded
// and returned as an error.
func parseHello[H hello](msg []byte, typ uint8, what string, h H) (H, error) {
	var p problem
	body, err := handshakeBody(msg, typ, &p)
	if err != nil {
		return nil, fmt.Errorf("tls: %s: %w", what, err)
	}
	h.parse(body, &p)
	if p.err != nil {
		h.noteProblem(&p)
		return h, fmt.Errorf("tls: %s: %w", what, p.err)
	}
	return h, nil
}

func handshakeBody(msg []byte, want uint8, p *problem) ([]byte, error) {
	if len(msg) < handshakeHeaderLen {
		return nil, fmt.Errorf("handshake header needs %d bytes, have %d: %w", handshakeHeaderLen, len(msg), ErrTruncated)
	}
	if msg[0] != want {
		return nil, fmt.Errorf("handshake type %d, want %d: %w", msg[0], want, ErrWrongType)
	}
	declared := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
	body := msg[handshakeHeaderLen:]
	if len(body) < declared {
		p.set(true, ErrTruncated, "handshake length %d but only %d bytes present", declared, len(body))
		return body, nil
	}
	return body[:declared], nil
}
