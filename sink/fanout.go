package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Fanout writes every record to several queues. Each output has its own Queue,
// so a slow output only affects itself (in Drop mode) or the producer (in
// Block mode), never its siblings' buffering.
type Fanout struct {
	queues []*Queue
}

var (
	_ Sink     = (*Fanout)(nil)
	_ Reopener = (*Fanout)(nil)
)

// NewFanout returns a Fanout over qs. It owns them: Close closes them all.
func NewFanout(qs ...*Queue) *Fanout {
	return &Fanout{queues: append([]*Queue(nil), qs...)}
}

// Name lists the outputs.
func (f *Fanout) Name() string {
	names := make([]string, len(f.queues))
	for i, q := range f.queues {
		names[i] = q.Name()
	}
	return "fanout(" + strings.Join(names, ",") + ")"
}

// Queues returns the queues in the order given.
func (f *Fanout) Queues() []*Queue { return f.queues }

// Write hands r to every queue. The same Line and Key slices are shared by
// all queues; sinks only read them. The error joins every queue's error.
func (f *Fanout) Write(ctx context.Context, r Record) error {
	var errs []error
	for _, q := range f.queues {
		if err := q.Write(ctx, r); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Reopen reopens every output that supports it (SIGHUP).
func (f *Fanout) Reopen() error {
	var errs []error
	for _, q := range f.queues {
		if err := q.Reopen(); err != nil {
			errs = append(errs, fmt.Errorf("reopen %s: %w", q.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// Stats returns every queue's counters.
func (f *Fanout) Stats() []Stats {
	out := make([]Stats, len(f.queues))
	for i, q := range f.queues {
		out[i] = q.Stats()
	}
	return out
}

// Close closes all queues concurrently (each drains within its own timeout).
func (f *Fanout) Close() error {
	errc := make(chan error, len(f.queues))
	for _, q := range f.queues {
		go func() { errc <- q.Close() }()
	}
	var errs []error
	for range f.queues {
		if err := <-errc; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
