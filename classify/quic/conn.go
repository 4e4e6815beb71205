package quic

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
)

// maxKeyDerivations bounds how often one Conn derives Initial keys (first
// client Initial, after a Retry, a second version after compatible version
// negotiation, and retries with a changed DCID after a decryption failure).
// Past it, packets needing new keys are counted in Stats.NoKeys.
const maxKeyDerivations = 6

// maxPacketSize bounds the scratch buffer: no QUIC packet exceeds a UDP
// datagram's payload, and Feed rejects longer input (ErrTooLarge).
const maxPacketSize = 65527

// TLS handshake message types carried in the Initial CRYPTO streams.
const (
	handshakeClientHello = 1
	handshakeServerHello = 2
)

// Stats counts what Feed saw. Every packet lands in exactly one of
// Decrypted, DecryptFailed, NoKeys, Skipped, Retry, VersionNegotiation,
// UnsupportedVersion, Malformed and Truncated (Malformed and Truncated are
// counted although the packet is not in Packets).
type Stats struct {
	Datagrams          uint64 // calls to Feed
	Packets            uint64 // long-header packets found, coalesced ones included
	Decrypted          uint64 // Initial packets that decrypted and authenticated
	DecryptFailed      uint64 // Initial packets whose AEAD check failed (wrong keys, corruption)
	NoKeys             uint64 // Initial packets that could not be tried: no client Initial seen yet, or key budget spent
	Skipped            uint64 // Handshake and 0-RTT packets, walked over by Length
	Retry              uint64 // Retry packets
	RetryBadTag        uint64 // of which the integrity tag did not verify (ignored)
	VersionNegotiation uint64 // Version Negotiation packets (ignored)
	UnsupportedVersion uint64 // long-header packets of a version not decrypted (rest of datagram ignored)
	Malformed          uint64 // packets whose header could not be parsed (rest of datagram ignored)
	Truncated          uint64 // Initial packets shorter than their Length (e.g. snaplen); a client's still gives the DCID
	ShortHeader        uint64 // datagrams ending in a short-header (1-RTT) packet
	PaddingBytes       uint64 // zero bytes after the last packet of a datagram
	FrameErrors        uint64 // decrypted payloads whose frames stopped early (malformed or disallowed frame)
	ConnectionClose    uint64 // CONNECTION_CLOSE frames in Initial packets
	CryptoBytesDropped uint64 // CRYPTO bytes beyond MaxCryptoStream or dropped for fragmentation
	KeyDerivations     uint64 // Initial key sets derived
}

// Conn is the Initial-packet state of one UDP flow, fed one datagram at a
// time. Not safe for concurrent use. After keys are derived, Feed does not
// allocate except when a CRYPTO stream or the scratch buffer grows.
type Conn struct {
	haveClient bool
	version    uint32 // of the first client Initial
	serverVer  uint32 // of the last decrypted server Initial

	odcid      connID // DCID of the first client Initial
	keyDCID    connID // DCID the current keys derive from
	clientSCID connID
	serverSCID connID
	haveServer bool

	retrySCID    connID
	retryPending bool // a valid Retry was seen; rekey on the client's DCID == retrySCID
	retryDone    bool

	keys        [2]*initialKeys // per version: v1 and a negotiated one
	derivations int

	largest [2]int64 // largest decrypted packet number per direction; -1 none
	streams [2]cryptoStream

	scratch []byte
	mask    [aes.BlockSize]byte
	nonce   [ivLen]byte
	sink    connSink

	closeCode uint64
	stats     Stats
}

// connID is a connection ID held by value so that Conn needs no allocation.
type connID struct {
	b [MaxConnIDLen]byte
	n uint8
}

func (c *connID) set(b []byte)                   { c.n = uint8(copy(c.b[:], b)) }
func (c *connID) bytes() []byte                  { return c.b[:c.n] }
func (c *connID) equal(b []byte) bool            { return bytes.Equal(c.b[:c.n], b) }
func (c *connID) clone() []byte                  { return bytes.Clone(c.b[:c.n]) }
func (c *Conn) stream(client bool) *cryptoStream { return &c.streams[dirIndex(client)] }

// dirIndex maps a direction to its slot: 0 client, 1 server.
func dirIndex(fromClient bool) int {
	if fromClient {
		return 0
	}
	return 1
}

// NewConn returns an empty Conn; the zero Conn is ready to use too.
func NewConn() *Conn {
	c := &Conn{largest: [2]int64{-1, -1}}
	c.sink.c = c
	return c
}

// Reset returns c to its empty state for another flow, keeping its buffers
// so that a pooled Conn does not allocate them again.
func (c *Conn) Reset() {
	scratch, s0, s1 := c.scratch, c.streams[0], c.streams[1]
	s0.reset()
	s1.reset()
	*c = Conn{scratch: scratch, streams: [2]cryptoStream{s0, s1}}
}

// Feed processes one UDP payload sent by the client (fromClient) or the
// server. It walks coalesced long-header packets by their Length, decrypts
// Initial packets and reassembles their CRYPTO frames. Packets that do not
// decrypt, Version Negotiation, Handshake/0-RTT and unsupported versions are
// only counted (see Stats). The error reports a malformed header or frame;
// packets before it in the datagram have been used.
func (c *Conn) Feed(datagram []byte, fromClient bool) error {
	if c.sink.c == nil { // zero Conn: nothing decrypted yet, so no packet numbers
		c.sink.c = c
		c.largest = [2]int64{-1, -1}
	}
	c.stats.Datagrams++
	if len(datagram) > maxPacketSize {
		c.stats.Malformed++
		return fmt.Errorf("quic: datagram of %d bytes: %w", len(datagram), ErrTooLarge)
	}
	var firstErr error
	for off := 0; off < len(datagram); {
		b := datagram[off:]
		if b[0]&0x80 == 0 {
			if allZero(b) {
				c.stats.PaddingBytes += uint64(len(b))
			} else {
				c.stats.ShortHeader++
			}
			break
		}
		h, err := parseLongHeader(b)
		if errors.Is(err, ErrTruncated) && h.dcid != nil && h.ptype == typeInitial && Supported(h.version) {
			// A client Initial cut short cannot be decrypted, but its
			// header still names the DCID that the server's Initials are
			// protected with.
			c.stats.Truncated++
			if fromClient && !c.haveClient {
				c.noteClient(&h)
			}
			break
		}
		if err != nil {
			c.stats.Malformed++
			if firstErr == nil {
				firstErr = fmt.Errorf("quic: packet at offset %d: %w", off, err)
			}
			break
		}
		c.stats.Packets++
		pkt := b[:h.size]
		off += h.size
		switch {
		case h.version == 0:
			c.stats.VersionNegotiation++
			continue
		case !Supported(h.version):
			c.stats.UnsupportedVersion++
			continue
		}
		switch h.ptype {
		case typeInitial:
			if err := c.handleInitial(pkt, &h, fromClient); err != nil && firstErr == nil {
				firstErr = err
			}
		case typeRetry:
			c.handleRetry(pkt, &h, fromClient)
		default:
			c.stats.Skipped++
		}
	}
	return firstErr
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func (c *Conn) handleInitial(pkt []byte, h *longHeader, fromClient bool) error {
	if fromClient {
		switch {
		case !c.haveClient:
			c.noteClient(h)
		case c.retryPending && c.retrySCID.equal(h.dcid):
			// RFC 9001 5.2: after Retry both directions' Initial keys come
			// from the DCID the client now uses.
			c.retryPending = false
			c.retryDone = true
			c.keyDCID.set(h.dcid)
			c.keys = [2]*initialKeys{}
		}
	} else if !c.haveClient {
		c.stats.NoKeys++
		return nil
	}
	keys := c.keysFor(h.version, c.keyDCID.bytes())
	if keys == nil {
		c.stats.NoKeys++
		return nil
	}
	payload, pn, ok := c.decrypt(pkt, h, keys, fromClient)
	if !ok && fromClient && !c.keyDCID.equal(h.dcid) && !(c.haveServer && c.serverSCID.equal(h.dcid)) {
		// The capture may have missed the Retry or the client's first
		// Initial: try the DCID this packet carries, within the key budget.
		if alt := c.deriveKeys(h.version, h.dcid); alt != nil {
			if payload, pn, ok = c.decrypt(pkt, h, alt, fromClient); ok {
				c.keyDCID.set(h.dcid)
				c.keys = [2]*initialKeys{alt}
				c.retryPending = false
			}
		}
	}
	if !ok {
		c.stats.DecryptFailed++
		return nil
	}
	c.stats.Decrypted++
	d := dirIndex(fromClient)
	if int64(pn) > c.largest[d] {
		c.largest[d] = int64(pn)
	}
	if !fromClient {
		c.serverVer = h.version
		if !c.haveServer {
			c.haveServer = true
			c.serverSCID.set(h.scid)
		}
	}
	c.sink.client = fromClient
	if err := parseFrames(payload, &c.sink); err != nil {
		c.stats.FrameErrors++
		return err
	}
	return nil
}

// noteClient records the client's first Initial: version and the DCID the
// Initial keys derive from.
func (c *Conn) noteClient(h *longHeader) {
	c.haveClient = true
	c.version = h.version
	c.odcid.set(h.dcid)
	c.keyDCID.set(h.dcid)
	c.clientSCID.set(h.scid)
}

// keysFor returns the Initial keys of version for dcid, deriving them once.
func (c *Conn) keysFor(version uint32, dcid []byte) *initialKeys {
	for _, k := range c.keys {
		if k != nil && k.version == version {
			return k
		}
	}
	k := c.deriveKeys(version, dcid)
	if k == nil {
		return nil
	}
	if c.keys[0] == nil {
		c.keys[0] = k
	} else {
		c.keys[1] = k
	}
	return k
}

func (c *Conn) deriveKeys(version uint32, dcid []byte) *initialKeys {
	if c.derivations >= maxKeyDerivations {
		return nil
	}
	c.derivations++
	k, err := deriveInitialKeys(version, dcid)
	if err != nil {
		return nil
	}
	c.stats.KeyDerivations++
	return k
}

// decrypt removes header protection and the AEAD from a copy of pkt in the
// scratch buffer, leaving the datagram untouched, and returns the plaintext
// (valid until the next Feed) and the full packet number.
func (c *Conn) decrypt(pkt []byte, h *longHeader, keys *initialKeys, fromClient bool) ([]byte, uint64, bool) {
	dk := &keys.server
	if fromClient {
		dk = &keys.client
	}
	n := len(pkt)
	if h.pnOffset+4+sampleLen > n {
		return nil, 0, false
	}
	if cap(c.scratch) < n {
		c.scratch = make([]byte, max(n, 1500))
	}
	p := c.scratch[:n]
	copy(p, pkt)
	dk.hp.Encrypt(c.mask[:], p[h.pnOffset+4:h.pnOffset+4+sampleLen])
	p[0] ^= c.mask[0] & 0x0f
	pnLen := int(p[0]&3) + 1
	var truncated uint64
	for i := range pnLen {
		p[h.pnOffset+i] ^= c.mask[1+i]
		truncated = truncated<<8 | uint64(p[h.pnOffset+i])
	}
	pn := decodePacketNumber(c.largest[dirIndex(fromClient)], truncated, pnLen)
	c.nonce = dk.iv
	for i := range 8 {
		c.nonce[ivLen-1-i] ^= byte(pn >> (8 * i))
	}
	hdrEnd := h.pnOffset + pnLen
	ct := p[hdrEnd:n]
	if len(ct) < tagLen {
		return nil, 0, false
	}
	pt, err := dk.aead.Open(ct[:0], c.nonce[:], ct, p[:hdrEnd])
	if err != nil {
		return nil, 0, false
	}
	return pt, pn, true
}

// handleRetry accepts the first server Retry whose integrity tag verifies
// against the client's current DCID (RFC 9001 5.8); a client ignores later ones.
func (c *Conn) handleRetry(pkt []byte, h *longHeader, fromClient bool) {
	c.stats.Retry++
	if fromClient || !c.haveClient || c.retryPending || c.retryDone {
		return
	}
	if !verifyRetry(pkt, h.version, c.keyDCID.bytes()) {
		c.stats.RetryBadTag++
		return
	}
	c.retrySCID.set(h.scid)
	c.retryPending = true
}

// verifyRetry checks a Retry packet's integrity tag. It allocates, which is
// fine for a packet sent at most once per connection.
func verifyRetry(pkt []byte, version uint32, odcid []byte) bool {
	p := params(version)
	if p == nil || len(pkt) < tagLen {
		return false
	}
	block, err := aes.NewCipher(p.retryKey)
	if err != nil {
		return false
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return false
	}
	body := pkt[:len(pkt)-tagLen]
	pseudo := make([]byte, 0, 1+len(odcid)+len(body))
	pseudo = append(pseudo, byte(len(odcid)))
	pseudo = append(pseudo, odcid...)
	pseudo = append(pseudo, body...)
	_, err = aead.Open(nil, p.retryIV, pkt[len(pkt)-tagLen:], pseudo)
	return err == nil
}

// connSink routes decrypted frames into the Conn's streams.
type connSink struct {
	c      *Conn
	client bool
}

var _ frameSink = (*connSink)(nil)

func (s *connSink) crypto(offset uint64, data []byte) {
	st := s.c.stream(s.client)
	want := byte(handshakeServerHello)
	if s.client {
		want = handshakeClientHello
	}
	if handshakeMessage(st.contiguous(), want) != nil {
		return // the hello is complete; later Initial CRYPTO bytes are not needed
	}
	dropped, _ := st.add(offset, data)
	s.c.stats.CryptoBytesDropped += uint64(dropped)
}

func (s *connSink) connectionClose(code uint64) {
	s.c.stats.ConnectionClose++
	s.c.closeCode = code
}

// handshakeMessage returns the first handshake message of stream if it has
// type want and is complete.
func handshakeMessage(stream []byte, want byte) []byte {
	if len(stream) < 4 || stream[0] != want {
		return nil
	}
	l := int(stream[1])<<16 | int(stream[2])<<8 | int(stream[3])
	if len(stream) < 4+l {
		return nil
	}
	return stream[:4+l]
}

// ClientHello returns the complete ClientHello handshake message (type 1,
// 3-byte length, body) once the client's CRYPTO bytes cover it without a
// gap, else nil. The slice is owned by the Conn; do not modify it.
func (c *Conn) ClientHello() []byte {
	return handshakeMessage(c.streams[0].contiguous(), handshakeClientHello)
}

// ServerHello returns the complete ServerHello message, as ClientHello does.
func (c *Conn) ServerHello() []byte {
	return handshakeMessage(c.streams[1].contiguous(), handshakeServerHello)
}

// CryptoPrefix returns the gap-free prefix of one direction's Initial CRYPTO
// stream, for diagnosing a hello that does not complete.
func (c *Conn) CryptoPrefix(fromClient bool) []byte {
	return c.stream(fromClient).contiguous()
}

// Version is the version of the client's first Initial, 0 before one.
func (c *Conn) Version() uint32 { return c.version }

// ServerVersion is the version of the last decrypted server Initial, which
// differs from Version after compatible version negotiation (RFC 9368).
func (c *Conn) ServerVersion() uint32 { return c.serverVer }

// DCID is the Destination Connection ID of the client's first Initial (the
// one the server routes by and the Initial keys first derive from).
func (c *Conn) DCID() []byte { return c.odcid.clone() }

// SCID is the client's Source Connection ID.
func (c *Conn) SCID() []byte { return c.clientSCID.clone() }

// ServerSCID is the server's Source Connection ID from its first decrypted
// Initial, nil before one.
func (c *Conn) ServerSCID() []byte {
	if !c.haveServer {
		return nil
	}
	return c.serverSCID.clone()
}

// Retried reports whether the client moved to new Initial keys after a Retry.
func (c *Conn) Retried() bool { return c.retryDone }

// CloseCode is the error code of the last CONNECTION_CLOSE seen in an
// Initial packet (valid when Stats().ConnectionClose > 0).
func (c *Conn) CloseCode() uint64 { return c.closeCode }

// Stats returns the counters so far.
func (c *Conn) Stats() Stats { return c.stats }
