package attribute

// lru is a bounded map with least-recently-used eviction. It is the one
// container behind the DNS cache, the per-flow state, the alert dedup table
// and the host inventory, so each of them has a named limit and counts what
// it drops. Not safe for concurrent use (the Attributor runs on one
// goroutine).
type lru[K comparable, V any] struct {
	limit   int
	items   map[K]*lruNode[K, V]
	head    lruNode[K, V] // sentinel: head.next is the most recent
	evicted uint64
	// free recycles nodes so a steady stream of inserts and evictions does
	// not allocate.
	free *lruNode[K, V]
}

type lruNode[K comparable, V any] struct {
	key        K
	val        V
	prev, next *lruNode[K, V]
}

func newLRU[K comparable, V any](limit int) *lru[K, V] {
	l := &lru[K, V]{limit: max(limit, 1), items: make(map[K]*lruNode[K, V])}
	l.head.next, l.head.prev = &l.head, &l.head
	return l
}

func (l *lru[K, V]) unlink(n *lruNode[K, V]) {
	n.prev.next, n.next.prev = n.next, n.prev
}

func (l *lru[K, V]) pushFront(n *lruNode[K, V]) {
	n.prev, n.next = &l.head, l.head.next
	l.head.next.prev = n
	l.head.next = n
}

// get returns a pointer to the value (valid until the next put or delete)
// and marks it recently used.
func (l *lru[K, V]) get(k K) (*V, bool) {
	n, ok := l.items[k]
	if !ok {
		return nil, false
	}
	l.unlink(n)
	l.pushFront(n)
	return &n.val, true
}

// put returns a pointer to k's value, inserting a zero value (and evicting
// the least recently used entry when full) if k is new. created reports the
// insertion.
func (l *lru[K, V]) put(k K) (v *V, created bool) {
	if n, ok := l.items[k]; ok {
		l.unlink(n)
		l.pushFront(n)
		return &n.val, false
	}
	if len(l.items) >= l.limit {
		old := l.head.prev
		l.unlink(old)
		delete(l.items, old.key)
		l.evicted++
		l.recycle(old)
	}
	n := l.free
	if n != nil {
		l.free = n.next
	} else {
		n = &lruNode[K, V]{}
	}
	n.key = k
	l.items[k] = n
	l.pushFront(n)
	return &n.val, true
}

func (l *lru[K, V]) recycle(n *lruNode[K, V]) {
	var zk K
	var zv V
	n.key, n.val, n.prev = zk, zv, nil
	n.next = l.free
	l.free = n
}

func (l *lru[K, V]) delete(k K) {
	n, ok := l.items[k]
	if !ok {
		return
	}
	l.unlink(n)
	delete(l.items, k)
	l.recycle(n)
}

func (l *lru[K, V]) len() int { return len(l.items) }

// each calls fn from the least to the most recently used entry (a stable,
// insertion-like order for reports).
func (l *lru[K, V]) each(fn func(k K, v *V)) {
	for n := l.head.prev; n != &l.head; n = n.prev {
		fn(n.key, &n.val)
	}
}
