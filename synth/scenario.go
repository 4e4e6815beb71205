package synth

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/base32"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"time"

	mdns "github.com/miekg/dns"
)

// SampleStart is the first packet time of the sample capture.
var SampleStart = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// Sample writes the bundled demonstration capture: a host running Kaspersky
// (DNS lookups of its update and KSN names, TLS with those SNIs, a TLS flow
// without SNI to an address an earlier answer tied to a vendor name, and a
// plain-HTTP updater request to a bare IP), ordinary browsing, an IPv6 and a
// VLAN-tagged client, a beaconing host, a DNS tunnel and a large upload.
// Vendor names come from the project's research notes; every address is
// from the documentation ranges (RFC 5737, RFC 3849) or private space.
func Sample(w io.Writer) error {
	pw, err := NewWriter(w, 1)
	if err != nil {
		return err
	}
	c := &Capture{W: pw}
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := SampleStart.UnixNano()
	resolver := EP("192.168.56.1:53")
	kav := netip.MustParseAddr("192.168.56.21")
	browser := netip.MustParseAddr("192.168.56.22")
	beaconer := netip.MustParseAddr("192.168.56.23")
	tunneler := netip.MustParseAddr("192.168.56.24")
	uploader := netip.MustParseAddr("192.168.56.25")
	v6client := netip.MustParseAddr("2001:db8:56::31")
	port := uint16(40000)
	next := func() uint16 { port++; return port }
	rtt := 20 * time.Millisecond

	lookup := func(l2 L2, client netip.Addr, ts int64, name string, qtype uint16, answers ...DNSAnswer) error {
		q, err := DNSQuery(uint16(rng.UintN(65536)), name, qtype)
		if err != nil {
			return err
		}
		r, err := DNSResponse(q, mdns.RcodeSuccess, answers...)
		if err != nil {
			return err
		}
		return c.UDPExchange(l2, Endpoint{client, next()}, resolver, ts, rtt, q, r)
	}
	tlsFlow := func(l2 L2, client netip.Addr, server Endpoint, ts int64, sni string, alpn []string) error {
		var names []string
		if sni != "" {
			names = []string{sni}
		}
		cert, err := SelfSigned(pkix.Name{CommonName: sni, Organization: []string{"Synthetic Test Server"}}, names, SampleStart)
		if err != nil {
			return err
		}
		fl, err := Handshake(
			&tls.Config{ServerName: sni, NextProtos: alpn, InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12},
			&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: alpn},
			[]byte("GET / HTTP/1.1\r\nHost: "+sni+"\r\n\r\n"), []byte("HTTP/1.1 204 No Content\r\n\r\n"))
		if err != nil {
			return err
		}
		conn := c.Open(l2, Endpoint{client, next()}, server, ts, rtt)
		conn.ReplayFlights(fl)
		return conn.Close()
	}

	// The Kaspersky host: update and KSN lookups, then TLS to the answers.
	kavUpdate := netip.MustParseAddr("198.51.100.10")
	kavKSN := netip.MustParseAddr("198.51.100.20")
	ts := t0
	if err := lookup(L2{}, kav, ts, "dnl-01.geo.kaspersky.com", mdns.TypeA, DNSAnswer{Name: "dnl-01.geo.kaspersky.com", TTL: 300, Addr: kavUpdate}); err != nil {
		return err
	}
	if err := tlsFlow(L2{}, kav, Endpoint{kavUpdate, 443}, ts+int64(time.Second), "dnl-01.geo.kaspersky.com", nil); err != nil {
		return err
	}
	if err := lookup(L2{}, kav, ts+int64(2*time.Second), "ksn-a-geo.kaspersky-labs.com", mdns.TypeA, DNSAnswer{Name: "ksn-a-geo.kaspersky-labs.com", TTL: 60, Addr: kavKSN}); err != nil {
		return err
	}
	// TLS without SNI to the KSN address: attributable only through DNS.
	if err := tlsFlow(L2{}, kav, Endpoint{kavKSN, 443}, ts+int64(3*time.Second), "", []string{"h2"}); err != nil {
		return err
	}
	// The product checks for updates again at irregular times through the
	// hour (repeats that alert deduplication folds together).
	for _, min := range []int{7, 11, 26, 31, 52} {
		if err := tlsFlow(L2{}, kav, Endpoint{kavUpdate, 443}, ts+int64(time.Duration(min)*time.Minute), "dnl-01.geo.kaspersky.com", nil); err != nil {
			return err
		}
	}
	// The plain-HTTP updater fetching a database index from a bare IP.
	upd := c.Open(L2{}, Endpoint{kav, next()}, Endpoint{netip.MustParseAddr("198.51.100.11"), 80}, ts+int64(4*time.Second), rtt)
	upd.Send(true, []byte("GET /updaters/updater.xml.klz HTTP/1.1\r\nHost: 198.51.100.11\r\nUser-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)\r\nAccept: */*\r\n\r\n"))
	body := make([]byte, 6000)
	upd.Send(false, append([]byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/x-kaspavupdate\r\nContent-Length: %d\r\n\r\n", len(body))), body...))
	if err := upd.Close(); err != nil {
		return err
	}

	// Ordinary browsing, an IPv6 client and a VLAN-tagged client.
	sites := []string{"www.example.com", "docs.example.org", "cdn.example.net", "mail.example.com"}
	for i, s := range sites {
		addr := netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)})
		at := ts + int64(time.Duration(5+i)*time.Second)
		if err := lookup(L2{}, browser, at, s, mdns.TypeA, DNSAnswer{Name: s, TTL: 3600, Addr: addr}); err != nil {
			return err
		}
		if err := tlsFlow(L2{}, browser, Endpoint{addr, 443}, at+int64(100*time.Millisecond), s, []string{"h2", "http/1.1"}); err != nil {
			return err
		}
	}
	v6srv := netip.MustParseAddr("2001:db8:113::80")
	if err := tlsFlow(L2{}, v6client, Endpoint{v6srv, 443}, ts+int64(10*time.Second), "www.example.com", []string{"h2"}); err != nil {
		return err
	}
	vlan := L2{VLANs: []uint16{100, 20}}
	if err := lookup(vlan, netip.MustParseAddr("10.20.0.5"), ts+int64(11*time.Second), "docs.example.org", mdns.TypeAAAA, DNSAnswer{Name: "docs.example.org", TTL: 3600, Addr: v6srv}); err != nil {
		return err
	}

	// A beacon: an HTTP check-in every 60 s (±1 s) for an hour.
	c2 := Endpoint{netip.MustParseAddr("203.0.113.66"), 80}
	for i := 0; i < 60; i++ {
		at := ts + int64(time.Duration(20+60*i)*time.Second) + int64(rng.IntN(2000)-1000)*int64(time.Millisecond)
		b := c.Open(L2{}, Endpoint{beaconer, next()}, c2, at, rtt)
		b.Send(true, []byte("POST /check HTTP/1.1\r\nHost: updates.example.net\r\nContent-Length: 64\r\n\r\n"+string(make([]byte, 64))))
		b.Send(false, []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
		if err := b.Close(); err != nil {
			return err
		}
	}

	// A DNS tunnel: high-entropy labels under one domain, TXT queries.
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	for i := 0; i < 400; i++ {
		raw := make([]byte, 30)
		for j := range raw {
			raw[j] = byte(rng.UintN(256))
		}
		name := fmt.Sprintf("%s.%d.t.tunnel.example.net", enc.EncodeToString(raw), i)
		at := ts + int64(30*time.Second) + int64(i)*int64(250*time.Millisecond)
		if err := lookup(L2{}, tunneler, at, name, mdns.TypeTXT, DNSAnswer{Name: name, TTL: 0, Text: enc.EncodeToString(raw[:20])}); err != nil {
			return err
		}
	}

	// A 12 MB upload with a tiny reply.
	up := c.Open(L2{}, Endpoint{uploader, next()}, Endpoint{netip.MustParseAddr("203.0.113.200"), 443}, ts+int64(40*time.Second), rtt)
	payload := make([]byte, 12<<20)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	up.Send(true, payload)
	up.Send(false, []byte("ok"))
	if err := up.Close(); err != nil {
		return err
	}
	return pw.Flush()
}
