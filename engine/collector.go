package engine

import (
	"cmp"
	"slices"
	"sync"

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
	encJobs []chan []*event.Event // one per encoder: a flow always goes to the same one
	jobs    [][]*event.Event      // per encoder, the events of its next job
	encWG   sync.WaitGroup
	emitBuf []*event.Event
	noFlow  int // events of no flow sent so far
	now     int64
}

func newCollector(cfg Config, out Output, st *Stats, workers int, aligned bool) *collector {
	c := &collector{cfg: cfg, out: out, stats: st, workers: workers, aligned: aligned, inline: workers == 1,
		queues: make([][]*evBatch, workers), active: make([]bool, workers), enc: event.NewEncoder()}
	for i := range c.active {
		c.active[i] = true
	}
	if !c.inline {
		c.in = make(chan *evBatch, 4*workers)
		c.done = make(chan struct{})
		// Encoding is the costliest per-event step: spread it over as many
		// goroutines as there are workers.
		c.encJobs = make([]chan []*event.Event, workers)
		c.jobs = make([][]*event.Event, workers)
		for i := 0; i < workers; i++ {
			jobs := make(chan []*event.Event, 4)
			c.encJobs[i] = jobs
			c.encWG.Add(1)
			go func() {
				defer c.encWG.Done()
				enc := event.NewEncoder()
				for job := range jobs {
					for _, ev := range job {
						c.write(enc, ev)
					}
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
	for _, j := range c.encJobs {
		close(j)
	}
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

// encChunk is how many events one encoding job carries.
const encChunk = 512

func (c *collector) sendEmitted() {
	for _, ev := range c.emitBuf {
		c.send(ev)
	}
	clear(c.emitBuf)
	c.emitBuf = c.emitBuf[:0]
}

// send hands an event to its encoder. Encoding is spread over the encoders
// by flow id, so each flow's events keep their order in the output (Kafka
// partitions by flow). Events of no flow (host inventories, at the end of a
// run) take turns: by flow id they would all land on one encoder, which
// would then finish alone.
func (c *collector) send(ev *event.Event) {
	if c.inline {
		c.write(c.enc, ev)
		return
	}
	var i int
	if id := ev.Phonehome.FlowID; id != "" {
		i = int(fnv32(id) % uint32(c.workers))
	} else {
		i = c.noFlow % c.workers
		c.noFlow++
	}
	c.jobs[i] = append(c.jobs[i], ev)
	if len(c.jobs[i]) >= encChunk {
		c.encJobs[i] <- c.jobs[i]
		c.jobs[i] = nil
	}
}

// flushJobs sends the events still waiting for a full job.
func (c *collector) flushJobs() {
	for i, j := range c.jobs {
		if len(j) > 0 {
			c.encJobs[i] <- j
			c.jobs[i] = nil
		}
	}
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

func (c *collector) write(enc *event.Encoder, ev *event.Event) {
	if ev.Observer == nil {
		ev.Observer = c.cfg.Observer
	}
	buf, err := enc.Encode(ev)
	if err != nil {
		c.stats.outErrors.Add(1)
		return
	}
	if err := c.out.Write(buf.Bytes(), ev.Phonehome.FlowID, ev.Dataset); err != nil {
		c.stats.outErrors.Add(1)
	}
	buf.Free()
	c.stats.countEvent(ev.Dataset)
	if ev.Kind == "alert" && ev.Rule != nil {
		c.stats.countAlert(ev.Rule.ID)
	}
}
