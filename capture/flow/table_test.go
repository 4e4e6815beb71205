package flow

import (
	"net/netip"
	"testing"
	"time"

	"github.com/phonehome/phonehome/capture/decode"
)

type record struct {
	f      Flow
	reason EndReason
	final  bool
}

type recorder struct{ recs []record }

func (r *recorder) FlowStarted(*Flow) {}
func (r *recorder) FlowEnded(f *Flow, reason EndReason, final bool) {
	r.recs = append(r.recs, record{*f, reason, final})
}

var (
	cli = netip.MustParseAddr("192.0.2.10")
	srv = netip.MustParseAddr("198.51.100.20")
)

const sec = int64(time.Second)

func tcp(ts int64, src, dst netip.Addr, sport, dport uint16, flags uint8, ipLen int) *decode.Packet {
	return &decode.Packet{Timestamp: ts, IPVersion: 4, Src: src, Dst: dst, Proto: decode.ProtoTCP, SrcPort: sport, DstPort: dport, TCPFlags: flags, IPLength: ipLen, PayloadLength: max(ipLen-40, 0)}
}

func udp(ts int64, src, dst netip.Addr, sport, dport uint16, ipLen int) *decode.Packet {
	return &decode.Packet{Timestamp: ts, IPVersion: 4, Src: src, Dst: dst, Proto: decode.ProtoUDP, SrcPort: sport, DstPort: dport, IPLength: ipLen, PayloadLength: max(ipLen-28, 0)}
}

func TestTCPLifecycle(t *testing.T) {
	r := &recorder{}
	tb := NewTable(Config{}, r)
	tb.Packet(tcp(0, cli, srv, 40000, 443, decode.TCPSyn, 60))
	tb.Packet(tcp(1000, srv, cli, 443, 40000, decode.TCPSyn|decode.TCPAck, 60))
	tb.Packet(tcp(2000, cli, srv, 40000, 443, decode.TCPAck, 52))
	tb.Packet(tcp(3000, cli, srv, 40000, 443, decode.TCPAck|decode.TCPPsh, 552))
	tb.Packet(tcp(4000, srv, cli, 443, 40000, decode.TCPFin|decode.TCPAck, 52))
	f, _ := tb.Packet(tcp(5000, cli, srv, 40000, 443, decode.TCPFin|decode.TCPAck, 52))
	if f.State != TCPClosed || f.Reason != EndFin {
		t.Fatalf("state %v reason %v", f.State, f.Reason)
	}
	// The last ACK after both FINs still belongs to the flow.
	tb.Packet(tcp(6000, srv, cli, 443, 40000, decode.TCPAck, 52))
	tb.Advance(sec) // inside the close delay
	if len(r.recs) != 0 {
		t.Fatalf("ended inside the close delay: %+v", r.recs)
	}
	tb.Advance(10 * sec)
	if len(r.recs) != 1 {
		t.Fatalf("%d records", len(r.recs))
	}
	rec := r.recs[0]
	if rec.reason != EndFin || !rec.final || rec.f.Client != cli || rec.f.ServerPort != 443 {
		t.Fatalf("record %+v", rec)
	}
	if rec.f.Packets != [2]uint64{4, 3} || rec.f.Bytes != [2]uint64{60 + 52 + 552 + 52, 60 + 52 + 52} {
		t.Fatalf("counters packets %v bytes %v", rec.f.Packets, rec.f.Bytes)
	}
	if rec.f.TCPFlags[FromClient] != decode.TCPSyn|decode.TCPAck|decode.TCPPsh|decode.TCPFin {
		t.Fatalf("client flags %08b", rec.f.TCPFlags[FromClient])
	}
}

func TestClientIsTheSYNSender(t *testing.T) {
	r := &recorder{}
	tb := NewTable(Config{}, r)
	// The capture starts with the SYN-ACK: the client is its receiver.
	f, dir := tb.Packet(tcp(0, srv, cli, 443, 40000, decode.TCPSyn|decode.TCPAck, 60))
	if f.Client != cli || dir != FromServer {
		t.Fatalf("client %v dir %v", f.Client, dir)
	}
	// A UDP reply from a well-known port to an ephemeral one first: the
	// ephemeral side is the client.
	f, dir = tb.Packet(udp(0, srv, cli, 53, 53000, 100))
	if f.Client != cli || f.ServerPort != 53 || dir != FromServer {
		t.Fatalf("udp client %v:%d dir %v", f.Client, f.ClientPort, dir)
	}
	// Otherwise the first UDP sender is the client.
	f, _ = tb.Packet(udp(0, srv, cli, 50000, 60000, 100))
	if f.Client != srv {
		t.Fatalf("first sender not client: %v", f.Client)
	}
}

func TestResetAndIdleAndActive(t *testing.T) {
	r := &recorder{}
	tb := NewTable(Config{ActiveTimeout: time.Minute}, r)
	tb.Packet(tcp(0, cli, srv, 40001, 443, decode.TCPSyn, 60))
	tb.Packet(tcp(1000, srv, cli, 443, 40001, decode.TCPRst|decode.TCPAck, 40))
	// A UDP flow that goes quiet, and one that lasts with traffic.
	tb.Packet(udp(0, cli, srv, 40002, 53, 80))
	for ts := int64(0); ts <= 150*sec; ts += 10 * sec {
		tb.Packet(udp(ts, cli, srv, 40003, 123, 76))
		tb.Advance(ts)
	}
	reasons := map[EndReason]int{}
	for _, rec := range r.recs {
		reasons[rec.reason]++
		if rec.reason == EndRst && rec.f.State != TCPRejected {
			t.Errorf("rejected connection state %v", rec.f.State)
		}
	}
	if reasons[EndRst] != 1 || reasons[EndIdle] != 1 || reasons[EndActive] != 2 {
		t.Fatalf("reasons %v", reasons)
	}
	tb.Flush(EndCaptureEnd)
	last := r.recs[len(r.recs)-1]
	if last.reason != EndCaptureEnd || last.f.Interims != 2 || last.f.Packets[0] != 16 {
		t.Fatalf("last record %+v", last)
	}
}

func TestCapEvictsLeastRecentlySeen(t *testing.T) {
	r := &recorder{}
	tb := NewTable(Config{MaxFlows: 3}, r)
	for i := 0; i < 3; i++ {
		tb.Packet(udp(int64(i), cli, srv, uint16(30000+i), 9999, 50))
	}
	tb.Packet(udp(10, cli, srv, 30000, 9999, 50)) // refresh the oldest
	tb.Packet(udp(11, cli, srv, 32000, 9999, 50)) // a fourth flow
	if len(r.recs) != 1 || r.recs[0].reason != EndEvicted || r.recs[0].f.ClientPort != 30001 {
		t.Fatalf("evicted %+v", r.recs)
	}
	if st := tb.Stats(); st.Active != 3 || st.Evicted != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestICMPAndVLANKeys(t *testing.T) {
	r := &recorder{}
	tb := NewTable(Config{}, r)
	req := &decode.Packet{Timestamp: 0, Src: cli, Dst: srv, Proto: decode.ProtoICMP, ICMPType: 8, ICMPID: 7, IPLength: 84}
	rep := &decode.Packet{Timestamp: 1, Src: srv, Dst: cli, Proto: decode.ProtoICMP, ICMPType: 0, ICMPID: 7, IPLength: 84}
	other := &decode.Packet{Timestamp: 2, Src: cli, Dst: srv, Proto: decode.ProtoICMP, ICMPType: 8, ICMPID: 8, IPLength: 84}
	f1, _ := tb.Packet(req)
	f2, dir := tb.Packet(rep)
	f3, _ := tb.Packet(other)
	if f1 != f2 || dir != FromServer || f1 == f3 {
		t.Fatal("echo request and reply must share a flow; another id must not")
	}
	a := udp(0, cli, srv, 5000, 5001, 60)
	b := udp(0, cli, srv, 5000, 5001, 60)
	b.VLANs, b.NumVLANs = [decode.MaxVLANs]uint16{10}, 1
	fa, _ := tb.Packet(a)
	fb, _ := tb.Packet(b)
	if fa == fb {
		t.Fatal("the same tuple on another VLAN is another flow")
	}
}

// Packets slightly out of time order must not hide an idle flow behind a
// fresher one in its list: expiry then depends only on each flow's own
// last-seen time, so a table that holds a subset of the flows (one worker's
// shard) expires the same ones as a table that holds them all.
func TestExpiryIgnoresArrivalOrder(t *testing.T) {
	udpTimeout := NewTable(Config{}, &recorder{}).Config().UDPTimeout
	// Last-seen times in arrival order: port 30000 is seen last in the
	// stream but earlier in time than 30001.
	arrivals := []struct {
		port uint16
		ts   int64
	}{{30001, 10 * sec}, {30000, 9 * sec}, {30002, 9*sec + 1}, {30003, 30 * sec}}
	now := 9*sec + int64(udpTimeout) + 1 // past 30000's timeout only
	expired := func(ports map[uint16]bool) map[uint16]bool {
		r := &recorder{}
		tb := NewTable(Config{}, r)
		for _, a := range arrivals {
			if ports[a.port] {
				tb.Packet(udp(a.ts, cli, srv, a.port, 9999, 50))
			}
		}
		tb.Advance(now)
		out := map[uint16]bool{}
		for _, rec := range r.recs {
			if rec.reason != EndIdle {
				t.Fatalf("reason %v", rec.reason)
			}
			out[rec.f.ClientPort] = true
		}
		return out
	}
	all := expired(map[uint16]bool{30000: true, 30001: true, 30002: true, 30003: true})
	if len(all) != 1 || !all[30000] {
		t.Fatalf("expired %v, want only port 30000", all)
	}
	// The same flows split over two tables.
	a := expired(map[uint16]bool{30000: true, 30002: true})
	b := expired(map[uint16]bool{30001: true, 30003: true})
	if len(a) != 1 || !a[30000] || len(b) != 0 {
		t.Fatalf("split tables expired %v and %v", a, b)
	}
}
