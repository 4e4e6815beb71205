package quic

// MaxCryptoStream bounds the Initial CRYPTO stream kept per direction. Bytes
// at offsets at or beyond it are dropped and counted (Stats.CryptoBytesDropped);
// a ClientHello longer than this never completes (ErrHelloTooLarge).
const MaxCryptoStream = 64 << 10

// maxCryptoRanges bounds the disjoint byte ranges held while a stream has
// gaps; a frame that would need more is dropped and counted.
const maxCryptoRanges = 32

// byteRange is a half-open [start, end) range of stream offsets.
type byteRange struct{ start, end int }

// cryptoStream reassembles one direction's Initial CRYPTO stream from frames
// that may arrive out of order, repeat or overlap. The first copy of a byte
// wins, so a later overlapping frame cannot rewrite what was seen.
type cryptoStream struct {
	buf    []byte      // grows up to MaxCryptoStream
	ranges []byteRange // sorted, disjoint, non-adjacent
}

// contiguous returns the bytes received from offset 0 without a gap.
func (s *cryptoStream) contiguous() []byte {
	if len(s.ranges) == 0 || s.ranges[0].start != 0 {
		return nil
	}
	return s.buf[:s.ranges[0].end]
}

// add stores data at offset. It returns the number of bytes dropped for
// lying beyond MaxCryptoStream, and false if the frame was dropped whole
// because the stream is too fragmented.
func (s *cryptoStream) add(offset uint64, data []byte) (dropped int, ok bool) {
	if offset >= MaxCryptoStream {
		return len(data), true
	}
	start := int(offset)
	if room := MaxCryptoStream - start; len(data) > room {
		dropped = len(data) - room
		data = data[:room]
	}
	end := start + len(data)
	if len(data) == 0 {
		return dropped, true
	}
	// Find where [start,end) goes and how many ranges it merges with.
	i := 0
	for i < len(s.ranges) && s.ranges[i].end < start {
		i++
	}
	j := i
	for j < len(s.ranges) && s.ranges[j].start <= end {
		j++
	}
	if i == j && len(s.ranges) >= maxCryptoRanges {
		return dropped + len(data), false
	}
	s.grow(end)
	// Copy only into the gaps between the existing ranges i..j-1.
	pos := start
	for k := i; k < j && pos < end; k++ {
		r := s.ranges[k]
		if pos < r.start {
			copy(s.buf[pos:r.start], data[pos-start:r.start-start])
		}
		if r.end > pos {
			pos = r.end
		}
	}
	if pos < end {
		copy(s.buf[pos:end], data[pos-start:])
	}
	merged := byteRange{start, end}
	if i < j {
		merged.start = min(merged.start, s.ranges[i].start)
		merged.end = max(merged.end, s.ranges[j-1].end)
	}
	switch {
	case i == j: // insert
		s.ranges = append(s.ranges, byteRange{})
		copy(s.ranges[i+1:], s.ranges[i:])
		s.ranges[i] = merged
	default: // replace i..j-1 by one range
		s.ranges[i] = merged
		s.ranges = append(s.ranges[:i+1], s.ranges[j:]...)
	}
	return dropped, true
}

// grow makes buf at least n bytes long (n <= MaxCryptoStream), doubling to
// keep the number of reallocations per stream small.
func (s *cryptoStream) grow(n int) {
	if n <= len(s.buf) {
		return
	}
	if n <= cap(s.buf) {
		s.buf = s.buf[:n]
		return
	}
	c := max(2*cap(s.buf), n, 2048)
	c = min(c, MaxCryptoStream)
	nb := make([]byte, n, c)
	copy(nb, s.buf)
	s.buf = nb
}

// reset forgets all data but keeps the allocation.
func (s *cryptoStream) reset() {
	s.buf = s.buf[:0]
	s.ranges = s.ranges[:0]
}
