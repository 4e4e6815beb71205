package live

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phonehome/phonehome/engine"
)

// fakeSource replays scripted results, then idles (ErrNoPacket after a
// short wait) until stopped or, with end set, returns io.EOF. It reuses one
// buffer for Data, as real sources do, and scribbles over it on each call
// so a consumer holding stale Data would see garbage.
type fakeSource struct {
	mu      sync.Mutex
	script  []fakeResult
	end     bool
	buf     []byte
	stopped atomic.Bool
	closed  atomic.Bool
	reads   atomic.Int64
	wait    time.Duration
	// drain: after Stop, the rest of the script still comes (a kernel
	// buffer being drained), then io.EOF.
	drain bool
}

type fakeResult struct {
	ts   int64
	data string
	err  error
}

func (s *fakeSource) Next() (engine.Frame, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.buf {
		s.buf[i] = 0xee
	}
	if s.stopped.Load() && (!s.drain || len(s.script) == 0) {
		return engine.Frame{}, io.EOF
	}
	if len(s.script) == 0 {
		if s.end {
			return engine.Frame{}, io.EOF
		}
		time.Sleep(s.wait)
		return engine.Frame{}, engine.ErrNoPacket
	}
	r := s.script[0]
	s.script = s.script[1:]
	if r.err != nil {
		return engine.Frame{}, r.err
	}
	s.reads.Add(1)
	s.buf = append(s.buf[:0], r.data...)
	return engine.Frame{Data: s.buf, Timestamp: r.ts, Length: len(r.data), LinkType: 1}, nil
}

func (s *fakeSource) Stop()        { s.stopped.Store(true) }
func (s *fakeSource) Close() error { s.closed.Store(true); return nil }
func (s *fakeSource) Stats() (Stats, error) {
	return Stats{Delivered: uint64(s.reads.Load()), Received: uint64(s.reads.Load())}, nil
}

func frames(prefix string, tss ...int64) []fakeResult {
	out := make([]fakeResult, len(tss))
	for i, ts := range tss {
		out[i] = fakeResult{ts: ts, data: fmt.Sprintf("%s%d", prefix, ts)}
	}
	return out
}

// TestMergeOrder: once every input's frames are waiting, Next interleaves
// them by timestamp, keeps each input's order, hands out Data that stays
// intact until the next call, and ends with io.EOF when all inputs ended.
func TestMergeOrder(t *testing.T) {
	a := &fakeSource{script: frames("a", 1, 4, 6, 9), end: true}
	b := &fakeSource{script: frames("b", 2, 3, 7, 8, 10), end: true}
	c := &fakeSource{script: frames("c", 5), end: true}
	m := Merge(50*time.Millisecond, a, b, c)
	defer m.Close()
	// Let the readers fill their slots so the order is decidable.
	time.Sleep(50 * time.Millisecond)
	var got []string
	for {
		fr, err := m.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(fr.Data))
	}
	want := "[a1 b2 b3 a4 c5 a6 b7 b8 a9 b10]"
	if fmt.Sprint(got) != want {
		t.Errorf("got %v, want %s", got, want)
	}
	if st, _ := m.Stats(); st.Delivered != 10 {
		t.Errorf("stats %+v", st)
	}
}

// TestMergeBackPressure: an input far longer than the slots is delivered
// whole and in order (readers wait for free slots rather than drop).
func TestMergeBackPressure(t *testing.T) {
	n := mergeSlots*3 + 7
	tss := make([]int64, n)
	for i := range tss {
		tss[i] = int64(i + 1)
	}
	a := &fakeSource{script: frames("x", tss...), end: true}
	m := Merge(50*time.Millisecond, a)
	defer m.Close()
	for i := range n {
		fr, err := m.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if want := fmt.Sprintf("x%d", i+1); string(fr.Data) != want || fr.Timestamp != int64(i+1) {
			t.Fatalf("frame %d: %q ts %d", i, fr.Data, fr.Timestamp)
		}
	}
	if _, err := m.Next(); err != io.EOF {
		t.Errorf("after the end: %v", err)
	}
}

// TestMergeIdleErrorStop: an idle merge returns ErrNoPacket after its
// timeout, forwards an input's error, and Stop ends it with io.EOF within a
// second; Close closes every input.
func TestMergeIdleErrorStop(t *testing.T) {
	boom := errors.New("boom")
	a := &fakeSource{script: []fakeResult{{err: boom}}, wait: 10 * time.Millisecond}
	b := &fakeSource{wait: 10 * time.Millisecond}
	m := Merge(30*time.Millisecond, a, b)
	if _, err := m.Next(); !errors.Is(err, boom) {
		t.Fatalf("first Next: %v, want the input's error", err)
	}
	start := time.Now()
	if _, err := m.Next(); !errors.Is(err, engine.ErrNoPacket) {
		t.Fatalf("idle Next: %v", err)
	}
	if d := time.Since(start); d < 25*time.Millisecond || d > time.Second {
		t.Errorf("idle Next returned after %v", d)
	}
	done := make(chan error, 1)
	go func() { done <- drainErr(m) }()
	time.Sleep(20 * time.Millisecond)
	m.Stop()
	select {
	case err := <-done:
		if err != io.EOF {
			t.Errorf("after Stop: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Stop did not end Next")
	}
	if !a.stopped.Load() || !b.stopped.Load() {
		t.Error("Stop did not stop the inputs")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if !a.closed.Load() || !b.closed.Load() {
		t.Error("Close did not close the inputs")
	}
}

// TestMergeZeroAlloc: steady-state Next allocates nothing.
func TestMergeZeroAlloc(t *testing.T) {
	n := 5000
	tss := make([]int64, n)
	for i := range tss {
		tss[i] = int64(i + 1)
	}
	m := Merge(time.Second, &fakeSource{script: frames("y", tss...), end: true})
	defer m.Close()
	for range 100 { // warm the slot buffers
		if _, err := m.Next(); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := m.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per Next", allocs)
	}
}

// TestMergeDrainsOnStop: after Stop, what every input still holds (its
// kernel buffer) is delivered, each input's frames in order, before io.EOF.
func TestMergeDrainsOnStop(t *testing.T) {
	n := mergeSlots + 50 // more than the slots: some stays in the sources
	ta, tb := make([]int64, n), make([]int64, n)
	for i := range n {
		ta[i], tb[i] = int64(2*i+1), int64(2*i+2)
	}
	a := &fakeSource{script: frames("a", ta...), drain: true, wait: time.Millisecond}
	b := &fakeSource{script: frames("b", tb...), drain: true, wait: time.Millisecond}
	m := Merge(20*time.Millisecond, a, b)
	defer m.Close()
	first, err := m.Next()
	if err != nil {
		t.Fatal(err)
	}
	last := map[byte]int64{first.Data[0]: first.Timestamp}
	m.Stop()
	got := 1
	for {
		fr, err := m.Next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, engine.ErrNoPacket) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		in := fr.Data[0]
		if fr.Timestamp <= last[in] {
			t.Fatalf("input %c: frame at %d after %d", in, fr.Timestamp, last[in])
		}
		last[in] = fr.Timestamp
		got++
	}
	if got != 2*n {
		t.Fatalf("%d frames delivered after Stop, want all %d", got, 2*n)
	}
}
