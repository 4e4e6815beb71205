package exfil

// lru is a bounded map with least-recently-used eviction. Nodes live in
// fixed-size chunks linked by index, so a full table recycles the evicted
// node (and the buffers inside its value) instead of allocating, and a
// growing one adds a chunk instead of copying every node into a slice twice
// the size (which, for tens of thousands of pairs, cost more than the
// lookups: the copy and the page faults of the new array).
type lru[K comparable, V any] struct {
	idx        map[K]int32
	chunks     [][]lruNode[K, V] // each of lruChunk nodes; the last may be shorter
	n          int32             // nodes in use
	head, tail int32             // head is the most recently used; -1 when empty
	limit      int
	evictions  uint64
}

// lruChunk is how many nodes a chunk holds (a power of two).
const (
	lruChunkBits = 9
	lruChunk     = 1 << lruChunkBits
)

type lruNode[K comparable, V any] struct {
	key        K
	val        V
	prev, next int32
}

func newLRU[K comparable, V any](limit int) *lru[K, V] {
	return &lru[K, V]{idx: make(map[K]int32), head: -1, tail: -1, limit: max(limit, 1)}
}

func (l *lru[K, V]) len() int { return len(l.idx) }

func (l *lru[K, V]) node(i int32) *lruNode[K, V] {
	return &l.chunks[i>>lruChunkBits][i&(lruChunk-1)]
}

// add returns a fresh node's index.
func (l *lru[K, V]) add() int32 {
	i := l.n
	c := int(i >> lruChunkBits)
	if c == len(l.chunks) {
		l.chunks = append(l.chunks, make([]lruNode[K, V], 0, min(lruChunk, l.limit)))
	}
	l.chunks[c] = append(l.chunks[c], lruNode[K, V]{})
	l.n++
	return i
}

func (l *lru[K, V]) unlink(i int32) {
	n := l.node(i)
	if n.prev >= 0 {
		l.node(n.prev).next = n.next
	} else {
		l.head = n.next
	}
	if n.next >= 0 {
		l.node(n.next).prev = n.prev
	} else {
		l.tail = n.prev
	}
}

func (l *lru[K, V]) pushFront(i int32) {
	n := l.node(i)
	n.prev, n.next = -1, l.head
	if l.head >= 0 {
		l.node(l.head).prev = i
	}
	l.head = i
	if l.tail < 0 {
		l.tail = i
	}
}

// get returns the value for k and marks it most recently used. The pointer
// is valid until the next call to getOrAdd.
func (l *lru[K, V]) get(k K) (*V, bool) {
	i, ok := l.idx[k]
	if !ok {
		return nil, false
	}
	if l.head != i {
		l.unlink(i)
		l.pushFront(i)
	}
	return &l.node(i).val, true
}

// getOrAdd returns the value for k, adding it when absent. created reports a
// new entry; its value is either zero or the recycled value of the evicted
// entry (evicted=true), which the caller resets while keeping its buffers.
func (l *lru[K, V]) getOrAdd(k K) (v *V, created, evicted bool) {
	if v, ok := l.get(k); ok {
		return v, false, false
	}
	var i int32
	if len(l.idx) >= l.limit {
		i = l.tail
		l.unlink(i)
		delete(l.idx, l.node(i).key)
		l.evictions++
		evicted = true
	} else {
		i = l.add()
	}
	n := l.node(i)
	n.key = k
	l.idx[k] = i
	l.pushFront(i)
	return &n.val, true, evicted
}

// each visits entries from most to least recently used without reordering;
// the order is deterministic, unlike map iteration.
func (l *lru[K, V]) each(fn func(k K, v *V)) {
	for i := l.head; i >= 0; i = l.node(i).next {
		n := l.node(i)
		fn(n.key, &n.val)
	}
}
