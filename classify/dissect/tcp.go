package dissect

import (
	"github.com/phonehome/phonehome/capture/decode"
	"github.com/phonehome/phonehome/capture/flow"
	"github.com/phonehome/phonehome/capture/reassembly"
	"github.com/phonehome/phonehome/classify/dns"
	"github.com/phonehome/phonehome/classify/http"
	"github.com/phonehome/phonehome/classify/tls"
)

// streamConsumer routes one direction's in-order bytes to the flow's
// dissector, recognising the protocol from the client's first bytes.
type streamConsumer struct {
	st  *state
	dir flow.Direction
}

var _ reassembly.Consumer = (*streamConsumer)(nil)

func (st *state) tcp(dir flow.Direction, p *decode.Packet) {
	if st.proto == protoNone {
		return
	}
	if !st.tcpOpen {
		st.tcpOpen = true
		for i := range st.streams {
			st.cons[i] = streamConsumer{st: st, dir: flow.Direction(i)}
			st.streams[i].Init(&st.cons[i], st.d.budget, &st.d.rcfg)
		}
	}
	fl := p.TCPFlags
	s := &st.streams[dir]
	if s.Done() {
		return
	}
	payload := p.Payload
	if len(payload) > p.PayloadLength {
		payload = payload[:p.PayloadLength]
	}
	s.Add(p.Seq, payload, fl&decode.TCPSyn != 0, fl&decode.TCPFin != 0, fl&decode.TCPRst != 0, p.Timestamp)
}

// Data implements reassembly.Consumer.
func (c *streamConsumer) Data(b []byte, ts int64) bool { return c.st.data(c.dir, b, ts) }

// data routes in-order bytes; false stops the direction.
func (st *state) data(dir flow.Direction, b []byte, ts int64) bool {
	if st.proto == protoUnknown {
		if !st.recognise(dir, b, ts) {
			return st.proto == protoUnknown
		}
		// recognise consumed b when it decided from buffered bytes.
		return st.proto != protoNone
	}
	return st.deliver(dir, b, ts)
}

// Gap implements reassembly.Consumer.
func (c *streamConsumer) Gap(int) {
	c.st.d.stats.StreamGaps.Add(1)
	if c.st.http != nil {
		if c.dir == flow.FromClient {
			c.st.http.ClientGap(0)
		} else {
			c.st.http.ServerGap(0)
		}
	}
}

// Close implements reassembly.Consumer.
func (c *streamConsumer) Close(r reassembly.CloseReason) {
	c.st.closed[c.dir] = r
	if r == reassembly.CloseLimit || r == reassembly.CloseBudget {
		c.st.d.stats.StreamLimits.Add(1)
	}
	if c.st.http != nil {
		if c.dir == flow.FromClient {
			c.st.http.ClientClose(r)
		} else {
			c.st.http.ServerClose(r)
		}
	}
	if c.st.tls != nil && c.dir == flow.FromServer {
		// The server's handshake is as complete as it will get.
		c.st.tls.serverDone = true
	}
}

// recognise decides the protocol from the client's first bytes (buffering
// up to sniffMax of them) and hands them over. It returns true once the
// decision is made and the bytes delivered.
func (st *state) recognise(dir flow.Direction, b []byte, ts int64) bool {
	f := st.f
	if dir == flow.FromServer {
		// The server spoke first (SMTP, FTP, SSH banners...): unless this
		// is DNS, it is nothing we dissect.
		if dns.IsDNS(dns.TCP, f.ClientPort, f.ServerPort) {
			st.startDNSTCP()
			return st.deliver(dir, b, ts)
		}
		if k := startTLSGreeting(b); k != 0 {
			st.proto = protoStartTLS
			st.startTLS = &startTLSState{kind: k}
			return st.deliver(dir, b, ts)
		}
		st.proto = protoNone
		return true
	}
	data := b
	if len(st.sniff) > 0 {
		st.sniff = append(st.sniff, b...)
		data = st.sniff
	}
	switch {
	case dns.IsDNS(dns.TCP, f.ClientPort, f.ServerPort):
		st.startDNSTCP()
	case tls.LooksLikeClientHello(data):
		st.proto = protoTLS
		st.tls = newTLSState(st)
	case looksLikeSSLv2ClientHello(data):
		// An SSLv2-format hello offering TLS: the client side cannot be
		// fingerprinted, the server answers with a TLS ServerHello.
		st.proto = protoTLS
		st.tls = newTLSState(st)
		st.tls.clientSSLv2 = true
	case looksLikeSOCKS(data) != 0:
		st.proto = protoSOCKS
		st.socks = &socksState{version: looksLikeSOCKS(data)}
	default:
		switch http.Sniff(data) {
		case http.SniffYes:
			st.proto = protoHTTP
			st.http = http.NewConn(st.onHTTP)
		case http.SniffMaybe:
			if len(data) < sniffMax {
				if len(st.sniff) == 0 {
					st.sniff = append(make([]byte, 0, 64), b...)
				}
				return false
			}
			st.proto = protoNone
		default:
			if len(data) < 6 && len(st.sniff) < sniffMax {
				// Too short to rule TLS out.
				if len(st.sniff) == 0 {
					st.sniff = append(make([]byte, 0, 64), b...)
				}
				return false
			}
			st.proto = protoNone
		}
	}
	st.sniff = nil
	if st.proto == protoNone {
		return true
	}
	st.deliver(dir, data, ts)
	return true
}

// deliver passes in-order bytes to the flow's dissector; false stops the
// direction.
func (st *state) deliver(dir flow.Direction, b []byte, ts int64) bool {
	switch st.proto {
	case protoTLS:
		return st.tls.feed(dir, b, ts)
	case protoHTTP:
		var ok bool
		if dir == flow.FromClient {
			ok = st.http.ClientData(b, ts)
		} else {
			ok = st.http.ServerData(b, ts)
		}
		if !ok && st.httpTunnel {
			// CONNECT answered 2xx (or 101): what follows is the tunnel's
			// own protocol, recognised afresh from the client's next
			// bytes (TLS through a proxy). Bytes after the answer's
			// header in this same segment are not seen.
			st.proto = protoUnknown
			st.httpTunnel = false
			return true
		}
		return ok
	case protoSOCKS:
		rest, done, ok := st.socks.feed(dir, b)
		switch {
		case !ok:
			st.proto = protoNone
			return false
		case done:
			// The proxy granted the connection: the tunnel's protocol
			// is recognised afresh.
			st.proto, st.socks = protoUnknown, nil
			if len(rest) > 0 {
				return st.data(dir, rest, ts)
			}
		}
		return true
	case protoStartTLS:
		rest, done, ok := st.startTLS.feed(dir, b)
		switch {
		case !ok:
			st.proto = protoNone
			return false
		case done:
			// The server accepted the upgrade: TLS starts with the
			// client's next bytes.
			st.proto, st.startTLS = protoUnknown, nil
			if len(rest) > 0 {
				return st.data(dir, rest, ts)
			}
		}
		return true
	case protoDNS:
		fr := &st.framers[dir]
		st.d.msgBuf = fr.Feed(b, st.d.msgBuf[:0])
		for _, m := range st.d.msgBuf {
			st.dnsMessage(m, dir, ts, false)
		}
		return true
	}
	return false
}

func (st *state) startDNSTCP() {
	st.proto = protoDNS
	st.framers = new([2]dns.TCPFramer)
	st.dnsT = new(dns.Tracker)
}

func (st *state) onHTTP(tx http.Transaction) {
	if tx.Tunnel {
		st.httpTunnel = true
	}
	st.httpN++
	st.d.stats.HTTPRequests.Add(1)
	st.d.emit.Emit(st.httpEvent(&tx, st.httpN))
}

// looksLikeSSLv2ClientHello recognises the SSLv2-compatible ClientHello
// (RFC 5246 appendix E.2) old clients and scanners still send: a 2-byte
// record header with the high bit set, message type 1 and an SSL 2.0 or
// SSL 3.0+ version.
func looksLikeSSLv2ClientHello(b []byte) bool {
	if len(b) < 5 || b[0]&0x80 == 0 || b[2] != 0x01 {
		return false
	}
	n := int(b[0]&0x7f)<<8 | int(b[1])
	return n >= 9 && ((b[3] == 0x03 && b[4] <= 0x04) || (b[3] == 0x00 && b[4] == 0x02))
}
