package dissect_test

import (
	gotls "crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/phonehome/phonehome/synth"
)

// TestSOCKSTunnel sends a TLS ClientHello through SOCKS5 (with and without
// username/password authentication, IPv4 and domain targets) and SOCKS4a
// proxies: the hello inside the tunnel must be fingerprinted, and a refused
// request must leave the flow without a tls event.
func TestSOCKSTunnel(t *testing.T) {
	hello, err := synth.ClientHello(&gotls.Config{ServerName: "through.proxy.test", MinVersion: gotls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	want := fingerprintsOf(t, hello)
	domainReq := append([]byte{5, 1, 0, 3, 18}, "through.proxy.test"...)
	domainReq = append(domainReq, 1, 187)
	cases := []struct {
		name   string
		msgs   []dialogueMsg
		tunnel bool
	}{
		{"socks5-noauth-ipv4", []dialogueMsg{
			{true, []byte{5, 1, 0}}, {false, []byte{5, 0}},
			{true, []byte{5, 1, 0, 1, 198, 51, 100, 7, 1, 187}}, {false, []byte{5, 0, 0, 1, 10, 0, 0, 1, 0x9c, 0x40}},
		}, true},
		{"socks5-userpass-domain", []dialogueMsg{
			{true, []byte{5, 2, 0, 2}}, {false, []byte{5, 2}},
			{true, []byte{1, 4, 'u', 's', 'e', 'r', 2, 'p', 'w'}}, {false, []byte{1, 0}},
			{true, domainReq}, {false, []byte{5, 0, 0, 4, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x9c, 0x40}},
		}, true},
		{"socks4a", []dialogueMsg{
			{true, append([]byte{4, 1, 1, 187, 0, 0, 0, 9, 'u', 0}, append([]byte("through.proxy.test"), 0)...)},
			{false, []byte{0, 0x5a, 0, 0, 0, 0, 0, 0}},
		}, true},
		{"socks5-refused", []dialogueMsg{
			{true, []byte{5, 1, 0}}, {false, []byte{5, 0}},
			{true, []byte{5, 1, 0, 1, 198, 51, 100, 7, 1, 187}}, {false, []byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0}},
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkTunnel(t, "203.0.113.5:1080", tc.msgs, tc.tunnel, hello, want)
		})
	}
}

// dialogueMsg is one side's bytes of a cleartext exchange before TLS.
type dialogueMsg struct {
	fromClient bool
	data       []byte
}

// checkTunnel writes a connection carrying msgs then the client's hello in
// 300-byte segments, and checks that the hello is fingerprinted when the
// tunnel opened, and that no tls event exists when it did not.
func checkTunnel(t *testing.T, server string, msgs []dialogueMsg, tunnel bool, hello []byte, want helloFingerprints) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tunnel.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := synth.NewWriter(f, 1)
	if err != nil {
		t.Fatal(err)
	}
	c := &synth.Capture{W: w}
	conn := c.Open(synth.L2{}, synth.EP("192.0.2.10:40001"), synth.EP(server), time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano(), time.Millisecond)
	for _, m := range msgs {
		conn.Send(m.fromClient, m.data)
	}
	conn.MSS = 300 // the hello spans several segments
	conn.Send(true, hello)
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	evs := runPipeline(t, path, 1).tls()
	if !tunnel {
		if len(evs) != 0 {
			t.Fatalf("%d tls events though the upgrade was refused", len(evs))
		}
		return
	}
	if len(evs) != 1 {
		t.Fatalf("%d tls events, want 1", len(evs))
	}
	cl := evs[0].TLS.Client
	if got := (helloFingerprints{cl.ServerName, cl.JA3, cl.JA4}); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

// TestStartTLS upgrades SMTP, POP3, IMAP and FTP sessions to TLS: the
// hello after the server's acceptance must be fingerprinted; a refused
// upgrade leaves the flow without a tls event.
func TestStartTLS(t *testing.T) {
	hello, err := synth.ClientHello(&gotls.Config{ServerName: "mail.phonehome.test", MinVersion: gotls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	want := fingerprintsOf(t, hello)
	c := func(s string) dialogueMsg { return dialogueMsg{true, []byte(s)} }
	s := func(s string) dialogueMsg { return dialogueMsg{false, []byte(s)} }
	cases := []struct {
		name, server string
		msgs         []dialogueMsg
		tunnel       bool
	}{
		{"smtp", "198.51.100.25:25", []dialogueMsg{s("220 mx.test ESMTP\r\n"), c("EHLO me\r\n"),
			s("250-mx.test\r\n250-SIZE 1000\r\n"), s("250 STARTTLS\r\n"), c("STARTTLS\r\n"), s("220 2.0.0 Ready to start TLS\r\n")}, true},
		{"smtp-split-lines", "198.51.100.25:587", []dialogueMsg{s("220 mx"), s(".test ESMTP\r\n"), c("EHLO me\r\n"), s("250 STARTTLS\r\n"),
			c("STAR"), c("TTLS\r\n"), s("220 go"), s(" ahead\r\n")}, true},
		{"smtp-refused", "198.51.100.25:25", []dialogueMsg{s("220 mx.test ESMTP\r\n"), c("STARTTLS\r\n"), s("454 TLS not available\r\n")}, false},
		{"pop3", "198.51.100.110:110", []dialogueMsg{s("+OK POP3 ready\r\n"), c("STLS\r\n"), s("+OK Begin TLS\r\n")}, true},
		{"imap", "198.51.100.143:143", []dialogueMsg{s("* OK IMAP4rev1 ready\r\n"), c("a1 CAPABILITY\r\n"),
			s("* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK done\r\n"), c("a2 STARTTLS\r\n"), s("a2 OK Begin TLS now\r\n")}, true},
		{"imap-refused", "198.51.100.143:143", []dialogueMsg{s("* OK ready\r\n"), c("a2 STARTTLS\r\n"), s("a2 BAD no\r\n")}, false},
		{"ftp", "198.51.100.21:21", []dialogueMsg{s("220 FTP ready\r\n"), c("AUTH TLS\r\n"), s("234 AUTH TLS ok\r\n")}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkTunnel(t, tc.server, tc.msgs, tc.tunnel, hello, want) })
	}
}
