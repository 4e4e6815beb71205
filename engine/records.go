package engine

import (
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phonehome/phonehome/capture/decode"
	"github.com/phonehome/phonehome/capture/flow"
	"github.com/phonehome/phonehome/capture/pcapfile"
	"github.com/phonehome/phonehome/event"
)

// stretchSize is how much of the file a worker reads at a time: a stretch
// and the packets decoded from it stay in the reading core's cache while it
// decodes them and runs its own shard's share. A variable for tests.
var stretchSize = 1 << 20

// freeStretches bounds the free buffers a worker keeps (more are made while
// all are in use, which queuedStretches bounds).
const freeStretches = 8

// RunRecords replays one uncompressed classic pcap file with the workers
// taking turns at the reading, for captures on disk with several workers:
// a worker claims the next stretch of the file, reads it into a buffer of
// its own and decodes it there, while the bytes are in its core's cache.
// Run instead reads and decodes on one goroutine that the workers wait for,
// and hands every packet and payload across cores.
//
// Two tokens go from stretch to stretch in file order. The first carries
// the record boundary: a worker walks its stretch's records (cheap) and
// hands it on at once, so the workers decode their stretches at the same
// time, without a defragmenter. The second carries the decoding state (the
// defragmenter, time ticks, counters): with it, a worker reassembles its
// stretch's fragments, places the time ticks and queues the packets of
// each shard for the worker that owns it, in file order. Each worker
// processes its shard's queue; while it waits for a token it works on that
// queue, and a worker whose turn comes while another is descheduled goes
// on claiming stretches (until that one's queue is full) instead of
// waiting for it.
//
// Events are the same as Run's with as many workers (order aside). Source
// errors (a corrupt record, a capture cut short) go to Config.OnSourceError
// wrapped in ErrContinue, after every packet before them.
func RunRecords(rs *pcapfile.Records, out Output, cfg Config) (*Stats, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	n := cfg.Workers
	st := cfg.newStats()
	col := newCollector(cfg, out, st, n, true)
	state := &runner{cfg: cfg, stats: st, dec: decode.NewDecoder(cfg.Defrag), seed: rand.Uint64()}
	sh := &recordsShared{rs: rs, n: n, seed: state.seed, drained: cfg.OnDrained,
		walks: make([]chan *walkToken, n), turns: make([]chan *runner, n), queues: make([]chan *shardList, n)}
	for i := range n {
		sh.walks[i], sh.turns[i] = make(chan *walkToken, 1), make(chan *runner, 1)
		sh.queues[i] = make(chan *shardList, queuedStretches)
	}
	sh.walks[0] <- &walkToken{off: rs.Start()}
	sh.turns[0] <- state
	var wg sync.WaitGroup
	for i := range n {
		rw := &recordsWorker{recordsShared: sh, id: i, w: newWorker(i, cfg, col), queue: sh.queues[i],
			pool: &stretchPool{}, dec: &decode.Decoder{}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rw.run()
		}()
	}
	wg.Wait()
	state.flushCounts()
	state.dec.Defrag.Flush()
	st.mu.Lock()
	st.defrag = state.dec.Defrag.Stats()
	st.mu.Unlock()
	col.wait()
	return st, nil
}

// queuedStretches bounds a shard's queue: how far the other workers may run
// ahead of the worker that owns it (the buffers they hold are bounded by
// the same number).
const queuedStretches = 16

// recordsShared is what RunRecords' workers share.
type recordsShared struct {
	rs      *pcapfile.Records
	n       int
	seed    uint64       // the run's shard hash seed, as in the decoding token's runner
	next    atomic.Int64 // the next stretch to claim
	ended   atomic.Bool  // a worker found the end of the file: claim no more
	onEnd   sync.Once    // calls drained (Config.OnDrained) once
	drained func()
	// The tokens for stretch k wait in walks[k%n] and turns[k%n]: at most
	// n stretches are claimed and not yet past a token (one per worker),
	// and they are consecutive, so no two share a slot.
	walks  []chan *walkToken
	turns  []chan *runner
	queues []chan *shardList // per shard, in file order
}

// walkToken carries the record boundary from stretch to stretch.
type walkToken struct {
	off  int64  // file offset of the first byte of tail
	tail []byte // the start of a record that the previous stretch cut
	done bool   // the file ended (or failed): no stretch follows
}

// stretch is a buffer a worker read part of the file into.
type stretch struct {
	buf  []byte
	refs atomic.Int32 // shard lists not yet processed
	pool *stretchPool
}

func (s *stretch) release() {
	if s.refs.Add(-1) == 0 {
		s.pool.put(s)
	}
}

// stretchPool keeps a worker's free buffers as a stack: the one released
// last, likeliest still in cache, is read into next, so the kernel's copy
// into it costs less.
type stretchPool struct {
	mu   sync.Mutex
	free []*stretch
}

func (p *stretchPool) get() *stretch {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		s := p.free[n-1]
		p.free = p.free[:n-1]
		return s
	}
	return &stretch{buf: make([]byte, pcapfile.MaxRecordLength+stretchSize), pool: p}
}

func (p *stretchPool) put(s *stretch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < freeStretches {
		p.free = append(p.free, s)
	}
}

// shardList is one shard's packets of one stretch, with the time ticks
// that fall among them.
type shardList struct {
	pkts  []decode.Packet
	ticks []tickMark // at: index in pkts
	arena []byte     // payloads of reassembled packets
	buf   *stretch
	last  bool // the last stretch of the file
}

// frameInfo is a frame of a stretch and how the worker decoded it on its
// own: the shard it went to, or -1 (skipped, or a fragment). Small (32
// bytes, against 90 with a pcapfile.Packet in it): it is written by the
// walk and read by the decoding and the in-order pass, per frame.
type frameInfo struct {
	ts     int64
	at     uint32 // where the frame's bytes start in the stretch's data
	capLen uint32
	length uint32 // on the wire
	shard  int32
	reason decode.Reason
	frag   bool // an IP fragment: decoded again, in order, with the defragmenter
}

type recordsWorker struct {
	*recordsShared
	id       int
	w        *worker
	queue    chan *shardList // this worker's shard
	pool     *stretchPool
	dec      *decode.Decoder // without a defragmenter: fragments wait for the token
	frs      []frameInfo
	pos      []int
	free     []*shardList
	finished bool           // the shard's last list was processed
	enc      *event.Encoder // for the collector's jobs it takes on
}

func (rw *recordsWorker) run() {
	defer rw.w.finish()
	for !rw.ended.Load() {
		rw.stretch(rw.next.Add(1) - 1)
		// This shard's packets so far, before reading on, but for about a
		// stretch's worth (one list from each worker): work for the waits
		// for the next stretch's tokens, instead of sleeping through them.
		for !rw.finished && len(rw.queue) > rw.n {
			rw.process(<-rw.queue)
		}
	}
	for !rw.finished {
		rw.process(<-rw.queue)
	}
}

// await receives a token, working on this worker's shard while it waits,
// or else on the collector's encoding jobs (the encoders' goroutines take
// the ones no worker has time for). With nothing to do it spins (yielding)
// for up to spinWait before it
// blocks: the token is usually a fraction of a millisecond away, and a
// blocked worker is woken through an idle CPU, which in a virtual machine
// takes long enough to idle both. When both a token and a list are ready,
// select takes either: taking the token first, or working on lists a few
// packets at a time so as to pass tokens on sooner, measured slower, as the
// workers then ran ahead of their queues and held more buffers.
func await[T any](rw *recordsWorker, token chan T) T {
	var spinStart time.Time
	spinning := false
	for {
		select {
		case t := <-token:
			return t
		case l := <-rw.queue:
			rw.process(l)
			spinning = false
			continue
		default:
		}
		if !spinning {
			spinStart, spinning = time.Now(), true
		}
		if time.Since(spinStart) < spinWait {
			// Nothing of its own to do: encode events for the collector
			// if a job waits, rather than spin.
			if rw.encodeJob() {
				spinning = false
				continue
			}
			// Wait for either to hold something without select, which
			// takes both channels' locks, one of which the other worker
			// needs to hand over what this one waits for.
			for i := 0; i < 32 && len(token) == 0 && len(rw.queue) == 0; i++ {
				runtime.Gosched()
			}
			continue
		}
		select {
		case t := <-token:
			return t
		case l := <-rw.queue:
			rw.process(l)
			spinning = false
		}
	}
}

// encodeJob encodes a job of the collector's, if one is queued: the job
// is written in its turn whoever encodes it.
func (rw *recordsWorker) encodeJob() bool {
	c := rw.w.col
	if len(c.encJobs) == 0 { // none queued (nil with one worker)
		return false
	}
	select {
	case j, ok := <-c.encJobs:
		if !ok {
			return false
		}
		if rw.enc == nil {
			rw.enc = event.NewEncoder()
		}
		c.encode(rw.enc, j)
		return true
	default:
		return false
	}
}

// spinWait is how long await spins before it blocks.
const spinWait = time.Millisecond

// enqueue queues a list for its shard's worker; when that queue is this
// worker's own and full, it makes room by processing.
func (rw *recordsWorker) enqueue(shard int, l *shardList) {
	for {
		select {
		case rw.queues[shard] <- l:
			return
		case l2 := <-rw.queue:
			rw.process(l2)
		}
	}
}

// stretch reads, walks and decodes stretch k, and queues its packets for
// the shards' workers; past the end of the file it only hands the tokens on.
func (rw *recordsWorker) stretch(k int64) {
	s := rw.pool.get()
	// Stretches lie at fixed offsets: the workers read at the same time.
	got, rerr := rw.rs.ReadAt(s.buf[pcapfile.MaxRecordLength:], rw.rs.Start()+k*int64(stretchSize))
	nextSlot := int((k + 1) % int64(rw.n))

	// First token: the records' boundaries.
	wt := await(rw, rw.walks[k%int64(rw.n)])
	if wt.done {
		rw.ended.Store(true)
		rw.walks[nextSlot] <- wt
		// The decoding token follows the same way.
		rw.turns[nextSlot] <- await(rw, rw.turns[k%int64(rw.n)])
		s.refs.Store(1)
		s.release()
		return
	}
	start := pcapfile.MaxRecordLength - len(wt.tail)
	copy(s.buf[start:], wt.tail)
	data := s.buf[start : pcapfile.MaxRecordLength+got]
	frs := rw.frs[:0]
	off := wt.off
	link := uint32(0)
	used, werr := rw.rs.Walk(data, off, func(at int, fr pcapfile.Packet) {
		link = uint32(fr.LinkType) // one per classic pcap file
		frs = append(frs, frameInfo{ts: fr.Timestamp, at: uint32(at), capLen: uint32(len(fr.Data)), length: uint32(fr.Length)})
	})
	var srcErr error
	wt.off += int64(used)
	wt.tail = append(wt.tail[:0], data[used:]...)
	switch {
	case werr != nil:
		wt.done, srcErr = true, werr
	case rerr != nil && !errors.Is(rerr, io.EOF):
		wt.done, srcErr = true, rerr
	case got < stretchSize:
		// The end of the file: a record cut short is reported as a Reader
		// does, after every packet before it.
		wt.done = true
		if len(wt.tail) > 0 {
			srcErr = rw.rs.Truncated(wt.off, wt.tail)
		}
	}
	last := wt.done
	if last {
		rw.ended.Store(true)
		if rw.drained != nil {
			rw.onEnd.Do(rw.drained)
		}
	}
	rw.walks[nextSlot] <- wt // wt is the next stretch's from here on

	// Decoding, at the same time as the other workers, straight into the
	// shard lists. A fragment is only marked: it waits for the
	// defragmenter, which comes with the second token.
	ls := make([]*shardList, rw.n)
	for i := range ls {
		ls[i] = rw.list()
		ls[i].buf, ls[i].last = s, last
	}
	s.refs.Store(int32(rw.n))
	var p decode.Packet
	for i := range frs {
		f := &frs[i]
		f.shard = -1
		f.reason = rw.dec.Decode(&p, link, data[f.at:f.at+f.capLen:f.at+f.capLen], f.ts, int(f.length))
		if p.Fragment {
			// Whatever became of it without a defragmenter: with one, the
			// fragment may be held, or complete a datagram.
			f.frag = true
			continue
		}
		if f.reason != decode.OK {
			continue
		}
		f.shard = int32(flow.Shard(flow.ShardHash(&p, rw.seed), rw.n))
		ls[f.shard].pkts = append(ls[f.shard].pkts, p)
	}
	rw.frs = frs

	// Second token: the decoding state, in file order: counters, time
	// ticks, and the fragments through the defragmenter as Run has them.
	r := await(rw, rw.turns[k%int64(rw.n)])
	pos := rw.pos[:0]
	for range rw.n {
		pos = append(pos, 0) // packets of each list passed so far
	}
	c := &r.counts
	for i := range frs {
		f := &frs[i]
		c.frame(int(f.capLen), int(f.length), f.ts)
		if c.n >= statsEvery {
			r.flushCounts()
			r.progressTick()
		}
		reason, shard := f.reason, f.shard
		if f.frag {
			reason = r.dec.Decode(&p, link, data[f.at:f.at+f.capLen:f.at+f.capLen], f.ts, int(f.length))
			if reason == decode.OK {
				shard = int32(flow.Shard(flow.ShardHash(&p, r.seed), rw.n))
				ls[shard].insert(pos[shard], &p)
			}
		}
		if reason != decode.OK {
			c.skipped[reason]++
			continue
		}
		c.packets++
		if now, due := r.tickDue(f.ts); due {
			for j, l := range ls {
				l.ticks = append(l.ticks, tickMark{at: pos[j], now: now})
			}
		}
		pos[shard]++
	}
	rw.pos = pos
	if srcErr != nil {
		r.sourceError(srcErr)
	}
	// Queued while the token is held, so every queue is in file order.
	for i, l := range ls {
		rw.enqueue(i, l)
	}
	rw.turns[nextSlot] <- r
}

// insert places the reassembled packet p at index at, its payload copied
// (it lies in the defragmenter's buffer, which the next fragment reuses).
func (l *shardList) insert(at int, p *decode.Packet) {
	start := len(l.arena)
	l.arena = append(l.arena, p.Payload...)
	l.pkts = append(l.pkts, decode.Packet{})
	copy(l.pkts[at+1:], l.pkts[at:])
	l.pkts[at] = *p
	l.pkts[at].Payload = l.arena[start:len(l.arena):len(l.arena)]
}

// process runs this worker's shard of a stretch, then releases it.
func (rw *recordsWorker) process(l *shardList) {
	t := 0
	for i := range l.pkts {
		for ; t < len(l.ticks) && l.ticks[t].at == i; t++ {
			rw.w.tick(l.ticks[t].now)
		}
		rw.w.packet(&l.pkts[i])
	}
	for ; t < len(l.ticks); t++ {
		rw.w.tick(l.ticks[t].now)
	}
	l.buf.release()
	l.buf = nil
	if l.last {
		rw.finished = true
	}
	// A list goes back to the worker that processed it: each makes and
	// reuses its own, and the numbers even out.
	if len(rw.free) < 2*queuedStretches {
		rw.free = append(rw.free, l)
	}
}

func (rw *recordsWorker) list() *shardList {
	if n := len(rw.free); n > 0 {
		l := rw.free[n-1]
		rw.free = rw.free[:n-1]
		l.pkts, l.ticks, l.arena, l.last = l.pkts[:0], l.ticks[:0], l.arena[:0], false
		return l
	}
	return &shardList{pkts: make([]decode.Packet, 0, 2*stretchSize/1024/rw.n)}
}

// sourceError reports a source error as Run does: the run goes on (here, to
// the end of what was read before it).
func (r *runner) sourceError(err error) {
	r.flushCounts()
	if r.cfg.OnSourceError != nil {
		r.cfg.OnSourceError(errors.Join(ErrContinue, err))
	}
}
