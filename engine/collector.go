package engine

import (
	"cmp"
	"slices"
	"sync"

	"go.uber.org/zap/buffer"

	"github.com/phonehome/phonehome/event"
)

// evBatch is what a worker emitted between two time ticks.
type evBatch struct {
	worker int
	tick   int64
	last   bool // the worker has finished
	events []*event.Event
}

// collector orders the workers' events, runs the classifier over them, and
// encodes and writes them. With aligned batches (replay) it waits for the
// batch of the same tick from every worker, so the order it produces is the
// same for one worker or many.
type collector struct {
	cfg     Config
	out     Output
	stats   *Stats
	workers int
	aligned bool
	inline  bool // one worker: run on the worker's goroutine

	in      chan *evBatch
	done    chan struct{}
	queues  [][]*evBatch
	active  []bool
	enc     *event.Encoder
	emitBuf []*event.Event
	now     int64

	// With several workers, events are encoded in jobs by as many encoder
	// goroutines, whichever is free, and written in the collector's order:
	// the output is the same as one worker's, line for line, and the
	// encoders share the work to the end (with a job queue per encoder,
	// one could be left alone with its backlog).
	encJobs chan *encJob
	encWG   sync.WaitGroup
	job     *encJob // being filled
	nextSeq uint64
	slots   chan struct{} // a job holds one from being queued to being written
	wmu     sync.Mutex    // guards written and pending
	written uint64        // seq of the next job to write
	pending []*encJob     // encoded jobs waiting for earlier ones, by seq % len
}

// encJob is a run of classified events, encoded together and written in
// turn.
type encJob struct {
	seq    uint64
	events []*event.Event
	lines  []*buffer.Buffer // per event; nil when it failed to encode
}

// encJobsInFlight bounds the jobs queued, being encoded or waiting to be
// written (and so the encoded lines held).
const encJobsInFlight = 16

func newCollector(cfg Config, out Output, st *Stats, workers int, aligned bool) *collector {
	c := &collector{cfg: cfg, out: out, stats: st, workers: workers, aligned: aligned, inline: workers == 1,
		queues: make([][]*evBatch, workers), active: make([]bool, workers), enc: event.NewEncoder()}
	for i := range c.active {
		c.active[i] = true
	}
	if !c.inline {
		c.in = make(chan *evBatch, 4*workers)
		c.done = make(chan struct{})
		c.encJobs = make(chan *encJob, encJobsInFlight)
		c.slots = make(chan struct{}, encJobsInFlight)
		c.pending = make([]*encJob, encJobsInFlight)
		// Encoding is the costliest per-event step: spread it over as many
		// goroutines as there are workers.
		for range workers {
			c.encWG.Add(1)
			go func() {
				defer c.encWG.Done()
				enc := event.NewEncoder()
				for job := range c.encJobs {
					c.encode(enc, job)
				}
			}()
		}
		go c.run()
	}
	return c
}

// deliver hands over a worker's batch.
func (c *collector) deliver(b *evBatch) {
	if c.inline {
		c.process([]*evBatch{b})
		if b.last {
			c.finish()
		}
		return
	}
	c.in <- b
}

// wait blocks until every batch has been written.
func (c *collector) wait() {
	if !c.inline {
		<-c.done
	}
}

func (c *collector) run() {
	defer close(c.done)
	remaining := c.workers
	for remaining > 0 {
		b := <-c.in
		if b.last {
			remaining--
		}
		if !c.aligned {
			c.process([]*evBatch{b})
			continue
		}
		c.queues[b.worker] = append(c.queues[b.worker], b)
		if b.last {
			c.active[b.worker] = false
		}
		// Release every tick for which all still-running workers have
		// delivered their batch. Workers see the same ticks in the same
		// order, so the heads of the queues belong to the same tick.
		for {
			ready := true
			any := false
			for i := range c.queues {
				if len(c.queues[i]) == 0 {
					if c.active[i] {
						ready = false
					}
					continue
				}
				any = true
			}
			if !ready || !any {
				break
			}
			var group []*evBatch
			for i := range c.queues {
				if len(c.queues[i]) > 0 && (!c.queues[i][0].last || !c.active[i]) {
					group = append(group, c.queues[i][0])
					c.queues[i] = c.queues[i][1:]
				}
			}
			if len(group) == 0 {
				break
			}
			c.process(group)
		}
	}
	c.finish()
	close(c.encJobs)
	c.encWG.Wait()
}

// process orders a group of batches (one tick of every worker), classifies
// and writes their events.
func (c *collector) process(group []*evBatch) {
	var all []*event.Event
	if len(group) == 1 {
		all = group[0].events
	} else {
		n := 0
		for _, b := range group {
			n += len(b.events)
		}
		all = make([]*event.Event, 0, n)
		for _, b := range group {
			all = append(all, b.events...)
		}
	}
	// Order by the events' own packet times, then flow id: both depend only
	// on the packets, so one worker or many give the same order. Stable:
	// events of one flow come from one worker, already in order.
	slices.SortStableFunc(all, func(a, b *event.Event) int {
		if x := cmp.Compare(a.Timestamp, b.Timestamp); x != 0 {
			return x
		}
		return cmp.Compare(a.Phonehome.FlowID, b.Phonehome.FlowID)
	})
	// Each event goes to its encoder as soon as the classifier is done
	// with it (the alerts it raised follow it), so encoding runs alongside
	// the classifier instead of after the whole group.
	emit := func(ev *event.Event) { c.emitBuf = append(c.emitBuf, ev) }
	for _, ev := range all {
		if c.cfg.Classifier != nil {
			c.cfg.Classifier.Process(ev, emit)
		}
		c.send(ev)
		c.sendEmitted()
		c.now = max(c.now, ev.Timestamp)
	}
	tick := group[0].tick
	for _, b := range group {
		tick = max(tick, b.tick)
	}
	if c.cfg.Classifier != nil && !group[0].last {
		c.now = max(c.now, tick)
		c.cfg.Classifier.Tick(c.now, emit)
		c.sendEmitted()
	}
	c.flushJobs()
}

func (c *collector) finish() {
	if c.cfg.Classifier == nil {
		return
	}
	c.cfg.Classifier.Finish(c.now, func(ev *event.Event) { c.emitBuf = append(c.emitBuf, ev) })
	c.sendEmitted()
	c.flushJobs()
}

// encChunk is how many events one encoding job carries: enough that
// handing jobs over costs little, few enough that the encoders finish
// together, and that a worker of RunRecords that takes a job on while it
// waits for its turn (about 0.3 ms of encoding) does not keep the next
// worker waiting long.
const encChunk = 64

func (c *collector) sendEmitted() {
	for _, ev := range c.emitBuf {
		c.send(ev)
	}
	clear(c.emitBuf)
	c.emitBuf = c.emitBuf[:0]
}

// send hands an event to the encoders (with one worker, it is encoded and
// written at once).
func (c *collector) send(ev *event.Event) {
	if c.inline {
		c.write(c.enc, ev)
		return
	}
	if c.job == nil {
		c.job = &encJob{events: make([]*event.Event, 0, encChunk)}
	}
	c.job.events = append(c.job.events, ev)
	if len(c.job.events) >= encChunk {
		c.flushJobs()
	}
}

// flushJobs queues the job being filled, if it holds events.
func (c *collector) flushJobs() {
	j := c.job
	if j == nil || len(j.events) == 0 {
		return
	}
	c.job = nil
	c.slots <- struct{}{}
	j.seq = c.nextSeq
	c.nextSeq++
	c.encJobs <- j
}

// encode encodes a job's events, then writes every job whose turn has
// come: this one, if those before it are written, and the ones after it
// that are waiting for it.
func (c *collector) encode(enc *event.Encoder, j *encJob) {
	j.lines = make([]*buffer.Buffer, len(j.events))
	for i, ev := range j.events {
		j.lines[i] = c.encodeOne(enc, ev)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.pending[j.seq%encJobsInFlight] = j
	for {
		k := c.written % encJobsInFlight
		next := c.pending[k]
		if next == nil || next.seq != c.written {
			return
		}
		c.pending[k] = nil
		for i, ev := range next.events {
			if buf := next.lines[i]; buf != nil {
				c.writeLine(buf, ev)
			}
		}
		c.written++
		<-c.slots
	}
}

// write encodes and writes an event at once (one worker).
func (c *collector) write(enc *event.Encoder, ev *event.Event) {
	if buf := c.encodeOne(enc, ev); buf != nil {
		c.writeLine(buf, ev)
	}
}

// encodeOne encodes an event; nil (counted) when it cannot be.
func (c *collector) encodeOne(enc *event.Encoder, ev *event.Event) *buffer.Buffer {
	if ev.Observer == nil {
		ev.Observer = c.cfg.Observer
	}
	buf, err := enc.Encode(ev)
	if err != nil {
		c.stats.outErrors.Add(1)
		return nil
	}
	return buf
}

// writeLine writes an encoded event, frees its buffer and counts it.
func (c *collector) writeLine(buf *buffer.Buffer, ev *event.Event) {
	if err := c.out.Write(buf.Bytes(), ev.Phonehome.FlowID, ev.Dataset); err != nil {
		c.stats.outErrors.Add(1)
	}
	buf.Free()
	c.stats.countEvent(ev.Dataset)
	if ev.Kind == "alert" && ev.Rule != nil {
		c.stats.countAlert(ev.Rule.ID)
	}
}
