package live

import (
	"errors"
	"io"
	"math"
	"sync"
	"time"

	"github.com/phonehome/phonehome/engine"
)

// mergeSlots is how many frames each input of a merge may have read ahead
// (copied, waiting for the consumer). When they are all taken the input's
// reader waits, so the kernel buffer absorbs the backlog (and counts what it
// drops); nothing is dropped in user space.
const mergeSlots = 128

// slot holds one frame copied out of an input's buffer.
type slot struct {
	input int
	frame engine.Frame
	buf   []byte // backing store of frame.Data, reused
	err   error  // non-nil: the input failed (io.EOF: it ended)
}

// mergeInput is one merged source and its slots.
type mergeInput struct {
	src   Source
	free  chan *slot // slots the reader may fill
	queue []*slot    // filled slots in read order, owned by the consumer
	done  bool       // the input ended (its io.EOF slot was consumed)
}

// Merged interleaves several sources (the interfaces of one capture) into
// one engine.Source: one goroutine reads each input and copies its frames
// into that input's slots; Next returns the waiting frame with the smallest
// timestamp, each input's own order kept. Frames arrive in blocks from the
// kernel, so interfaces are merged in time order only as far as their frames
// are already waiting. Next is not safe for concurrent use.
type Merged struct {
	inputs []*mergeInput
	ready  chan *slot // filled slots from every reader
	// closed tells the readers that the consumer is gone (Close): a reader
	// waiting for a free slot leaves. Stop only stops the inputs, which then
	// drain their kernel buffers and end, and Next delivers all of it.
	closed  chan struct{}
	stopMu  sync.Once
	closeMu sync.Once
	timeout time.Duration
	timer   *time.Timer
	last    *slot // returned by the previous Next; recycled on the next
	readers sync.WaitGroup
	live    int // inputs not yet ended
}

var _ Source = (*Merged)(nil)

// Merge starts reading srcs; Next returns io.EOF once every input ended.
// readTimeout is how long Next waits for any input before it returns
// engine.ErrNoPacket.
func Merge(readTimeout time.Duration, srcs ...Source) *Merged {
	m := &Merged{
		inputs:  make([]*mergeInput, len(srcs)),
		ready:   make(chan *slot, len(srcs)*mergeSlots),
		closed:  make(chan struct{}),
		timeout: readTimeout,
		timer:   time.NewTimer(time.Hour),
		live:    len(srcs),
	}
	m.timer.Stop()
	for i, src := range srcs {
		in := &mergeInput{src: src, free: make(chan *slot, mergeSlots), queue: make([]*slot, 0, mergeSlots)}
		for range mergeSlots {
			in.free <- &slot{input: i}
		}
		m.inputs[i] = in
		m.readers.Add(1)
		go m.read(in)
	}
	return m
}

// read copies one input's frames into its free slots until it ends.
func (m *Merged) read(in *mergeInput) {
	defer m.readers.Done()
	for {
		var s *slot
		select {
		case s = <-in.free:
		case <-m.closed:
			// The consumer is gone: report the end if a slot frees up,
			// otherwise just leave (Close only waits for readers).
			select {
			case s = <-in.free:
				s.err = io.EOF
				m.ready <- s
			default:
			}
			return
		}
		fr, err := in.src.Next()
		if err != nil {
			if errors.Is(err, engine.ErrNoPacket) {
				in.free <- s // idle: the consumer has its own timer
				continue
			}
			s.err = err
			m.ready <- s
			if errors.Is(err, io.EOF) {
				return
			}
			continue
		}
		s.buf = append(s.buf[:0], fr.Data...)
		s.frame = fr
		s.frame.Data = s.buf
		s.err = nil
		m.ready <- s
	}
}

// Next returns the earliest waiting frame; Data is valid until the next call.
func (m *Merged) Next() (engine.Frame, error) {
	if m.last != nil {
		m.inputs[m.last.input].free <- m.last
		m.last = nil
	}
	for {
		m.drain()
		if s := m.pick(); s != nil {
			if s.err != nil {
				in := m.inputs[s.input]
				err := s.err
				s.err = nil
				if errors.Is(err, io.EOF) {
					in.done = true
					m.live--
					// Nothing more will come from this input.
					continue
				}
				in.free <- s
				return engine.Frame{}, err
			}
			m.last = s
			return s.frame, nil
		}
		if m.live == 0 {
			return engine.Frame{}, io.EOF
		}
		m.timer.Reset(m.timeout)
		select {
		case s := <-m.ready:
			m.timer.Stop()
			m.enqueue(s)
		case <-m.timer.C:
			return engine.Frame{}, engine.ErrNoPacket
		case <-m.closed:
			m.timer.Stop()
			return engine.Frame{}, io.EOF
		}
	}
}

// drain moves every filled slot waiting on the channel to its input's queue.
func (m *Merged) drain() {
	for {
		select {
		case s := <-m.ready:
			m.enqueue(s)
		default:
			return
		}
	}
}

func (m *Merged) enqueue(s *slot) {
	in := m.inputs[s.input]
	in.queue = append(in.queue, s)
}

// pick removes and returns the head with the smallest timestamp (errors
// first), or nil when no input has one waiting.
func (m *Merged) pick() *slot {
	best, bestTS := -1, int64(math.MaxInt64)
	for i, in := range m.inputs {
		if len(in.queue) == 0 {
			continue
		}
		h := in.queue[0]
		ts := h.frame.Timestamp
		if h.err != nil {
			ts = math.MinInt64
		}
		if best < 0 || ts < bestTS {
			best, bestTS = i, ts
		}
	}
	if best < 0 {
		return nil
	}
	in := m.inputs[best]
	s := in.queue[0]
	// Shift rather than reslice so the queue's array is reused; it holds
	// at most mergeSlots entries.
	n := copy(in.queue, in.queue[1:])
	in.queue[n] = nil
	in.queue = in.queue[:n]
	return s
}

// Stop stops every input. Each goes on delivering what its kernel buffer
// already holds (for at most drainLimit) and then ends; Next returns all of
// it, interleaved as before, and io.EOF once every input ended, so a
// shutdown loses no captured packet on any interface.
func (m *Merged) Stop() {
	m.stopMu.Do(func() {
		for _, in := range m.inputs {
			in.src.Stop()
		}
	})
}

// Close stops, waits for the readers (at most a read timeout) and closes
// every input. Next must not be running or called again.
func (m *Merged) Close() error {
	m.Stop()
	m.closeMu.Do(func() { close(m.closed) })
	m.readers.Wait()
	var errs []error
	for _, in := range m.inputs {
		errs = append(errs, in.src.Close())
	}
	return errors.Join(errs...)
}

// Stats sums the inputs' counters.
func (m *Merged) Stats() (Stats, error) {
	var sum Stats
	var errs []error
	for _, in := range m.inputs {
		st, err := in.src.Stats()
		sum.Add(st)
		errs = append(errs, err)
	}
	return sum, errors.Join(errs...)
}
