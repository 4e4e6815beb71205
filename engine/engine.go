// Package engine wires the one-way data path: source → decode → flow table →
// analyzers (dissectors, classifier) → events → output. It runs either in
// one goroutine or with flows sharded by a symmetric hash across N workers,
// and produces the same events in both cases (order aside), because all
// timing comes from packet timestamps and time ticks reach every worker at
// the same point of the packet stream.
package engine

import (
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phonehome/phonehome/capture/decode"
	"github.com/phonehome/phonehome/capture/flow"
	"github.com/phonehome/phonehome/event"
)

// Frame is one captured frame. Data is valid until the source's next call.
type Frame struct {
	Data      []byte
	Timestamp int64 // unix ns
	Length    int   // original length on the wire
	LinkType  uint32
	Interface int
}

// Source yields frames in time order; io.EOF ends it. Errors other than
// io.EOF are reported and, for sources that can go on (several files), the
// source decides whether to continue by returning further frames.
type Source interface {
	Next() (Frame, error)
}

// ErrContinue wraps a source error after which the source can still yield
// frames (one of several files failed).
var ErrContinue = errors.New("source continues")

// ErrNoPacket is returned by live sources when a read timed out without a
// packet; the engine then advances time from the wall clock so idle flows
// still expire.
var ErrNoPacket = errors.New("no packet before the read timeout")

// Output receives encoded events, one JSON line each (with trailing newline).
// Key is the flow id, so outputs that partition (Kafka) keep a flow's events
// in order. It must be safe for concurrent use when workers > 1.
type Output interface {
	Write(line []byte, key string, dataset string) error
}

// Analyzer is the dissection and classification stage. One instance per
// worker (NewAnalyzer is called once per worker); it is never shared across
// goroutines, except through state it shares on purpose (and guards).
type Analyzer interface {
	// Packet sees every packet after the flow table accounted it.
	Packet(f *flow.Flow, dir flow.Direction, p *decode.Packet)
	// FlowEnded runs before the flow record is emitted (final or interim):
	// it emits the flow's pending protocol events and may enrich ev.
	FlowEnded(f *flow.Flow, reason flow.EndReason, final bool, ev *event.Event)
	// Tick is called as packet time passes whole seconds.
	Tick(now int64)
	// Finish runs once at the end, after every flow ended.
	Finish(now int64)
}

// Emitter is how analyzers emit events. Emit takes ownership of ev: pass a
// fresh Event each time.
type Emitter interface {
	Emit(ev *event.Event)
}

// Classifier is the cross-flow stage (attribution, DNS correlation,
// exfiltration detectors, alert deduplication, host inventory). There is one
// for the whole run, on one goroutine, and it sees every event in the same
// order whatever the number of workers: events are batched per second of
// packet time and ordered by the packet time that produced them, then by
// flow id, so replays are deterministic.
type Classifier interface {
	// Process may enrich ev and emit further events (alerts) after it.
	Process(ev *event.Event, emit func(*event.Event))
	// Tick runs after each second of packet time has been processed.
	Tick(now int64, emit func(*event.Event))
	// Finish runs once at the end (host inventories, final scores).
	Finish(now int64, emit func(*event.Event))
}

// Config configures a run.
type Config struct {
	Workers  int
	Flow     flow.Config
	Defrag   decode.DefragLimits
	Observer *event.Observer
	// NewAnalyzer builds one analyzer per worker; nil runs flows only.
	NewAnalyzer func(worker int, emit Emitter) Analyzer
	// Classifier, if set, sees every event in a deterministic order.
	Classifier Classifier
	// Progress, if set, is called about every 250 ms from the reading
	// goroutine with the running counters.
	Progress func(s *Stats)
	// OnSourceError, if set, is told about each source error (a file that
	// failed while others go on).
	OnSourceError func(err error)
	// EndReason is what the flows still open at the end are reported as
	// (default end_of_capture; the daemon uses shutdown).
	EndReason flow.EndReason
	// Stats, if set, receives the run's counters as they change (the daemon
	// reads them for metrics while the run goes on).
	Stats *Stats
}

func (c *Config) newStats() *Stats {
	st := c.Stats
	if st == nil {
		st = &Stats{}
	}
	st.Started = time.Now()
	return st
}

// Stats are the run's counters. Fields are updated atomically.
type Stats struct {
	Frames       atomic.Uint64 // frames read
	CaptureBytes atomic.Uint64 // bytes of frames as captured
	WireBytes    atomic.Uint64 // bytes of frames on the wire
	Packets      atomic.Uint64 // frames decoded into a packet
	Skipped      [decode.NumReasons]atomic.Uint64
	Events       sync.Map // dataset -> *atomic.Uint64
	Started      time.Time
	FirstPacket  atomic.Int64
	LastPacket   atomic.Int64

	Alerts sync.Map // rule id -> *atomic.Uint64

	mu        sync.Mutex
	flows     map[int]flow.Stats // per worker, refreshed every tick
	defrag    decode.DefragStats
	outErrors atomic.Uint64
}

// AlertCounts returns the number of alerts per rule id.
func (s *Stats) AlertCounts() map[string]uint64 {
	out := map[string]uint64{}
	s.Alerts.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return out
}

func (s *Stats) countAlert(rule string) {
	v, ok := s.Alerts.Load(rule)
	if !ok {
		v, _ = s.Alerts.LoadOrStore(rule, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

// EventCounts returns the number of events per dataset.
func (s *Stats) EventCounts() map[string]uint64 {
	out := map[string]uint64{}
	s.Events.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return out
}

func (s *Stats) countEvent(dataset string) {
	v, ok := s.Events.Load(dataset)
	if !ok {
		v, _ = s.Events.LoadOrStore(dataset, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

// Flows returns the flow table counters summed over workers, as of their
// last time tick (and exactly, once Run returned).
func (s *Stats) Flows() flow.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sum flow.Stats
	for _, fs := range s.flows {
		sum.Active += fs.Active
		sum.Created += fs.Created
		sum.Evicted += fs.Evicted
		for i := range fs.Ended {
			sum.Ended[i] += fs.Ended[i]
		}
	}
	return sum
}

// Defrag returns the defragmenter's counters (valid after Run).
func (s *Stats) Defrag() decode.DefragStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.defrag
}

// OutputErrors counts events the output refused.
func (s *Stats) OutputErrors() uint64 { return s.outErrors.Load() }

func (s *Stats) setFlows(worker int, fs flow.Stats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.flows == nil {
		s.flows = map[int]flow.Stats{}
	}
	s.flows[worker] = fs
}

// Run reads src to the end and processes every frame. It returns the stats
// and the first fatal error (source errors wrapped in ErrContinue are
// reported through OnSourceError and counted, not fatal).
func Run(src Source, out Output, cfg Config) (*Stats, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	st := cfg.newStats()
	r := &runner{cfg: cfg, src: src, out: out, stats: st, dec: decode.NewDecoder(cfg.Defrag), seed: maphash.MakeSeed()}
	r.col = newCollector(cfg, out, st, cfg.Workers, true)
	var err error
	if cfg.Workers == 1 {
		err = r.runInline()
	} else {
		err = r.runSharded()
	}
	// Fragments still waiting at the end can never complete: count them.
	r.dec.Defrag.Flush()
	st.mu.Lock()
	st.defrag = r.dec.Defrag.Stats()
	st.mu.Unlock()
	r.col.wait()
	return st, err
}

type runner struct {
	col       *collector
	cfg       Config
	src       Source
	out       Output
	stats     *Stats
	dec       *decode.Decoder
	seed      maphash.Seed
	lastTick  int64 // whole second of packet time last ticked
	sinceTick int   // packets since the last tick
	progress  time.Time
}

// read pulls the next frame, decodes it into p and reports whether p holds a
// packet. done is true at the end of the source.
func (r *runner) read(p *decode.Packet) (ok, done bool, err error) {
	fr, err := r.src.Next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return false, true, nil
		}
		if errors.Is(err, ErrNoPacket) {
			return false, false, errNoPacket
		}
		if errors.Is(err, ErrContinue) {
			if r.cfg.OnSourceError != nil {
				r.cfg.OnSourceError(err)
			}
			return false, false, nil
		}
		return false, true, fmt.Errorf("engine: read: %w", err)
	}
	st := r.stats
	st.Frames.Add(1)
	st.CaptureBytes.Add(uint64(len(fr.Data)))
	st.WireBytes.Add(uint64(fr.Length))
	if st.FirstPacket.Load() == 0 {
		st.FirstPacket.Store(fr.Timestamp)
	}
	if fr.Timestamp > st.LastPacket.Load() {
		st.LastPacket.Store(fr.Timestamp)
	}
	if r.cfg.Progress != nil && st.Frames.Load()&0x3fff == 0 {
		if now := time.Now(); now.Sub(r.progress) > 250*time.Millisecond {
			r.progress = now
			r.cfg.Progress(st)
		}
	}
	reason := r.dec.Decode(p, fr.LinkType, fr.Data, fr.Timestamp, fr.Length)
	if reason != decode.OK {
		st.Skipped[reason].Add(1)
		return false, false, nil
	}
	p.Interface = fr.Interface
	st.Packets.Add(1)
	return true, false, nil
}

// tickEvery bounds the packets between two ticks. Ticks flush the workers'
// events to the collector, so a flood inside one second of packet time
// (millions of new flows) cannot pile up events in memory. The count is
// taken where packets enter the engine, so ticks fall at the same points of
// the stream whatever the number of workers.
const tickEvery = 4096

// tickDue reports whether packet time ts has entered a new whole second, or
// tickEvery packets went by since the last tick.
func (r *runner) tickDue(ts int64) (int64, bool) {
	r.sinceTick++
	sec := ts / int64(time.Second)
	if sec > r.lastTick {
		r.lastTick = sec
		r.sinceTick = 0
		return sec * int64(time.Second), true
	}
	if r.sinceTick >= tickEvery {
		r.sinceTick = 0
		return max(ts, r.lastTick*int64(time.Second)), true
	}
	return 0, false
}

// errNoPacket tells the loops that a live source is idle.
var errNoPacket = errors.New("idle")

func (r *runner) runInline() error {
	return r.loop(newWorker(0, r.cfg, r.col))
}

// loop feeds one worker from the runner's source until it ends.
func (r *runner) loop(w *worker) error {
	var p decode.Packet
	for {
		ok, done, err := r.read(&p)
		if done {
			w.finish()
			return err
		}
		if err == errNoPacket {
			// Idle live source: let wall-clock time expire flows.
			if now, due := r.tickDue(time.Now().UnixNano()); due {
				w.tick(now)
			}
			continue
		}
		if !ok {
			continue
		}
		if now, due := r.tickDue(p.Timestamp); due {
			w.tick(now)
		}
		w.packet(&p)
	}
}

// batchSize is how many packets go to a worker at once: large enough to
// amortise channel operations, small enough to keep latency and memory low.
const batchSize = 256

// batchArena is the payload bytes a batch holds before it is sent early.
const batchArena = 256 << 10

type item struct {
	p    decode.Packet
	tick int64 // non-zero: a time tick, not a packet
}

type batch struct {
	items []item
	arena []byte
}

func (r *runner) runSharded() error {
	n := r.cfg.Workers
	work := make([]chan *batch, n)
	free := make([]chan *batch, n)
	cur := make([]*batch, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		work[i] = make(chan *batch, 8)
		free[i] = make(chan *batch, 10)
		for j := 0; j < 10; j++ {
			free[i] <- &batch{items: make([]item, 0, batchSize), arena: make([]byte, 0, batchArena)}
		}
		w := newWorker(i, r.cfg, r.col)
		wg.Add(1)
		go func(w *worker, in <-chan *batch, back chan<- *batch) {
			defer wg.Done()
			for b := range in {
				for k := range b.items {
					it := &b.items[k]
					if it.tick != 0 {
						w.tick(it.tick)
						continue
					}
					w.packet(&it.p)
				}
				b.items, b.arena = b.items[:0], b.arena[:0]
				back <- b
			}
			w.finish()
		}(w, work[i], free[i])
	}
	send := func(i int) {
		work[i] <- cur[i]
		cur[i] = nil
	}
	get := func(i int) *batch {
		if cur[i] == nil {
			cur[i] = <-free[i]
		}
		return cur[i]
	}
	var p decode.Packet
	var err error
	for {
		ok, done, rerr := r.read(&p)
		if done {
			err = rerr
			break
		}
		if rerr == errNoPacket {
			p.Timestamp = time.Now().UnixNano()
		} else if !ok {
			continue
		}
		if now, due := r.tickDue(p.Timestamp); due {
			// Ticks go to every worker at the same point of the stream, and
			// send what is batched so a quiet live link still moves.
			for i := 0; i < n; i++ {
				b := get(i)
				b.items = append(b.items, item{tick: now})
				send(i)
			}
		}
		if !ok {
			continue
		}
		k, _ := flow.KeyOf(&p)
		i := int(k.Hash(r.seed) % uint64(n))
		b := get(i)
		if len(b.arena)+len(p.Payload) > cap(b.arena) && len(b.items) > 0 {
			send(i)
			b = get(i)
		}
		b.items = append(b.items, item{p: p})
		it := &b.items[len(b.items)-1]
		if len(p.Payload) > 0 {
			// The frame buffer is reused by the source: copy the payload.
			start := len(b.arena)
			b.arena = append(b.arena, p.Payload...)
			it.p.Payload = b.arena[start:len(b.arena):len(b.arena)]
		}
		if len(b.items) == cap(b.items) {
			send(i)
		}
	}
	for i := 0; i < n; i++ {
		if cur[i] != nil && len(cur[i].items) > 0 {
			send(i)
		}
		close(work[i])
	}
	wg.Wait()
	return err
}

// RunParallel runs one decoder and one worker per source, each on its own
// goroutine, for capture engines that already spread flows over sockets by
// a symmetric flow hash (AF_PACKET PACKET_FANOUT_HASH with the defrag flag).
// The flow cap is shared out among the sources.
func RunParallel(srcs []Source, out Output, cfg Config) (*Stats, error) {
	if len(srcs) == 0 {
		return nil, errors.New("engine: no source")
	}
	cfg.Workers = len(srcs)
	st := cfg.newStats()
	// Live sources tick on their own clocks: the collector does not align
	// their batches, it orders each as it comes.
	col := newCollector(cfg, out, st, len(srcs), false)
	errs := make([]error, len(srcs))
	runners := make([]*runner, len(srcs))
	var wg sync.WaitGroup
	for i, src := range srcs {
		r := &runner{cfg: cfg, src: src, out: out, stats: st, dec: decode.NewDecoder(cfg.Defrag), seed: maphash.MakeSeed(), col: col}
		runners[i] = r
		w := newWorker(i, cfg, col)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.loop(w)
		}()
	}
	wg.Wait()
	st.mu.Lock()
	for _, r := range runners {
		r.dec.Defrag.Flush()
		d := r.dec.Defrag.Stats()
		st.defrag.Fragments += d.Fragments
		st.defrag.Reassembled += d.Reassembled
		st.defrag.Timeouts += d.Timeouts
		st.defrag.Evicted += d.Evicted
		st.defrag.Dropped += d.Dropped
	}
	st.mu.Unlock()
	col.wait()
	return st, errors.Join(errs...)
}
