package tls

import (
	gotls "crypto/tls"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// corpusStreams returns the reassembled TCP payload of every flow of a few
// corpus captures, for fuzz seeds. Unlike testcorpus it never skips: with no
// corpus the fuzz targets still run on the hand-made vectors.
func corpusStreams(f *testing.F) [][]byte {
	dir, err := os.Getwd()
	if err != nil {
		return nil
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil
		}
		dir = parent
	}
	ja4 := filepath.Join(filepath.Dir(dir), "shared", "corpus", "ja4")
	var out [][]byte
	for _, name := range []string{"tls-alpn-h2.pcap", "badcurveball.pcap", "tls-non-ascii-alpn.pcapng", "tls12.pcap"} {
		p := filepath.Join(ja4, name)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		for _, fl := range readFlows(f, p) {
			if s := fl.stream(); len(s) > 0 {
				out = append(out, s)
			}
		}
	}
	return out
}

// firstMessages returns the handshake messages found in a stream.
func firstMessages(stream []byte) [][]byte {
	var out [][]byte
	r := NewHandshakeReader(func(m Message) bool {
		out = append(out, slices.Clone(m.Data))
		return true
	})
	_ = r.Feed(stream)
	return out
}

func checkPrintable(t *testing.T, what, s string) {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			t.Fatalf("%s %q holds byte %#x", what, s, s[i])
		}
	}
}

func FuzzParseClientHello(f *testing.F) {
	f.Add(buildClientHello(specHello()))
	f.Add(buildClientHello(helloSpec{version: 769, ciphers: []uint16{4, 5, 10}, noExts: true}))
	f.Add(buildClientHello(helloSpec{version: 0x0303, ciphers: []uint16{1}, exts: []ext{extALPN("\xba\xad", "b"), extSNI("X\x00")}}))
	f.Add(goClientHello(f, &gotls.Config{ServerName: "fuzz.example", NextProtos: []string{"h2", "http/1.1"}}))
	for _, s := range corpusStreams(f) {
		for _, m := range firstMessages(s) {
			if m[0] == TypeClientHello {
				f.Add(m)
			}
		}
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		c, err := ParseClientHello(msg)
		if c == nil {
			if err == nil {
				t.Fatal("nil hello, nil error")
			}
			return
		}
		if (err != nil) != (c.Anomaly != "") {
			t.Fatalf("err %v, anomaly %q", err, c.Anomaly)
		}
		checkPrintable(t, "ServerName", c.ServerName)
		for _, a := range c.ALPN {
			checkPrintable(t, "ALPN", a)
		}
		if ja4 := c.JA4(false); len(ja4) != 36 || ja4[10] != '_' || ja4[23] != '_' {
			t.Fatalf("JA4 %q", ja4)
		}
		if _, sum := c.JA3(); len(sum) != 32 {
			t.Fatalf("JA3 %q", sum)
		}
		c.JA4RO(true)
	})
}

func FuzzParseServerHello(f *testing.F) {
	f.Add(buildServerHello(serverSpec{version: 771, cipher: 49199, exts: []ext{{0xff01, []byte{0}}, extALPN("h2"), {0x0017, nil}}}))
	f.Add(buildServerHello(serverSpec{version: 0x0303, random: helloRetryRandom, cipher: 0x1301, exts: []ext{{ExtSupportedVersions, []byte{3, 4}}}}))
	for _, s := range corpusStreams(f) {
		for _, m := range firstMessages(s) {
			if m[0] == TypeServerHello || m[0] == TypeCertificate {
				f.Add(m)
			}
		}
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		s, err := ParseServerHello(msg)
		if s == nil {
			if err == nil {
				t.Fatal("nil hello, nil error")
			}
		} else {
			if (err != nil) != (s.Anomaly != "") {
				t.Fatalf("err %v, anomaly %q", err, s.Anomaly)
			}
			checkPrintable(t, "ALPN", s.ALPN)
			if _, sum := s.JA3S(); len(sum) != 32 {
				t.Fatalf("JA3S %q", sum)
			}
		}
		// The same bytes as a Certificate message must not panic either.
		if len(msg) > 0 {
			m := slices.Clone(msg)
			m[0] = TypeCertificate
			_, _ = ParseCertificateMessage(m)
		}
	})
}

// FuzzHandshakeReader checks that any split of a stream into two Feed calls
// yields exactly the messages of one Feed call, and that every message
// parses without panicking.
func FuzzHandshakeReader(f *testing.F) {
	hello := buildClientHello(specHello())
	f.Add(records(0x0301, hello, 1<<14), uint16(7))
	f.Add(records(0x0303, hello, 5), uint16(100))
	f.Add(append(record(contentHandshake, 0x0303, slices.Concat(hello, handshake(14, nil))), record(contentChangeCipherSpec, 0x0303, []byte{1})...), uint16(3))
	f.Add([]byte{0x80, 0x2e, 0x01, 0x03, 0x01}, uint16(2))
	for _, s := range corpusStreams(f) {
		f.Add(s, uint16(len(s)/3))
	}
	f.Fuzz(func(t *testing.T, stream []byte, cut uint16) {
		whole := collectAll(stream, nil)
		at := int(cut) % (len(stream) + 1)
		split := collectAll(stream[:at], stream[at:])
		if len(whole) != len(split) {
			t.Fatalf("whole %d messages, split at %d: %d", len(whole), at, len(split))
		}
		for i := range whole {
			if !slices.Equal(whole[i], split[i]) {
				t.Fatalf("message %d differs when split at %d", i, at)
			}
			switch whole[i][0] {
			case TypeClientHello:
				if c, _ := ParseClientHello(whole[i]); c != nil {
					c.JA4(false)
				}
			case TypeServerHello:
				_, _ = ParseServerHello(whole[i])
			case TypeCertificate:
				_, _ = ParseCertificateMessage(whole[i])
			}
		}
	})
}

func collectAll(a, b []byte) [][]byte {
	var out [][]byte
	r := NewHandshakeReader(func(m Message) bool {
		if len(m.Data) > MaxMessageLen+handshakeHeaderLen {
			panic("message above MaxMessageLen delivered")
		}
		out = append(out, slices.Clone(m.Data))
		return true
	})
	if err := r.Feed(a); err == nil {
		_ = r.Feed(b)
	}
	return out
}

func BenchmarkClientHelloJA3JA4(b *testing.B) {
	msg := buildClientHello(specHello())
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		c, err := ParseClientHello(msg)
		if err != nil {
			b.Fatal(err)
		}
		c.JA3()
		c.JA4(false)
	}
}
