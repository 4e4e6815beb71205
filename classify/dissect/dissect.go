// Package dissect is the per-worker protocol stage: it recognises DNS, TLS,
// QUIC and HTTP/1.x in each flow, reassembles TCP streams as far as the
// dissectors need, and turns what they find into dns, tls and http events.
// It implements engine.Analyzer; one Dissector lives on each worker.
package dissect

import (
	"sync/atomic"

	"github.com/phonehome/phonehome/capture/decode"
	"github.com/phonehome/phonehome/capture/flow"
	"github.com/phonehome/phonehome/capture/reassembly"
	"github.com/phonehome/phonehome/classify/dns"
	"github.com/phonehome/phonehome/classify/http"
	"github.com/phonehome/phonehome/classify/quic"
	"github.com/phonehome/phonehome/engine"
	"github.com/phonehome/phonehome/event"
)

// Config bounds the dissectors. Zero fields take the defaults.
type Config struct {
	// StreamBuffer is the out-of-order bytes buffered per TCP direction.
	StreamBuffer int `yaml:"stream_buffer"`
	// StreamBudget is the out-of-order bytes buffered across all flows of
	// one worker.
	StreamBudget int `yaml:"stream_budget"`
	// QUICDatagrams is how many long-header datagrams of a QUIC flow are
	// examined for its Initial packets before giving up. Browsers send
	// several padded Initials per side, and 0-RTT and Handshake packets
	// come between them.
	QUICDatagrams int `yaml:"quic_datagrams"`
}

// Defaults.
const (
	DefaultStreamBuffer  = reassembly.DefaultMaxBufferedPerDirection
	DefaultStreamBudget  = 64 << 20
	DefaultQUICDatagrams = 32
	// sniffMax is how many bytes the client may send before the protocol
	// must be recognised; beyond it the flow is left undissected.
	sniffMax = 512
)

func (c Config) withDefaults(workers int) Config {
	if c.StreamBuffer <= 0 {
		c.StreamBuffer = DefaultStreamBuffer
	}
	if c.StreamBudget <= 0 {
		c.StreamBudget = DefaultStreamBudget
	}
	c.StreamBudget /= max(workers, 1)
	if c.QUICDatagrams <= 0 {
		c.QUICDatagrams = DefaultQUICDatagrams
	}
	return c
}

// Stats counts the dissectors' work across workers.
type Stats struct {
	DNSMessages    atomic.Uint64
	DNSMalformed   atomic.Uint64
	TLSHandshakes  atomic.Uint64
	TLSMalformed   atomic.Uint64
	QUICHandshakes atomic.Uint64
	QUICUndecrypt  atomic.Uint64
	HTTPRequests   atomic.Uint64
	StreamGaps     atomic.Uint64
	StreamLimits   atomic.Uint64
}

// Dissector implements engine.Analyzer for one worker.
type Dissector struct {
	cfg    Config
	emit   engine.Emitter
	budget *reassembly.Budget
	rcfg   reassembly.Config
	stats  *Stats
	txBuf  []dns.Transaction
	msgBuf [][]byte
}

var _ engine.Analyzer = (*Dissector)(nil)

// New returns a constructor for engine.Config.NewAnalyzer. stats may be
// shared by all workers.
func New(cfg Config, workers int, stats *Stats) func(int, engine.Emitter) engine.Analyzer {
	cfg = cfg.withDefaults(workers)
	return func(_ int, emit engine.Emitter) engine.Analyzer {
		return &Dissector{
			cfg:    cfg,
			emit:   emit,
			budget: reassembly.NewBudget(cfg.StreamBudget),
			rcfg:   reassembly.Config{MaxBufferedPerDirection: cfg.StreamBuffer},
			stats:  stats,
		}
	}
}

type proto uint8

const (
	protoUnknown proto = iota
	protoNone          // recognised as nothing we dissect
	protoDNS
	protoTLS
	protoHTTP
	protoQUIC
	protoSOCKS    // followed until the proxy opens the tunnel
	protoStartTLS // a cleartext dialogue followed until it upgrades to TLS
)

// A dialogue that never upgraded keeps no protocol name (it may be SMTP or
// FTP, which greet alike).
var protoNames = [...]string{"", "", "dns", "tls", "http", "quic", "socks", ""}

// state is a flow's dissection state, kept in flow.Flow.App.
type state struct {
	d     *Dissector
	f     *flow.Flow
	proto proto
	// TCP
	streams [2]reassembly.Direction
	cons    [2]streamConsumer
	sniff   []byte
	closed  [2]reassembly.CloseReason
	tcpOpen bool
	// protocol states
	tls        *tlsState
	http       *http.Conn
	httpN      int
	httpTunnel bool // the exchange just emitted opened a tunnel
	socks      *socksState
	startTLS   *startTLSState
	dnsT       *dns.Tracker
	framers    *[2]dns.TCPFramer
	quic       *quic.Conn
	quicN      int
	quicTS     int64 // time the QUIC ClientHello completed
	quicDone   bool
	// pendingAnomalies holds DNS parse anomalies by message id until the
	// transaction is emitted.
	pendingAnomalies map[uint16][]string
}

// Packet implements engine.Analyzer.
func (d *Dissector) Packet(f *flow.Flow, dir flow.Direction, p *decode.Packet) {
	st, _ := f.App.(*state)
	if st == nil {
		st = &state{d: d, f: f}
		f.App = st
	}
	switch p.Proto {
	case decode.ProtoTCP:
		st.tcp(dir, p)
	case decode.ProtoUDP:
		st.udp(dir, p)
	}
}

// Tick implements engine.Analyzer.
func (d *Dissector) Tick(int64) {}

// Finish implements engine.Analyzer.
func (d *Dissector) Finish(int64) {}

// FlowEnded implements engine.Analyzer: pending protocol events go out
// before the flow record, which learns the protocol and stream outcome.
func (d *Dissector) FlowEnded(f *flow.Flow, _ flow.EndReason, final bool, ev *event.Event) {
	st, _ := f.App.(*state)
	if st == nil {
		return
	}
	if final {
		st.finish()
	}
	if st.proto > protoNone {
		ev.Network.Protocol = protoNames[st.proto]
	}
	if fi := ev.Phonehome.Flow; fi != nil && st.tcpOpen {
		fi.ClientStream = streamOutcome(st.closed[flow.FromClient])
		fi.ServerStream = streamOutcome(st.closed[flow.FromServer])
	}
}

// streamOutcome names a direction's end when dissection stopped early.
func streamOutcome(r reassembly.CloseReason) string {
	switch r {
	case reassembly.CloseGap, reassembly.CloseLimit, reassembly.CloseBudget:
		return r.String()
	}
	return ""
}

// finish emits what is pending and releases the flow's buffers.
func (st *state) finish() {
	if st.tcpOpen {
		for i := range st.streams {
			st.streams[i].Close()
		}
	}
	if st.http != nil {
		st.http.Close()
	}
	if st.tls != nil {
		st.emitTLS()
	}
	if st.quic != nil {
		st.emitQUIC()
	}
	if st.dnsT != nil {
		st.d.txBuf = st.dnsT.Flush(st.d.txBuf[:0])
		for i := range st.d.txBuf {
			st.emitDNS(&st.d.txBuf[i])
		}
	}
}

func (st *state) newEvent(dataset string, ts int64) *event.Event {
	ev := &event.Event{Timestamp: ts, Kind: "event", Category: []string{"network"}, Type: []string{"protocol"}, Dataset: dataset}
	engine.FillCommon(ev, st.f)
	ev.Network.Protocol = protoNames[st.proto]
	return ev
}
