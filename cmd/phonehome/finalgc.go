package main

import (
	"runtime/debug"
	"runtime/metrics"
)

// finalGC turns the garbage collector off for what is left of a replay
// once its capture is read: the flows still open are flushed, their events
// written, and the process exits. A collection then only frees memory that
// nothing reuses, yet the flush's allocations brought one on at the end of
// most replays of the bench capture, its mark assists slowing that end of
// the run. A memory limit of twice the heap goal so far (plus 64 MiB)
// still bounds the heap: past it, the collector runs. "Off" is a percentage
// so high that only the limit counts, not -1: SetGCPercent(-1) waits for a
// collection under way to finish, on the worker that read the end of the
// capture. restore puts the settings back (tests run many replays in one
// process).
type finalGC struct {
	set     bool
	percent int
	limit   int64
}

func (g *finalGC) skip() {
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	limit := int64(64 << 20)
	if s[0].Value.Kind() == metrics.KindUint64 {
		limit += 2 * int64(s[0].Value.Uint64())
	}
	g.limit = debug.SetMemoryLimit(limit)
	g.percent = debug.SetGCPercent(gcPercentOff)
	g.set = true
}

// gcPercentOff puts the next collection past any heap a replay reaches.
const gcPercentOff = 1 << 20

func (g *finalGC) restore() {
	if g.set {
		debug.SetGCPercent(g.percent)
		debug.SetMemoryLimit(g.limit)
		g.set = false
	}
}
