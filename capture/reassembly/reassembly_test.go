package reassembly

import (
	"bytes"
	"math/rand"
	"testing"
	"time"
)

// recorder is a Consumer that keeps everything it is given.
type recorder struct {
	data    []byte
	gaps    []int
	closes  []CloseReason
	stopAt  int // stop (more=false) once this many bytes were seen; 0 = never
	lastTS  int64
	dataErr bool // Data called after Close
}

func (r *recorder) Data(b []byte, ts int64) bool {
	if len(r.closes) > 0 {
		r.dataErr = true
	}
	r.data = append(r.data, b...)
	r.lastTS = ts
	return r.stopAt == 0 || len(r.data) < r.stopAt
}
func (r *recorder) Gap(missing int)          { r.gaps = append(r.gaps, missing) }
func (r *recorder) Close(reason CloseReason) { r.closes = append(r.closes, reason) }

var _ Consumer = (*recorder)(nil)

type seg struct {
	seq     uint32
	payload []byte
	syn     bool
	fin     bool
	rst     bool
}

func message(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

// split cuts msg into segments at the given cut offsets (sorted).
func split(isn uint32, msg []byte, cuts []int) []seg {
	var out []seg
	prev := 0
	for _, c := range append(cuts, len(msg)) {
		if c <= prev {
			continue
		}
		out = append(out, seg{seq: isn + 1 + uint32(prev), payload: msg[prev:c]})
		prev = c
	}
	return out
}

func run(t *testing.T, d *Direction, r *recorder, segs []seg) {
	t.Helper()
	for i, s := range segs {
		d.Add(s.seq, s.payload, s.syn, s.fin, s.rst, int64(i+1))
	}
}

func checkClean(t *testing.T, r *recorder, want []byte, reason CloseReason) {
	t.Helper()
	if !bytes.Equal(r.data, want) {
		t.Fatalf("delivered %q, want %q", r.data, want)
	}
	if len(r.gaps) != 0 {
		t.Fatalf("unexpected gaps %v", r.gaps)
	}
	if reason == CloseNone {
		if len(r.closes) != 0 {
			t.Fatalf("unexpected close %v", r.closes)
		}
	} else if len(r.closes) != 1 || r.closes[0] != reason {
		t.Fatalf("closes %v, want [%v]", r.closes, reason)
	}
	if r.dataErr {
		t.Fatal("Data after Close")
	}
}

func TestSplitAtEveryByte(t *testing.T) {
	msg := message(300)
	for _, isn := range []uint32{1000, 0xFFFFFFFF - 150} { // second wraps mid-message
		for cut := 1; cut < len(msg); cut++ {
			for _, reverse := range []bool{false, true} {
				var r recorder
				var d Direction
				b := NewBudget(0)
				d.Init(&r, b, nil)
				segs := append([]seg{{seq: isn, syn: true}}, split(isn, msg, []int{cut})...)
				if reverse {
					segs[1], segs[2] = segs[2], segs[1]
				}
				segs = append(segs, seg{seq: isn + 1 + uint32(len(msg)), fin: true})
				run(t, &d, &r, segs)
				checkClean(t, &r, msg, CloseFIN)
				if b.Stats().InUse != 0 {
					t.Fatalf("pages still held: %+v", b.Stats())
				}
				if reverse && d.Stats().Buffered != uint64(len(msg)-cut) {
					t.Fatalf("buffered %d, want %d", d.Stats().Buffered, len(msg)-cut)
				}
			}
		}
	}
}

func TestShuffledDuplicatedOverlapping(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for iter := 0; iter < 500; iter++ {
		msg := message(1 + rng.Intn(6000))
		isn := rng.Uint32()
		if iter%4 == 0 {
			isn = 0xFFFFFFFF - uint32(rng.Intn(3000)) // wrap inside the stream
		}
		var segs []seg
		// Overlapping random segments covering the message, some duplicated.
		for pos := 0; pos < len(msg); {
			start := pos - rng.Intn(40)
			if start < 0 {
				start = 0
			}
			n := 1 + rng.Intn(1400)
			end := min(pos+n, len(msg))
			s := seg{seq: isn + 1 + uint32(start), payload: msg[start:end]}
			segs = append(segs, s)
			if rng.Intn(5) == 0 {
				segs = append(segs, s)
			}
			pos = end
		}
		// Keep the first segment first so the window stays small relative to
		// the default limit; shuffle the rest locally (reordering distance
		// up to 6 segments, as on real paths).
		for i := 1; i < len(segs); i++ {
			j := i + rng.Intn(6)
			if j < len(segs) {
				segs[i], segs[j] = segs[j], segs[i]
			}
		}
		segs = append([]seg{{seq: isn, syn: true}}, segs...)
		segs = append(segs, seg{seq: isn + 1 + uint32(len(msg)), fin: true})
		var r recorder
		var d Direction
		b := NewBudget(0)
		d.Init(&r, b, &Config{MaxBufferedPerDirection: 64 << 10})
		run(t, &d, &r, segs)
		checkClean(t, &r, msg, CloseFIN)
		if b.Stats().InUse != 0 {
			t.Fatalf("iter %d: pages still held", iter)
		}
	}
}

func TestFullyShuffledSmallSegments(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	msg := message(400)
	for iter := 0; iter < 200; iter++ {
		isn := 0xFFFFFFFF - uint32(rng.Intn(400))
		var cuts []int
		for c := 1; c < len(msg); c++ {
			if rng.Intn(3) == 0 {
				cuts = append(cuts, c)
			}
		}
		segs := split(isn, msg, cuts)
		rng.Shuffle(len(segs), func(i, j int) { segs[i], segs[j] = segs[j], segs[i] })
		segs = append([]seg{{seq: isn, syn: true}}, segs...)
		var r recorder
		var d Direction
		d.Init(&r, NewBudget(0), nil)
		run(t, &d, &r, segs)
		checkClean(t, &r, msg, CloseNone)
	}
}

func TestFirstArrivedWins(t *testing.T) {
	var r recorder
	var d Direction
	d.Init(&r, nil, nil)
	d.Add(100, nil, true, false, false, 1)
	d.Add(111, []byte("XXXXX"), false, false, false, 2)                // [10,15) buffered first
	d.Add(101, []byte("0123456789abcdefghij"), false, false, false, 3) // overlaps it
	d.Add(118, []byte("YY"), false, false, false, 4)                   // [17,19) already delivered
	want := "0123456789XXXXXfghij"
	if string(r.data) != want {
		t.Fatalf("got %q, want %q", r.data, want)
	}
	st := d.Stats()
	if st.Overlapping != 1 || st.Retransmitted != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Out-of-order overlap: first buffered copy wins too.
	r2 := recorder{}
	d.Init(&r2, nil, nil)
	d.Add(0, []byte("ab"), false, false, false, 1)
	d.Add(5, []byte("fgh"), false, false, false, 2)
	d.Add(4, []byte("EFGHI"), false, false, false, 3)
	d.Add(2, []byte("cd"), false, false, false, 4)
	if string(r2.data) != "abcdEfghI" {
		t.Fatalf("got %q", r2.data)
	}
	if !d.Stats().MidStream {
		t.Fatal("MidStream not set")
	}
}

func TestHoleNeverFills(t *testing.T) {
	var r recorder
	var d Direction
	b := NewBudget(0)
	d.Init(&r, b, &Config{HoleTimeout: time.Second})
	d.Add(1000, nil, true, false, false, 0)
	d.Add(1001, []byte("hello "), false, false, false, 1)
	d.Add(1017, []byte("world"), false, false, false, 2) // 10 bytes missing
	if d.Flush(int64(time.Second / 2)) {
		t.Fatal("flushed before the timeout")
	}
	if !d.Flush(2 * int64(time.Second)) {
		t.Fatal("not flushed after the timeout")
	}
	if string(r.data) != "hello " || len(r.gaps) != 1 || r.gaps[0] != 10 {
		t.Fatalf("data %q gaps %v", r.data, r.gaps)
	}
	if len(r.closes) != 1 || r.closes[0] != CloseGap || d.Stats().Reason != CloseGap {
		t.Fatalf("closes %v", r.closes)
	}
	if b.Stats().InUse != 0 {
		t.Fatal("pages held after gap")
	}
	d.Add(1007, []byte("0123456789"), false, false, false, 3)
	if len(r.data) != 6 {
		t.Fatal("delivered after close")
	}

	// The timeout also fires from Add, measured in packet time.
	r = recorder{}
	d.Init(&r, b, &Config{HoleTimeout: time.Second})
	d.Add(1, []byte("a"), false, false, false, 0)
	d.Add(5, []byte("e"), false, false, false, 10)
	d.Add(6, []byte("f"), false, false, false, 10+2*int64(time.Second))
	if len(r.gaps) != 1 || r.gaps[0] != 3 || r.closes[0] != CloseGap {
		t.Fatalf("gaps %v closes %v", r.gaps, r.closes)
	}

	// FIN beyond a hole waits for retransmission, then Close reports the gap.
	r = recorder{}
	d.Init(&r, b, nil)
	d.Add(1, []byte("abc"), false, false, false, 0)
	d.Add(10, nil, false, true, false, 1)
	if len(r.closes) != 0 {
		t.Fatal("closed while waiting for the hole")
	}
	d.Close()
	if len(r.gaps) != 1 || r.gaps[0] != 6 || r.closes[0] != CloseGap {
		t.Fatalf("gaps %v closes %v", r.gaps, r.closes)
	}

	// ... and a retransmission filling it closes with FIN.
	r = recorder{}
	d.Init(&r, b, nil)
	d.Add(1, []byte("abc"), false, false, false, 0)
	d.Add(7, []byte("ghi"), false, true, false, 1)
	d.Add(4, []byte("def"), false, false, false, 2)
	checkClean(t, &r, []byte("abcdefghi"), CloseFIN)

	// RST with a hole is a gap; without one it is a reset.
	r = recorder{}
	d.Init(&r, b, nil)
	d.Add(1, []byte("abc"), false, false, false, 0)
	d.Add(7, []byte("ghi"), false, false, false, 1)
	d.Add(4, nil, false, false, true, 2)
	if len(r.gaps) != 1 || r.gaps[0] != 3 || r.closes[0] != CloseGap {
		t.Fatalf("gaps %v closes %v", r.gaps, r.closes)
	}
	r = recorder{}
	d.Init(&r, b, nil)
	d.Add(1, []byte("abc"), false, false, true, 0)
	checkClean(t, &r, []byte("abc"), CloseRST)
}

func TestPerDirectionLimit(t *testing.T) {
	var r recorder
	var d Direction
	b := NewBudget(0)
	d.Init(&r, b, &Config{MaxBufferedPerDirection: 4096})
	d.Add(0, []byte("x"), false, false, false, 0)
	d.Add(101, make([]byte, 3000), false, false, false, 1) // fits the window
	if len(r.closes) != 0 {
		t.Fatal("closed within the window")
	}
	d.Add(3101, make([]byte, 2000), false, false, false, 2) // beyond it
	if len(r.gaps) != 1 || r.gaps[0] != 100 || len(r.closes) != 1 || r.closes[0] != CloseLimit {
		t.Fatalf("gaps %v closes %v", r.gaps, r.closes)
	}
	if b.Stats().InUse != 0 || d.Buffered() != 0 {
		t.Fatal("pages held after limit")
	}
}

func TestBudgetShared(t *testing.T) {
	b := NewBudget(2 * pageSize)
	var r1, r2 recorder
	var d1, d2 Direction
	d1.Init(&r1, b, nil)
	d2.Init(&r2, b, nil)
	d1.Add(0, []byte("a"), false, false, false, 0)
	d2.Add(0, []byte("a"), false, false, false, 0)
	d1.Add(2, make([]byte, 1500), false, false, false, 1) // two pages
	if b.Stats().InUse != 2*pageSize {
		t.Fatalf("in use %d", b.Stats().InUse)
	}
	d2.Add(2, []byte("c"), false, false, false, 1) // refused
	if len(r2.closes) != 1 || r2.closes[0] != CloseBudget || r2.gaps[0] != 1 || d2.Stats().BudgetRefusals != 1 {
		t.Fatalf("d2 gaps %v closes %v stats %+v", r2.gaps, r2.closes, d2.Stats())
	}
	if b.Stats().Refusals != 1 {
		t.Fatalf("budget %+v", b.Stats())
	}
	d1.Add(1, []byte("b"), false, false, false, 2) // fills the hole, frees pages
	if len(r1.data) != 1502 || b.Stats().InUse != 0 {
		t.Fatalf("d1 %d bytes, budget %+v", len(r1.data), b.Stats())
	}
	// Pages are recycled: buffering again allocates nothing new.
	d1.Add(1600, make([]byte, 100), false, false, false, 3)
	if b.Stats().Free != pageSize || b.Stats().InUse != pageSize {
		t.Fatalf("budget %+v", b.Stats())
	}
}

func TestConsumerStops(t *testing.T) {
	b := NewBudget(0)
	r := recorder{stopAt: 5}
	var d Direction
	d.Init(&r, b, nil)
	d.Add(0, []byte("abc"), false, false, false, 0)
	d.Add(6, []byte("ghi"), false, false, false, 1)
	d.Add(3, []byte("def"), false, false, false, 2)
	if string(r.data) != "abcdef" || len(r.closes) != 1 || r.closes[0] != CloseConsumer {
		t.Fatalf("data %q closes %v", r.data, r.closes)
	}
	if b.Stats().InUse != 0 || d.Stats().Reason != CloseConsumer {
		t.Fatal("not freed")
	}
}

func TestInOrderZeroAllocs(t *testing.T) {
	var d Direction
	c := countConsumer{}
	d.Init(&c, NewBudget(0), nil)
	payload := make([]byte, 1460)
	seq := uint32(0xFFFF0000)
	d.Add(seq, nil, true, false, false, 0)
	seq++
	allocs := testing.AllocsPerRun(1000, func() {
		d.Add(seq, payload, false, false, false, 1)
		seq += uint32(len(payload))
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per in-order segment", allocs)
	}
	if c.n != 1001*1460 {
		t.Fatalf("delivered %d", c.n)
	}
	// Out-of-order then fill, with recycled pages: still no allocation
	// once the page free list is warm.
	b := NewBudget(0)
	d.Init(&c, b, nil)
	d.Add(0, nil, true, false, false, 0)
	seq = 1
	step := func() {
		d.Add(seq+100, payload[:100], false, false, false, 1)
		d.Add(seq, payload[:100], false, false, false, 1)
		seq += 200
	}
	step()
	if allocs := testing.AllocsPerRun(200, step); allocs != 0 {
		t.Fatalf("%v allocs per reordered pair", allocs)
	}
}

type countConsumer struct{ n int }

func (c *countConsumer) Data(b []byte, ts int64) bool { c.n += len(b); return true }
func (c *countConsumer) Gap(int)                      {}
func (c *countConsumer) Close(CloseReason)            {}

// FuzzReassembly cuts a known stream into segments chosen by the input,
// reorders and duplicates them, and checks the output is a prefix of the
// stream (all of it when no gap was reported) within the memory bounds.
func FuzzReassembly(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5}, uint32(0), uint16(100))
	f.Add([]byte{255, 3, 7, 128, 9, 200, 1, 1, 1}, uint32(0xFFFFFF00), uint16(4000))
	f.Add([]byte("\x10\x20\x30\x40\x50\x60\x70\x80\x90"), uint32(1<<31), uint16(20000))
	f.Fuzz(func(t *testing.T, ops []byte, isn uint32, size uint16) {
		msg := message(int(size))
		const window = 4096
		b := NewBudget(3 * pageSize)
		var r recorder
		var d Direction
		d.Init(&r, b, &Config{MaxBufferedPerDirection: window})
		d.Add(isn, nil, true, false, false, 0)
		pos := 0
		for i := 0; i+1 < len(ops); i += 2 {
			// op byte: length; next: backwards/forwards displacement.
			n := int(ops[i])*8 + 1
			start := pos + int(int8(ops[i+1]))*16
			if start < 0 {
				start = 0
			}
			if start > len(msg) {
				start = len(msg)
			}
			end := min(start+n, len(msg))
			d.Add(isn+1+uint32(start), msg[start:end], false, ops[i]&0x80 != 0 && end == len(msg), false, int64(i))
			if end > pos && start <= pos {
				pos = end
			}
			if b.Stats().InUse > 3*pageSize || d.Buffered() > window+2*pageSize {
				t.Fatalf("memory over bounds: %+v", b.Stats())
			}
		}
		d.Close()
		if !bytes.Equal(r.data, msg[:len(r.data)]) {
			t.Fatalf("delivered bytes differ from the stream")
		}
		if len(r.closes) != 1 {
			t.Fatalf("closes %v", r.closes)
		}
		if len(r.gaps) == 0 && r.closes[0] != CloseFIN && r.closes[0] != CloseOwner {
			t.Fatalf("close %v without gap", r.closes[0])
		}
		if b.Stats().InUse != 0 {
			t.Fatal("pages held after close")
		}
	})
}
