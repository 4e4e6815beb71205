package pcapfile

import (
	"container/heap"
	"errors"
	"io"
)

// SourceError is a failure of one of a Merger's readers.
type SourceError struct {
	Index int // position of the reader in NewMerger's arguments
	Name  string
	Err   error // the reader's error (an *Error naming file and offset)
}

func (e *SourceError) Error() string { return e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

// Merger interleaves the packets of several Readers in timestamp order.
// Each reader keeps its pending packet in its own read buffer, so merging
// copies nothing. Not safe for concurrent use.
type Merger struct {
	readers []*Reader
	pending []Packet // next packet of each reader, valid while in the heap
	order   mergeHeap
	started bool
	last    int // reader whose packet was returned last; -1 if none
	errs    []SourceError
	// queued counts errs not yet returned by Next.
	queued int
}

// NewMerger merges readers; it takes over reading them (the caller still
// closes them).
func NewMerger(readers ...*Reader) *Merger {
	m := &Merger{
		readers: readers,
		pending: make([]Packet, len(readers)),
		last:    -1,
	}
	m.order = mergeHeap{m: m, idx: make([]int, 0, len(readers))}
	return m
}

// Next returns the packet with the smallest timestamp among the readers and
// the index of its reader; ties go to the lower index, and each reader's
// own order is kept. Packet.Data is valid until the next call.
//
// When a reader fails (corrupt record, or ErrTruncated at a cut end), Next
// returns a *SourceError for it once, with that reader's index and no
// packet; the other readers continue on the following calls. io.EOF means every reader
// is finished.
func (m *Merger) Next() (Packet, int, error) {
	if !m.started {
		m.started = true
		for i := range m.readers {
			if m.advance(i) {
				m.order.idx = append(m.order.idx, i)
			}
		}
		heap.Init(&m.order)
	} else if m.last >= 0 {
		i := m.last
		m.last = -1
		if m.advance(i) {
			heap.Fix(&m.order, 0)
		} else {
			heap.Pop(&m.order)
		}
	}
	if m.queued > 0 {
		e := &m.errs[len(m.errs)-m.queued]
		m.queued--
		return Packet{}, e.Index, e
	}
	if len(m.order.idx) == 0 {
		return Packet{}, -1, io.EOF
	}
	i := m.order.idx[0]
	m.last = i
	return m.pending[i], i, nil
}

// Chunk returns the read buffer of the packet Next returned last (see
// Reader.Chunk), or nil before the first packet and after an error.
func (m *Merger) Chunk() *Chunk {
	if m.last < 0 {
		return nil
	}
	return m.readers[m.last].Chunk()
}

// advance loads reader i's next packet into pending, reporting whether it
// has one; a failure is queued for Next.
func (m *Merger) advance(i int) bool {
	p, err := m.readers[i].Next()
	if err != nil {
		if !errors.Is(err, io.EOF) {
			m.errs = append(m.errs, SourceError{Index: i, Name: m.readers[i].Name(), Err: err})
			m.queued++
		}
		return false
	}
	m.pending[i] = p
	return true
}

// Failed returns the failures seen so far, in the order they happened. A
// failure wrapping ErrTruncated means the file was cut short; every packet
// before the cut was delivered.
func (m *Merger) Failed() []SourceError { return m.errs }

// mergeHeap orders reader indexes by their pending packet's timestamp.
type mergeHeap struct {
	m   *Merger
	idx []int
}

func (h *mergeHeap) Len() int { return len(h.idx) }
func (h *mergeHeap) Less(a, b int) bool {
	pa, pb := h.m.pending[h.idx[a]].Timestamp, h.m.pending[h.idx[b]].Timestamp
	if pa != pb {
		return pa < pb
	}
	return h.idx[a] < h.idx[b]
}
func (h *mergeHeap) Swap(a, b int) { h.idx[a], h.idx[b] = h.idx[b], h.idx[a] }
func (h *mergeHeap) Push(x any)    { h.idx = append(h.idx, x.(int)) }
func (h *mergeHeap) Pop() any {
	n := len(h.idx) - 1
	x := h.idx[n]
	h.idx = h.idx[:n]
	return x
}

var _ heap.Interface = (*mergeHeap)(nil)
