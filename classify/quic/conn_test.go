package quic

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

var (
	testDCID = []byte{1, 2, 3, 4, 5, 6, 7, 8}
	testSCID = []byte{9, 9, 9, 9}
	srvSCID  = []byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee}
)

func clientInitial(t testing.TB, version uint32, pn uint64, payload []byte) []byte {
	return sealInitial(t, initialSpec{version: version, keyDCID: testDCID, dcid: testDCID, scid: testSCID,
		pn: pn, pnLen: 2, fromClient: true, payload: payload})
}

func serverInitial(t testing.TB, version uint32, pn uint64, payload []byte) []byte {
	return sealInitial(t, initialSpec{version: version, keyDCID: testDCID, dcid: testSCID, scid: srvSCID,
		pn: pn, pnLen: 1, payload: payload})
}

// TestReassemblyAcrossPackets splits a ClientHello over several Initials and
// CRYPTO frames delivered out of order, with retransmitted and overlapping
// frames, in coalesced datagrams with padding.
func TestReassemblyAcrossPackets(t *testing.T) {
	hello := fakeHello(1, 3000)
	frag := func(a, b int) []byte { return cryptoFrame(uint64(a), hello[a:b]) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	ack := []byte{frameAck, 0x05, 0x00, 0x01, 0x00, 0x01, 0x02} // largest 5, 1 extra range
	ackECN := []byte{frameAckECN, 0x01, 0x00, 0x00, 0x00, 0x07, 0x08, 0x09}
	for _, version := range []uint32{Version1, Version2, versionDraft29} {
		c := NewConn()
		p1 := clientInitial(t, version, 0, cat(frag(2000, 3004), []byte{framePing}, make([]byte, 10)))
		p2 := clientInitial(t, version, 1, cat(ack, frag(0, 700), frag(1500, 2100)))
		p3 := clientInitial(t, version, 2, cat(ackECN, frag(600, 1600), frag(0, 100)))
		// p1 alone: no prefix yet.
		if err := c.Feed(cat(p1, make([]byte, 40)), true); err != nil {
			t.Fatal(err)
		}
		if c.ClientHello() != nil || len(c.CryptoPrefix(true)) != 0 {
			t.Fatal("hello complete too early")
		}
		// p2 and p3 coalesced in one datagram, then a short-header packet.
		if err := c.Feed(cat(p2, p1, p3, []byte{0x40, 1, 2, 3}), true); err != nil {
			t.Fatal(err)
		}
		if got := c.ClientHello(); !bytes.Equal(got, hello) {
			t.Fatalf("%x: hello not reassembled: %d bytes, prefix %d", version, len(got), len(c.CryptoPrefix(true)))
		}
		st := c.Stats()
		if st.Decrypted != 4 || st.ShortHeader != 1 || st.PaddingBytes != 40 || st.Packets != 4 {
			t.Errorf("%x: stats %+v", version, st)
		}
		// A later overlapping frame with different bytes must not rewrite.
		evil := bytes.Clone(hello[100:200])
		for i := range evil {
			evil[i] ^= 0xff
		}
		if err := c.Feed(clientInitial(t, version, 3, cryptoFrame(100, evil)), true); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(c.ClientHello(), hello) {
			t.Fatal("overlap rewrote the hello")
		}
	}
}

func TestStreamFirstWriteWins(t *testing.T) {
	var s cryptoStream
	s.add(10, []byte("KLMNO"))
	s.add(0, []byte("abcdefghijkl")) // overlaps the start of KLMNO
	s.add(13, []byte("xxxxyz"))      // overlaps its end
	if got := string(s.contiguous()); got != "abcdefghijKLMNOxxyz" {
		t.Fatalf("got %q", got)
	}
	if len(s.ranges) != 1 {
		t.Fatalf("ranges %v", s.ranges)
	}
	// One frame spanning several held ranges fills only the gaps between them.
	var m cryptoStream
	m.add(2, []byte("cd"))
	m.add(6, []byte("gh"))
	m.add(10, []byte("kl"))
	m.add(0, []byte("ABCDEFGHIJKLMN"))
	if got := string(m.contiguous()); got != "ABcdEFghIJklMN" || len(m.ranges) != 1 {
		t.Fatalf("got %q ranges %v", got, m.ranges)
	}
}

func TestStreamLimits(t *testing.T) {
	var s cryptoStream
	// Beyond the limit: dropped and counted.
	if dropped, ok := s.add(MaxCryptoStream-10, make([]byte, 30)); dropped != 20 || !ok {
		t.Fatalf("dropped %d ok %v", dropped, ok)
	}
	if dropped, _ := s.add(1<<62, make([]byte, 5)); dropped != 5 {
		t.Fatalf("far offset dropped %d", dropped)
	}
	if len(s.buf) > MaxCryptoStream {
		t.Fatalf("buffer %d", len(s.buf))
	}
	// Too many holes: frames are dropped, the range list stays bounded.
	var h cryptoStream
	for i := range 2 * maxCryptoRanges {
		h.add(uint64(10*i+5), []byte{1})
	}
	if len(h.ranges) != maxCryptoRanges {
		t.Fatalf("%d ranges", len(h.ranges))
	}
	// Filling the holes merges them again.
	h.add(0, make([]byte, 400))
	if len(h.ranges) != 1 || len(h.contiguous()) != 400 {
		t.Fatalf("ranges %v", h.ranges)
	}
}

// TestHelloTooLarge: a hello declaring more than MaxCryptoStream never
// completes, and the bytes past the limit are counted.
func TestHelloTooLarge(t *testing.T) {
	c := NewConn()
	hdr := []byte{1, 0x01, 0x00, 0x00} // 64 KiB body
	if err := c.Feed(clientInitial(t, Version1, 0, cryptoFrame(0, hdr)), true); err != nil {
		t.Fatal(err)
	}
	if err := c.Feed(clientInitial(t, Version1, 1, cryptoFrame(MaxCryptoStream-4, make([]byte, 100))), true); err != nil {
		t.Fatal(err)
	}
	if c.ClientHello() != nil || c.Stats().CryptoBytesDropped != 96 {
		t.Fatalf("stats %+v", c.Stats())
	}
}

func TestServerHelloAndConnectionClose(t *testing.T) {
	c := NewConn()
	ch := fakeHello(1, 500)
	sh := fakeHello(2, 90)
	c.Feed(clientInitial(t, Version1, 0, cryptoFrame(0, ch)), true)
	closeFrame := []byte{frameConnectionClose, 0x0a, 0x06, 0x03, 'b', 'a', 'd'}
	if err := c.Feed(serverInitial(t, Version1, 0, bytes.Join([][]byte{cryptoFrame(40, sh[40:]), cryptoFrame(0, sh[:40]), closeFrame}, nil)), false); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.ServerHello(), sh) || !bytes.Equal(c.ClientHello(), ch) {
		t.Fatal("hellos")
	}
	if c.Stats().ConnectionClose != 1 || c.CloseCode() != 0x0a {
		t.Fatalf("close %+v %x", c.Stats(), c.CloseCode())
	}
	if !bytes.Equal(c.ServerSCID(), srvSCID) || !bytes.Equal(c.SCID(), testSCID) || !bytes.Equal(c.DCID(), testDCID) {
		t.Fatal("cids")
	}
}

func TestFrameErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
		want    error
	}{
		{"stream frame", []byte{0x08, 0x00, 0x00}, ErrUnexpectedFrame},
		{"app close", []byte{0x1d, 0, 0}, ErrUnexpectedFrame},
		{"crypto beyond payload", []byte{frameCrypto, 0x00, 0x30, 1, 2}, ErrBadFrame},
		{"ack lying range count", []byte{frameAck, 0, 0, 0x3f, 0}, ErrBadFrame},
		{"close lying reason", []byte{frameConnectionClose, 0, 0, 0x20, 'x'}, ErrBadFrame},
	} {
		c := NewConn()
		// A good frame first: it is used even though a later one stops parsing.
		payload := append(cryptoFrame(0, []byte{1, 0, 0, 1, 7}), tc.payload...)
		err := c.Feed(clientInitial(t, Version1, 0, payload), true)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
		if c.ClientHello() == nil || c.Stats().FrameErrors != 1 {
			t.Errorf("%s: stats %+v", tc.name, c.Stats())
		}
	}
}

// TestRetryRekeys: after a verified Retry the client's Initial uses the
// Retry's SCID as DCID and both directions' keys derive from it.
func TestRetryRekeys(t *testing.T) {
	for _, version := range []uint32{Version1, Version2} {
		c := NewConn()
		c.Feed(clientInitial(t, version, 0, cryptoFrame(0, fakeHello(1, 50))), true)
		newDCID := []byte{0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78}
		retry := buildRetry(t, version, testSCID, newDCID, []byte("tok"), testDCID)
		// A forged Retry (wrong tag) is ignored.
		forged := bytes.Clone(retry)
		forged[len(forged)-1] ^= 1
		c.Feed(forged, false)
		c.Feed(retry, false)
		hello := fakeHello(1, 1400)
		after := sealInitial(t, initialSpec{version: version, keyDCID: newDCID, dcid: newDCID, scid: testSCID,
			token: []byte("tok"), pn: 1, pnLen: 2, fromClient: true, payload: cryptoFrame(0, hello)})
		sh := fakeHello(2, 60)
		srv := sealInitial(t, initialSpec{version: version, keyDCID: newDCID, dcid: testSCID, scid: srvSCID,
			pn: 0, pnLen: 1, payload: cryptoFrame(0, sh)})
		c.Feed(after, true)
		c.Feed(srv, false)
		st := c.Stats()
		if st.Retry != 2 || st.RetryBadTag != 1 || st.Decrypted != 3 || st.DecryptFailed != 0 || !c.Retried() {
			t.Fatalf("%x: stats %+v", version, st)
		}
		// The first ClientHello (50 bytes) completed before the Retry; the
		// stream keeps it (first write wins), as the retried hello repeats it.
		if c.ClientHello() == nil || !bytes.Equal(c.ServerHello(), sh) {
			t.Fatalf("%x: hellos", version)
		}
		if !bytes.Equal(c.DCID(), testDCID) {
			t.Fatalf("DCID changed: %x", c.DCID())
		}
	}
}

// TestMissedRetry: the capture lacks the Retry; the client's Initial with a
// new DCID still decrypts by deriving keys from the DCID it carries.
func TestMissedRetry(t *testing.T) {
	c := NewConn()
	c.Feed(clientInitial(t, Version1, 0, cryptoFrame(0, []byte{1, 0, 0, 200})), true)
	newDCID := []byte{0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77}
	hello := append([]byte{1, 0, 0, 200}, make([]byte, 200)...)
	c.Feed(sealInitial(t, initialSpec{version: Version1, keyDCID: newDCID, dcid: newDCID,
		pn: 1, pnLen: 2, fromClient: true, payload: cryptoFrame(4, hello[4:])}), true)
	if !bytes.Equal(c.ClientHello(), hello) || c.Stats().KeyDerivations != 2 {
		t.Fatalf("stats %+v", c.Stats())
	}
}

func buildRetry(t testing.TB, version uint32, dcid, scid, token, odcid []byte) []byte {
	p := params(version)
	typeBits := byte(typeRetry)
	if p.isV2Types {
		typeBits = 0
	}
	b := []byte{0xc0 | typeBits<<4}
	b = binary.BigEndian.AppendUint32(b, version)
	b = append(b, byte(len(dcid)))
	b = append(b, dcid...)
	b = append(b, byte(len(scid)))
	b = append(b, scid...)
	b = append(b, token...)
	// Tag over the pseudo-packet, computed like verifyRetry checks it.
	pseudo := append([]byte{byte(len(odcid))}, odcid...)
	pseudo = append(pseudo, b...)
	return append(b, retryTag(t, p, pseudo)...)
}

func TestVersionNegotiationAndUnknown(t *testing.T) {
	c := NewConn()
	vn := []byte{0x80, 0, 0, 0, 0, 4, 1, 2, 3, 4, 0, 0, 0, 0, 1, 0x6b, 0x33, 0x43, 0xcf}
	if err := c.Feed(vn, false); err != nil {
		t.Fatal(err)
	}
	unknown := append([]byte{0xc0, 0x1a, 0x2a, 0x3a, 0x4a, 8}, make([]byte, 1300)...)
	if err := c.Feed(unknown, true); err != nil {
		t.Fatal(err)
	}
	hs := []byte{0xe0, 0, 0, 0, 1, 0, 0, 0x05, 1, 2, 3, 4, 5} // v1 Handshake, Length 5
	if err := c.Feed(append(hs, 0x40, 9), false); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if st.VersionNegotiation != 1 || st.UnsupportedVersion != 1 || st.Skipped != 1 || st.ShortHeader != 1 || c.Version() != 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := c.Feed([]byte{0xc0, 0, 0, 0, 1, 30}, true); !errors.Is(err, ErrTruncated) || c.Stats().Malformed != 1 {
		t.Fatalf("truncated header: %v %+v", err, c.Stats())
	}
}

func TestLooksLikeInitial(t *testing.T) {
	good := clientInitial(t, Version1, 0, append(cryptoFrame(0, fakeHello(1, 300)), make([]byte, 900)...))
	if v, ok := LooksLikeInitial(good); !ok || v != Version1 {
		t.Fatal("good Initial rejected")
	}
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for name, b := range map[string][]byte{
		"short datagram": good[:1199],
		"no fixed bit":   mut(func(b []byte) []byte { b[0] &^= 0x40; return b }),
		"handshake type": mut(func(b []byte) []byte { b[0] |= 0x20; return b }),
		"unknown ver":    mut(func(b []byte) []byte { b[4] = 9; return b }),
		"dcid too long":  mut(func(b []byte) []byte { b[5] = 21; return b }),
		"dcid too short": mut(func(b []byte) []byte { b[5] = 4; return b }),
		"short header":   mut(func(b []byte) []byte { b[0] &^= 0x80; return b }),
		"length lies":    mut(func(b []byte) []byte { b[20] = 0x7f; return b }),
	} {
		if _, ok := LooksLikeInitial(b); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestFeedAllocations: once keys exist, feeding Initials does not allocate.
func TestFeedAllocations(t *testing.T) {
	c := NewConn()
	hello := fakeHello(1, 4000)
	c.Feed(clientInitial(t, Version1, 0, cryptoFrame(0, hello[:1000])), true)
	c.Feed(serverInitial(t, Version1, 0, cryptoFrame(0, fakeHello(2, 80))), false)
	retrans := clientInitial(t, Version1, 1, append(cryptoFrame(0, hello[:1000]), make([]byte, 200)...))
	srv := serverInitial(t, Version1, 1, []byte{frameAck, 1, 0, 0, 0})
	hs := []byte{0xe0, 0, 0, 0, 1, 0, 0, 0x05, 1, 2, 3, 4, 5}
	dgram := append(append(bytes.Clone(retrans), hs...), 0x40, 1, 2)
	allocs := testing.AllocsPerRun(50, func() {
		c.Feed(dgram, true)
		c.Feed(srv, false)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per datagram pair", allocs)
	}
	if c.Stats().DecryptFailed != 0 {
		t.Fatalf("stats %+v", c.Stats())
	}
	// Reset keeps the buffers: a pooled Conn serves a new flow from scratch.
	c.Reset()
	if c.ClientHello() != nil || c.Stats() != (Stats{}) || c.Version() != 0 || cap(c.scratch) == 0 {
		t.Fatal("Reset left state behind")
	}
	if err := c.Feed(clientInitial(t, Version2, 0, cryptoFrame(0, hello[:100])), true); err != nil || c.Stats().Decrypted != 1 {
		t.Fatalf("after Reset: %v %+v", err, c.Stats())
	}
}

// TestTruncatedClientInitial: a client Initial cut by the snaplen still
// names the DCID, so the server's Initial decrypts.
func TestTruncatedClientInitial(t *testing.T) {
	c := NewConn()
	full := clientInitial(t, Version1, 0, append(cryptoFrame(0, fakeHello(1, 300)), make([]byte, 900)...))
	if err := c.Feed(full[:200], true); err != nil {
		t.Fatal(err)
	}
	sh := fakeHello(2, 70)
	if err := c.Feed(serverInitial(t, Version1, 0, cryptoFrame(0, sh)), false); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Truncated != 1 || st.Decrypted != 1 || !bytes.Equal(c.ServerHello(), sh) || c.ClientHello() != nil {
		t.Fatalf("stats %+v", st)
	}
}
