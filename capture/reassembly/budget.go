package reassembly

// Budget bounds the out-of-order pages held by all Directions of one worker
// and recycles them. It is for single-goroutine use (no locks). A nil
// *Budget imposes no global limit and recycles nothing.
type Budget struct {
	limit    int // bytes
	inUse    int // bytes of pages handed out
	peak     int
	refusals uint64
	free     [][]byte // recycled pages; never more than limit/pageSize
}

// NewBudget returns a Budget of limitBytes (DefaultBudgetBytes when <= 0).
func NewBudget(limitBytes int) *Budget {
	if limitBytes <= 0 {
		limitBytes = DefaultBudgetBytes
	}
	return &Budget{limit: limitBytes}
}

// BudgetStats are the counters of a Budget.
type BudgetStats struct {
	Limit    int    // bytes
	InUse    int    // bytes of pages held by directions
	Peak     int    // highest InUse seen
	Free     int    // bytes of pages kept for reuse
	Refusals uint64 // pages refused because the limit was reached
}

// Stats returns the counters; a nil Budget reports zeros.
func (b *Budget) Stats() BudgetStats {
	if b == nil {
		return BudgetStats{}
	}
	return BudgetStats{Limit: b.limit, InUse: b.inUse, Peak: b.peak, Free: len(b.free) * pageSize, Refusals: b.refusals}
}

// get hands out one page, or nil when the limit is reached.
func (b *Budget) get() []byte {
	if b == nil {
		return make([]byte, pageSize)
	}
	if b.inUse+pageSize > b.limit {
		b.refusals++
		return nil
	}
	b.inUse += pageSize
	if b.inUse > b.peak {
		b.peak = b.inUse
	}
	if n := len(b.free); n > 0 {
		p := b.free[n-1]
		b.free[n-1] = nil
		b.free = b.free[:n-1]
		return p
	}
	return make([]byte, pageSize)
}

// put takes a page back for reuse.
func (b *Budget) put(p []byte) {
	if b == nil {
		return
	}
	b.inUse -= pageSize
	b.free = append(b.free, p)
}
