package flow

import (
	"encoding/binary"
	"hash/fnv"
	"net/netip"
	"strconv"
	"time"

	"github.com/phonehome/phonehome/capture/decode"
)

// EndReason says why a flow record was emitted.
type EndReason uint8

const (
	EndNone       EndReason = iota
	EndFin                  // both sides sent FIN (emitted after the close delay)
	EndRst                  // a side sent RST
	EndIdle                 // idle timeout
	EndActive               // active timeout: an interim record, the flow goes on
	EndEvicted              // evicted to keep the table under its cap
	EndCaptureEnd           // end of the capture file(s)
	EndShutdown             // the daemon stopped
	numEndReasons
)

var endReasonNames = [numEndReasons]string{"", "fin", "rst", "idle_timeout", "active_timeout", "capacity_eviction", "end_of_capture", "shutdown"}

func (r EndReason) String() string {
	if int(r) < len(endReasonNames) {
		return endReasonNames[r]
	}
	return "unknown"
}

// TCPState is the connection state as seen by a passive observer.
type TCPState uint8

const (
	TCPNone        TCPState = iota // not TCP
	TCPMidstream                   // first packet was not a SYN
	TCPSynSent                     // SYN seen
	TCPSynReceived                 // SYN-ACK seen
	TCPEstablished                 // data or ACK after the handshake
	TCPClosing                     // one side sent FIN
	TCPClosed                      // both sides sent FIN
	TCPReset                       // RST seen
	TCPRejected                    // the server answered the SYN with RST
)

var tcpStateNames = [...]string{"", "midstream", "syn_sent", "syn_received", "established", "closing", "closed", "reset", "rejected"}

func (s TCPState) String() string {
	if int(s) < len(tcpStateNames) {
		return tcpStateNames[s]
	}
	return "unknown"
}

// Defaults like Zeek's (tcp_inactivity_timeout 5 min, udp and icmp 1 min,
// tcp_close_delay 5 s).
const (
	DefaultTCPTimeout    = 5 * time.Minute
	DefaultUDPTimeout    = time.Minute
	DefaultOtherTimeout  = time.Minute
	DefaultCloseDelay    = 5 * time.Second
	DefaultActiveTimeout = 30 * time.Minute
	DefaultMaxFlows      = 1 << 20
)

// Config sets the table's timeouts and cap. Zero fields take the defaults.
type Config struct {
	TCPTimeout    time.Duration `yaml:"tcp_timeout"`
	UDPTimeout    time.Duration `yaml:"udp_timeout"`
	OtherTimeout  time.Duration `yaml:"other_timeout"`
	CloseDelay    time.Duration `yaml:"close_delay"`
	ActiveTimeout time.Duration `yaml:"active_timeout"`
	MaxFlows      int           `yaml:"max_flows"`
	// CommunityIDSeed seeds Community ID hashes (default 0).
	CommunityIDSeed uint16 `yaml:"community_id_seed"`
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.TCPTimeout <= 0 {
		c.TCPTimeout = DefaultTCPTimeout
	}
	if c.UDPTimeout <= 0 {
		c.UDPTimeout = DefaultUDPTimeout
	}
	if c.OtherTimeout <= 0 {
		c.OtherTimeout = DefaultOtherTimeout
	}
	if c.CloseDelay <= 0 {
		c.CloseDelay = DefaultCloseDelay
	}
	if c.ActiveTimeout <= 0 {
		c.ActiveTimeout = DefaultActiveTimeout
	}
	if c.MaxFlows <= 0 {
		c.MaxFlows = DefaultMaxFlows
	}
	return c
}

// Direction of a packet relative to the flow's client.
type Direction uint8

const (
	FromClient Direction = 0
	FromServer Direction = 1
)

// Flow is one bidirectional conversation. Index 0 of the per-direction
// arrays is the client (the side that sent the SYN, or for UDP the first
// sender unless that was a well-known port answering an ephemeral one).
type Flow struct {
	Key                  Key
	Client, Server       netip.Addr
	ClientPort           uint16
	ServerPort           uint16
	Proto                uint8
	ICMPType, ICMPCode   uint8 // of the first packet, for Community ID
	VLANs                [decode.MaxVLANs]uint16
	NumVLANs             uint8
	Tunnels              decode.Tunnel
	TunnelSrc, TunnelDst netip.Addr
	TunnelID             uint32
	Interface            int

	First, Last int64 // packet times, unix ns
	Packets     [2]uint64
	Bytes       [2]uint64 // IP total lengths (Zeek's orig_ip_bytes / resp_ip_bytes)
	Payload     [2]uint64 // transport payload bytes per the IP header
	TCPFlags    [2]uint8  // union of flags seen per direction
	State       TCPState
	Reason      EndReason // set once the flow is closing (fin/rst)
	Interims    int       // interim records emitted so far

	// UID is a flow id unique across runs of the same capture: a hash of
	// the key and the first packet's time (see Table.Packet). It ties the
	// flow's events together.
	UID string
	// CommunityID is the Community ID v1 hash with the table's seed.
	CommunityID string

	// App carries the dissectors' per-flow state; the table never looks
	// inside it.
	App any

	id         uint64 // table-unique sequence number
	lastReport int64  // start of the current active-timeout interval
	list       *lruList
	prev, next *Flow
	aToB       bool // endpoint A of the key is the client
}

// ID returns a number unique within the table for the flow's lifetime.
func (f *Flow) ID() uint64 { return f.id }

// Duration returns Last-First.
func (f *Flow) Duration() time.Duration { return time.Duration(f.Last - f.First) }

// Handler receives flow records. Ended is called with final=false for
// interim (active timeout) records, and final=true once, when the flow leaves
// the table; f must not be kept after a final call returns.
type Handler interface {
	FlowStarted(f *Flow)
	FlowEnded(f *Flow, reason EndReason, final bool)
}

// Stats counts the table's work.
type Stats struct {
	Active  int    // flows in the table now
	Created uint64 // flows created
	Ended   [numEndReasons]uint64
	Evicted uint64 // flows evicted to respect MaxFlows
}

type lruList struct {
	head, tail *Flow // least recently seen at head
	timeout    int64
}

// Table is the flow table. It is not safe for concurrent use: each worker
// owns one and feeds it packets in time order.
type Table struct {
	cfg     Config
	handler Handler
	flows   map[Key]*Flow
	free    []*Flow
	// One LRU list per timeout class, so each list is ordered by last-seen
	// time and expiry only looks at list heads.
	tcp, udp, other, closing lruList
	nextID                   uint64
	now                      int64
	stats                    Stats
}

// NewTable returns an empty table.
func NewTable(cfg Config, h Handler) *Table {
	cfg = cfg.WithDefaults()
	// The map grows with the flows seen, a small table at a time: sizing it
	// for many flows up front costs megabytes of page faults at start-up,
	// before the first packet, for flows a capture may never have.
	t := &Table{cfg: cfg, handler: h, flows: make(map[Key]*Flow)}
	t.tcp.timeout = int64(cfg.TCPTimeout)
	t.udp.timeout = int64(cfg.UDPTimeout)
	t.other.timeout = int64(cfg.OtherTimeout)
	t.closing.timeout = int64(cfg.CloseDelay)
	return t
}

// Config returns the effective configuration.
func (t *Table) Config() Config { return t.cfg }

// Stats returns the counters.
func (t *Table) Stats() Stats {
	s := t.stats
	s.Active = len(t.flows)
	return s
}

// Now returns the latest time given to Advance.
func (t *Table) Now() int64 { return t.now }

func wellKnown(p uint16) bool { return p != 0 && p < 1024 }

// Packet accounts one decoded packet and returns its flow and direction.
// The caller hands the payload to the flow's dissectors afterwards.
//
// Packets do not move the table's clock: only Advance does, so idle expiry
// happens at the same points whether flows are sharded over workers or not.
func (t *Table) Packet(p *decode.Packet) (*Flow, Direction) {
	k, aToB := KeyOf(p)
	f := t.flows[k]
	if f != nil {
		// A flow idle past its timeout, or a new SYN on a closed
		// connection, starts a new flow on the same tuple.
		switch {
		case p.Timestamp-f.Last > f.list.timeout:
			r := EndIdle
			if f.list == &t.closing {
				r = f.Reason // a closed connection keeps its fin/rst reason
			}
			t.end(f, r)
			f = nil
		case f.list == &t.closing && p.TCPFlags&(decode.TCPSyn|decode.TCPAck) == decode.TCPSyn:
			t.end(f, f.Reason)
			f = nil
		}
	}
	if f == nil {
		f = t.create(k, aToB, p)
	}
	dir := FromServer
	if aToB == f.aToB {
		dir = FromClient
	}
	f.Last = max(f.Last, p.Timestamp)
	f.Packets[dir]++
	f.Bytes[dir] += uint64(p.IPLength)
	f.Payload[dir] += uint64(max(p.PayloadLength, 0))
	if p.Proto == decode.ProtoTCP {
		t.tcpState(f, dir, p.TCPFlags)
	}
	t.touch(f)
	if p.Timestamp-f.lastReport >= int64(t.cfg.ActiveTimeout) && f.list != &t.closing {
		f.lastReport = p.Timestamp
		f.Interims++
		t.handler.FlowEnded(f, EndActive, false)
		t.stats.Ended[EndActive]++
	}
	return f, dir
}

func (t *Table) create(k Key, aToB bool, p *decode.Packet) *Flow {
	for len(t.flows) >= t.cfg.MaxFlows {
		t.evictOne()
	}
	var f *Flow
	if n := len(t.free); n > 0 {
		f, t.free = t.free[n-1], t.free[:n-1]
		*f = Flow{}
	} else {
		f = new(Flow)
	}
	t.nextID++
	f.id = t.nextID
	f.Key = k
	f.Proto = p.Proto
	f.First, f.Last, f.lastReport = p.Timestamp, p.Timestamp, p.Timestamp
	f.ICMPType, f.ICMPCode = p.ICMPType, p.ICMPCode
	f.VLANs, f.NumVLANs = p.VLANs, p.NumVLANs
	f.Tunnels, f.TunnelSrc, f.TunnelDst, f.TunnelID = p.Tunnels, p.TunnelSrc, p.TunnelDst, p.TunnelID
	f.Interface = p.Interface
	f.UID = uid(&k, p.Timestamp)
	f.CommunityID = CommunityID(t.cfg.CommunityIDSeed, p.Src, p.Dst, p.SrcPort, p.DstPort, p.Proto, p.ICMPType, p.ICMPCode)
	// The first sender is the client, unless it looks like a reply: a
	// SYN-ACK, or a well-known port talking to an ephemeral one.
	clientIsSrc := true
	switch p.Proto {
	case decode.ProtoTCP:
		if p.TCPFlags&decode.TCPSyn != 0 {
			clientIsSrc = p.TCPFlags&decode.TCPAck == 0
		} else if wellKnown(p.SrcPort) && !wellKnown(p.DstPort) {
			clientIsSrc = false
		}
		f.State = TCPMidstream
	case decode.ProtoUDP, decode.ProtoSCTP:
		if wellKnown(p.SrcPort) && !wellKnown(p.DstPort) {
			clientIsSrc = false
		}
	}
	if clientIsSrc {
		f.Client, f.ClientPort, f.Server, f.ServerPort = p.Src, p.SrcPort, p.Dst, p.DstPort
		f.aToB = aToB
	} else {
		f.Client, f.ClientPort, f.Server, f.ServerPort = p.Dst, p.DstPort, p.Src, p.SrcPort
		f.aToB = !aToB
	}
	t.flows[k] = f
	t.listFor(f).pushBack(f)
	t.stats.Created++
	t.handler.FlowStarted(f)
	return f
}

func (t *Table) tcpState(f *Flow, dir Direction, flags uint8) {
	f.TCPFlags[dir] |= flags
	switch {
	case flags&decode.TCPRst != 0:
		if f.State == TCPSynSent && dir == FromServer {
			f.State = TCPRejected
		} else if f.State != TCPRejected {
			f.State = TCPReset
		}
		f.Reason = EndRst
		t.moveTo(f, &t.closing)
	case flags&decode.TCPSyn != 0 && flags&decode.TCPAck == 0:
		if f.State == TCPMidstream || f.State == TCPNone {
			f.State = TCPSynSent
		}
	case flags&decode.TCPSyn != 0:
		if f.State == TCPSynSent || f.State == TCPMidstream {
			f.State = TCPSynReceived
		}
	case flags&decode.TCPFin != 0:
		if f.TCPFlags[FromClient]&decode.TCPFin != 0 && f.TCPFlags[FromServer]&decode.TCPFin != 0 {
			f.State = TCPClosed
			f.Reason = EndFin
			t.moveTo(f, &t.closing)
		} else if f.State != TCPReset {
			f.State = TCPClosing
		}
	case flags&decode.TCPAck != 0:
		if f.State == TCPSynReceived {
			f.State = TCPEstablished
		}
	}
}

// Advance expires flows idle at packet time now. Call it as packet time moves
// (the engine does on every whole second of capture time).
func (t *Table) Advance(now int64) {
	if now > t.now {
		t.now = now
	}
	for _, l := range []*lruList{&t.closing, &t.udp, &t.other, &t.tcp} {
		for l.head != nil && t.now-l.head.Last > l.timeout {
			f := l.head
			r := EndIdle
			if l == &t.closing {
				r = f.Reason
			}
			t.end(f, r)
		}
	}
}

// Flush ends every flow with the given reason (end of capture, shutdown), in
// order of last activity.
func (t *Table) Flush(r EndReason) {
	for len(t.flows) > 0 {
		f := t.oldest()
		t.end(f, r)
	}
}

func (t *Table) oldest() *Flow {
	var o *Flow
	for _, l := range []*lruList{&t.closing, &t.udp, &t.other, &t.tcp} {
		if l.head != nil && (o == nil || l.head.Last < o.Last) {
			o = l.head
		}
	}
	return o
}

func (t *Table) evictOne() {
	if f := t.oldest(); f != nil {
		t.stats.Evicted++
		t.end(f, EndEvicted)
	}
}

func (t *Table) end(f *Flow, r EndReason) {
	f.list.remove(f)
	delete(t.flows, f.Key)
	t.stats.Ended[r]++
	t.handler.FlowEnded(f, r, true)
	f.App = nil
	t.free = append(t.free, f)
}

func (t *Table) listFor(f *Flow) *lruList {
	switch {
	case f.Reason != EndNone:
		return &t.closing
	case f.Proto == decode.ProtoTCP:
		return &t.tcp
	case f.Proto == decode.ProtoUDP:
		return &t.udp
	}
	return &t.other
}

func (t *Table) touch(f *Flow) {
	l := f.list
	l.remove(f)
	l.pushBack(f)
}

func (t *Table) moveTo(f *Flow, l *lruList) {
	if f.list != l {
		f.list.remove(f)
		l.pushBack(f)
	}
}

// maxReorderScan bounds how far back pushBack looks for a flow's place.
// Captures are in time order but for small reorderings (several capture
// queues: the 1 GiB bench capture needs at most 27 steps); a flow further
// out of place (captures concatenated out of order) stays where the scan
// stopped, which bounds the cost per packet, and only then may expiry vary
// with the number of workers.
const maxReorderScan = 256

// pushBack inserts f by its last-seen time, normally at the tail. Keeping
// each list sorted even when packets come slightly out of time order makes
// expiry exact (every flow idle past the timeout, whatever else shares the
// list), so sharded runs expire the same flows as a single table.
func (l *lruList) pushBack(f *Flow) {
	f.list = l
	after := l.tail
	for n := 0; after != nil && after.Last > f.Last && n < maxReorderScan; n++ {
		after = after.prev
	}
	f.prev = after
	if after != nil {
		f.next = after.next
		after.next = f
	} else {
		f.next = l.head
		l.head = f
	}
	if f.next != nil {
		f.next.prev = f
	} else {
		l.tail = f
	}
}

func (l *lruList) remove(f *Flow) {
	if f.prev != nil {
		f.prev.next = f.next
	} else {
		l.head = f.next
	}
	if f.next != nil {
		f.next.prev = f.prev
	} else {
		l.tail = f.prev
	}
	f.prev, f.next, f.list = nil, nil, nil
}

// uid derives a flow id from the canonical key and the start time, so the same
// capture yields the same ids whatever the number of workers.
func uid(k *Key, first int64) string {
	var buf [keyBytes + 8]byte
	b := binary.BigEndian.AppendUint64(k.appendBytes(buf[:0]), uint64(first))
	h := fnv.New64a()
	_, _ = h.Write(b)
	var out [16]byte
	return string(strconv.AppendUint(out[:0], h.Sum64(), 36))
}
