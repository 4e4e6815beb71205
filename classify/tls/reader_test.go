package tls

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// collect feeds chunks to a fresh reader and returns copies of the messages.
func collect(t testing.TB, chunks ...[]byte) ([][]byte, *HandshakeReader, error) {
	t.Helper()
	var got [][]byte
	r := NewHandshakeReader(func(m Message) bool {
		if m.Type != m.Data[0] {
			t.Fatalf("Message.Type %d but data type %d", m.Type, m.Data[0])
		}
		got = append(got, slices.Clone(m.Data))
		return true
	})
	var err error
	for _, c := range chunks {
		if err = r.Feed(c); err != nil {
			break
		}
	}
	return got, r, err
}

func TestHandshakeReaderEverySplit(t *testing.T) {
	hello := buildClientHello(specHello())
	for _, recSize := range []int{1, 3, 4, 5, 100, len(hello)} {
		stream := records(0x0301, hello, recSize)
		for cut := 0; cut <= len(stream); cut++ {
			got, r, err := collect(t, stream[:cut], stream[cut:])
			if err != nil {
				t.Fatalf("records of %d, cut %d: %v", recSize, cut, err)
			}
			if len(got) != 1 || !bytes.Equal(got[0], hello) {
				t.Fatalf("records of %d, cut %d: %d messages", recSize, cut, len(got))
			}
			if r.Pending() {
				t.Fatalf("records of %d, cut %d: still pending", recSize, cut)
			}
		}
	}
	// Byte by byte over records of 7 bytes.
	stream := records(0x0303, hello, 7)
	chunks := make([][]byte, len(stream))
	for i := range stream {
		chunks[i] = stream[i : i+1]
	}
	got, _, err := collect(t, chunks...)
	if err != nil || len(got) != 1 || !bytes.Equal(got[0], hello) {
		t.Fatalf("byte by byte: %v, %d messages", err, len(got))
	}
	c, err := ParseClientHello(got[0])
	if err != nil || c.JA4(false) != "t13d1516h2_8daaf6152771_e5627efa2ab1" {
		t.Fatalf("reassembled hello: %v %v", err, c)
	}
}

func TestHandshakeReaderFlight(t *testing.T) {
	sh := buildServerHello(serverSpec{version: 0x0303, cipher: 0xc02f, exts: []ext{extALPN("h2")}})
	cert := handshake(TypeCertificate, be24(nil, 0))
	done := handshake(14, nil)
	// Three messages in one record, then one spanning two records, then CCS
	// and encrypted junk that must not be read.
	var stream []byte
	stream = append(stream, record(contentHandshake, 0x0303, slices.Concat(sh, cert, done[:2]))...)
	stream = append(stream, record(contentHandshake, 0x0303, done[2:])...)
	stream = append(stream, record(contentChangeCipherSpec, 0x0303, []byte{1})...)
	stream = append(stream, record(contentHandshake, 0x0303, []byte{0xde, 0xad, 0xbe, 0xef})...)
	var types []uint8
	var vers []uint16
	r := NewHandshakeReader(func(m Message) bool {
		types = append(types, m.Type)
		vers = append(vers, m.RecordVersion)
		if m.Type == TypeServerHello {
			s, err := m.ServerHello()
			if err != nil || s.RecordVersion != 0x0303 || s.CipherSuite != 0xc02f {
				t.Errorf("ServerHello: %v %+v", err, s)
			}
		}
		return true
	})
	if err := r.Feed(stream); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(types, []uint8{TypeServerHello, TypeCertificate, 14}) {
		t.Errorf("types %v", types)
	}
	if stopped, why := r.Stopped(); !stopped || why != StopChangeCipherSpec {
		t.Errorf("stop %v %v", stopped, why)
	}
	if err := r.Feed([]byte{22, 3, 3, 0, 4, 1, 0, 0, 0}); err != nil || r.Messages != 3 {
		t.Errorf("fed after stop: %v, %d messages", err, r.Messages)
	}
}

func TestHandshakeReaderStops(t *testing.T) {
	hello := buildClientHello(specHello())
	cases := []struct {
		name  string
		tail  []byte
		want  StopReason
		isErr error
	}{
		{"application data", record(contentApplicationData, 0x0303, []byte{1, 2}), StopApplicationData, nil},
		{"alert", record(contentAlert, 0x0303, []byte{2, 40}), StopAlert, nil},
		{"heartbeat", record(contentHeartbeat, 0x0303, []byte{1}), StopHeartbeat, nil},
		{"garbage record", []byte("GET / HTTP/1.1\r\n"), StopError, ErrNotTLS},
		{"record too long", []byte{22, 3, 3, 0xff, 0xff}, StopError, ErrNotTLS},
	}
	for _, tc := range cases {
		got, r, err := collect(t, record(contentHandshake, 0x0301, hello), tc.tail)
		if len(got) != 1 {
			t.Errorf("%s: %d messages", tc.name, len(got))
		}
		if _, why := r.Stopped(); why != tc.want {
			t.Errorf("%s: stop %v, want %v", tc.name, why, tc.want)
		}
		if tc.isErr != nil && !errors.Is(err, tc.isErr) || tc.isErr == nil && err != nil {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.isErr)
		}
		if tc.isErr != nil && !errors.Is(r.Feed(hello), tc.isErr) {
			t.Errorf("%s: error not sticky", tc.name)
		}
	}

	// SSLv2-compatible ClientHello (2-byte header with the high bit set).
	v2 := []byte{0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10}
	for cut := 1; cut <= len(v2); cut++ {
		_, r, err := collect(t, v2[:cut], v2[cut:])
		if !errors.Is(err, ErrSSLv2) {
			t.Fatalf("SSLv2 cut %d: %v", cut, err)
		}
		if _, why := r.Stopped(); why != StopError || !errors.Is(r.Err(), ErrSSLv2) {
			t.Fatalf("SSLv2: stop %v", why)
		}
	}

	// The callback stops the reader.
	n := 0
	r := NewHandshakeReader(func(Message) bool { n++; return false })
	_ = r.Feed(record(contentHandshake, 0x0303, slices.Concat(hello, hello)))
	if _, why := r.Stopped(); n != 1 || why != StopCallback {
		t.Errorf("callback stop: %d calls, %v", n, why)
	}
}

func TestHandshakeReaderOversized(t *testing.T) {
	big := make([]byte, MaxMessageLen+10)
	huge := append(be24([]byte{TypeCertificate}, len(big)), big...)
	hello := buildClientHello(specHello())
	stream := records(0x0303, slices.Concat(huge, hello), 1<<14)
	got, r, err := collect(t, stream[:1000], stream[1000:])
	if err != nil || r.Oversized != 1 || len(got) != 1 || !bytes.Equal(got[0], hello) {
		t.Fatalf("oversized: err %v, oversized %d, %d messages", err, r.Oversized, len(got))
	}
}

func TestHandshakeReaderLimit(t *testing.T) {
	// Endless small handshake messages: the reader stops at MaxStreamBytes.
	msg := handshake(14, nil)
	rec := record(contentHandshake, 0x0303, bytes.Repeat(msg, 1000))
	r := NewHandshakeReader(func(Message) bool { return true })
	for i := 0; i < MaxStreamBytes/len(rec)+2; i++ {
		if err := r.Feed(rec); err != nil {
			t.Fatal(err)
		}
	}
	if _, why := r.Stopped(); why != StopLimit {
		t.Errorf("stop %v, want limit", why)
	}
}

func TestHandshakeReaderNoAllocs(t *testing.T) {
	rec := record(contentHandshake, 0x0301, buildClientHello(specHello()))
	allocs := testing.AllocsPerRun(100, func() {
		r := HandshakeReader{onMessage: func(Message) bool { return true }}
		_ = r.Feed(rec)
	})
	if allocs != 0 {
		t.Errorf("Feed of a whole record: %v allocations", allocs)
	}
}

func TestLooksLikeClientHello(t *testing.T) {
	hello := record(contentHandshake, 0x0301, buildClientHello(specHello()))
	if !LooksLikeClientHello(hello) || !LooksLikeClientHello(hello[:6]) {
		t.Error("real hello not recognised")
	}
	sh := record(contentHandshake, 0x0303, buildServerHello(serverSpec{version: 0x0303}))
	for name, b := range map[string][]byte{
		"short":        hello[:5],
		"server hello": sh,
		"http":         []byte("GET / HTTP/1.1\r\nHost: x\r\n"),
		"sslv2":        {0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15},
		"version 3.5":  {22, 3, 5, 0, 50, 1, 0, 0, 46, 3, 3},
		"length 0":     {22, 3, 1, 0, 0, 1},
		"length 20000": {22, 3, 1, 0x4e, 0x20, 1},
		"bad client":   {22, 3, 1, 0, 50, 1, 0, 0, 46, 9, 9},
	} {
		if LooksLikeClientHello(b) {
			t.Errorf("%s recognised as a ClientHello", name)
		}
	}
}

func TestHandshakeReaderHelloRetry(t *testing.T) {
	hrr := buildServerHello(serverSpec{version: 0x0303, random: helloRetryRandom, sessionID: make([]byte, 32), cipher: 0x1301,
		exts: []ext{{ExtSupportedVersions, []byte{3, 4}}, {0x0033, []byte{0, 0x17}}}})
	sh := buildServerHello(serverSpec{version: 0x0303, random: [32]byte{1}, sessionID: make([]byte, 32), cipher: 0x1301,
		exts: []ext{{ExtSupportedVersions, []byte{3, 4}}}})
	stream := slices.Concat(
		record(contentHandshake, 0x0303, hrr),
		record(contentChangeCipherSpec, 0x0303, []byte{1}),
		record(contentHandshake, 0x0303, sh),
		record(contentApplicationData, 0x0303, []byte{9, 9, 9}),
	)
	for cut := 0; cut <= len(stream); cut++ {
		got, r, err := collect(t, stream[:cut], stream[cut:])
		if err != nil || len(got) != 2 {
			t.Fatalf("cut %d: %v, %d messages", cut, err, len(got))
		}
		first, err1 := ParseServerHello(got[0])
		second, err2 := ParseServerHello(got[1])
		if err1 != nil || err2 != nil || !first.HelloRetryRequest || second.HelloRetryRequest || second.Version() != 0x0304 {
			t.Fatalf("cut %d: %v %v %+v %+v", cut, err1, err2, first, second)
		}
		if _, why := r.Stopped(); why != StopApplicationData {
			t.Fatalf("cut %d: stop %v", cut, why)
		}
	}

	// TLS 1.2: what follows the CCS is an encrypted Finished, even when its
	// first byte happens to be 1.
	fin := []byte{1, 0, 0, 0x40, 0x7a, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb}
	stream = slices.Concat(
		record(contentHandshake, 0x0303, buildClientHello(specHello())),
		record(contentChangeCipherSpec, 0x0303, []byte{1}),
		record(contentHandshake, 0x0303, fin),
	)
	got, r, err := collect(t, stream)
	if _, why := r.Stopped(); err != nil || len(got) != 1 || why != StopChangeCipherSpec {
		t.Fatalf("TLS 1.2 finished: %v, %d messages, %v", err, len(got), why)
	}
	// A second CCS always stops.
	stream = slices.Concat(
		record(contentChangeCipherSpec, 0x0303, []byte{1}),
		record(contentHandshake, 0x0303, sh),
		record(contentChangeCipherSpec, 0x0303, []byte{1}),
		record(contentHandshake, 0x0303, sh),
	)
	got, r, _ = collect(t, stream)
	if _, why := r.Stopped(); len(got) != 1 || why != StopChangeCipherSpec {
		t.Fatalf("second CCS: %d messages, %v", len(got), why)
	}
}

// Every byte of a record stream (record lengths, handshake lengths and all)
// replaced by lying values: the reader never panics, delivers no more bytes
// than it was given, and every delivered message has its declared length.
func TestHandshakeReaderEveryByteLies(t *testing.T) {
	stream := records(0x0301, buildClientHello(specHello()), 100)
	for i := range stream {
		for _, v := range []byte{0x00, 0x01, 0x80, 0xff, stream[i] + 1, stream[i] - 1} {
			bad := slices.Clone(stream)
			bad[i] = v
			got, _, _ := collect(t, bad[:i/2], bad[i/2:])
			total := 0
			for _, m := range got {
				total += len(m)
				if l := int(m[1])<<16 | int(m[2])<<8 | int(m[3]); len(m) != handshakeHeaderLen+l {
					t.Fatalf("byte %d = %#x: message of %d bytes declares %d", i, v, len(m), l)
				}
			}
			if total > len(bad) {
				t.Fatalf("byte %d = %#x: %d message bytes from a %d-byte stream", i, v, total, len(bad))
			}
		}
	}
}
