// Package reassembly turns the TCP segments of one direction of a connection
// into the in-order byte stream a dissector needs, with Packetbeat's explicit
// lifecycle: Data for in-order bytes, Gap when bytes are lost for good, and
// exactly one Close when the direction ends.
//
// In-order segments are handed to the Consumer without copying. Only segments
// that arrive ahead of a hole are copied, into fixed-size pages bounded per
// direction (Config.MaxBufferedPerDirection) and across all directions of a
// worker by a shared Budget. Overlapping data is resolved first-arrived-wins
// (the bytes seen first for a sequence number are the ones delivered, as most
// stacks do), so a retransmission cannot rewrite what a dissector saw.
//
// The initial sequence number comes from the SYN, or from the first segment
// seen when the handshake was missed (Stats.MidStream; data older than that
// segment is then ignored as retransmission). Sequence numbers are compared
// with serial-number arithmetic, and positions are kept as 64-bit stream
// offsets, so wrap-around at 2^32 is transparent. A later SYN on an open
// direction is not a new connection: the owner must Init on port reuse.
//
// A hole ends the direction (Gap, then Close) when it cannot be completed:
// out-of-order data beyond the window (CloseLimit), a Budget refusal
// (CloseBudget), RST (CloseGap), or no progress for Config.HoleTimeout of
// packet time, checked on each Add and by Flush (CloseGap). A FIN behind a
// hole waits for the retransmission like any other out-of-order segment.
// Delivery does not resume after a gap.
//
// A Direction is not safe for concurrent use; a Budget is shared only between
// the Directions of one goroutine (no locks).
package reassembly

import "time"

// Defaults used when Config fields are zero.
const (
	// DefaultMaxBufferedPerDirection bounds the out-of-order window of one
	// direction: data further ahead than this from the next expected byte
	// ends the direction with CloseLimit.
	DefaultMaxBufferedPerDirection = 16 << 10
	// DefaultHoleTimeout is how long (in packet time) a hole may stay open
	// without progress before it is declared a gap; covers a few RTOs.
	DefaultHoleTimeout = 5 * time.Second
	// DefaultBudgetBytes is the default total of buffered pages per worker.
	DefaultBudgetBytes = 64 << 20

	// pageSize is the unit of out-of-order buffering and of Budget charges.
	pageSize = 1024
	// maxSpans bounds the number of disjoint out-of-order ranges one
	// direction tracks; more fragmentation than this ends it with CloseLimit.
	maxSpans = 256
)

// CloseReason says why a direction stopped delivering.
type CloseReason uint8

// Close reasons. Gap, Limit and Budget are always preceded by a Gap call.
const (
	CloseNone     CloseReason = iota // still open
	CloseFIN                         // all data up to the FIN delivered
	CloseRST                         // reset with nothing missing
	CloseGap                         // a hole never filled (timeout, RST or owner close)
	CloseLimit                       // out-of-order data beyond the per-direction window or span limit
	CloseBudget                      // the shared Budget refused a page
	CloseConsumer                    // the Consumer returned more=false
	CloseOwner                       // the owner closed it (flow timeout/eviction) with nothing missing
)

var closeReasonNames = [...]string{"none", "fin", "rst", "gap", "limit", "budget", "consumer", "closed"}

func (r CloseReason) String() string {
	if int(r) < len(closeReasonNames) {
		return closeReasonNames[r]
	}
	return "unknown"
}

// Consumer receives one direction's stream.
//
// Data gets consecutive in-order bytes; b is only valid during the call (it
// may alias the caller's packet buffer) and ts is the unix-nanosecond time of
// the segment that made the bytes deliverable. Returning false stops the
// direction (buffers are freed, Close(CloseConsumer) follows).
// Gap reports missing bytes (-1 when unknown) just before a Close with reason
// CloseGap, CloseLimit or CloseBudget. Close is called exactly once.
type Consumer interface {
	Data(b []byte, ts int64) (more bool)
	Gap(missing int)
	Close(reason CloseReason)
}

// Config holds the per-direction limits; zero fields take the defaults.
type Config struct {
	MaxBufferedPerDirection int
	HoleTimeout             time.Duration
}

// Stats are the counters of one direction.
type Stats struct {
	Delivered      uint64 // bytes passed to Consumer.Data
	Buffered       uint64 // bytes copied into the out-of-order buffer
	Retransmitted  uint64 // segments whose payload was entirely already seen
	Overlapping    uint64 // segments partly overlapping data already seen
	Gaps           uint64 // gaps reported (0 or 1: the direction stops at a gap)
	GapBytes       uint64 // size of the reported hole, when known
	BudgetRefusals uint64 // pages the Budget refused
	MidStream      bool   // no SYN seen: the stream was picked up mid-way
	Reason         CloseReason
}

// span is a buffered range [start, end) of stream offsets.
type span struct{ start, end uint64 }

// pageSlot holds one buffered page; num is its page number (offset/pageSize).
type pageSlot struct {
	num uint64
	buf []byte
}

// Direction reassembles one direction of a TCP connection. The zero value is
// unusable until Init.
type Direction struct {
	consumer Consumer
	budget   *Budget
	window   uint64 // out-of-order window in bytes
	holeTTL  int64  // ns

	started bool
	done    bool
	haveFin bool
	holeSet bool // holeSince is meaningful

	nextSeq   uint32 // sequence number of nextOff
	isn       uint32
	nextOff   uint64 // stream offset of the next byte to deliver
	finOff    uint64
	holeSince int64

	spans []span     // sorted, disjoint, non-adjacent, all start > nextOff
	slots []pageSlot // ring of pages indexed by page number % len(slots)
	held  int        // pages in slots

	stats Stats
}

// Init prepares d for a new connection direction. budget may be nil (no
// global limit); cfg may be nil (defaults).
func (d *Direction) Init(c Consumer, budget *Budget, cfg *Config) {
	d.Reset()
	d.consumer = c
	d.budget = budget
	d.window = DefaultMaxBufferedPerDirection
	d.holeTTL = int64(DefaultHoleTimeout)
	if cfg != nil {
		if cfg.MaxBufferedPerDirection > 0 {
			d.window = uint64(cfg.MaxBufferedPerDirection)
		}
		if cfg.HoleTimeout > 0 {
			d.holeTTL = int64(cfg.HoleTimeout)
		}
	}
}

// Reset returns all buffered pages to the budget and clears the state without
// calling the consumer, keeping slice capacity for reuse.
func (d *Direction) Reset() {
	d.releaseAll()
	spans, slots := d.spans[:0], d.slots
	*d = Direction{spans: spans, slots: slots}
}

// Stats returns the counters; Stats().Reason is CloseNone while open.
func (d *Direction) Stats() Stats { return d.stats }

// Done reports whether the direction has stopped.
func (d *Direction) Done() bool { return d.done }

// Buffered returns the bytes of pages currently held by this direction.
func (d *Direction) Buffered() int { return d.held * pageSize }

// Add feeds one segment. seq is the segment's sequence number (of the SYN
// itself when syn is set); payload is not retained unless it has to be
// buffered out of order, in which case it is copied.
func (d *Direction) Add(seq uint32, payload []byte, syn, fin, rst bool, ts int64) {
	if d.done {
		return
	}
	if syn {
		if !d.started {
			d.started = true
			d.isn = seq
			d.nextSeq = seq + 1
		}
		seq++ // SYN occupies one sequence number; data (TFO) follows it
	} else if !d.started {
		d.started = true
		d.stats.MidStream = true
		d.isn = seq - 1
		d.nextSeq = seq
	}
	startOff := d.nextOff
	// Serial-number arithmetic: the signed 32-bit distance is valid for any
	// segment within 2 GiB of the expected one, which covers every window.
	off := int64(d.nextOff) + int64(int32(seq-d.nextSeq))
	end := off + int64(len(payload))
	if fin && !d.haveFin && end >= 0 && uint64(end) >= d.nextOff {
		d.haveFin = true
		d.finOff = uint64(end)
	}
	if len(payload) > 0 {
		switch {
		case end <= int64(d.nextOff):
			d.stats.Retransmitted++
		case off <= int64(d.nextOff):
			skip := int64(d.nextOff) - off
			if skip > 0 {
				d.stats.Overlapping++
			}
			d.deliver(payload[skip:], ts)
		default:
			d.bufferAhead(uint64(off), payload)
		}
	}
	if d.done {
		return
	}
	if d.haveFin && d.nextOff >= d.finOff && len(d.spans) == 0 {
		d.finish(CloseFIN)
		return
	}
	if rst {
		if d.hasHole() {
			d.gapAndFinish(CloseGap)
		} else {
			d.finish(CloseRST)
		}
		return
	}
	d.trackHole(startOff, ts)
}

// Flush declares a gap if a hole has stayed open longer than the hole timeout
// at time now (unix ns); the owner calls it from its periodic sweep. It
// reports whether the direction is done.
func (d *Direction) Flush(now int64) bool {
	if !d.done && d.holeSet && now-d.holeSince > d.holeTTL {
		d.gapAndFinish(CloseGap)
	}
	return d.done
}

// Close ends the direction for the owner (flow timeout or eviction): a
// pending hole is reported as a gap, otherwise the consumer sees CloseOwner.
func (d *Direction) Close() {
	if d.done {
		return
	}
	if d.hasHole() {
		d.gapAndFinish(CloseGap)
		return
	}
	d.finish(CloseOwner)
}

func (d *Direction) hasHole() bool {
	return len(d.spans) > 0 || (d.haveFin && d.nextOff < d.finOff)
}

// holeSize is the number of missing bytes before the first data known to lie
// ahead, or -1.
func (d *Direction) holeSize() int {
	switch {
	case len(d.spans) > 0:
		return int(d.spans[0].start - d.nextOff)
	case d.haveFin && d.finOff > d.nextOff:
		return int(d.finOff - d.nextOff)
	}
	return -1
}

// trackHole starts or refreshes the hole clock and applies the timeout; any
// progress restarts the clock so a slowly filling hole is not cut short.
func (d *Direction) trackHole(startOff uint64, ts int64) {
	if !d.hasHole() {
		d.holeSet = false
		return
	}
	if !d.holeSet || d.nextOff != startOff {
		d.holeSet = true
		d.holeSince = ts
		return
	}
	if ts-d.holeSince > d.holeTTL {
		d.gapAndFinish(CloseGap)
	}
}

// emit passes in-order bytes to the consumer.
func (d *Direction) emit(b []byte, ts int64) {
	d.nextOff += uint64(len(b))
	d.nextSeq += uint32(len(b))
	d.stats.Delivered += uint64(len(b))
	if !d.consumer.Data(b, ts) {
		d.finish(CloseConsumer)
	}
}

// deliver passes b, which starts at nextOff, to the consumer, interleaving
// buffered data: where a byte was buffered earlier, the buffered copy wins.
func (d *Direction) deliver(b []byte, ts int64) {
	segOff := d.nextOff
	overlapped := false
	for len(b) > 0 && !d.done {
		if len(d.spans) == 0 {
			d.emit(b, ts)
			return
		}
		first := d.spans[0].start
		if first > d.nextOff {
			n := uint64(len(b))
			if first-d.nextOff < n {
				n = first - d.nextOff
			}
			d.emit(b[:n], ts)
			b = b[n:]
			segOff += n
			continue
		}
		d.drainFirst(ts)
		skip := d.nextOff - segOff
		if skip >= uint64(len(b)) {
			skip = uint64(len(b))
		}
		if skip > 0 && !overlapped {
			overlapped = true
			d.stats.Overlapping++
		}
		b = b[skip:]
		segOff += skip
	}
	for !d.done && len(d.spans) > 0 && d.spans[0].start <= d.nextOff {
		d.drainFirst(ts)
	}
	if d.held > 0 {
		d.releaseBehind()
	}
}

// drainFirst delivers the first span (which starts at or before nextOff)
// page by page and drops it.
func (d *Direction) drainFirst(ts int64) {
	s := d.spans[0]
	d.spans = append(d.spans[:0], d.spans[1:]...)
	for !d.done && d.nextOff < s.end {
		num := d.nextOff / pageSize
		slot := &d.slots[num%uint64(len(d.slots))]
		if slot.buf == nil || slot.num != num {
			// Cannot happen: every buffered byte has its page. Treat it as
			// a lost range rather than delivering wrong bytes.
			d.gapAndFinish(CloseGap)
			return
		}
		lo := d.nextOff - num*pageSize
		hi := uint64(pageSize)
		if s.end-num*pageSize < hi {
			hi = s.end - num*pageSize
		}
		d.emit(slot.buf[lo:hi], ts)
	}
	if d.done {
		return
	}
	if len(d.spans) == 0 {
		d.releaseAll()
	} else {
		d.releaseBehind()
	}
}

// bufferAhead copies the parts of an out-of-order segment at off that are not
// already buffered (first-arrived wins) and records its span.
func (d *Direction) bufferAhead(off uint64, payload []byte) {
	end := off + uint64(len(payload))
	if end > d.nextOff+d.window || len(d.spans) >= maxSpans {
		d.gapBefore(off, CloseLimit)
		return
	}
	if d.slots == nil {
		d.slots = make([]pageSlot, (d.window+pageSize-1)/pageSize+1)
	}
	before := d.stats.Buffered
	cur := off
	covered := false
	for _, s := range d.spans {
		if s.end <= cur {
			continue
		}
		if s.start >= end {
			break
		}
		if s.start > cur {
			if !d.copyIn(cur, payload[cur-off:s.start-off]) {
				return
			}
		}
		covered = true
		if s.end > cur {
			cur = s.end
		}
		if cur >= end {
			break
		}
	}
	if cur < end {
		if !d.copyIn(cur, payload[cur-off:]) {
			return
		}
	}
	switch {
	case d.stats.Buffered == before:
		d.stats.Retransmitted++
	case covered:
		d.stats.Overlapping++
	}
	d.insertSpan(off, end)
}

// copyIn writes b at stream offset off into pages, allocating them from the
// budget; on refusal the direction ends with CloseBudget.
func (d *Direction) copyIn(off uint64, b []byte) bool {
	for len(b) > 0 {
		num := off / pageSize
		slot := &d.slots[num%uint64(len(d.slots))]
		if slot.buf == nil {
			buf := d.budget.get()
			if buf == nil {
				d.stats.BudgetRefusals++
				d.gapBefore(off, CloseBudget)
				return false
			}
			slot.buf, slot.num = buf, num
			d.held++
		} else if slot.num != num {
			// The slot holds a page wholly behind nextOff (the window is
			// smaller than the ring), so its bytes are no longer needed.
			slot.num = num
		}
		lo := off - num*pageSize
		n := copy(slot.buf[lo:], b)
		d.stats.Buffered += uint64(n)
		b = b[n:]
		off += uint64(n)
	}
	return true
}

// insertSpan merges [start, end) into the sorted span list, coalescing
// overlapping and touching spans.
func (d *Direction) insertSpan(start, end uint64) {
	i := 0
	for i < len(d.spans) && d.spans[i].end < start {
		i++
	}
	j := i
	for j < len(d.spans) && d.spans[j].start <= end {
		if d.spans[j].start < start {
			start = d.spans[j].start
		}
		if d.spans[j].end > end {
			end = d.spans[j].end
		}
		j++
	}
	if i == j {
		d.spans = append(d.spans, span{})
		copy(d.spans[i+1:], d.spans[i:])
		d.spans[i] = span{start, end}
		return
	}
	d.spans[i] = span{start, end}
	d.spans = append(d.spans[:i+1], d.spans[j:]...)
}

// gapBefore reports the hole in front of the first known data (buffered, or
// the segment at off) and ends the direction with reason.
func (d *Direction) gapBefore(off uint64, reason CloseReason) {
	first := off
	if len(d.spans) > 0 && d.spans[0].start < first {
		first = d.spans[0].start
	}
	d.reportGap(int(first - d.nextOff))
	d.finish(reason)
}

func (d *Direction) gapAndFinish(reason CloseReason) {
	d.reportGap(d.holeSize())
	d.finish(reason)
}

func (d *Direction) reportGap(missing int) {
	d.stats.Gaps++
	if missing > 0 {
		d.stats.GapBytes += uint64(missing)
	}
	d.consumer.Gap(missing)
}

// finish ends the direction once, frees its pages and tells the consumer.
func (d *Direction) finish(reason CloseReason) {
	if d.done {
		return
	}
	d.done = true
	d.stats.Reason = reason
	d.releaseAll()
	d.spans = d.spans[:0]
	d.consumer.Close(reason)
}

// releaseBehind frees pages that lie wholly before nextOff.
func (d *Direction) releaseBehind() {
	for i := range d.slots {
		s := &d.slots[i]
		if s.buf != nil && (s.num+1)*pageSize <= d.nextOff {
			d.budget.put(s.buf)
			s.buf = nil
			d.held--
		}
	}
}

func (d *Direction) releaseAll() {
	if d.held == 0 {
		return
	}
	for i := range d.slots {
		if d.slots[i].buf != nil {
			d.budget.put(d.slots[i].buf)
			d.slots[i].buf = nil
		}
	}
	d.held = 0
}
