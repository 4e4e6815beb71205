package exfil

// lru is a bounded map with least-recently-used eviction. Nodes live in one
// slice linked by index, so a full table recycles the evicted node (and the
// buffers inside its value) instead of allocating.
type lru[K comparable, V any] struct {
	idx        map[K]int32
	nodes      []lruNode[K, V]
	head, tail int32 // head is the most recently used; -1 when empty
	limit      int
	evictions  uint64
}

type lruNode[K comparable, V any] struct {
	key        K
	val        V
	prev, next int32
}

func newLRU[K comparable, V any](limit int) *lru[K, V] {
	return &lru[K, V]{idx: make(map[K]int32), head: -1, tail: -1, limit: max(limit, 1)}
}

func (l *lru[K, V]) len() int { return len(l.idx) }

func (l *lru[K, V]) unlink(i int32) {
	n := &l.nodes[i]
	if n.prev >= 0 {
		l.nodes[n.prev].next = n.next
	} else {
		l.head = n.next
	}
	if n.next >= 0 {
		l.nodes[n.next].prev = n.prev
	} else {
		l.tail = n.prev
	}
}

func (l *lru[K, V]) pushFront(i int32) {
	n := &l.nodes[i]
	n.prev, n.next = -1, l.head
	if l.head >= 0 {
		l.nodes[l.head].prev = i
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
	return &l.nodes[i].val, true
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
		delete(l.idx, l.nodes[i].key)
		l.evictions++
		evicted = true
	} else {
		l.nodes = append(l.nodes, lruNode[K, V]{})
		i = int32(len(l.nodes) - 1)
	}
	l.nodes[i].key = k
	l.idx[k] = i
	l.pushFront(i)
	return &l.nodes[i].val, true, evicted
}

// each visits entries from most to least recently used without reordering;
// the order is deterministic, unlike map iteration.
func (l *lru[K, V]) each(fn func(k K, v *V)) {
	for i := l.head; i >= 0; i = l.nodes[i].next {
		fn(l.nodes[i].key, &l.nodes[i].val)
	}
}
