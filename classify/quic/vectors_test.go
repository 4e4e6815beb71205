package quic

import (
	"bytes"
	"encoding/hex"
	"testing"
)

var rfcDCID = []byte{0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08}

// TestInitialKeys checks key derivation against RFC 9001 A.1 and RFC 9369 A.1.
func TestInitialKeys(t *testing.T) {
	cases := []struct {
		name                       string
		version                    uint32
		clientSecret, serverSecret string
		client, server             [3]string // key, iv, hp
	}{
		{"v1", Version1,
			"c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea",
			"3c199828fd139efd216c155ad844cc81fb82fa8d7446fa7d78be803acdda951b",
			[3]string{"1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c", "9f50449e04a0e810283a1e9933adedd2"},
			[3]string{"cf3a5331653c364c88f0f379b6067e37", "0ac1493ca1905853b0bba03e", "c206b8d9b9f0f37644430b490eeaa314"}},
		{"v2", Version2,
			"14ec9d6eb9fd7af83bf5a668bc17a7e283766aade7ecd0891f70f9ff7f4bf47b",
			"0263db1782731bf4588e7e4d93b7463907cb8cd8200b5da55a8bd488eafc37c1",
			[3]string{"8b1a0bc121284290a29e0971b5cd045d", "91f73e2351d8fa91660e909f", "45b95e15235d6f45a6b19cbcb0294ba9"},
			[3]string{"82db637861d55e1d011f19ea71d5d2a7", "dd13c276499c0249d3310652", "edf6d05c83121201b436e16877593c3a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := params(tc.version)
			cs, ss, err := initialSecrets(p, rfcDCID)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(cs); got != tc.clientSecret {
				t.Errorf("client secret %s, want %s", got, tc.clientSecret)
			}
			if got := hex.EncodeToString(ss); got != tc.serverSecret {
				t.Errorf("server secret %s, want %s", got, tc.serverSecret)
			}
			for _, d := range []struct {
				secret []byte
				want   [3]string
			}{{cs, tc.client}, {ss, tc.server}} {
				m, err := deriveMaterial(p, d.secret)
				if err != nil {
					t.Fatal(err)
				}
				got := [3]string{hex.EncodeToString(m.key), hex.EncodeToString(m.iv), hex.EncodeToString(m.hp)}
				if got != d.want {
					t.Errorf("key/iv/hp %v, want %v", got, d.want)
				}
			}
		})
	}
}

// TestRFCPackets decrypts the RFC 9001 A.2/A.3 and RFC 9369 A.2/A.3 packets
// through Conn and checks the reassembled hellos against the plaintexts.
func TestRFCPackets(t *testing.T) {
	crypto := readHex(t, "rfc9001-a2-client-crypto.hex")
	wantCH := crypto[4:] // after type 0x06, offset 0x00, length 0x40f1
	serverPayload := readHex(t, "rfc9001-a3-server-payload.hex")
	wantSH := serverPayload[9:] // after ACK (5 bytes) and CRYPTO header (4)
	for _, tc := range []struct {
		name           string
		version        uint32
		client, server string
	}{
		{"v1", Version1, "rfc9001-a2-client-initial.hex", "rfc9001-a3-server-initial.hex"},
		{"v2", Version2, "rfc9369-a2-client-initial.hex", "rfc9369-a3-server-initial.hex"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := readHex(t, tc.client)
			orig := bytes.Clone(client)
			if v, ok := LooksLikeInitial(client); !ok || v != tc.version {
				t.Fatalf("LooksLikeInitial = %x, %v", v, ok)
			}
			c := NewConn()
			// A server packet before any client Initial has no keys.
			if err := c.Feed(readHex(t, tc.server), false); err != nil {
				t.Fatal(err)
			}
			if err := c.Feed(client, true); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(client, orig) {
				t.Fatal("Feed modified the datagram")
			}
			if got := c.ClientHello(); !bytes.Equal(got, wantCH) {
				t.Fatalf("ClientHello:\n got %x\nwant %x", got, wantCH)
			}
			if sni, _ := testSNI(c.ClientHello()); sni != "example.com" {
				t.Errorf("SNI %q", sni)
			}
			if c.largest[0] != 2 {
				t.Errorf("client packet number %d, want 2", c.largest[0])
			}
			if err := c.Feed(readHex(t, tc.server), false); err != nil {
				t.Fatal(err)
			}
			if got := c.ServerHello(); !bytes.Equal(got, wantSH) {
				t.Fatalf("ServerHello:\n got %x\nwant %x", got, wantSH)
			}
			if c.largest[1] != 1 {
				t.Errorf("server packet number %d, want 1", c.largest[1])
			}
			st := c.Stats()
			if st.Decrypted != 2 || st.NoKeys != 1 || st.DecryptFailed != 0 || st.KeyDerivations != 1 {
				t.Errorf("stats %+v", st)
			}
			if c.Version() != tc.version || c.ServerVersion() != tc.version {
				t.Errorf("versions %x %x", c.Version(), c.ServerVersion())
			}
			if !bytes.Equal(c.DCID(), rfcDCID) || len(c.SCID()) != 0 ||
				hex.EncodeToString(c.ServerSCID()) != "f067a5502a4262b5" {
				t.Errorf("cids %x %x %x", c.DCID(), c.SCID(), c.ServerSCID())
			}
			// A flipped ciphertext bit is counted, not returned as an error.
			bad := bytes.Clone(client)
			bad[600] ^= 1
			c2 := NewConn()
			if err := c2.Feed(bad, true); err != nil {
				t.Fatal(err)
			}
			if st := c2.Stats(); st.DecryptFailed != 1 || st.Decrypted != 0 || c2.ClientHello() != nil {
				t.Errorf("corrupt packet: stats %+v", st)
			}
		})
	}
}

// TestSealMatchesRFC checks the test-only sealer against the RFC packets, so
// that synthetic packets built with it are trustworthy.
func TestSealMatchesRFC(t *testing.T) {
	crypto := readHex(t, "rfc9001-a2-client-crypto.hex")
	payload := append(bytes.Clone(crypto), make([]byte, 1162-len(crypto))...)
	serverPayload := readHex(t, "rfc9001-a3-server-payload.hex")
	scid := mustHex(t, "f067a5502a4262b5")
	for _, tc := range []struct {
		version        uint32
		client, server string
	}{
		{Version1, "rfc9001-a2-client-initial.hex", "rfc9001-a3-server-initial.hex"},
		{Version2, "rfc9369-a2-client-initial.hex", "rfc9369-a3-server-initial.hex"},
	} {
		got := sealInitial(t, initialSpec{version: tc.version, keyDCID: rfcDCID, dcid: rfcDCID, pn: 2, pnLen: 4, fromClient: true, payload: payload})
		if want := readHex(t, tc.client); !bytes.Equal(got, want) {
			t.Errorf("%x client: sealed packet differs from RFC", tc.version)
		}
		got = sealInitial(t, initialSpec{version: tc.version, keyDCID: rfcDCID, scid: scid, pn: 1, pnLen: 2, payload: serverPayload})
		if want := readHex(t, tc.server); !bytes.Equal(got, want) {
			t.Errorf("%x server: sealed packet differs from RFC\n got %x\nwant %x", tc.version, got, want)
		}
	}
}

// TestRetryIntegrity verifies the RFC 9001 A.4 and RFC 9369 A.4 Retry tags.
func TestRetryIntegrity(t *testing.T) {
	for _, tc := range []struct {
		version uint32
		file    string
	}{{Version1, "rfc9001-a4-retry.hex"}, {Version2, "rfc9369-a4-retry.hex"}} {
		pkt := readHex(t, tc.file)
		h, err := parseLongHeader(pkt)
		if err != nil || h.ptype != typeRetry || h.version != tc.version {
			t.Fatalf("%s: parse %+v %v", tc.file, h, err)
		}
		if string(h.token) != "token" {
			t.Errorf("%s: token %q", tc.file, h.token)
		}
		if !verifyRetry(pkt, tc.version, rfcDCID) {
			t.Errorf("%s: tag does not verify", tc.file)
		}
		if verifyRetry(pkt, tc.version, rfcDCID[:7]) {
			t.Errorf("%s: tag verifies with the wrong ODCID", tc.file)
		}
	}
}

func TestDecodePacketNumber(t *testing.T) {
	// RFC 9000 A.3 example, plus window edges.
	for _, tc := range []struct {
		largest   int64
		truncated uint64
		pnLen     int
		want      uint64
	}{
		{0xa82f30ea, 0x9b32, 2, 0xa82f9b32},
		{-1, 0, 1, 0},
		{-1, 2, 4, 2},
		{255, 0, 1, 256},
		{300, 0xff, 1, 255},
	} {
		if got := decodePacketNumber(tc.largest, tc.truncated, tc.pnLen); got != tc.want {
			t.Errorf("decode(%x, %x, %d) = %x, want %x", tc.largest, tc.truncated, tc.pnLen, got, tc.want)
		}
	}
}
