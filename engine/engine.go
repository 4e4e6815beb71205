// Package engine wires the one-way data path: source → decode → flow table →
// analyzers (dissectors, classifier) → events → output. It runs either in
// one goroutine or with flows sharded by a symmetric hash across N workers,
// and writes the same events in the same order in both cases, because all
// timing comes from packet timestamps, time ticks reach every worker at
// the same point of the packet stream, and the collector orders each
// tick's events by packet time and flow id before it classifies them and
// writes them in that order. Run reads and decodes on one
// goroutine for all workers; RunRecords, for one uncompressed pcap file,
// lets the workers take turns at reading and decoding it.
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

// Frame is one captured frame. Data is valid until the source's next call
// (or, from a RetainingSource, while its owner is retained).
type Frame struct {
	Data      []byte
	Timestamp int64 // unix ns
	Length    int   // original length on the wire
	LinkType  uint32
	Interface int
}

// Retainer is a reference-counted buffer (pcapfile.Chunk implements it).
// Retain and Release may be called from any goroutine; Release must be
// called once per Retain.
type Retainer interface {
	Retain()
	Release()
}

// RetainingSource is a Source whose frames lie in reference-counted
// buffers. FrameOwner returns the buffer holding the Data of the frame Next
// returned last, or nil when that Data will be reused by the next call;
// holding a reference keeps the Data valid past the next call, so sharded
// runs hand payloads to the workers without copying them. (A method rather
// than a Frame field: Frame is returned per packet in registers, which two
// more words would overflow.)
type RetainingSource interface {
	Source
	FrameOwner() Retainer
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
// in order. Calls come one at a time, in the events' order, but with
// several workers from more than one goroutine.
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
	// OnDrained, if set, is called once when the source has no more frames
	// (or failed for good), before the flows still open are flushed: what
	// is left of the run is that flush and the writing of its events.
	OnDrained func()
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
	isDrained bool   // OnDrained was called
	sinceTick int    // packets since the last tick
	progress  time.Time
	counts    counts
	frame     []byte // Data of the last frame read, which payloads may alias
}

// statsEvery is how many frames a runner counts locally before adding them
// to Stats: a handful of atomic operations per frame cost as much as a
// tenth of the reading goroutine's time.
const statsEvery = 256

// counts are a runner's counters not yet added to Stats.
type counts struct {
	n                            int // frames counted since the last flush
	total                        uint64
	capBytes, wireBytes, packets uint64
	skipped                      [decode.NumReasons]uint64
	first, last                  int64 // packet time of the first and last frame
}

// frame counts a frame read.
func (c *counts) frame(capLen, wireLen int, ts int64) {
	c.n++
	c.total++
	c.capBytes += uint64(capLen)
	c.wireBytes += uint64(wireLen)
	if c.first == 0 {
		c.first = ts
	}
	c.last = max(c.last, ts)
}

// flushCounts adds the local counters to Stats.
func (r *runner) flushCounts() {
	c, st := &r.counts, r.stats
	if c.n == 0 {
		return
	}
	st.Frames.Add(uint64(c.n))
	st.CaptureBytes.Add(c.capBytes)
	st.WireBytes.Add(c.wireBytes)
	st.Packets.Add(c.packets)
	for i, v := range c.skipped {
		if v != 0 {
			st.Skipped[i].Add(v)
			c.skipped[i] = 0
		}
	}
	if c.first != 0 && st.FirstPacket.Load() == 0 {
		st.FirstPacket.Store(c.first)
	}
	if c.last > st.LastPacket.Load() {
		st.LastPacket.Store(c.last)
	}
	c.n, c.capBytes, c.wireBytes, c.packets = 0, 0, 0, 0
}

// progressTick calls Config.Progress about every 250 ms. It is called as
// counters are flushed; it looks at the clock every 16384 frames only.
func (r *runner) progressTick() {
	if r.cfg.Progress == nil || r.counts.total&0x3fff >= statsEvery {
		return
	}
	if now := time.Now(); now.Sub(r.progress) > 250*time.Millisecond {
		r.progress = now
		r.cfg.Progress(r.stats)
	}
}

// drained calls Config.OnDrained, once.
func (r *runner) drained() {
	if !r.isDrained && r.cfg.OnDrained != nil {
		r.cfg.OnDrained()
	}
	r.isDrained = true
}

// read pulls the next frame, decodes it into p and reports whether p holds a
// packet. done is true at the end of the source.
func (r *runner) read(p *decode.Packet) (ok, done bool, err error) {
	if c := &r.counts; c.n >= statsEvery {
		r.flushCounts()
		r.progressTick()
	}
	fr, err := r.src.Next()
	if err != nil {
		// The source paused, failed or ended: Stats catch up now.
		r.flushCounts()
		if errors.Is(err, io.EOF) {
			r.drained()
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
		r.drained()
		return false, true, fmt.Errorf("engine: read: %w", err)
	}
	r.frame = fr.Data
	c := &r.counts
	c.frame(len(fr.Data), fr.Length, fr.Timestamp)
	reason := r.dec.Decode(p, fr.LinkType, fr.Data, fr.Timestamp, fr.Length)
	if reason != decode.OK {
		c.skipped[reason]++
		return false, false, nil
	}
	p.Interface = fr.Interface
	c.packets++
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

// batchSize is how many packets go to the workers at once: large, because
// each batch can cost a thread wake-up per worker (an inter-processor
// interrupt, dear in a VM); time ticks (tickEvery) cut batches anyway.
const batchSize = 2048

// batchArena is the payload bytes a batch copies (from sources that do not
// lend their buffers, and reassembled fragments) before it is sent early.
const batchArena = 2 << 20

// batchesInFlight bounds the batches of a sharded run: the reading
// goroutine waits for a free one when all are queued or being processed.
// Few, so that the source buffers they retain stay few and warm in cache.
const batchesInFlight = 4

// batch is a stretch of the stream that every worker sees: each takes its
// own shard's packets and all of the ticks, so ticks fall at the same point
// of every worker's stream. The packets are decoded once, in place.
type batch struct {
	pkts   []decode.Packet
	shard  []int32 // the worker that takes pkts[i]
	ticks  []tickMark
	arena  []byte
	owners []Retainer    // source buffers the payloads alias, held until done
	left   atomic.Int32  // workers yet to finish with the batch
	free   chan<- *batch // where the last worker returns it
}

// tickMark is a time tick that workers apply before packet at (at ==
// len(pkts): after the last one).
type tickMark struct {
	at  int
	now int64
}

func newBatch(free chan<- *batch) *batch {
	return &batch{pkts: make([]decode.Packet, 0, batchSize), shard: make([]int32, 0, batchSize),
		arena: make([]byte, 0, batchArena), free: free}
}

// run is one worker's pass over the batch.
func (b *batch) run(w *worker, shard int32) {
	t := 0
	for i, s := range b.shard {
		for ; t < len(b.ticks) && b.ticks[t].at == i; t++ {
			w.tick(b.ticks[t].now)
		}
		if s == shard {
			w.packet(&b.pkts[i])
		}
	}
	for ; t < len(b.ticks); t++ {
		w.tick(b.ticks[t].now)
	}
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
	b.pkts, b.shard, b.ticks, b.arena, b.owners = b.pkts[:0], b.shard[:0], b.ticks[:0], b.arena[:0], b.owners[:0]
	b.free <- b
}

// hold makes payload, which the batch's last packet refers to, outlive the
// source's next call: by retaining owner, the buffer of frame, when payload
// lies in frame, else by copying it into the arena. It reports false when
// the arena is full: the packet must move to a new batch.
func (b *batch) hold(payload, frame []byte, owner Retainer) bool {
	if owner != nil && within(payload, frame) {
		if n := len(b.owners); n == 0 || b.owners[n-1] != owner {
			owner.Retain()
			b.owners = append(b.owners, owner)
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
	b.pkts[len(b.pkts)-1].Payload = b.arena[start:len(b.arena):len(b.arena)]
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
		free <- newBatch(free)
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
				b.run(w, shard)
				b.done()
			}
			w.finish()
		}(w, work[i], int32(i))
	}
	lender, _ := r.src.(RetainingSource)
	owner := func() Retainer {
		if lender == nil {
			return nil
		}
		return lender.FrameOwner()
	}
	cur := <-free
	send := func() {
		cur.left.Store(int32(n))
		for _, ch := range work {
			ch <- cur
		}
		cur = <-free
	}
	var err error
	for {
		// Decode straight into the next slot; drop the slot if no packet.
		k := len(cur.pkts)
		cur.pkts = cur.pkts[:k+1]
		p := &cur.pkts[k]
		ok, done, rerr := r.read(p)
		if !ok {
			cur.pkts = cur.pkts[:k]
		}
		if done {
			err = rerr
			break
		}
		if rerr == errNoPacket {
			// Idle live source: wall-clock time expires flows, and what is
			// batched goes out so a quiet link still moves.
			if now, due := r.tickDue(time.Now().UnixNano()); due {
				cur.ticks = append(cur.ticks, tickMark{at: k, now: now})
				send()
			}
			continue
		}
		if !ok {
			continue
		}
		cur.shard = append(cur.shard, int32(flow.Shard(flow.ShardHash(p, r.seed), n)))
		ts := p.Timestamp
		if len(p.Payload) > 0 && !cur.hold(p.Payload, r.frame, owner()) {
			// The arena is full (only copied payloads fill it): the packet
			// moves to the next batch.
			moved, shard := *p, cur.shard[k]
			cur.pkts, cur.shard = cur.pkts[:k], cur.shard[:k]
			send()
			k = 0
			cur.pkts, cur.shard = append(cur.pkts, moved), append(cur.shard, shard)
			cur.hold(moved.Payload, r.frame, nil)
		}
		if now, due := r.tickDue(ts); due {
			// The tick goes before the packet, to every worker; the batch
			// goes out so a live link shows its events each second.
			cur.ticks = append(cur.ticks, tickMark{at: k, now: now})
			send()
			continue
		}
		if len(cur.pkts) == cap(cur.pkts) {
			send()
		}
	}
	if len(cur.pkts) > 0 || len(cur.ticks) > 0 {
		cur.left.Store(int32(n))
		for _, ch := range work {
			ch <- cur
		}
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
