package synth

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"time"

	mdns "github.com/miekg/dns"
)

// Bench writes a reproducible mixed capture of about size bytes for the
// replay benchmark: bulk TCP transfers with ACKs, many short TLS flows
// carrying real crypto/tls handshakes, DNS over UDP, QUIC-like UDP 443,
// IPv6 and VLAN-tagged traffic, across tens of thousands of hosts.
func Bench(w io.Writer, size int64) error {
	pw, err := NewWriter(w, 1)
	if err != nil {
		return err
	}
	c := &Capture{W: pw}
	rng := rand.New(rand.NewPCG(7, 11))
	start := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

	// A few real handshakes, replayed between many address pairs.
	var flights [][]Flight
	for i, sni := range []string{"www.example.com", "api.example.org", "cdn.example.net", "dnl-02.geo.kaspersky.com", "login.example.com", "static.example.org"} {
		cert, err := SelfSigned(pkix.Name{CommonName: sni}, []string{sni}, start)
		if err != nil {
			return err
		}
		maxv := uint16(tls.VersionTLS13)
		if i%2 == 1 {
			maxv = tls.VersionTLS12
		}
		fl, err := Handshake(&tls.Config{ServerName: sni, NextProtos: []string{"h2", "http/1.1"}, InsecureSkipVerify: true, MaxVersion: maxv},
			&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}},
			make([]byte, 300), make([]byte, 2000))
		if err != nil {
			return err
		}
		flights = append(flights, fl)
	}
	type dnsPair struct{ q, r []byte }
	var dnsPairs []dnsPair
	for i := 0; i < 200; i++ {
		name := fmt.Sprintf("host%d.zone%d.example.com", i, i%17)
		q, err := DNSQuery(uint16(i), name, mdns.TypeA)
		if err != nil {
			return err
		}
		r, err := DNSResponse(q, mdns.RcodeSuccess, DNSAnswer{Name: name, TTL: 300, Addr: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})})
		if err != nil {
			return err
		}
		dnsPairs = append(dnsPairs, dnsPair{q, r})
	}
	bulk := make([]byte, 4<<20)
	for i := range bulk {
		bulk[i] = byte(rng.UintN(256))
	}
	quic := make([]byte, 1200)
	for i := range quic {
		quic[i] = byte(rng.UintN(256))
	}
	quic[0] = 0xc3 // long header, Initial-like

	host := func(v6 bool) netip.Addr {
		n := rng.UintN(40000)
		if v6 {
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x10, 12: byte(n >> 8), 13: byte(n), 15: 1})
		}
		return netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
	}
	server := func(v6 bool) netip.Addr {
		n := rng.UintN(2000)
		if v6 {
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x20, 14: byte(n >> 8), 15: byte(n)})
		}
		return netip.AddrFrom4([4]byte{198, 18, byte(n >> 8), byte(n)})
	}
	ts := start.UnixNano()
	rtt := 15 * time.Millisecond
	for pw.Bytes < size {
		v6 := rng.UintN(5) == 0
		var l2 L2
		if rng.UintN(5) == 0 {
			l2.VLANs = []uint16{uint16(10 + rng.UintN(4))}
		}
		cl := Endpoint{host(v6), uint16(10000 + rng.UintN(50000))}
		ts += int64(rng.UintN(2000)) * int64(time.Microsecond)
		switch k := rng.UintN(100); {
		case k < 8: // bulk transfer
			t := c.Open(l2, cl, Endpoint{server(v6), 443}, ts, rtt)
			n := 256<<10 + rng.IntN(2<<20)
			off := rng.IntN(len(bulk) - n)
			t.Send(rng.UintN(4) != 0, bulk[off:off+n]) // mostly client->server bulk or replies
			if err := t.Close(); err != nil {
				return err
			}
		case k < 50: // short TLS
			t := c.Open(l2, cl, Endpoint{server(v6), 443}, ts, rtt)
			t.ReplayFlights(flights[rng.IntN(len(flights))])
			if err := t.Close(); err != nil {
				return err
			}
		case k < 80: // DNS
			p := dnsPairs[rng.IntN(len(dnsPairs))]
			if err := c.UDPExchange(l2, cl, Endpoint{server(v6), 53}, ts, rtt, p.q, p.r); err != nil {
				return err
			}
		default: // QUIC-like
			sv := Endpoint{server(v6), 443}
			for i := 0; i < 6; i++ {
				from, to := cl, sv
				if i%2 == 1 {
					from, to = sv, cl
				}
				if err := c.Emit(ts+int64(i)*int64(rtt/2), c.B.UDP(l2, from, to, quic)); err != nil {
					return err
				}
			}
		}
	}
	return pw.Flush()
}
