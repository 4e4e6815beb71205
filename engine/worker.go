package engine

import (
	"strconv"

	"github.com/phonehome/phonehome/capture/decode"
	"github.com/phonehome/phonehome/capture/flow"
	"github.com/phonehome/phonehome/event"
)

// worker owns one flow table and one analyzer; it runs on one goroutine.
// Events it emits are held until the next time tick and then handed to the
// collector as one batch.
type worker struct {
	id       int
	table    *flow.Table
	analyzer Analyzer
	col      *collector
	stats    *Stats
	pending  *evBatch
	// endReason reports flows still open when the run ends.
	endReason flow.EndReason
}

var _ flow.Handler = (*worker)(nil)
var _ Emitter = (*worker)(nil)

func newWorker(id int, cfg Config, col *collector) *worker {
	w := &worker{id: id, col: col, stats: col.stats, endReason: cfg.EndReason, pending: &evBatch{}}
	if w.endReason == flow.EndNone {
		w.endReason = flow.EndCaptureEnd
	}
	fc := cfg.Flow
	if cfg.Workers > 1 {
		// The cap is for the whole process: share it among the workers.
		fc.MaxFlows = max(1, fc.WithDefaults().MaxFlows/cfg.Workers)
	}
	w.table = flow.NewTable(fc, w)
	if cfg.NewAnalyzer != nil {
		w.analyzer = cfg.NewAnalyzer(id, w)
	}
	return w
}

func (w *worker) packet(p *decode.Packet) {
	f, dir := w.table.Packet(p)
	if w.analyzer != nil {
		w.analyzer.Packet(f, dir, p)
	}
}

func (w *worker) tick(now int64) {
	w.table.Advance(now)
	if w.analyzer != nil {
		w.analyzer.Tick(now)
	}
	w.stats.setFlows(w.id, w.table.Stats())
	w.flush(now, false)
}

func (w *worker) finish() {
	w.table.Flush(w.endReason)
	if w.analyzer != nil {
		w.analyzer.Finish(w.table.Now())
	}
	w.stats.setFlows(w.id, w.table.Stats())
	w.flush(w.table.Now(), true)
}

// flush hands the events emitted since the last tick to the collector.
func (w *worker) flush(now int64, last bool) {
	b := w.pending
	b.worker, b.tick, b.last = w.id, now, last
	w.col.deliver(b)
	w.pending = &evBatch{events: make([]*event.Event, 0, cap(b.events))}
}

// FlowStarted implements flow.Handler.
func (w *worker) FlowStarted(*flow.Flow) {}

// FlowEnded implements flow.Handler: it emits the flow record.
func (w *worker) FlowEnded(f *flow.Flow, reason flow.EndReason, final bool) {
	ev := &event.Event{}
	FillFlowEvent(ev, f, reason, final)
	if w.analyzer != nil {
		w.analyzer.FlowEnded(f, reason, final, ev)
	}
	w.Emit(ev)
}

// Emit implements Emitter: the event joins the worker's pending batch.
func (w *worker) Emit(ev *event.Event) {
	w.pending.events = append(w.pending.events, ev)
}

// Transport returns ECS network.transport for an IP protocol number.
func Transport(proto uint8) string {
	switch proto {
	case decode.ProtoTCP:
		return "tcp"
	case decode.ProtoUDP:
		return "udp"
	case decode.ProtoICMP:
		return "icmp"
	case decode.ProtoICMPv6:
		return "ipv6-icmp"
	case decode.ProtoSCTP:
		return "sctp"
	case 47:
		return "gre"
	case 50:
		return "esp"
	}
	return strconv.Itoa(int(proto))
}

func hasPorts(proto uint8) bool {
	switch proto {
	case decode.ProtoTCP, decode.ProtoUDP, decode.ProtoSCTP:
		return true
	}
	return false
}

// FillCommon sets the fields every event of a flow carries: endpoints (the
// client is the source), network.*, Community ID, VLANs, tunnel and flow id.
func FillCommon(ev *event.Event, f *flow.Flow) {
	ev.Source.IP, ev.Destination.IP = f.Client, f.Server
	if hasPorts(f.Proto) {
		ev.Source.Port, ev.Destination.Port = f.ClientPort, f.ServerPort
		ev.Source.HasPort, ev.Destination.HasPort = true, true
	}
	n := &ev.Network
	n.Transport = Transport(f.Proto)
	n.IANANumber = strconv.Itoa(int(f.Proto))
	if f.Client.Is4() {
		n.Type = "ipv4"
	} else {
		n.Type = "ipv6"
	}
	n.CommunityID = f.CommunityID
	n.NumVLANs = f.NumVLANs
	n.VLANs = f.VLANs
	if f.NumVLANs > 2 {
		// ECS names two levels; the full stack goes to phonehome.vlan_ids.
		ev.Phonehome.VLANIDs = f.VLANs[:f.NumVLANs]
	}
	ev.Phonehome.FlowID = f.UID
	if f.Tunnels != 0 {
		ev.Phonehome.Tunnel = &event.TunnelInfo{Types: f.Tunnels.Names(nil), Source: f.TunnelSrc, Destination: f.TunnelDst, ID: f.TunnelID}
	}
}

var flagLetters = [8]byte{'F', 'S', 'R', 'P', 'A', 'U', 'E', 'C'}

func flagString(fl uint8) string {
	var b [8]byte
	n := 0
	for i, c := range flagLetters {
		if fl&(1<<i) != 0 {
			b[n] = c
			n++
		}
	}
	return string(b[:n])
}

// FillFlowEvent builds a flow record (dataset phonehome.flow).
func FillFlowEvent(ev *event.Event, f *flow.Flow, reason flow.EndReason, final bool) {
	FillCommon(ev, f)
	ev.Timestamp = f.Last
	ev.Kind = "event"
	ev.Category = []string{"network"}
	if final {
		ev.Type = []string{"connection", "end"}
	} else {
		ev.Type = []string{"connection", "info"}
	}
	ev.Dataset = event.DatasetFlow
	ev.Action = "network_flow"
	ev.Reason = reason.String()
	ev.Start, ev.End, ev.Duration = f.First, f.Last, f.Last-f.First
	ev.Source.Bytes, ev.Source.Packets = f.Bytes[flow.FromClient], f.Packets[flow.FromClient]
	ev.Destination.Bytes, ev.Destination.Packets = f.Bytes[flow.FromServer], f.Packets[flow.FromServer]
	ev.Source.HasCounters, ev.Destination.HasCounters = true, true
	ev.Network.Bytes = f.Bytes[0] + f.Bytes[1]
	ev.Network.Packets = f.Packets[0] + f.Packets[1]
	ev.Network.HasCounters = true
	fi := &event.FlowInfo{Final: final, Interims: f.Interims, ClientPayload: f.Payload[0], ServerPayload: f.Payload[1]}
	if f.Proto == decode.ProtoTCP {
		fi.State = f.State.String()
		fi.ClientFlags = flagString(f.TCPFlags[0])
		fi.ServerFlags = flagString(f.TCPFlags[1])
	}
	ev.Phonehome.Flow = fi
}
