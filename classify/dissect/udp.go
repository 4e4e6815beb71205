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
			if _, ok := quic.LooksLikeInitial(p.Payload); ok || looksLikeQUICLongHeader(p.Payload) {
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
		// A datagram cut by the snap length still shows its header,
		// question and often its first answers: parse what is there.
		st.dnsMessage(p.Payload, dir, p.Timestamp, p.Truncated())
	case protoQUIC:
		st.quicDatagram(dir, p)
	}
}

// anomalyCut marks a DNS message the capture's snap length cut short.
const anomalyCut = "dns: message cut by the capture's snap length"

func (st *state) dnsMessage(b []byte, dir flow.Direction, ts int64, cut bool) {
	st.d.stats.DNSMessages.Add(1)
	m, anomalies, err := dns.Parse(b)
	if err != nil || m == nil {
		st.d.stats.DNSMalformed.Add(1)
		return
	}
	if cut {
		anomalies = append(anomalies, anomalyCut)
	}
	if len(anomalies) > 0 {
		st.d.stats.DNSMalformed.Add(1)
		// Recorded before Observe: a response completes its transaction
		// there, and the event must carry the response's anomalies.
		st.dnsAnomalies(m, anomalies)
	}
	d := dns.Forward
	if dir == flow.FromServer {
		d = dns.Reverse
	}
	st.d.txBuf = st.dnsT.Observe(m, ts, d, st.d.txBuf[:0])
	for i := range st.d.txBuf {
		st.emitDNS(&st.d.txBuf[i])
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
	if len(p.Payload) == 0 || p.Payload[0]&0x80 == 0 {
		// A short-header datagram holds no Initial packet (coalesced
		// packets start with the long ones): not worth a decryption try.
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

// looksLikeQUICLongHeader recognises a client's long-header packet that
// LooksLikeInitial does not take but that starts a QUIC flow all the same:
// an Initial cut by the snap length, a 0-RTT packet captured before its
// Initial, or a reserved version (0x?a?a?a?a, RFC 9000 section 15) probing
// for Version Negotiation before the real Initial.
func looksLikeQUICLongHeader(b []byte) bool {
	if len(b) < 7 || b[0]&0xc0 != 0xc0 {
		return false
	}
	v := uint32(b[1])<<24 | uint32(b[2])<<16 | uint32(b[3])<<8 | uint32(b[4])
	return quic.Supported(v) || v&0x0f0f0f0f == 0x0a0a0a0a
}
