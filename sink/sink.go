// Package sink delivers finished event lines (one ECS JSON object each) to
// outputs: stdout or any io.Writer, rotated files, syslog (RFC 5424 over UDP,
// TCP or TLS) and Kafka. Sinks never encode events; they frame and ship the
// bytes the producer hands them.
//
// A Sink is called from one goroutine at a time by a Queue, which decouples
// capture from slow outputs (Block mode for replay, Drop mode for live
// capture) and counts what happens to every record. Fanout feeds several
// queues at once.
package sink

import (
	"context"
	"errors"
	"time"
)

// Record is one event ready for output.
//
// Ownership: a Sink (and a Queue) takes ownership of Line and Key; the caller
// must not modify either slice after Write returns. The producer allocates a
// fresh slice per record, so no copy is made.
type Record struct {
	// Line is one JSON object without a trailing newline.
	Line []byte
	// Key is the flow id. Kafka uses it as the partition key so the events of
	// one flow stay in order.
	Key []byte
	// Time is the event time (syslog TIMESTAMP, Kafka record timestamp).
	// The zero value means "now".
	Time time.Time
	// Dataset names the event kind, e.g. "phonehome.flow" (syslog MSGID,
	// metrics label).
	Dataset string
}

// Sink is an output for event lines.
//
// Write is not required to be safe for concurrent use unless the
// implementation says so; a Queue calls it from a single goroutine. All sinks
// in this package are nevertheless safe for concurrent use.
type Sink interface {
	// Name identifies the sink in logs and metrics.
	Name() string
	// Write delivers or buffers one record. It may block; ctx bounds the wait
	// where the sink can honour it.
	Write(ctx context.Context, r Record) error
	// Close flushes what is buffered and releases resources.
	Close() error
}

// Flusher is implemented by sinks that buffer. A Queue calls Flush whenever it
// runs empty, so buffered lines reach their destination promptly when the
// event rate is low and are batched when it is high.
type Flusher interface {
	Flush() error
}

// Reopener is implemented by sinks that hold a named resource that can be
// reopened, e.g. a file moved away by logrotate (SIGHUP).
type Reopener interface {
	Reopen() error
}

// StatsReporter is implemented by sinks that keep counters of their own
// (truncations, asynchronous delivery failures, reconnects).
type StatsReporter interface {
	SinkStats() SinkStats
}

// SinkStats are counters a sink keeps beyond what its Queue sees. Fields a
// sink does not track stay zero.
type SinkStats struct {
	// Delivered counts records confirmed by the destination (Kafka acks).
	Delivered uint64
	// Failed counts records lost after Write returned nil (Kafka async
	// produce errors, syslog buffered data lost on a broken connection).
	Failed uint64
	// Truncated counts messages cut to the configured maximum size.
	Truncated uint64
	// Reconnects counts successful (re)connections after the first.
	Reconnects uint64
	// Rotations counts file rotations.
	Rotations uint64
}

// ErrInvalidRecord marks a record the sink can never deliver (e.g. too large
// for the protocol). A Queue in Block mode drops such records instead of
// retrying them forever.
var ErrInvalidRecord = errors.New("sink: invalid record")

// ErrUnavailable marks a sink that is waiting before reconnecting; the record
// was not sent.
var ErrUnavailable = errors.New("sink: destination unavailable")

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("sink: closed")

// ErrQueueFull is returned by a Drop-mode Queue when it had to drop a record.
var ErrQueueFull = errors.New("sink: queue full, record dropped")
