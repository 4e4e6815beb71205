package main

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestFinalGC: skip turns the collector off under a memory limit, restore
// puts both settings back.
func TestFinalGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	var g finalGC
	g.skip()
	if p := debug.SetGCPercent(100); p != gcPercentOff {
		t.Errorf("GC percent %d after skip, want %d", p, gcPercentOff)
	}
	debug.SetGCPercent(gcPercentOff)
	if l := debug.SetMemoryLimit(-1); l == math.MaxInt64 || l < 64<<20 {
		t.Errorf("memory limit %d after skip", l)
	}
	g.restore()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GC percent %d after restore, want 100", p)
	}
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		t.Errorf("memory limit %d after restore", l)
	}
	g.restore() // a second restore changes nothing
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GC percent %d after a second restore", p)
	}
}

// TestReplayRestoresGC: a replay, with one worker or several, leaves the
// collector as it found it.
func TestReplayRestoresGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, workers := range []string{"1", "2"} {
		if code, _, stderr := runCLI(t, nil, "replay", "--quiet", "--workers", workers, sample(t)); code != 0 {
			t.Fatalf("replay: exit %d: %s", code, stderr)
		}
		if p := debug.SetGCPercent(100); p != 100 {
			t.Errorf("%s workers: GC percent %d after the replay", workers, p)
		}
		if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
			t.Errorf("%s workers: memory limit %d after the replay", workers, l)
		}
	}
}
