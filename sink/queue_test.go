package sink

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memSink records lines; it can be made to block (stuck) or fail.
type memSink struct {
	mu      sync.Mutex
	lines   [][]byte
	release chan struct{} // Write waits on it when non-nil
	failN   atomic.Int64  // fail this many writes first
	flushes atomic.Int64
	closed  atomic.Bool
}

func (m *memSink) Name() string { return "mem" }

func (m *memSink) Write(ctx context.Context, r Record) error {
	if m.release != nil {
		select {
		case <-m.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if m.failN.Add(-1) >= 0 {
		return errors.New("mem: injected failure")
	}
	m.mu.Lock()
	m.lines = append(m.lines, r.Line)
	m.mu.Unlock()
	return nil
}

func (m *memSink) Flush() error { m.flushes.Add(1); return nil }
func (m *memSink) Close() error { m.closed.Store(true); return nil }

func (m *memSink) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.lines)
}

func rec(i int) Record {
	return Record{Line: fmt.Appendf(nil, `{"seq":%d}`, i), Key: []byte("k"), Dataset: "phonehome.test"}
}

func TestQueueDropModeNeverBlocksAndCountsDrops(t *testing.T) {
	stuck := &memSink{release: make(chan struct{})}
	q, err := NewQueue(stuck, QueueConfig{Size: 8, Mode: "drop", CloseTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000
	var full int
	// Every write must return while the sink is still stuck: a blocking
	// Write would never finish. (No timing bound: the machine may be slow.)
	done := make(chan error, 1)
	go func() {
		for i := range n {
			err := q.Write(context.Background(), rec(i))
			if errors.Is(err, ErrQueueFull) {
				full++
			} else if err != nil {
				done <- fmt.Errorf("Write %d: %w", i, err)
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("drop-mode writes blocked behind a stuck sink")
	}
	st := q.Stats()
	// The writer holds at most one record in the stuck sink, the queue 8.
	if st.Enqueued > 9 || st.Enqueued+st.Dropped != n || st.Dropped != uint64(full) {
		t.Fatalf("stats %+v, full errors %d", st, full)
	}
	if st.Depth != 8 || st.Capacity != 8 {
		t.Fatalf("depth %d cap %d, want 8/8", st.Depth, st.Capacity)
	}
	close(stuck.release)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	st = q.Stats()
	if st.Written != st.Enqueued || stuck.count() != int(st.Enqueued) || !stuck.closed.Load() {
		t.Fatalf("after close: %+v, sink got %d", st, stuck.count())
	}
}

func TestQueueBlockModeBlocksAndLosesNothing(t *testing.T) {
	stuck := &memSink{release: make(chan struct{})}
	q, err := NewQueue(stuck, QueueConfig{Size: 4, Mode: "block"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	var produced atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			if err := q.Write(context.Background(), rec(i)); err != nil {
				t.Errorf("Write %d: %v", i, err)
				return
			}
			produced.Add(1)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	if p := produced.Load(); p > 5 {
		t.Fatalf("producer got %d records past a stuck sink with queue size 4", p)
	}
	// A producer with a deadline gives up and the record is counted dropped.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	if err := q.Write(ctx, rec(-1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write with deadline on full queue: %v", err)
	}
	cancel()
	close(stuck.release)
	<-done
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	st := q.Stats()
	if st.Written != n || st.Dropped != 1 || stuck.count() != n {
		t.Fatalf("stats %+v, sink got %d", st, stuck.count())
	}
	for i, l := range stuck.lines {
		if want := fmt.Sprintf(`{"seq":%d}`, i); string(l) != want {
			t.Fatalf("line %d = %s, want %s", i, l, want)
		}
	}
}

func TestQueueBlockModeRetriesFailures(t *testing.T) {
	m := &memSink{}
	m.failN.Store(3)
	q, err := NewQueue(m, QueueConfig{Size: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Write(context.Background(), rec(0)); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	st := q.Stats()
	if st.Written != 1 || st.Errors != 3 || st.Dropped != 0 || q.LastError() == nil {
		t.Fatalf("stats %+v", st)
	}
}

func TestQueueDropModeCountsFailuresAsDrops(t *testing.T) {
	m := &memSink{}
	m.failN.Store(5)
	q, err := NewQueue(m, QueueConfig{Size: 64, Mode: "drop"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := q.Write(context.Background(), rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	st := q.Stats()
	if st.Written != 5 || st.Dropped != 5 || st.Errors != 5 {
		t.Fatalf("stats %+v", st)
	}
}

type invalidSink struct{ memSink }

func (s *invalidSink) Write(context.Context, Record) error {
	return fmt.Errorf("too big: %w", ErrInvalidRecord)
}

func TestQueueBlockModeDropsInvalidRecords(t *testing.T) {
	q, err := NewQueue(&invalidSink{}, QueueConfig{Size: 4})
	if err != nil {
		t.Fatal(err)
	}
	q.Write(context.Background(), rec(0))
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.Dropped != 1 || st.Errors != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestQueueCloseTimeoutWithStuckSink(t *testing.T) {
	stuck := &memSink{release: make(chan struct{})} // never released
	q, err := NewQueue(stuck, QueueConfig{Size: 16, Mode: "drop", CloseTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		q.Write(context.Background(), rec(i))
	}
	start := time.Now()
	err = q.Close()
	if err == nil {
		t.Fatal("Close with a stuck sink returned nil")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v", d)
	}
	st := q.Stats()
	if st.Enqueued != 10 || st.Written != 0 || st.Dropped != 10 || st.Depth != 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := q.Write(context.Background(), rec(99)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if err2 := q.Close(); err2 != err {
		t.Fatalf("second Close = %v, want first result", err2)
	}
}

func TestQueueConcurrentProducersAndClose(t *testing.T) {
	for _, mode := range []string{"block", "drop"} {
		t.Run(mode, func(t *testing.T) {
			m := &memSink{}
			q, err := NewQueue(m, QueueConfig{Size: 32, Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			var offered atomic.Uint64
			for g := range 4 {
				wg.Go(func() {
					for i := range 2000 {
						q.Write(context.Background(), rec(g*10000+i))
						offered.Add(1)
					}
				})
			}
			time.Sleep(5 * time.Millisecond)
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			st := q.Stats()
			if st.Written+st.Dropped != offered.Load() || st.Written != uint64(m.count()) || st.Enqueued != st.Written {
				t.Fatalf("offered %d, stats %+v, sink %d", offered.Load(), st, m.count())
			}
		})
	}
}

func TestQueueConfigValidation(t *testing.T) {
	for _, c := range []QueueConfig{{Size: -1}, {Size: MaxQueueSize + 1}, {Mode: "lossy"}, {CloseTimeout: -time.Second}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	if _, err := NewQueue(nil, QueueConfig{}); err == nil {
		t.Error("nil sink accepted")
	}
}

func TestFanoutWritesEachQueue(t *testing.T) {
	a, b := &memSink{}, &memSink{release: make(chan struct{})}
	qa, _ := NewQueue(a, QueueConfig{Size: 100})
	qb, _ := NewQueue(b, QueueConfig{Size: 2, Mode: "drop"})
	f := NewFanout(qa, qb)
	var drops int
	for i := range 50 {
		if err := f.Write(context.Background(), rec(i)); errors.Is(err, ErrQueueFull) {
			drops++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	close(b.release)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	st := f.Stats()
	if st[0].Written != 50 || st[1].Written+st[1].Dropped != 50 || st[1].Dropped != uint64(drops) || drops == 0 {
		t.Fatalf("stats %+v drops %d", st, drops)
	}
	if a.count() != 50 || f.Name() != "fanout(mem,mem)" {
		t.Fatalf("a got %d, name %s", a.count(), f.Name())
	}
}

func TestWriterWholeLinesConcurrent(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter("buf", &buf, 256) // smaller than some lines
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				pad := bytes.Repeat([]byte("x"), (i*37)%600)
				line := fmt.Appendf(nil, `{"g":%d,"i":%d,"pad":"%s"}`, g, i, pad)
				if err := w.Write(context.Background(), Record{Line: line}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	next := map[int]int{}
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v struct{ G, I int }
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("torn line %q: %v", sc.Text(), err)
		}
		if v.I != next[v.G] {
			t.Fatalf("goroutine %d: got %d want %d", v.G, v.I, next[v.G])
		}
		next[v.G]++
	}
	for g := range 4 {
		if next[g] != 500 {
			t.Fatalf("goroutine %d: %d lines", g, next[g])
		}
	}
}
