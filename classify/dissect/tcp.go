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
func (c *streamConsumer) Data(b []byte, ts int64) bool {
	st := c.st
	if st.proto == protoUnknown {
		if !st.recognise(c.dir, b, ts) {
			return st.proto == protoUnknown
		}
		// recognise consumed b when it decided from buffered bytes.
		return st.proto != protoNone
	}
	return st.deliver(c.dir, b, ts)
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
		if dir == flow.FromClient {
			return st.http.ClientData(b, ts)
		}
		return st.http.ServerData(b, ts)
	case protoDNS:
		fr := &st.framers[dir]
		st.d.msgBuf = fr.Feed(b, st.d.msgBuf[:0])
		for _, m := range st.d.msgBuf {
			st.dnsMessage(m, dir, ts)
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
	st.httpN++
	st.d.stats.HTTPRequests.Add(1)
	st.d.emit.Emit(st.httpEvent(&tx, st.httpN))
}
