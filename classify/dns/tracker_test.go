package dns

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func q(id uint16, name string, qtype uint16) *Message {
	return &Message{ID: id, QDCount: 1, Questions: []Question{{Name: name, Type: qtype, Class: 1}}}
}

func r(id uint16, name string, qtype uint16) *Message {
	m := q(id, name, qtype)
	m.Response = true
	return m
}

const ms = int64(1e6)

func TestTrackerPairsOutOfOrderResponses(t *testing.T) {
	var tr Tracker
	var out []Transaction
	out = tr.Observe(q(1, "a.example", 1), 0, Forward, out)
	out = tr.Observe(q(2, "b.example", 28), 1*ms, Forward, out)
	out = tr.Observe(q(1, "a.example", 28), 2*ms, Forward, out) // same ID, other type
	if len(out) != 0 || tr.Pending() != 3 {
		t.Fatalf("queries alone emitted %d, pending %d", len(out), tr.Pending())
	}
	out = tr.Observe(r(2, "b.example", 28), 10*ms, Reverse, out)
	out = tr.Observe(r(1, "a.example", 28), 12*ms, Reverse, out)
	out = tr.Observe(r(1, "a.example", 1), 15*ms, Reverse, out)
	if len(out) != 3 || tr.Pending() != 0 {
		t.Fatalf("emitted %d, pending %d", len(out), tr.Pending())
	}
	want := []struct {
		id    uint16
		qtype uint16
		rtt   int64
	}{{2, 28, 9 * ms}, {1, 28, 10 * ms}, {1, 1, 15 * ms}}
	for i, w := range want {
		tx := out[i]
		if !tx.Answered() || tx.ID != w.id || tx.Type != w.qtype || tx.RTT != w.rtt || tx.Query.Questions[0].Type != w.qtype {
			t.Errorf("tx %d = %+v, want %+v", i, tx, w)
		}
	}
}

func TestTrackerResponseBeforeQuery(t *testing.T) {
	var tr Tracker
	out := tr.Observe(r(7, "x.example", 1), 5*ms, Reverse, nil)
	if len(out) != 0 {
		t.Fatalf("response alone emitted early: %+v", out)
	}
	out = tr.Observe(q(7, "x.example", 1), 4*ms, Forward, out)
	if len(out) != 1 || !out[0].Answered() || out[0].RTT != 1*ms {
		t.Fatalf("got %+v", out)
	}
	// Timestamps inverted by the capture: RTT clamps to 0.
	out = tr.Observe(r(8, "x.example", 1), 5*ms, Reverse, out[:0])
	out = tr.Observe(q(8, "x.example", 1), 9*ms, Forward, out)
	if len(out) != 1 || out[0].RTT != 0 {
		t.Fatalf("got %+v", out)
	}
}

func TestTrackerRetransmissionAndDuplicateResponse(t *testing.T) {
	var tr Tracker
	out := tr.Observe(q(3, "d.example", 1), 0, Forward, nil)
	out = tr.Observe(q(3, "d.example", 1), 1000*ms, Forward, out)
	out = tr.Observe(q(3, "d.example", 1), 2000*ms, Forward, out)
	out = tr.Observe(r(3, "d.example", 1), 2010*ms, Reverse, out)
	if len(out) != 1 || out[0].Retransmissions != 2 || out[0].RTT != 2010*ms || out[0].QueryTime != 0 {
		t.Fatalf("got %+v", out)
	}
	// A duplicate response has no query left: response-only at Flush.
	out = tr.Observe(r(3, "d.example", 1), 2011*ms, Reverse, out[:0])
	if len(out) != 0 {
		t.Fatalf("duplicate emitted early: %+v", out)
	}
	out = tr.Flush(out)
	if len(out) != 1 || out[0].Query != nil || out[0].Response == nil || out[0].RTT != 0 {
		t.Fatalf("flush = %+v", out)
	}
	// A response in the same direction as the query does not pair.
	out = tr.Observe(q(4, "e.example", 1), 0, Forward, out[:0])
	out = tr.Observe(r(4, "e.example", 1), 1, Forward, out)
	out = tr.Flush(out)
	if len(out) != 2 || out[0].Response != nil || out[1].Query != nil {
		t.Fatalf("same-direction response paired: %+v", out)
	}
}

func TestTrackerUnansweredAndEviction(t *testing.T) {
	var tr Tracker
	var out []Transaction
	for i := range MaxPendingPerFlow + 3 {
		out = tr.Observe(q(uint16(i), "u.example", 1), int64(i), Forward, out)
	}
	if len(out) != 3 || tr.Evictions() != 3 || tr.Pending() != MaxPendingPerFlow {
		t.Fatalf("emitted %d evictions %d pending %d", len(out), tr.Evictions(), tr.Pending())
	}
	for i, tx := range out {
		if !tx.Evicted || tx.Response != nil || tx.ID != uint16(i) {
			t.Errorf("evicted %d = %+v", i, tx)
		}
	}
	// The evicted query's late response is response-only; a kept one pairs.
	out = tr.Observe(r(0, "u.example", 1), 100, Reverse, out[:0])
	out = tr.Observe(r(10, "u.example", 1), 101, Reverse, out)
	// The held response-only entry took a slot: query 3 was evicted for it.
	if len(out) != 2 || out[0].ID != 3 || !out[0].Evicted || out[1].ID != 10 || !out[1].Answered() || tr.Evictions() != 4 {
		t.Fatalf("got %+v", out)
	}
	out = tr.Expire(6, out[:0])
	if len(out) != 2 || out[0].ID != 4 || out[1].ID != 5 {
		t.Fatalf("expire = %+v", out)
	}
	out = tr.Flush(out[:0])
	if tr.Pending() != 0 {
		t.Fatal("flush left entries")
	}
	unanswered, responseOnly := 0, 0
	for _, tx := range out {
		switch {
		case tx.Query != nil && tx.Response == nil:
			unanswered++
		case tx.Query == nil && tx.Response != nil:
			responseOnly++
		default:
			t.Errorf("unexpected %+v", tx)
		}
	}
	// 64 pending: one evicted for the response-only entry of ID 0, one
	// answered, two expired.
	if responseOnly != 1 || unanswered != MaxPendingPerFlow-1-1-2 {
		t.Errorf("flush: unanswered %d response-only %d", unanswered, responseOnly)
	}
}

func TestTrackerNoQuestion(t *testing.T) {
	var tr Tracker
	out := tr.Observe(&Message{ID: 9}, 0, Forward, nil)
	out = tr.Observe(&Message{ID: 9, Response: true}, 3, Reverse, out)
	if len(out) != 1 || !out[0].Answered() || out[0].Name != "" || out[0].RTT != 3 {
		t.Fatalf("got %+v", out)
	}
	if out := tr.Observe(nil, 0, Forward, nil); len(out) != 0 {
		t.Fatal("nil message emitted")
	}
}

func frame(msgs ...[]byte) []byte {
	var b []byte
	for _, m := range msgs {
		b = binary.BigEndian.AppendUint16(b, uint16(len(m)))
		b = append(b, m...)
	}
	return b
}

func TestTCPFramerEverySplit(t *testing.T) {
	m1 := typicalResponse(t)
	m2 := header(2, 0x0100, 0, 0, 0, 0)
	m3 := bytes.Repeat([]byte{0xAB}, 300)
	stream := frame(m1, m2, nil, m3)
	want := [][]byte{m1, m2, m3}
	check := func(t *testing.T, segs [][]byte) {
		t.Helper()
		var f TCPFramer
		var got [][]byte
		for _, s := range segs {
			// Copy what Feed returns: it aliases internal buffers.
			for _, m := range f.Feed(s, nil) {
				got = append(got, bytes.Clone(m))
			}
		}
		if len(got) != len(want) {
			t.Fatalf("got %d messages, want %d", len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("message %d differs", i)
			}
		}
		if f.Buffered() != 0 || f.EmptyMessages() != 1 {
			t.Fatalf("buffered %d empty %d", f.Buffered(), f.EmptyMessages())
		}
	}
	check(t, [][]byte{stream})
	for i := 0; i <= len(stream); i++ {
		check(t, [][]byte{stream[:i], stream[i:]})
	}
	// Three-way splits around the message boundaries and every byte alone.
	b1 := 2 + len(m1)
	for i := 0; i <= b1+3; i++ {
		for j := i; j <= min(i+5, len(stream)); j++ {
			check(t, [][]byte{stream[:i], stream[i:j], stream[j:]})
		}
	}
	var single [][]byte
	for i := range stream {
		single = append(single, stream[i:i+1])
	}
	check(t, single)
}

func TestTCPFramerAliasingAndBounds(t *testing.T) {
	m1 := bytes.Repeat([]byte{1}, 40)
	m2 := bytes.Repeat([]byte{2}, 40)
	m3 := bytes.Repeat([]byte{3}, 40)
	stream := frame(m1, m2, m3)
	var f TCPFramer
	// Segment 2 completes m1 from the buffer and leaves part of m2... then
	// segment 3 completes m2 and carries part of m3: m2 must stay intact.
	out := f.Feed(stream[:20], nil)
	out = f.Feed(stream[20:60], out)
	if len(out) != 1 || !bytes.Equal(out[0], m1) {
		t.Fatalf("first: %v", out)
	}
	out = f.Feed(stream[60:110], out[:0])
	if len(out) != 1 || !bytes.Equal(out[0], m2) {
		t.Fatalf("second: %v", out)
	}
	out2 := f.Feed(stream[110:], nil)
	if len(out2) != 1 || !bytes.Equal(out2[0], m3) {
		t.Fatalf("third: %v", out2)
	}
	// An incomplete maximal message is held within the bound; Reset drops it.
	f = TCPFramer{}
	big := make([]byte, 2+MaxTCPMessage-1)
	binary.BigEndian.PutUint16(big, MaxTCPMessage)
	if out := f.Feed(big, nil); len(out) != 0 || f.Buffered() != len(big) || f.Buffered() > MaxTCPBuffered {
		t.Fatalf("held %d", f.Buffered())
	}
	if out := f.Feed([]byte{7}, nil); len(out) != 1 || len(out[0]) != MaxTCPMessage || f.Buffered() != 0 {
		t.Fatalf("max message not delivered")
	}
	f.Feed([]byte{0, 9, 1}, nil)
	f.Reset()
	if f.Buffered() != 0 || f.DroppedBytes() != 3 {
		t.Fatalf("reset: buffered %d dropped %d", f.Buffered(), f.DroppedBytes())
	}
	// Steady state does not allocate.
	seg := frame(m1, m2)
	out = make([][]byte, 0, 4)
	f.Feed(seg[:10], out[:0])
	f.Feed(seg[10:], out[:0])
	if n := testing.AllocsPerRun(50, func() {
		f.Feed(seg[:10], out[:0])
		f.Feed(seg[10:], out[:0])
	}); n != 0 {
		t.Errorf("Feed allocates %v times per round", n)
	}
}
