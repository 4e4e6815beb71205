package sink

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rfc5424 matches a message with NILVALUE structured data.
var rfc5424 = regexp.MustCompile(`^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (\S+) (\S+) (\S+) (\S+) - (?s)(.*)$`)

type syslogMsg struct {
	pri                          int
	ts, host, app, procid, msgid string
	msg                          string
}

func parse5424(t *testing.T, b []byte) syslogMsg {
	t.Helper()
	m := rfc5424.FindSubmatch(b)
	if m == nil {
		t.Fatalf("not RFC 5424: %q", b)
	}
	pri, _ := strconv.Atoi(string(m[1]))
	return syslogMsg{pri, string(m[2]), string(m[3]), string(m[4]), string(m[5]), string(m[6]), string(m[7])}
}

// readFrames reads RFC 6587 octet-counted frames until EOF.
func readFrames(r io.Reader, out chan<- []byte) {
	br := bufio.NewReader(r)
	for {
		n, err := br.ReadString(' ')
		if err != nil {
			return
		}
		size, err := strconv.Atoi(strings.TrimSuffix(n, " "))
		if err != nil || size <= 0 || size > 1<<20 {
			out <- []byte("BAD FRAME " + n)
			return
		}
		b := make([]byte, size)
		if _, err := io.ReadFull(br, b); err != nil {
			return
		}
		out <- b
	}
}

func recv(t *testing.T, ch <-chan []byte) []byte {
	t.Helper()
	select {
	case b := <-ch:
		return b
	case <-time.After(3 * time.Second):
		t.Fatal("timed out waiting for a syslog message")
		return nil
	}
}

func TestSyslogUDPFormat(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s, err := NewSyslog(SyslogConfig{Network: "udp", Address: pc.LocalAddr().String(), Facility: "local3",
		Severity: "notice", SeverityFromEvent: true, Hostname: "probe 1", BOM: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ts := time.Date(2026, 11, 27, 1, 2, 3, 456789123, time.FixedZone("x", 3600))
	lines := []Record{
		{Line: []byte(`{"event":{"kind":"alert","severity":2},"a":"\"severity\":7"}`), Time: ts, Dataset: "phonehome.alert"},
		{Line: []byte(`{"event.severity":9,"b":1}`), Time: ts, Dataset: "phonehome.flow"},
		{Line: []byte(`{"c":"é"}`), Time: ts, Dataset: ""},
	}
	wantSev := []int{2, 5, 5} // 9 is out of 0..7: default notice
	buf := make([]byte, 70000)
	for i, r := range lines {
		if err := s.Write(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		pc.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		m := parse5424(t, buf[:n])
		wantMsgID := r.Dataset
		if wantMsgID == "" {
			wantMsgID = "-"
		}
		if m.pri != 19*8+wantSev[i] || m.ts != "2026-11-27T00:02:03.456789Z" || m.host != "probe_1" ||
			m.app != "phonehome" || m.procid != strconv.Itoa(os.Getpid()) || m.msgid != wantMsgID ||
			m.msg != "\xEF\xBB\xBF"+string(r.Line) {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
}

func TestSyslogUDPTruncation(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s, err := NewSyslog(SyslogConfig{Network: "udp", Address: pc.LocalAddr().String(), MaxMessageSize: 480})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	long := `{"x":"` + strings.Repeat("é", 400) + `"}`
	if err := s.Write(context.Background(), Record{Line: []byte(long), Dataset: "phonehome.flow"}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	pc.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	m := parse5424(t, buf[:n])
	if n > 480 || n < 470 || !strings.HasPrefix(long, m.msg) || !strings.HasSuffix(m.msg, "é") {
		t.Fatalf("datagram of %d bytes, msg %q", n, m.msg)
	}
	if st := s.SinkStats(); st.Truncated != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSyslogTCPOctetCountingAndReconnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	frames := make(chan []byte, 1000)
	conns := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			go readFrames(c, frames)
		}
	}()
	s, err := NewSyslog(SyslogConfig{Network: "tcp", Address: ln.Addr().String(), ReconnectMin: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q, _ := NewQueue(s, QueueConfig{Size: 64})
	const n = 300
	for i := range n {
		// Sizes cross the 64 KiB stream buffer and include a multi-digit count.
		r := Record{Line: fmt.Appendf(nil, `{"i":%d,"p":"%s"}`, i, strings.Repeat("z", i*7)), Dataset: "phonehome.dns"}
		if err := q.Write(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		m := parse5424(t, recv(t, frames))
		want := fmt.Sprintf(`{"i":%d,"p":"%s"}`, i, strings.Repeat("z", i*7))
		if m.msg != want || m.msgid != "phonehome.dns" || m.pri != 16*8+6 {
			t.Fatalf("frame %d: %+v", i, m)
		}
	}
	// The collector drops the connection; the sink reconnects and delivers.
	(<-conns).Close()
	deadline := time.Now().Add(3 * time.Second)
	var got syslogMsg
	for i := 0; time.Now().Before(deadline); i++ {
		s.Write(context.Background(), Record{Line: fmt.Appendf(nil, `{"after":%d}`, i)})
		s.Flush()
		select {
		case b := <-frames:
			got = parse5424(t, b)
		case <-time.After(20 * time.Millisecond):
		}
		if got.msg != "" {
			break
		}
	}
	if !strings.HasPrefix(got.msg, `{"after":`) || s.SinkStats().Reconnects != 1 {
		t.Fatalf("after reconnect: %+v, stats %+v", got, s.SinkStats())
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestSyslogBackoffWhenDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens
	s, err := NewSyslog(SyslogConfig{Network: "tcp", Address: addr, ReconnectMin: time.Hour, ReconnectMax: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	err1 := s.Write(context.Background(), Record{Line: []byte(`{}`)})
	err2 := s.Write(context.Background(), Record{Line: []byte(`{}`)})
	if err1 == nil || errors.Is(err1, ErrUnavailable) || !errors.Is(err2, ErrUnavailable) {
		t.Fatalf("first %v, second %v", err1, err2)
	}
	// In Drop mode failures are drops and never block the producer.
	q, _ := NewQueue(s, QueueConfig{Size: 4, Mode: "drop"})
	for range 10 {
		q.Write(context.Background(), Record{Line: []byte(`{}`)})
	}
	q.Close()
	if st := q.Stats(); st.Written != 0 || st.Dropped != 10 {
		t.Fatalf("stats %+v", st)
	}
}

// testPKI writes a CA, a server certificate for 127.0.0.1/localhost and a
// client certificate to dir.
func testPKI(t *testing.T, dir string) (serverCfg *tls.Config, caFile, certFile, keyFile string) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "phonehome test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) (der []byte, key *ecdsa.PrivateKey) {
		key = newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	writePEM := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile = writePEM("ca.pem", "CERTIFICATE", caDER)
	srvDER, srvKey := issue(2, "server", x509.ExtKeyUsageServerAuth)
	cliDER, cliKey := issue(3, "client", x509.ExtKeyUsageClientAuth)
	cliKeyDER, _ := x509.MarshalECPrivateKey(cliKey)
	certFile = writePEM("client.pem", "CERTIFICATE", cliDER)
	keyFile = writePEM("client-key.pem", "EC PRIVATE KEY", cliKeyDER)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	serverCfg = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}},
		ClientCAs:    pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	}
	return serverCfg, caFile, certFile, keyFile
}

func TestSyslogTLS(t *testing.T) {
	srvCfg, caFile, certFile, keyFile := testPKI(t, t.TempDir())
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	frames := make(chan []byte, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go readFrames(c, frames)
		}
	}()
	s, err := NewSyslog(SyslogConfig{Network: "tls", Address: ln.Addr().String(),
		TLS: TLSConfig{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := s.Write(context.Background(), Record{Line: fmt.Appendf(nil, `{"tls":%d}`, i), Dataset: "phonehome.tls"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if m := parse5424(t, recv(t, frames)); m.msg != fmt.Sprintf(`{"tls":%d}`, i) || m.msgid != "phonehome.tls" {
			t.Fatalf("frame %d: %+v", i, m)
		}
	}

	// Without the CA the server is not trusted; with the wrong name neither.
	for _, tc := range []TLSConfig{
		{CertFile: certFile, KeyFile: keyFile},
		{CAFile: caFile, CertFile: certFile, KeyFile: keyFile, ServerName: "collector.example"},
	} {
		bad, err := NewSyslog(SyslogConfig{Network: "tls", Address: ln.Addr().String(), TLS: tc})
		if err != nil {
			t.Fatal(err)
		}
		var uerr x509.UnknownAuthorityError
		var herr x509.HostnameError
		if err := bad.Write(context.Background(), Record{Line: []byte(`{}`)}); !errors.As(err, &uerr) && !errors.As(err, &herr) {
			t.Fatalf("%+v: untrusted server accepted or wrong error: %v", tc, err)
		}
		bad.Close()
	}
}

func TestSyslogSeverityMap(t *testing.T) {
	s, err := NewSyslog(SyslogConfig{Network: "udp", Address: "127.0.0.1:1", Facility: "4", SeverityFromEvent: true,
		SeverityMap: map[int64]string{73: "crit", 21: "warning"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		line string
		sev  int
	}{
		{`{"event":{"severity":73}}`, 2},
		{`{"event.severity": 21}`, 4},
		{`{"event":{"severity":3}}`, 6}, // unmapped: default info
		{`{"severity":"high"}`, 6},
		{`{"x":1}`, 6},
	} {
		if got := s.severityOf([]byte(c.line)); got != c.sev {
			t.Errorf("%s: severity %d, want %d", c.line, got, c.sev)
		}
	}
}

func TestSyslogConfigValidation(t *testing.T) {
	for _, c := range []SyslogConfig{
		{Address: "h:1"},
		{Network: "sctp", Address: "h:1"},
		{Network: "udp"},
		{Network: "udp", Address: "nohost"},
		{Network: "udp", Address: "h:1", Facility: "local9"},
		{Network: "udp", Address: "h:1", Severity: "8"},
		{Network: "udp", Address: "h:1", MaxMessageSize: 70000},
		{Network: "tcp", Address: "h:1", MaxMessageSize: 100},
		{Network: "tcp", Address: "h:1", TLS: TLSConfig{CAFile: "x"}},
		{Network: "tls", Address: "h:1", TLS: TLSConfig{CertFile: "x"}},
		{Network: "tcp", Address: "h:1", ReconnectMin: time.Minute, ReconnectMax: time.Second},
		{Network: "udp", Address: "h:1", SeverityMap: map[int64]string{1: "loud"}},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	if _, err := NewSyslog(SyslogConfig{Network: "tls", Address: "h:1", TLS: TLSConfig{CAFile: "/nonexistent"}}); err == nil {
		t.Error("missing CA file accepted")
	}
}
