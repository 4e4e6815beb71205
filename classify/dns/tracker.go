package dns

// MaxPendingPerFlow bounds the queries (and early responses) a Tracker holds
// waiting for their other half. When full, the oldest entry is evicted and
// returned as unanswered (or response-only), and counted in Evictions.
const MaxPendingPerFlow = 64

// Direction is the direction of a packet within its flow, as the caller's
// flow table defines it; a response pairs only with a query sent the other way.
type Direction uint8

// Directions within a flow.
const (
	Forward Direction = iota
	Reverse
)

// Transaction is a query paired with its response, or one of them alone.
// Name and Type come from the first question (empty and 0 without one).
type Transaction struct {
	ID   uint16
	Name string
	Type uint16

	Query     *Message // nil for a response seen without its query
	QueryTime int64    // unix nanoseconds
	QueryDir  Direction

	Response     *Message // nil for an unanswered query
	ResponseTime int64
	ResponseDir  Direction

	// RTT is ResponseTime-QueryTime in nanoseconds when both halves are
	// present, measured from the first copy of the query; it is never
	// negative (clamped to 0 when capture timestamps are out of order).
	RTT int64
	// Retransmissions counts further copies of the query (same ID, name and
	// type, same direction) seen while it waited for a response.
	Retransmissions int
	// Evicted is set when the entry left a full pending table rather than
	// being answered or flushed.
	Evicted bool
}

// Answered reports whether both the query and the response are present.
func (t *Transaction) Answered() bool { return t.Query != nil && t.Response != nil }

// Tracker pairs DNS queries and responses of one flow by (transaction ID,
// first question name, first question type), as Zeek's dns.log does.
//
// Policy:
//   - A response pairs with the oldest pending query of the same key sent in
//     the other direction.
//   - A repeated query (same key and direction) while the first waits is a
//     retransmission: it is counted, and the first copy's time is kept.
//   - A response with no pending query is held (a capture may show it before
//     its query); if the query arrives it pairs, otherwise Flush (or eviction)
//     returns it as a response-only transaction. A second response to an
//     already answered query is therefore response-only too.
//   - At most MaxPendingPerFlow entries wait; the oldest is evicted first.
//
// A Tracker is not safe for concurrent use; it is meant to live in a flow.
type Tracker struct {
	pending   []Transaction
	evictions uint64
}

// Evictions returns how many pending entries were evicted because the table
// was full.
func (t *Tracker) Evictions() uint64 { return t.evictions }

// Pending returns how many entries wait for their other half.
func (t *Tracker) Pending() int { return len(t.pending) }

// Observe feeds one parsed message seen at ts (unix nanoseconds) in direction
// dir and appends any transaction it completes or evicts to out.
func (t *Tracker) Observe(m *Message, ts int64, dir Direction, out []Transaction) []Transaction {
	if m == nil {
		return out
	}
	id, name, qtype := keyOf(m)
	if !m.Response {
		for i := range t.pending {
			p := &t.pending[i]
			if !p.matches(id, name, qtype) {
				continue
			}
			if p.Query != nil && p.Response == nil && p.QueryDir == dir {
				p.Retransmissions++
				return out
			}
			if p.Query == nil && p.ResponseDir != dir {
				p.Query, p.QueryTime, p.QueryDir = m, ts, dir
				p.RTT = max(p.ResponseTime-ts, 0)
				return t.emit(i, out)
			}
		}
		out = t.makeRoom(out)
		t.pending = append(t.pending, Transaction{ID: id, Name: name, Type: qtype, Query: m, QueryTime: ts, QueryDir: dir})
		return out
	}
	for i := range t.pending {
		p := &t.pending[i]
		if p.matches(id, name, qtype) && p.Query != nil && p.Response == nil && p.QueryDir != dir {
			p.Response, p.ResponseTime, p.ResponseDir = m, ts, dir
			p.RTT = max(ts-p.QueryTime, 0)
			return t.emit(i, out)
		}
	}
	out = t.makeRoom(out)
	t.pending = append(t.pending, Transaction{ID: id, Name: name, Type: qtype, Response: m, ResponseTime: ts, ResponseDir: dir})
	return out
}

// Expire appends every entry older than cutoff (unix nanoseconds; by query
// time, or response time for a response-only entry) to out as unanswered or
// response-only, for long-lived flows whose queries are never answered.
func (t *Tracker) Expire(cutoff int64, out []Transaction) []Transaction {
	kept := t.pending[:0]
	for _, p := range t.pending {
		at := p.QueryTime
		if p.Query == nil {
			at = p.ResponseTime
		}
		if at < cutoff {
			out = append(out, p)
		} else {
			kept = append(kept, p)
		}
	}
	clear(t.pending[len(kept):])
	t.pending = kept
	return out
}

// Flush appends every pending entry to out (unanswered queries and
// response-only transactions, oldest first) and empties the tracker; call it
// when the flow ends.
func (t *Tracker) Flush(out []Transaction) []Transaction {
	out = append(out, t.pending...)
	clear(t.pending)
	t.pending = t.pending[:0]
	return out
}

func (t *Tracker) makeRoom(out []Transaction) []Transaction {
	if len(t.pending) < MaxPendingPerFlow {
		return out
	}
	t.evictions++
	t.pending[0].Evicted = true
	return t.emit(0, out)
}

// emit appends pending[i] to out and removes it, keeping age order.
func (t *Tracker) emit(i int, out []Transaction) []Transaction {
	out = append(out, t.pending[i])
	copy(t.pending[i:], t.pending[i+1:])
	t.pending[len(t.pending)-1] = Transaction{}
	t.pending = t.pending[:len(t.pending)-1]
	return out
}

func (p *Transaction) matches(id uint16, name string, qtype uint16) bool {
	return p.ID == id && p.Type == qtype && p.Name == name
}

func keyOf(m *Message) (uint16, string, uint16) {
	if len(m.Questions) == 0 {
		return m.ID, "", 0
	}
	return m.ID, m.Questions[0].Name, m.Questions[0].Type
}
