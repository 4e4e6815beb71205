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
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/phonehome/phonehome/capture/decode"
	"github.com/phonehome/phonehome/capture/flow"
	"github.com/phonehome/phonehome/event"
)

// Frame is one captured frame. Data is valid until the source's next call,
// or for as long as Owner is retained.
type Frame struct {
	Data      []byte
	Timestamp int64 // unix ns
	Length    int   // original length on the wire
	LinkType  uint32
	Interface int
	// Owner, if set, is the reference-counted buffer Data lies in: holding
	// a reference keeps Data valid past the source's next call, so sharded
	// runs hand payloads to the workers without copying them. nil means Data
	// is reused by the next call (the engine then copies what it keeps).
	Owner Retainer
}

// Retainer is a reference-counted buffer (pcapfile.Chunk implements it).
// Retain and Release may be called from any goroutine; Release must be
// called once per Retain.
type Retainer interface {
	Retain()
	Release()
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
	r := &runner{cfg: cfg, src: src, out: out, stats: st, dec: decode.NewDecoder(cfg.Defrag), seed: rand.Uint64()}
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
	seed      uint64 // shard hash seed, random per run
	lastTick  int64  // whole second of packet time last ticked
	sinceTick int    // packets since the last tick
	progress  time.Time
}

// read pulls the next frame, decodes it into p and reports whether p holds a
// packet. done is true at the end of the source. It also returns the frame,
// which p's payload may alias.
func (r *runner) read(p *decode.Packet) (fr Frame, ok, done bool, err error) {
	fr, err = r.src.Next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fr, false, true, nil
		}
		if errors.Is(err, ErrNoPacket) {
			return fr, false, false, errNoPacket
		}
		if errors.Is(err, ErrContinue) {
			if r.cfg.OnSourceError != nil {
				r.cfg.OnSourceError(err)
			}
			return fr, false, false, nil
		}
		return fr, false, true, fmt.Errorf("engine: read: %w", err)
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
		return fr, false, false, nil
	}
	p.Interface = fr.Interface
	st.Packets.Add(1)
	return fr, true, false, nil
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
		_, ok, done, err := r.read(&p)
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

// batchSize is how many packets go to the workers at once: large enough to
// amortise channel operations, small enough to keep latency and memory low.
const batchSize = 512

// batchArena is the payload bytes a batch copies (from sources without
// Frame.Owner, and reassembled fragments) before it is sent early.
const batchArena = 512 << 10

// batchesInFlight bounds the batches of a sharded run: the reading
// goroutine waits for a free one when all are queued or being processed.
const batchesInFlight = 16

// item is one slot of a batch: a packet for one worker, a time tick for
// every worker, or both (the tick comes first).
type item struct {
	p     decode.Packet
	tick  int64 // non-zero: every worker advances to this time first
	shard int32 // the worker that takes p; -1: no packet (a tick alone)
}

// batch is a stretch of the stream that every worker sees: each takes its
// own shard's packets and all of the ticks, so ticks fall at the same point
// of every worker's stream. The packets are decoded once, in place.
type batch struct {
	items  []item
	arena  []byte
	owners []Retainer    // source buffers the payloads alias, held until done
	left   atomic.Int32  // workers yet to finish with the batch
	free   chan<- *batch // where the last worker returns it
}

// done is called by each worker after its pass; the last one releases the
// source buffers and recycles the batch.
func (b *batch) done() {
	if b.left.Add(-1) != 0 {
		return
	}
	for i, o := range b.owners {
		o.Release()
		b.owners[i] = nil
	}
	b.items, b.arena, b.owners = b.items[:0], b.arena[:0], b.owners[:0]
	b.free <- b
}

// hold makes payload, which the packet in the batch's last slot refers to,
// outlive the source's next call: by retaining the frame's owner when
// payload lies in the frame, else by copying it into the arena. It reports
// false when the arena is full: the slot must move to a new batch.
func (b *batch) hold(payload []byte, fr *Frame) bool {
	if fr.Owner != nil && within(payload, fr.Data) {
		if n := len(b.owners); n == 0 || b.owners[n-1] != fr.Owner {
			fr.Owner.Retain()
			b.owners = append(b.owners, fr.Owner)
		}
		return true
	}
	if len(b.arena)+len(payload) > cap(b.arena) && len(b.arena) > 0 {
		return false
	}
	// Only a payload larger than the whole arena makes append reallocate,
	// and then nothing else in the batch uses the arena yet.
	start := len(b.arena)
	b.arena = append(b.arena, payload...)
	b.items[len(b.items)-1].p.Payload = b.arena[start:len(b.arena):len(b.arena)]
	return true
}

// within reports whether sub lies inside buf's memory (a reassembled
// packet's payload lies in the defragmenter's buffer instead).
func within(sub, buf []byte) bool {
	if len(buf) == 0 {
		return false
	}
	s, b := uintptr(unsafe.Pointer(unsafe.SliceData(sub))), uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	return s >= b && s+uintptr(len(sub)) <= b+uintptr(len(buf))
}

func (r *runner) runSharded() error {
	n := r.cfg.Workers
	free := make(chan *batch, batchesInFlight)
	for range batchesInFlight {
		free <- &batch{items: make([]item, 0, batchSize), arena: make([]byte, 0, batchArena), free: free}
	}
	// With at most batchesInFlight batches, sends to work never block: the
	// reading goroutine waits only on free.
	work := make([]chan *batch, n)
	var wg sync.WaitGroup
	for i := range n {
		work[i] = make(chan *batch, batchesInFlight)
		w := newWorker(i, r.cfg, r.col)
		wg.Add(1)
		go func(w *worker, in <-chan *batch, shard int32) {
			defer wg.Done()
			for b := range in {
				for k := range b.items {
					it := &b.items[k]
					if it.tick != 0 {
						w.tick(it.tick)
					}
					if it.shard == shard {
						w.packet(&it.p)
					}
				}
				b.done()
			}
			w.finish()
		}(w, work[i], int32(i))
	}
	var cur *batch
	send := func() {
		cur.left.Store(int32(n))
		for _, ch := range work {
			ch <- cur
		}
		cur = nil
	}
	var err error
	for {
		if cur == nil {
			cur = <-free
		}
		// Decode straight into the next slot; drop the slot if no packet.
		cur.items = cur.items[:len(cur.items)+1]
		it := &cur.items[len(cur.items)-1]
		fr, ok, done, rerr := r.read(&it.p)
		if !ok {
			cur.items = cur.items[:len(cur.items)-1]
		}
		if done {
			err = rerr
			break
		}
		if rerr == errNoPacket {
			// Idle live source: wall-clock time expires flows, and what is
			// batched goes out so a quiet link still moves.
			if now, due := r.tickDue(time.Now().UnixNano()); due {
				cur.items = append(cur.items, item{tick: now, shard: -1})
				send()
			}
			continue
		}
		if !ok {
			continue
		}
		it.tick = 0
		it.shard = int32(flow.ShardHash(&it.p, r.seed) % uint64(n))
		ts := it.p.Timestamp
		if len(it.p.Payload) > 0 && !cur.hold(it.p.Payload, &fr) {
			// The arena is full: the packet moves to a new batch (rare, and
			// only for sources without Owner).
			moved := *it
			cur.items = cur.items[:len(cur.items)-1]
			send()
			cur = <-free
			cur.items = append(cur.items, moved)
			cur.hold(moved.p.Payload, &fr)
		}
		if now, due := r.tickDue(ts); due {
			// The tick goes before the packet, to every worker; the batch
			// goes out so a live link shows its events each second.
			cur.items[len(cur.items)-1].tick = now
			send()
			continue
		}
		if len(cur.items) == cap(cur.items) {
			send()
		}
	}
	if cur != nil && len(cur.items) > 0 {
		send()
	}
	for _, ch := range work {
		close(ch)
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
		r := &runner{cfg: cfg, src: src, out: out, stats: st, dec: decode.NewDecoder(cfg.Defrag), col: col}
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
