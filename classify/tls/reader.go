package tls

import (
	"errors"
	"fmt"
)

// Record-layer limits and content types (RFC 8446 section 5.1).
const (
	recordHeaderLen = 5
	// MaxRecordLen is the largest record body accepted: 2^14 plaintext plus
	// the 2048 bytes of expansion TLS 1.2 allows. Longer means "not TLS".
	MaxRecordLen = 1<<14 + 2048
	// MaxMessageLen bounds one reassembled handshake message. A larger
	// message (a huge certificate chain) is skipped without buffering,
	// counted in HandshakeReader.Oversized, and reading goes on after it.
	MaxMessageLen = 64 << 10
	// MaxStreamBytes bounds the bytes one HandshakeReader will look at; the
	// cleartext handshake is far shorter, so past it the reader stops.
	MaxStreamBytes = 256 << 10

	contentChangeCipherSpec = 20
	contentAlert            = 21
	contentHandshake        = 22
	contentApplicationData  = 23
	contentHeartbeat        = 24
)

// Reader errors.
var (
	// ErrSSLv2 reports an SSLv2 (or SSLv2-compatible) ClientHello, which
	// this package does not decode.
	ErrSSLv2 = errors.New("SSLv2-format hello is not supported")
	// ErrNotTLS reports a record header that no TLS peer would send.
	ErrNotTLS = errors.New("not a TLS record")
)

// StopReason says why a HandshakeReader stopped reading.
type StopReason uint8

// Stop reasons.
const (
	NotStopped           StopReason = iota
	StopChangeCipherSpec            // ChangeCipherSpec: what follows is encrypted
	StopApplicationData             // application_data: encrypted records
	StopAlert                       // a plaintext alert ends the handshake
	StopHeartbeat                   // heartbeat record
	StopCallback                    // the callback asked to stop
	StopLimit                       // MaxStreamBytes reached
	StopError                       // not TLS or SSLv2; see Err
)

var stopNames = [...]string{"", "change_cipher_spec", "application_data", "alert", "heartbeat", "callback", "limit", "error"}

func (s StopReason) String() string {
	if int(s) < len(stopNames) {
		return stopNames[s]
	}
	return fmt.Sprintf("StopReason(%d)", s)
}

// Message is one complete handshake message handed out by HandshakeReader.
type Message struct {
	Type uint8
	// RecordVersion is the version field of the record the message began in.
	RecordVersion uint16
	// Data is the whole message, 4-byte header included, ready for the Parse
	// functions. It is only valid during the callback: copy to keep it.
	Data []byte
}

// ClientHello parses the message and sets RecordVersion.
func (m Message) ClientHello() (*ClientHello, error) {
	c, err := ParseClientHello(m.Data)
	if c != nil {
		c.RecordVersion = m.RecordVersion
	}
	return c, err
}

// ServerHello parses the message and sets RecordVersion.
func (m Message) ServerHello() (*ServerHello, error) {
	s, err := ParseServerHello(m.Data)
	if s != nil {
		s.RecordVersion = m.RecordVersion
	}
	return s, err
}

// HandshakeReader reassembles the cleartext handshake messages of one TCP
// direction from in-order stream bytes. Records may span Feed calls and
// messages may span records; each complete message goes to the callback.
// It stops at ChangeCipherSpec (but reads on, once, when a plaintext hello
// follows it, as after a TLS 1.3 HelloRetryRequest), application data, an
// alert or heartbeat,
// after MaxStreamBytes, or when the callback returns false. Memory is
// bounded: a 5-byte record header, a 4-byte message header and at most
// MaxMessageLen bytes of message buffer, which is released on stop.
type HandshakeReader struct {
	onMessage func(Message) bool

	hdr      [recordHeaderLen]byte
	hdrN     int
	recLeft  int    // body bytes of the current record still to come
	recType  uint8  // content type of the current record
	recVer   uint16 // version of the current record
	records  int    // records seen
	consumed int

	mhdr     [handshakeHeaderLen]byte
	mhdrN    int
	msgVer   uint16
	msg      []byte // message being reassembled (header included)
	msgNeed  int    // body bytes still missing from msg
	skipLeft int    // body bytes of an oversized message still to skip

	// After the first CCS, probe holds the next handshake bytes until they
	// show a plaintext hello (see probeHello).
	ccsSeen bool
	probe   bool
	probeB  [probeLen]byte
	probeN  int

	stop StopReason
	err  error

	// Messages counts messages delivered; Oversized counts messages skipped
	// for exceeding MaxMessageLen.
	Messages, Oversized int
}

// NewHandshakeReader returns a reader that calls onMessage for each complete
// handshake message; onMessage returns false to stop reading.
func NewHandshakeReader(onMessage func(Message) bool) *HandshakeReader {
	return &HandshakeReader{onMessage: onMessage}
}

// Stopped reports whether the reader has stopped, and why. Once stopped,
// Feed ignores its input: the caller may drop the reader.
func (r *HandshakeReader) Stopped() (bool, StopReason) { return r.stop != NotStopped, r.stop }

// Err is the error that stopped the reader, if any.
func (r *HandshakeReader) Err() error { return r.err }

// Pending reports whether a record or message is partly read: a stream that
// ends now ended inside the handshake.
func (r *HandshakeReader) Pending() bool {
	return r.hdrN > 0 || r.recLeft > 0 || r.mhdrN > 0 || r.msgNeed > 0 || r.skipLeft > 0 || r.probeN > 0
}

func (r *HandshakeReader) halt(s StopReason, err error) {
	r.stop, r.err, r.msg = s, err, nil
}

// Feed consumes the next in-order bytes of the stream. It returns an error
// wrapping ErrNotTLS or ErrSSLv2 when the stream is not TLS that we decode
// (and keeps returning it); after any other stop it returns nil and
// ignores b.
func (r *HandshakeReader) Feed(b []byte) error {
	if r.stop != NotStopped {
		return r.err
	}
	if room := MaxStreamBytes - r.consumed; len(b) > room {
		b = b[:room]
		defer func() {
			if r.stop == NotStopped {
				r.halt(StopLimit, nil)
			}
		}()
	}
	r.consumed += len(b)
	for len(b) > 0 && r.stop == NotStopped {
		if r.recLeft == 0 {
			n := copy(r.hdr[r.hdrN:], b)
			r.hdrN += n
			b = b[n:]
			if r.records == 0 && r.hdrN >= 3 && r.hdr[0]&0x80 != 0 && r.hdr[2] == TypeClientHello {
				// SSLv2 record: 2-byte length with the high bit set, then
				// msg_type 1 (RFC 5246 appendix E.2).
				r.halt(StopError, fmt.Errorf("tls: stream: %w", ErrSSLv2))
				return r.err
			}
			if r.hdrN < recordHeaderLen {
				return nil
			}
			if err := r.startRecord(); err != nil {
				return err
			}
			continue
		}
		n := min(r.recLeft, len(b))
		r.recLeft -= n
		if r.recType == contentHandshake {
			r.handshakeBytes(b[:n])
		}
		b = b[n:]
	}
	return r.err
}

func (r *HandshakeReader) startRecord() error {
	h := r.hdr
	r.hdrN = 0
	r.records++
	typ, ver, n := h[0], uint16(h[1])<<8|uint16(h[2]), int(h[3])<<8|int(h[4])
	if typ < contentChangeCipherSpec || typ > contentHeartbeat || h[1] != 3 || h[2] > 4 || n > MaxRecordLen {
		r.halt(StopError, fmt.Errorf("tls: stream: record header %x: %w", h, ErrNotTLS))
		return r.err
	}
	switch typ {
	case contentChangeCipherSpec:
		// TLS 1.3 middlebox compatibility (RFC 8446 D.4) puts a CCS between
		// a HelloRetryRequest and the second ServerHello, and before the
		// client's second ClientHello: look at what follows once. Anything
		// else after a CCS is encrypted.
		if r.ccsSeen || r.mhdrN > 0 || r.msgNeed > 0 || r.skipLeft > 0 {
			r.halt(StopChangeCipherSpec, nil)
		} else {
			r.ccsSeen, r.probe = true, true
		}
	case contentApplicationData:
		r.halt(StopApplicationData, nil)
	case contentAlert:
		r.halt(StopAlert, nil)
	case contentHeartbeat:
		r.halt(StopHeartbeat, nil)
	}
	if r.probe && typ == contentHandshake && n < probeLen {
		r.halt(StopChangeCipherSpec, nil) // too short for a hello: encrypted
	}
	r.recType, r.recVer, r.recLeft = typ, ver, n
	return nil
}

// probeLen is how much of a post-CCS handshake record probeHello needs.
const probeLen = handshakeHeaderLen + 2

// probeHello reports whether p, the first bytes after a CCS, start a
// plaintext ClientHello or ServerHello (type 1 or 2, a plausible length,
// legacy_version 0x0303). Encrypted bytes match with odds of about 2^-31.
func probeHello(p []byte) bool {
	l := int(p[1])<<16 | int(p[2])<<8 | int(p[3])
	return (p[0] == TypeClientHello || p[0] == TypeServerHello) && l >= 38 && l <= MaxMessageLen && p[4] == 3 && p[5] == 3
}

// handshakeBytes feeds the body bytes of handshake records to the message
// reassembler. A message wholly inside b is delivered without copying.
func (r *HandshakeReader) handshakeBytes(b []byte) {
	for len(b) > 0 && r.stop == NotStopped {
		if r.probe {
			n := copy(r.probeB[r.probeN:], b)
			r.probeN += n
			b = b[n:]
			if r.probeN < probeLen {
				return
			}
			if !probeHello(r.probeB[:]) {
				r.halt(StopChangeCipherSpec, nil)
				return
			}
			r.probe = false
			// A copy: handing out a slice of r would move r to the heap.
			p := r.probeB
			r.handshakeBytes(p[:])
			continue
		}
		if r.skipLeft > 0 {
			n := min(r.skipLeft, len(b))
			r.skipLeft -= n
			b = b[n:]
			continue
		}
		if r.msgNeed > 0 {
			n := min(r.msgNeed, len(b))
			r.msg = append(r.msg, b[:n]...)
			r.msgNeed -= n
			b = b[n:]
			if r.msgNeed == 0 {
				r.deliver(r.msg)
			}
			continue
		}
		if r.mhdrN == 0 && len(b) >= handshakeHeaderLen {
			l := int(b[1])<<16 | int(b[2])<<8 | int(b[3])
			if l <= MaxMessageLen && len(b) >= handshakeHeaderLen+l {
				r.msgVer = r.recVer
				r.deliver(b[:handshakeHeaderLen+l])
				b = b[handshakeHeaderLen+l:]
				continue
			}
		}
		if r.mhdrN == 0 {
			r.msgVer = r.recVer
		}
		n := copy(r.mhdr[r.mhdrN:], b)
		r.mhdrN += n
		b = b[n:]
		if r.mhdrN < handshakeHeaderLen {
			return
		}
		r.mhdrN = 0
		l := int(r.mhdr[1])<<16 | int(r.mhdr[2])<<8 | int(r.mhdr[3])
		if l > MaxMessageLen {
			r.Oversized++
			r.skipLeft = l
			continue
		}
		if cap(r.msg) < handshakeHeaderLen+l {
			r.msg = make([]byte, 0, handshakeHeaderLen+l)
		}
		r.msg = append(r.msg[:0], r.mhdr[:]...)
		r.msgNeed = l
		if l == 0 {
			r.deliver(r.msg)
		}
	}
}

func (r *HandshakeReader) deliver(m []byte) {
	r.Messages++
	if !r.onMessage(Message{Type: m[0], RecordVersion: r.msgVer, Data: m}) && r.stop == NotStopped {
		r.halt(StopCallback, nil)
	}
}

// LooksLikeClientHello sniffs the first bytes of a stream for a TLS record
// carrying a ClientHello: content type 22, record version 0x0300-0x0304, a
// record length of 4..2^14, handshake type 1 and, when present, a
// client_version with major byte 3. It needs 6 bytes and recognises TLS on
// any port.
func LooksLikeClientHello(b []byte) bool {
	if len(b) < 6 || b[0] != contentHandshake || b[1] != 3 || b[2] > 4 {
		return false
	}
	n := int(b[3])<<8 | int(b[4])
	if n < handshakeHeaderLen || n > 1<<14 || b[5] != TypeClientHello {
		return false
	}
	if len(b) >= 10 && b[9] != 3 {
		return false
	}
	return true
}

var _ fmt.Stringer = StopReason(0)
