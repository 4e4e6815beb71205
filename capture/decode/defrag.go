package decode

import (
	"net/netip"
	"time"
)

// DefragLimits bound IP fragment reassembly. Zero fields take the defaults.
type DefragLimits struct {
	MaxDatagrams int           // datagrams under reassembly at once (oldest evicted beyond it)
	MaxFragments int           // fragments accepted for one datagram
	MaxBytes     int           // bytes buffered across all datagrams
	Timeout      time.Duration // a datagram not completed within this (packet time) is dropped
}

// Defaults modelled on Linux (ipfrag_time 30 s) and Packetbeat's named bounds.
const (
	DefaultDefragMaxDatagrams = 4096
	DefaultDefragMaxFragments = 128
	DefaultDefragMaxBytes     = 32 << 20
	DefaultDefragTimeout      = 30 * time.Second
	maxDatagramSize           = 65535 + 40 // the largest non-jumbo IPv6 payload plus slack
)

func (l DefragLimits) withDefaults() DefragLimits {
	if l.MaxDatagrams <= 0 {
		l.MaxDatagrams = DefaultDefragMaxDatagrams
	}
	if l.MaxFragments <= 0 {
		l.MaxFragments = DefaultDefragMaxFragments
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultDefragMaxBytes
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultDefragTimeout
	}
	return l
}

// DefragStats counts what reassembly did; every fragment that never became
// part of a packet is in Timeouts, Evicted or Dropped.
type DefragStats struct {
	Fragments   uint64 // fragments seen
	Reassembled uint64 // datagrams completed
	Timeouts    uint64 // datagrams dropped incomplete after Timeout
	Evicted     uint64 // datagrams dropped to stay within MaxDatagrams or MaxBytes
	Dropped     uint64 // fragments refused: bad offsets, too many, oversize
	Pending     int    // datagrams under reassembly now
	BytesHeld   int    // bytes buffered now
}

type fragKey struct {
	src, dst netip.Addr
	id       uint32
	proto    uint8
}

type datagram struct {
	key        fragKey
	first      int64 // time of the first fragment
	buf        []byte
	covered    []uint64 // one bit per 8-byte unit received
	total      int      // payload length once the last fragment is seen, else -1
	fragments  int
	prev, next *datagram // age order, oldest at head
}

// Defragmenter reassembles IPv4 and IPv6 fragments with bounded memory.
// Overlapping data keeps the bytes that arrived first (the BSD/Windows
// "first" policy): a later fragment cannot rewrite what was already seen.
type Defragmenter struct {
	limits     DefragLimits
	pending    map[fragKey]*datagram
	head, tail *datagram
	out        []byte // buffer of the last completed datagram, valid until the next call
	spare      [][]byte
	stats      DefragStats
}

// NewDefragmenter returns a defragmenter with the given limits.
func NewDefragmenter(limits DefragLimits) *Defragmenter {
	return &Defragmenter{limits: limits.withDefaults(), pending: make(map[fragKey]*datagram)}
}

// Stats returns the counters.
func (f *Defragmenter) Stats() DefragStats {
	s := f.stats
	s.Pending = len(f.pending)
	return s
}

func (f *Defragmenter) addV4(p *Packet, hdr []byte, frag uint16, payload []byte, plen int) ([]byte, Reason) {
	id := uint32(hdr[4])<<8 | uint32(hdr[5])
	off := int(frag&0x1fff) * 8
	more := frag&0x2000 != 0
	return f.add(fragKey{p.Src, p.Dst, id, p.Proto}, p.Timestamp, off, more, payload, plen)
}

func (f *Defragmenter) addV6(p *Packet, id uint32, offField uint16, proto uint8, payload []byte, plen int) ([]byte, Reason) {
	off := int(offField>>3) * 8
	more := offField&0x0001 != 0
	return f.add(fragKey{p.Src, p.Dst, id, proto}, p.Timestamp, off, more, payload, plen)
}

func (f *Defragmenter) add(k fragKey, ts int64, off int, more bool, payload []byte, plen int) ([]byte, Reason) {
	f.stats.Fragments++
	f.expire(ts)
	if more {
		// A non-final fragment must be a multiple of 8 bytes (RFC 791, RFC
		// 8200); like Linux, use the whole 8-byte units and ignore the rest.
		plen &^= 7
	}
	end := off + plen
	if len(payload) < plen || end > maxDatagramSize || plen == 0 {
		// A snapped fragment cannot be reassembled faithfully.
		f.stats.Dropped++
		return nil, SkipFragmentDropped
	}
	dg := f.pending[k]
	if dg == nil {
		for len(f.pending) >= f.limits.MaxDatagrams {
			f.evictOldest()
		}
		dg = &datagram{key: k, first: ts, total: -1}
		f.pending[k] = dg
		f.pushBack(dg)
	}
	dg.fragments++
	if dg.fragments > f.limits.MaxFragments || (!more && dg.total >= 0 && end != dg.total) {
		f.stats.Dropped++
		return nil, SkipFragmentDropped
	}
	if !more {
		dg.total = end
	}
	if dg.total >= 0 && end > dg.total {
		// Data beyond the end the last fragment declared: keep what fits.
		end = dg.total
		if end <= off {
			f.stats.Dropped++
			return nil, SkipFragmentDropped
		}
	}
	if end > len(dg.buf) {
		grow := end - len(dg.buf)
		for f.stats.BytesHeld+grow > f.limits.MaxBytes && f.head != nil && f.head != dg {
			f.evictOldest()
		}
		if f.stats.BytesHeld+grow > f.limits.MaxBytes {
			f.stats.Dropped++
			return nil, SkipFragmentDropped
		}
		dg.buf = f.growBuf(dg.buf, end)
		f.stats.BytesHeld += grow
		units := (end + 7) / 8
		for len(dg.covered)*64 < units {
			dg.covered = append(dg.covered, 0)
		}
	}
	// Copy only units not yet covered (first data wins on overlap).
	for u := off / 8; u*8 < end; u++ {
		w, bit := u/64, uint64(1)<<(u%64)
		if dg.covered[w]&bit != 0 {
			continue
		}
		dg.covered[w] |= bit
		s, e := u*8, u*8+8
		if e > end {
			e = end
		}
		copy(dg.buf[s:e], payload[s-off:e-off])
	}
	if dg.total < 0 || !complete(dg.covered, (dg.total+7)/8) {
		return nil, SkipFragmentHeld
	}
	// Complete: hand the buffer out, recycling the previous output buffer.
	f.remove(dg)
	if f.out != nil {
		f.spare = append(f.spare[:0], f.out[:0])
	}
	f.out = dg.buf[:dg.total]
	f.stats.Reassembled++
	return f.out, OK
}

func complete(covered []uint64, units int) bool {
	for u := 0; u < units; u++ {
		if covered[u/64]&(1<<(u%64)) == 0 {
			return false
		}
	}
	return true
}

func (f *Defragmenter) growBuf(b []byte, n int) []byte {
	if cap(b) >= n {
		return b[:n]
	}
	if len(b) == 0 && len(f.spare) > 0 && cap(f.spare[0]) >= n {
		nb := f.spare[0][:n]
		f.spare = f.spare[:0]
		clear(nb)
		return nb
	}
	nb := make([]byte, n, max(n, 2048))
	copy(nb, b)
	return nb
}

func (f *Defragmenter) expire(now int64) {
	limit := int64(f.limits.Timeout)
	for f.head != nil && now-f.head.first > limit {
		f.stats.Timeouts++
		f.remove(f.head)
	}
}

func (f *Defragmenter) evictOldest() {
	if f.head != nil {
		f.stats.Evicted++
		f.remove(f.head)
	}
}

func (f *Defragmenter) pushBack(dg *datagram) {
	dg.prev = f.tail
	if f.tail != nil {
		f.tail.next = dg
	} else {
		f.head = dg
	}
	f.tail = dg
}

func (f *Defragmenter) remove(dg *datagram) {
	if dg.prev != nil {
		dg.prev.next = dg.next
	} else {
		f.head = dg.next
	}
	if dg.next != nil {
		dg.next.prev = dg.prev
	} else {
		f.tail = dg.prev
	}
	dg.prev, dg.next = nil, nil
	delete(f.pending, dg.key)
	f.stats.BytesHeld -= len(dg.buf)
}

// Flush drops every datagram still under reassembly (end of capture) and
// counts them as timeouts.
func (f *Defragmenter) Flush() {
	for f.head != nil {
		f.stats.Timeouts++
		f.remove(f.head)
	}
}
