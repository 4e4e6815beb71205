package dissect

import (
	"github.com/phonehome/phonehome/capture/decode"
	"github.com/phonehome/phonehome/capture/flow"
	"github.com/phonehome/phonehome/classify/dns"
	"github.com/phonehome/phonehome/classify/quic"
)

func (st *state) udp(dir flow.Direction, p *decode.Packet) {
	if st.proto == protoNone || len(p.Payload) == 0 {
		return
	}
	f := st.f
	if st.proto == protoUnknown {
		switch {
		case dns.IsDNS(dns.UDP, f.ClientPort, f.ServerPort):
			st.proto = protoDNS
			st.dnsT = new(dns.Tracker)
		case dir == flow.FromClient:
			if _, ok := quic.LooksLikeInitial(p.Payload); ok {
				st.proto = protoQUIC
				st.quic = quic.NewConn()
			} else {
				st.proto = protoNone
				return
			}
		default:
			// A server datagram before any client one: wait for the client.
			return
		}
	}
	switch st.proto {
	case protoDNS:
		if p.Truncated() {
			st.d.stats.DNSMalformed.Add(1)
			return
		}
		st.dnsMessage(p.Payload, dir, p.Timestamp)
	case protoQUIC:
		st.quicDatagram(dir, p)
	}
}

func (st *state) dnsMessage(b []byte, dir flow.Direction, ts int64) {
	st.d.stats.DNSMessages.Add(1)
	m, anomalies, err := dns.Parse(b)
	if err != nil || m == nil {
		st.d.stats.DNSMalformed.Add(1)
		return
	}
	if len(anomalies) > 0 {
		st.d.stats.DNSMalformed.Add(1)
	}
	d := dns.Forward
	if dir == flow.FromServer {
		d = dns.Reverse
	}
	st.d.txBuf = st.dnsT.Observe(m, ts, d, st.d.txBuf[:0])
	for i := range st.d.txBuf {
		st.emitDNS(&st.d.txBuf[i])
	}
	if len(anomalies) > 0 {
		st.dnsAnomalies(m, anomalies)
	}
}

// dnsAnomalies remembers anomalies for the transaction the message belongs
// to; they are attached when it is emitted.
func (st *state) dnsAnomalies(m *dns.Message, anomalies []string) {
	if st.pendingAnomalies == nil {
		st.pendingAnomalies = map[uint16][]string{}
	}
	if len(st.pendingAnomalies) < maxAnomalyIDs {
		st.pendingAnomalies[m.ID] = append(st.pendingAnomalies[m.ID], anomalies...)
	}
}

// maxAnomalyIDs bounds the per-flow memory of DNS anomalies.
const maxAnomalyIDs = 16

func (st *state) quicDatagram(dir flow.Direction, p *decode.Packet) {
	if st.quicN >= st.d.cfg.QUICDatagrams || st.quicDone {
		return
	}
	st.quicN++
	_ = st.quic.Feed(p.Payload, dir == flow.FromClient)
	if st.quicTS == 0 && st.quic.ClientHello() != nil {
		st.quicTS = p.Timestamp
	}
	if st.quic.ClientHello() != nil && st.quic.ServerHello() != nil {
		st.emitQUIC()
	}
}
