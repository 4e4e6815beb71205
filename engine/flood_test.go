package engine_test

import (
	"encoding/binary"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/phonehome/phonehome/capture/decode"
	"github.com/phonehome/phonehome/capture/flow"
	"github.com/phonehome/phonehome/classify/dissect"
	"github.com/phonehome/phonehome/engine"
)

// floodSource yields n TCP SYNs (and a few UDP datagrams) with random
// 5-tuples: every packet a new flow.
type floodSource struct {
	rng   *rand.Rand
	n, i  int
	frame [64]byte
	ts    int64
}

func (s *floodSource) Next() (engine.Frame, error) {
	if s.i >= s.n {
		return engine.Frame{}, io.EOF
	}
	s.i++
	s.ts += 1000 // 1 µs apart: a flood, well inside every timeout
	f := s.frame[:54]
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0], ip[9] = 0x45, 6
	binary.BigEndian.PutUint16(ip[2:], 40)
	binary.BigEndian.PutUint32(ip[12:], s.rng.Uint32())
	binary.BigEndian.PutUint32(ip[16:], s.rng.Uint32())
	tcp := ip[20:]
	binary.BigEndian.PutUint32(tcp[0:], s.rng.Uint32())
	tcp[12], tcp[13] = 5<<4, decode.TCPSyn
	return engine.Frame{Data: f, Timestamp: s.ts, Length: len(f), LinkType: decode.LinkTypeEthernet}, nil
}

type discard struct{}

func (discard) Write([]byte, string, string) error { return nil }

// TestFloodFlowCap sends a flood of new flows (random 5-tuples): the flow
// cap holds, every flow beyond it is evicted and counted, and memory stays
// bounded by the cap, not by the flood.
func TestFloodFlowCap(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 200_000
	}
	const maxFlows = 20_000
	var ds dissect.Stats
	var peakHeap uint64
	var ms runtime.MemStats
	st := &engine.Stats{}
	cfg := engine.Config{
		Workers:     2,
		Flow:        flow.Config{MaxFlows: maxFlows},
		NewAnalyzer: dissect.New(dissect.Config{}, 2, &ds),
		Stats:       st,
	}
	src := &floodSource{rng: rand.New(rand.NewPCG(3, 4)), n: n}
	// Sample the heap as the flood goes, not only at the end.
	sampled := &sampling{Source: src, every: 100_000, f: func() {
		// Live heap after a collection: what the flood keeps, not garbage
		// the collector has yet to reclaim.
		runtime.GC()
		runtime.ReadMemStats(&ms)
		peakHeap = max(peakHeap, ms.HeapAlloc)
	}}
	if _, err := engine.Run(sampled, discard{}, cfg); err != nil {
		t.Fatal(err)
	}
	fs := st.Flows()
	if fs.Created != uint64(n) {
		t.Fatalf("created %d flows, want %d", fs.Created, n)
	}
	if fs.Evicted < uint64(n-maxFlows) || fs.Evicted > uint64(n) {
		t.Fatalf("evicted %d, want at least %d", fs.Evicted, n-maxFlows)
	}
	if fs.Ended[flow.EndEvicted] != fs.Evicted {
		t.Fatalf("eviction records %d != evictions %d", fs.Ended[flow.EndEvicted], fs.Evicted)
	}
	// 20,000 flows of a few hundred bytes each, plus batches and events in
	// flight: far below what a million flows would take (> 300 MiB).
	const heapLimit = 96 << 20
	if peakHeap > heapLimit {
		t.Fatalf("peak heap %d MiB over %d MiB", peakHeap>>20, heapLimit>>20)
	}
	t.Logf("%d flows, cap %d: evicted %d, peak heap %d MiB", n, maxFlows, fs.Evicted, peakHeap>>20)
}

type sampling struct {
	engine.Source
	every, i int
	f        func()
}

func (s *sampling) Next() (engine.Frame, error) {
	s.i++
	if s.i%s.every == 0 {
		s.f()
	}
	return s.Source.Next()
}
