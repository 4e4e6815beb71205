package tls

import (
	"crypto/sha256"
	gotls "crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

func sha12(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}

func TestParseClientHelloFields(t *testing.T) {
	h := specHello()
	h.exts = append(h.exts,
		ext{ExtECH, []byte{1, 2, 3}},
		ext{ExtQUICTransportParams, []byte{4}},
		ext{ExtALPN, []byte{0, 3, 2, 'x', 'y'}}, // duplicate: the first one wins
	)
	c := mustParse(t, buildClientHello(h))
	if c.LegacyVersion != 0x0303 || c.SessionIDLen != 32 || c.CompressionMethods != 1 {
		t.Errorf("header fields: %+v", c)
	}
	if len(c.CipherSuites) != 16 || c.CipherSuites[0] != 0x2a2a || c.CipherSuites[15] != 0x0035 {
		t.Errorf("CipherSuites = %x", c.CipherSuites)
	}
	if len(c.Extensions) != 21 || c.Extensions[0] != 0x0a0a || c.Extensions[1] != 0x001b || c.Extensions[20] != ExtALPN {
		t.Errorf("Extensions = %x", c.Extensions)
	}
	if !slices.Equal(c.ALPN, []string{"h2", "http/1.1"}) {
		t.Errorf("ALPN = %q", c.ALPN)
	}
	if !slices.Equal(c.SupportedGroups, []uint16{0x4a4a, 0x001d, 0x0017, 0x0018}) ||
		!slices.Equal(c.SupportedVersions, []uint16{0x3a3a, 0x0304, 0x0303}) ||
		!slices.Equal(c.ECPointFormats, []uint8{0}) ||
		len(c.SignatureAlgorithms) != 8 {
		t.Errorf("lists: groups %x versions %x formats %x sigalgs %x", c.SupportedGroups, c.SupportedVersions, c.ECPointFormats, c.SignatureAlgorithms)
	}
	if !c.HasECH || !c.HasQUICTransportParams || c.Truncated || c.Anomaly != "" {
		t.Errorf("flags: ech %v quic %v truncated %v anomaly %q", c.HasECH, c.HasQUICTransportParams, c.Truncated, c.Anomaly)
	}
}

func TestServerNameSanitised(t *testing.T) {
	c := mustParse(t, buildClientHello(helloSpec{version: 0x0303, ciphers: []uint16{1},
		exts: []ext{extSNI("WWW.Evil.example\n{\"x\":1} \x00\\"), extALPN("h2\r\n")}}))
	if want := `www.evil.example\x0a{"x":1}\x20\x00\\`; c.ServerName != want {
		t.Errorf("ServerName = %q, want %q", c.ServerName, want)
	}
	if want := `h2\x0d\x0a`; len(c.ALPN) != 1 || c.ALPN[0] != want {
		t.Errorf("ALPN = %q, want %q", c.ALPN, want)
	}
	// ALPN before SNI (Chrome shuffles extensions), empty first value.
	c = mustParse(t, buildClientHello(helloSpec{version: 0x0303, ciphers: []uint16{1},
		exts: []ext{extALPN("", "h2", "http/1.1"), extSNI("a.b")}}))
	if c.ServerName != "a.b" || !slices.Equal(c.ALPN, []string{"", "h2", "http/1.1"}) || c.JA4(false)[8:10] != "00" {
		t.Errorf("ALPN first: %q %q %s", c.ServerName, c.ALPN, c.JA4(false))
	}
	c = mustParse(t, buildClientHello(helloSpec{version: 0x0303, ciphers: []uint16{1},
		exts: []ext{extSNI("WWW.Evil.example\n{\"x\":1} \x00\\"), extALPN("h2\r\n")}}))
	// JA4 still uses the raw bytes: first 'h', last '\n' -> hex rule.
	if got := c.JA4(false)[8:10]; got != "6a" {
		t.Errorf("ALPN marker %q", got)
	}
}

func TestParseClientHelloErrors(t *testing.T) {
	good := buildClientHello(specHello())
	if _, err := ParseClientHello(good[:3]); !errors.Is(err, ErrTruncated) {
		t.Errorf("3 bytes: %v", err)
	}
	bad := slices.Clone(good)
	bad[0] = TypeServerHello
	if c, err := ParseClientHello(bad); c != nil || !errors.Is(err, ErrWrongType) {
		t.Errorf("wrong type: %v %v", c, err)
	}

	// Handshake length claims more than there is.
	bad = slices.Clone(good)
	bad[1] = 0x01
	c, err := ParseClientHello(bad)
	if !errors.Is(err, ErrTruncated) || c == nil || !c.Truncated || c.Anomaly == "" || len(c.CipherSuites) != 16 {
		t.Errorf("long handshake length: %v %+v", err, c)
	}

	// Session id longer than 32.
	bad = slices.Clone(good)
	bad[4+34] = 33
	if c, err = ParseClientHello(bad); !errors.Is(err, ErrMalformed) || c.Truncated {
		t.Errorf("session id 33: %v", err)
	}

	// Odd cipher_suites length.
	bad = slices.Clone(good)
	off := 4 + 2 + 32 + 1 + 32
	bad[off+1]++
	if _, err = ParseClientHello(bad); !errors.Is(err, ErrMalformed) {
		t.Errorf("odd cipher length: %v", err)
	}

	// Extensions block length lies (larger than the body): fields before
	// the lie survive, the error says malformed.
	bad = slices.Clone(good)
	extOff := off + 2 + 32 + 2
	bad[extOff] = 0xff
	c, err = ParseClientHello(bad)
	if !errors.Is(err, ErrMalformed) || c == nil || c.Truncated || len(c.CipherSuites) != 16 || c.ServerName != "example.com" {
		t.Errorf("lying extensions length: %v %+v", err, c)
	}

	// SNI inner list length lies: error, no server name, later extensions
	// still parsed.
	h := specHello()
	for i, e := range h.exts {
		if e.typ == ExtServerName {
			e.data = slices.Clone(e.data)
			e.data[1] += 5
			h.exts[i] = e
		}
	}
	c, err = ParseClientHello(buildClientHello(h))
	if !errors.Is(err, ErrMalformed) || c.ServerName != "" || len(c.ALPN) != 2 {
		t.Errorf("lying SNI list: %v %q %q", err, c.ServerName, c.ALPN)
	}

	// Trailing bytes after the extensions block inside the body.
	body := append(slices.Clone(good[4:]), 0, 0)
	if _, err = ParseClientHello(handshake(TypeClientHello, body)); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing bytes: %v", err)
	}

	// Bytes after the declared handshake length are not ours: ignored.
	if _, err = ParseClientHello(append(slices.Clone(good), 0xde, 0xad)); err != nil {
		t.Errorf("bytes after the message: %v", err)
	}
}

// Every prefix of a real hello is an error (truncated), never a panic.
func TestParseClientHelloEveryTruncation(t *testing.T) {
	for _, msg := range [][]byte{buildClientHello(specHello()), goClientHello(t, &gotls.Config{ServerName: "example.com", NextProtos: []string{"h2"}})} {
		for i := 0; i < len(msg); i++ {
			c, err := ParseClientHello(msg[:i])
			if err == nil {
				t.Fatalf("prefix %d/%d parsed without error", i, len(msg))
			}
			if i < 4 {
				if c != nil {
					t.Fatalf("prefix %d: non-nil hello", i)
				}
				continue
			}
			if !errors.Is(err, ErrTruncated) || c == nil || !c.Truncated {
				t.Fatalf("prefix %d: %v %v", i, err, c)
			}
			c.JA3()
			c.JA4(false)
			c.JA4R(false)
		}
	}
}

// Every byte of a real hello replaced by lying values (covering every
// length field at every level): never a panic, and the fingerprints of
// whatever comes out can be computed.
func TestParseClientHelloEveryByteLies(t *testing.T) {
	msg := buildClientHello(specHello())
	for i := range msg {
		for _, v := range []byte{0x00, 0x01, 0x7f, 0xff, msg[i] + 1, msg[i] - 1} {
			bad := slices.Clone(msg)
			bad[i] = v
			c, err := ParseClientHello(bad)
			if c == nil {
				if err == nil {
					t.Fatalf("byte %d = %#x: nil hello and nil error", i, v)
				}
				continue
			}
			if (err != nil) != (c.Anomaly != "") {
				t.Fatalf("byte %d = %#x: err %v but anomaly %q", i, v, err, c.Anomaly)
			}
			c.JA3()
			c.JA4(false)
			c.JA4RO(true)
		}
	}
}

// goClientHello captures the ClientHello handshake message that crypto/tls
// writes for cfg, over an in-memory pipe.
func goClientHello(t testing.TB, cfg *gotls.Config) []byte {
	t.Helper()
	cliConn, srvConn := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := gotls.Client(cliConn, cfg)
		_ = c.Handshake() // fails when we close the pipe
	}()
	_ = srvConn.SetDeadline(time.Now().Add(10 * time.Second))
	var stream []byte
	var msg []byte
	r := NewHandshakeReader(func(m Message) bool {
		msg = slices.Clone(m.Data)
		return false
	})
	buf := make([]byte, 4096)
	for msg == nil {
		n, err := srvConn.Read(buf)
		if err != nil && err != io.EOF {
			t.Fatalf("reading the client hello: %v", err)
		}
		stream = append(stream, buf[:n]...)
		if ferr := r.Feed(buf[:n]); ferr != nil {
			t.Fatalf("Feed: %v", ferr)
		}
		if err == io.EOF {
			break
		}
	}
	srvConn.Close()
	<-done
	if msg == nil {
		t.Fatalf("no client hello in %d bytes", len(stream))
	}
	if !LooksLikeClientHello(stream) {
		t.Errorf("LooksLikeClientHello(crypto/tls hello) = false")
	}
	return msg
}

func TestGoClientHellos(t *testing.T) {
	configs := []*gotls.Config{
		{ServerName: "Example.com", NextProtos: []string{"h2", "http/1.1"}},
		{
			ServerName: "many.example.org",
			NextProtos: []string{"h2", "http/1.1", "spdy/3.1", "acme-tls/1", "x"},
			MinVersion: gotls.VersionTLS10,
			MaxVersion: gotls.VersionTLS12,
			CipherSuites: []uint16{
				gotls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
				gotls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
				gotls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
				gotls.TLS_RSA_WITH_AES_128_GCM_SHA256,
				gotls.TLS_RSA_WITH_AES_256_CBC_SHA,
			},
			CurvePreferences: []gotls.CurveID{gotls.CurveP384, gotls.X25519},
		},
		{
			ServerName:       "tls13.example.net",
			MinVersion:       gotls.VersionTLS13,
			CurvePreferences: []gotls.CurveID{gotls.X25519MLKEM768, gotls.X25519},
		},
		{InsecureSkipVerify: true}, // no SNI, no ALPN
	}
	for _, cfg := range configs {
		msg := goClientHello(t, cfg)
		c, err := ParseClientHello(msg)
		if err != nil {
			t.Fatalf("%s: %v", cfg.ServerName, err)
		}
		if want := toLowerASCII(cfg.ServerName); c.ServerName != want {
			t.Errorf("ServerName %q, want %q", c.ServerName, want)
		}
		if !slices.Equal(c.ALPN, cfg.NextProtos) {
			t.Errorf("%s: ALPN %q, want %q", cfg.ServerName, c.ALPN, cfg.NextProtos)
		}
		maxV, minV := cfg.MaxVersion, cfg.MinVersion
		if maxV == 0 {
			maxV = gotls.VersionTLS13
		}
		if minV == 0 {
			minV = gotls.VersionTLS12
		}
		if want := min(maxV, gotls.VersionTLS12); c.LegacyVersion != want {
			t.Errorf("%s: legacy version %#x, want %#x", cfg.ServerName, c.LegacyVersion, want)
		}
		var wantVersions []uint16
		for v := maxV; v >= minV; v-- {
			wantVersions = append(wantVersions, v)
		}
		if !slices.Equal(c.SupportedVersions, wantVersions) {
			t.Errorf("%s: supported versions %x, want %x", cfg.ServerName, c.SupportedVersions, wantVersions)
		}
		// crypto/tls orders suites itself; the configured ones must all be
		// offered (TLS 1.3 suites are added when 1.3 is enabled).
		for _, s := range cfg.CipherSuites {
			if !slices.Contains(c.CipherSuites, s) {
				t.Errorf("%s: suite %s not offered (%x)", cfg.ServerName, CipherName(s), c.CipherSuites)
			}
		}
		if len(cfg.CipherSuites) > 0 && maxV < gotls.VersionTLS13 {
			// Nothing but the configured suites (and perhaps the
			// renegotiation SCSV) may be offered.
			for _, s := range c.CipherSuites {
				if !slices.Contains(cfg.CipherSuites, s) && s != 0x00ff {
					t.Errorf("%s: unexpected suite %#04x", cfg.ServerName, s)
				}
			}
		}
		if maxV == gotls.VersionTLS13 && !slices.Contains(c.CipherSuites, gotls.TLS_AES_128_GCM_SHA256) {
			t.Errorf("%s: no TLS 1.3 suite in %x", cfg.ServerName, c.CipherSuites)
		}
		for _, g := range cfg.CurvePreferences {
			if !slices.Contains(c.SupportedGroups, uint16(g)) {
				t.Errorf("%s: group %v not in %x", cfg.ServerName, g, c.SupportedGroups)
			}
		}
		if len(c.SignatureAlgorithms) == 0 || !slices.Equal(c.ECPointFormats, []uint8{0}) {
			t.Errorf("%s: sigalgs %x formats %x", cfg.ServerName, c.SignatureAlgorithms, c.ECPointFormats)
		}
		// Cross-check the JA4 a-part against the config.
		ja4 := c.JA4(false)
		wantSNI := byte('i')
		if cfg.ServerName != "" {
			wantSNI = 'd'
		}
		_, ver := VersionString(maxV)
		if ja4[0] != 't' || ja4[1:3] != ver[:1]+ver[2:] || ja4[3] != wantSNI {
			t.Errorf("%s: JA4 %s (max version %s)", cfg.ServerName, ja4, ver)
		}
		raw, sum := c.JA3()
		if len(sum) != 32 || raw[:3] != "771" {
			t.Errorf("%s: JA3 %s %s", cfg.ServerName, raw, sum)
		}
	}
}

func toLowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
