package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Queue defaults and bounds.
const (
	// DefaultQueueSize is the number of records a Queue holds when
	// QueueConfig.Size is zero.
	DefaultQueueSize = 8192
	// MaxQueueSize bounds QueueConfig.Size (records, each one JSON line).
	MaxQueueSize = 1 << 20
	// DefaultCloseTimeout bounds how long Close drains and flushes.
	DefaultCloseTimeout = 10 * time.Second
	// retryMin and retryMax bound the Block-mode retry backoff.
	retryMin = 50 * time.Millisecond
	retryMax = 5 * time.Second
)

// Mode selects what a Queue does when its sink cannot keep up.
type Mode uint8

const (
	// ModeBlock never drops: a full queue blocks the producer and a failing
	// write is retried with backoff. For replaying captures.
	ModeBlock Mode = iota
	// ModeDrop never blocks the producer: a full queue drops the record and a
	// failed write is not retried. Drops are counted. For live capture.
	ModeDrop
)

// String returns the configuration name of the mode.
func (m Mode) String() string {
	if m == ModeDrop {
		return "drop"
	}
	return "block"
}

// ParseMode parses "block" or "drop" (empty means block).
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "block":
		return ModeBlock, nil
	case "drop":
		return ModeDrop, nil
	}
	return 0, fmt.Errorf("queue: mode %q: want \"block\" or \"drop\"", s)
}

// QueueConfig configures a Queue.
type QueueConfig struct {
	// Size is the queue capacity in records; 0 means DefaultQueueSize.
	Size int `yaml:"size"`
	// Mode is "block" (default, replay) or "drop" (live capture).
	Mode string `yaml:"mode"`
	// CloseTimeout bounds draining on Close; 0 means DefaultCloseTimeout.
	CloseTimeout time.Duration `yaml:"close_timeout"`
}

// Validate reports the first problem in the configuration.
func (c QueueConfig) Validate() error {
	if c.Size < 0 || c.Size > MaxQueueSize {
		return fmt.Errorf("queue: size %d out of range 0..%d", c.Size, MaxQueueSize)
	}
	if c.CloseTimeout < 0 {
		return fmt.Errorf("queue: close_timeout %v is negative", c.CloseTimeout)
	}
	_, err := ParseMode(c.Mode)
	return err
}

// Stats is a snapshot of a Queue's counters.
//
// Every record offered to Write ends up in exactly one of: Written, Dropped,
// or still queued (Depth). Errors counts failed sink calls (a record retried
// three times in Block mode adds three errors).
type Stats struct {
	Name     string
	Mode     Mode
	Enqueued uint64 // accepted into the queue
	Written  uint64 // sink.Write returned nil
	// Dropped counts records lost: queue full (Drop mode), offered after
	// Close or with a cancelled context, failed writes (Drop mode, or
	// ErrInvalidRecord), and records abandoned when Close timed out.
	Dropped  uint64
	Errors   uint64 // sink Write/Flush errors
	Depth    int    // records waiting now
	Capacity int
	// Sink holds the sink's own counters if it reports any.
	Sink SinkStats
}

// Queue is a bounded buffer in front of a Sink with one writer goroutine.
// Queue itself implements Sink, so it can be used wherever a Sink is expected.
// Its methods are safe for concurrent use.
type Queue struct {
	sink         Sink
	mode         Mode
	closeTimeout time.Duration
	ch           chan Record

	// mu guards closed: Write holds it shared while sending so that Close can
	// wait for in-flight sends before draining, and no record slips into the
	// channel after the final drain.
	mu     sync.RWMutex
	closed bool
	stop   chan struct{} // closed first by Close: unblocks blocked producers
	drain  chan struct{} // closed once no producer can send any more
	done   chan struct{} // closed when the writer goroutine exits
	once   sync.Once
	cerr   error

	// wctx is passed to sink.Write; cancelled when Close times out so a
	// stuck sink that honours ctx lets go.
	wctx    context.Context
	wcancel context.CancelFunc

	enqueued, written, dropped, errs atomic.Uint64
	lastErr                          atomic.Pointer[error]
}

var (
	_ Sink     = (*Queue)(nil)
	_ Reopener = (*Queue)(nil)
)

// NewQueue starts a Queue feeding s. The Queue owns s: Queue.Close closes it.
func NewQueue(s Sink, cfg QueueConfig) (*Queue, error) {
	if s == nil {
		return nil, errors.New("queue: nil sink")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	mode, _ := ParseMode(cfg.Mode)
	size := cfg.Size
	if size == 0 {
		size = DefaultQueueSize
	}
	ct := cfg.CloseTimeout
	if ct == 0 {
		ct = DefaultCloseTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	q := &Queue{
		sink:         s,
		mode:         mode,
		closeTimeout: ct,
		ch:           make(chan Record, size),
		stop:         make(chan struct{}),
		drain:        make(chan struct{}),
		done:         make(chan struct{}),
		wctx:         ctx,
		wcancel:      cancel,
	}
	go q.run()
	return q, nil
}

// Name returns the wrapped sink's name.
func (q *Queue) Name() string { return q.sink.Name() }

// Sink returns the wrapped sink.
func (q *Queue) Sink() Sink { return q.sink }

// Write enqueues r. In Block mode it waits for room until ctx is done; in
// Drop mode it never waits and returns ErrQueueFull when the record was
// dropped. After Close it returns ErrClosed. Records not accepted are counted
// as dropped.
func (q *Queue) Write(ctx context.Context, r Record) error {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		q.dropped.Add(1)
		return ErrClosed
	}
	if q.mode == ModeDrop {
		select {
		case q.ch <- r:
			q.enqueued.Add(1)
			return nil
		default:
			q.dropped.Add(1)
			return ErrQueueFull
		}
	}
	select {
	case q.ch <- r:
		q.enqueued.Add(1)
		return nil
	default:
	}
	select {
	case q.ch <- r:
		q.enqueued.Add(1)
		return nil
	case <-q.stop:
		q.dropped.Add(1)
		return ErrClosed
	case <-ctx.Done():
		q.dropped.Add(1)
		return fmt.Errorf("queue %s: %w", q.Name(), ctx.Err())
	}
}

// run is the writer goroutine.
func (q *Queue) run() {
	defer close(q.done)
	for {
		select {
		case r := <-q.ch:
			q.deliver(r)
			if len(q.ch) == 0 {
				q.flush()
			}
		case <-q.drain:
			for {
				select {
				case r := <-q.ch:
					if q.wctx.Err() != nil {
						q.dropped.Add(1)
						continue
					}
					q.deliver(r)
				default:
					q.flush()
					return
				}
			}
		}
	}
}

// deliver writes one record, retrying in Block mode until it succeeds, the
// record is invalid, or Close has timed out.
func (q *Queue) deliver(r Record) {
	backoff := retryMin
	for {
		err := q.sink.Write(q.wctx, r)
		if err == nil {
			q.written.Add(1)
			return
		}
		q.noteErr(err)
		if q.mode == ModeDrop || errors.Is(err, ErrInvalidRecord) || q.wctx.Err() != nil {
			q.dropped.Add(1)
			return
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-q.wctx.Done():
			t.Stop()
			q.dropped.Add(1)
			return
		}
		backoff = min(backoff*2, retryMax)
	}
}

func (q *Queue) flush() {
	if f, ok := q.sink.(Flusher); ok {
		if err := f.Flush(); err != nil {
			q.noteErr(err)
		}
	}
}

func (q *Queue) noteErr(err error) {
	q.errs.Add(1)
	q.lastErr.Store(&err)
}

// LastError returns the most recent sink error, or nil.
func (q *Queue) LastError() error {
	if p := q.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Reopen forwards to the sink if it is a Reopener, else does nothing. It is
// called concurrently with the writer goroutine; sinks in this package lock.
func (q *Queue) Reopen() error {
	if r, ok := q.sink.(Reopener); ok {
		return r.Reopen()
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (q *Queue) Stats() Stats {
	s := Stats{
		Name:     q.Name(),
		Mode:     q.mode,
		Enqueued: q.enqueued.Load(),
		Written:  q.written.Load(),
		Dropped:  q.dropped.Load(),
		Errors:   q.errs.Load(),
		Depth:    len(q.ch),
		Capacity: cap(q.ch),
	}
	if sr, ok := q.sink.(StatsReporter); ok {
		s.Sink = sr.SinkStats()
	}
	return s
}

// Close stops accepting records, drains the queue into the sink, flushes it
// and closes it, all within the configured close timeout. Records still
// queued when the timeout expires are counted as dropped. Close is
// idempotent.
func (q *Queue) Close() error {
	q.once.Do(func() { q.cerr = q.close() })
	return q.cerr
}

func (q *Queue) close() error {
	close(q.stop) // blocked producers give up
	q.mu.Lock()   // wait for in-flight sends
	q.closed = true
	q.mu.Unlock()
	close(q.drain)

	var errs []error
	t := time.NewTimer(q.closeTimeout)
	defer t.Stop()
	select {
	case <-q.done:
	case <-t.C:
		q.wcancel()
		errs = append(errs, fmt.Errorf("queue %s: close timed out after %v with %d records queued",
			q.Name(), q.closeTimeout, len(q.ch)))
		// Give a sink that honours ctx a moment to return; a sink that does
		// not is abandoned with its goroutine rather than hanging shutdown.
		grace := time.NewTimer(time.Second)
		select {
		case <-q.done:
		case <-grace.C:
			grace.Stop()
			q.dropped.Add(uint64(len(q.ch)))
			// Close may be what unblocks the stuck Write (all sinks here
			// allow Close concurrently with Write); do not wait for it.
			go q.sink.Close()
			return errors.Join(append(errs, fmt.Errorf("queue %s: sink is stuck; closing it in the background", q.Name()))...)
		}
		grace.Stop()
	}
	q.wcancel()
	if err := q.sink.Close(); err != nil {
		errs = append(errs, fmt.Errorf("queue %s: close sink: %w", q.Name(), err))
	}
	return errors.Join(errs...)
}
