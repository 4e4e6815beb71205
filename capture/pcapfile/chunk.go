package pcapfile

import (
	"bufio"
	"io"
	"os"
	"sync/atomic"
)

// maxFreeChunks bounds the released chunks a Reader keeps for reuse; a chunk
// released when that many wait is left to the garbage collector (counted in
// ChunkStats.Dropped).
const maxFreeChunks = 16

// maxEmptyReads is how many reads in a row may return no data and no error
// before the stream is taken to be stuck (bufio's limit).
const maxEmptyReads = 100

// Chunk is a reference-counted read buffer. Packet.Data lies in one
// (Reader.Chunk, Merger.Chunk); a
// caller that must keep the data past the next Next call (hands it to
// another goroutine, say) calls Retain, and Release when done. The Reader
// then reads on into another chunk instead of overwriting the retained one.
// Retain and Release are safe for concurrent use; Retain must be called
// before the Reader's next Next call.
type Chunk struct {
	buf  []byte
	refs atomic.Int32 // the Reader's own reference counts while it reads into the chunk
	pool *chunkPool
}

// Retain adds a reference: the chunk's data stays unchanged until Release.
func (c *Chunk) Retain() { c.refs.Add(1) }

// Release drops a reference taken by Retain. Releasing more often than
// retaining is a programming error and panics, as a negative
// sync.WaitGroup counter does.
func (c *Chunk) Release() {
	switch n := c.refs.Add(-1); {
	case n == 0:
		c.pool.put(c)
	case n < 0:
		panic("pcapfile: Chunk released more often than retained")
	}
}

// chunkPool recycles a Reader's chunks; put is called from any goroutine.
type chunkPool struct {
	size                       int
	free                       chan *Chunk
	allocated, reused, dropped atomic.Uint64
	joined                     uint64 // records joined across read-ahead chunks (reader goroutine only)
}

func newChunkPool(size int) *chunkPool {
	return &chunkPool{size: size, free: make(chan *Chunk, maxFreeChunks)}
}

func (p *chunkPool) get() *Chunk {
	var c *Chunk
	select {
	case c = <-p.free:
		p.reused.Add(1)
	default:
		p.allocated.Add(1)
		c = &Chunk{buf: make([]byte, p.size), pool: p}
	}
	c.refs.Store(1)
	return c
}

func (p *chunkPool) put(c *Chunk) {
	if len(c.buf) != p.size {
		return // a one-off chunk (a record joined across two)
	}
	select {
	case p.free <- c:
	default:
		p.dropped.Add(1)
	}
}

// ChunkStats counts the read buffers of a Reader: Allocated grows when
// callers retain chunks faster than they release them. Joined counts
// records (pcapng blocks) longer than the read-ahead reserve that straddled
// two read-ahead chunks and were copied into a buffer of their own.
type ChunkStats struct {
	Allocated, Reused, Dropped, Joined uint64
}

// chunkReader is a buffered reader with bufio.Reader's Peek, Discard, Read
// and ReadByte semantics, whose buffer is a Chunk: while nobody else holds
// the chunk it slides unread bytes to the front and refills in place, as
// bufio does; once a caller retained it, it copies the unread bytes (less
// than one record) into a fresh chunk and reads on there.
type chunkReader struct {
	src  io.Reader
	pool *chunkPool
	size int // the most Peek returns (the chunk size without read-ahead)
	c    *Chunk
	r, w int        // unread bytes are c.buf[r:w]
	err  error      // from src, returned once the buffer is drained
	ra   *readAhead // non-nil: a goroutine reads src
}

func newChunkReader(src io.Reader, size int) *chunkReader {
	p := newChunkPool(size)
	return &chunkReader{src: src, pool: p, size: size, c: p.get()}
}

// Buffered returns the number of unread bytes in the buffer.
func (b *chunkReader) Buffered() int { return b.w - b.r }

func (b *chunkReader) readErr() error {
	err := b.err
	b.err = nil
	return err
}

// fill reads one more block into the buffer.
func (b *chunkReader) fill() {
	if b.ra != nil {
		b.fillAhead()
		return
	}
	if b.c.refs.Load() != 1 {
		// Retained elsewhere: the bytes handed out must stay put. Read on
		// after them while there is room, then move to a fresh chunk.
		if b.w < len(b.c.buf) {
			b.read()
			return
		}
		nc := b.pool.get()
		b.w = copy(nc.buf, b.c.buf[b.r:b.w])
		b.r = 0
		b.c.Release()
		b.c = nc
	} else if b.r > 0 {
		copy(b.c.buf, b.c.buf[b.r:b.w])
		b.w -= b.r
		b.r = 0
	}
	if b.w >= len(b.c.buf) {
		return // full: callers never ask for more than the buffer holds
	}
	b.read()
}

// read reads once into the free end of the buffer (retrying empty reads).
func (b *chunkReader) read() {
	for range maxEmptyReads {
		n, err := b.src.Read(b.c.buf[b.w:])
		if n < 0 || n > len(b.c.buf)-b.w {
			b.err = io.ErrShortBuffer // a broken Reader; never trust its count
			return
		}
		b.w += n
		if err != nil {
			b.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	b.err = io.ErrNoProgress
}

// Peek returns the next n bytes without consuming them, like
// bufio.Reader.Peek: with fewer available it returns them and the stream's
// error, or bufio.ErrBufferFull when n exceeds the buffer.
func (b *chunkReader) Peek(n int) ([]byte, error) {
	size := b.size
	for b.w-b.r < n && b.w-b.r < size && b.err == nil {
		b.fill()
	}
	if n > size {
		return b.c.buf[b.r:b.w], bufio.ErrBufferFull
	}
	var err error
	if avail := b.w - b.r; avail < n {
		n = avail
		if err = b.readErr(); err == nil {
			err = bufio.ErrBufferFull
		}
	}
	return b.c.buf[b.r : b.r+n], err
}

// Discard skips the next n bytes, like bufio.Reader.Discard.
func (b *chunkReader) Discard(n int) (int, error) {
	if n <= 0 {
		return 0, nil
	}
	remain := n
	for {
		skip := b.Buffered()
		if skip == 0 {
			b.fill()
			skip = b.Buffered()
		}
		skip = min(skip, remain)
		b.r += skip
		remain -= skip
		if remain == 0 {
			return n, nil
		}
		if b.err != nil {
			return n - remain, b.readErr()
		}
	}
}

// Read implements io.Reader (a decompressor reads the raw file through it).
func (b *chunkReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		if b.Buffered() > 0 {
			return 0, nil
		}
		return 0, b.readErr()
	}
	if b.r == b.w {
		if b.err != nil {
			return 0, b.readErr()
		}
		b.fill()
		if b.r == b.w {
			return 0, b.readErr()
		}
	}
	n := copy(p, b.c.buf[b.r:b.w])
	b.r += n
	return n, nil
}

// ReadByte implements io.ByteReader, so that flate reads from the buffer
// directly instead of adding its own.
func (b *chunkReader) ReadByte() (byte, error) {
	for b.r == b.w {
		if b.err != nil {
			return 0, b.readErr()
		}
		b.fill()
	}
	c := b.c.buf[b.r]
	b.r++
	return c, nil
}

var (
	_ io.Reader     = (*chunkReader)(nil)
	_ io.ByteReader = (*chunkReader)(nil)
)

// aheadReserve is the room kept free at the front of each read-ahead chunk:
// the unread tail of the previous chunk (the start of a record that
// straddles the two) is copied there, so the record is contiguous. It
// covers the largest classic pcap record; a longer pcapng block that
// straddles chunks is joined in a one-off buffer instead.
const aheadReserve = MaxCaptureLength + 64

// aheadDepth is how many filled chunks the read-ahead goroutine keeps ready.
const aheadDepth = 2

// filled is a chunk the read-ahead goroutine filled: n bytes from
// aheadReserve on, then err (non-nil only with the last chunk).
type filled struct {
	c   *Chunk
	n   int
	err error
}

// readAhead is the goroutine that reads the underlying stream into chunks
// while the caller parses the previous ones.
type readAhead struct {
	ch   chan filled
	stop chan struct{}
	done chan struct{}
	end  error // the stream's final error, once received
}

// startReadAhead hands the underlying stream to a goroutine. From then on
// only that goroutine reads src.
func (b *chunkReader) startReadAhead() {
	if b.ra != nil {
		return
	}
	ra := &readAhead{ch: make(chan filled, aheadDepth), stop: make(chan struct{}), done: make(chan struct{})}
	b.ra = ra
	pool := newChunkPool(aheadReserve + b.size)
	b.pool = pool
	go ra.run(b.src, pool)
}

func (ra *readAhead) run(src io.Reader, pool *chunkPool) {
	defer close(ra.done)
	defer close(ra.ch)
	for {
		c := pool.get()
		n, err := readFull(src, c.buf[aheadReserve:])
		select {
		case ra.ch <- filled{c: c, n: n, err: err}:
		case <-ra.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

// readFull fills buf unless the stream ends or fails first; it gives up
// after maxEmptyReads reads in a row that return nothing.
func readFull(src io.Reader, buf []byte) (int, error) {
	n, empty := 0, 0
	for n < len(buf) {
		m, err := src.Read(buf[n:])
		if m < 0 || m > len(buf)-n {
			return n, io.ErrShortBuffer
		}
		n += m
		if err != nil {
			return n, err
		}
		if m == 0 {
			if empty++; empty == maxEmptyReads {
				return n, io.ErrNoProgress
			}
		}
	}
	return n, nil
}

// fillAhead moves to the next chunk the goroutine filled, carrying over the
// unread tail.
func (b *chunkReader) fillAhead() {
	ra := b.ra
	if ra.end != nil {
		b.err = ra.end
		return
	}
	f, ok := <-ra.ch
	if !ok {
		// Stopped by Close: reading on is reading a closed file.
		ra.end, b.err = os.ErrClosed, os.ErrClosed
		return
	}
	tail := b.c.buf[b.r:b.w]
	if len(tail) <= aheadReserve {
		start := aheadReserve - len(tail)
		copy(f.c.buf[start:], tail)
		b.c.Release()
		b.c, b.r, b.w = f.c, start, aheadReserve+f.n
	} else {
		// A record longer than the reserve straddles the chunks.
		nc := &Chunk{buf: make([]byte, len(tail)+f.n), pool: b.pool}
		nc.refs.Store(1)
		copy(nc.buf[copy(nc.buf, tail):], f.c.buf[aheadReserve:aheadReserve+f.n])
		f.c.Release()
		b.c.Release()
		b.c, b.r, b.w = nc, 0, len(nc.buf)
		b.pool.joined++
	}
	if f.err != nil {
		ra.end, b.err = f.err, f.err
	}
}

// stopReadAhead ends the goroutine and waits for it, so that the stream
// can be closed.
func (b *chunkReader) stopReadAhead() {
	if b.ra == nil {
		return
	}
	select {
	case <-b.ra.stop:
	default:
		close(b.ra.stop)
	}
	<-b.ra.done
}
