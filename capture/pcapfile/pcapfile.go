// Package pcapfile reads capture files (pcap, nanosecond pcap, pcapng, any of
// them gzip- or zstd-compressed) packet by packet without allocating, for
// replay.
//
// The format is detected from the magic number, never from the file name.
// Packet data is handed out zero-copy from a large read buffer, so it is valid
// only until the next call to Next, unless the caller retains the buffer
// (Reader.Chunk).
package pcapfile

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/gopacket/gopacket/layers"
	"github.com/klauspost/compress/zstd"
)

const (
	// MaxCaptureLength bounds the captured length of one packet (tcpdump's
	// default snap length). A larger record means a corrupt or hostile file.
	MaxCaptureLength = 256 << 10
	// snapLenSlack: a record may exceed the file's snap length up to this size,
	// because some writers record a tiny or wrong snap length (the corpus has
	// a pcap with snap length 1 holding an 8-byte packet). Above both limits
	// the record stream is taken to be desynchronised.
	snapLenSlack = 65535
	// readBufferSize is the read buffer (Chunk) size: every record (packet
	// header, data and pcapng options) that is handed out must fit in it.
	readBufferSize = 1 << 20
	minBufferSize  = 4 << 10
	// MaxBlockLength bounds a pcapng block that is skipped rather than
	// parsed (unknown, statistics, name resolution, oversized secrets).
	MaxBlockLength = 16 << 20
	// MaxZstdWindow bounds the zstd window (decoder history memory);
	// zstd -19 uses 8 MiB, --ultra -22 128 MiB.
	MaxZstdWindow = 128 << 20
	// MaxInterfaces bounds the interfaces of one pcapng section.
	MaxInterfaces = 4096
	// maxInterfaceName bounds the stored if_name of an interface.
	maxInterfaceName = 256
	// MaxSecretsBytes bounds the decryption secrets kept from pcapng DSBs;
	// later ones are dropped and counted.
	MaxSecretsBytes = 16 << 20
)

// Errors that the errors returned by this package wrap (test with errors.Is).
var (
	// ErrTruncated: the capture ends inside a record (a file killed
	// mid-write, or a compressed stream cut short). Every packet before the cut
	// was delivered; callers normally report it as a warning.
	ErrTruncated = errors.New("truncated capture")
	// ErrCorrupt: a header or record is invalid; the rest of the file
	// cannot be trusted.
	ErrCorrupt = errors.New("corrupt capture")
	// ErrUnknownFormat: the magic number is not pcap, pcapng, gzip or zstd.
	ErrUnknownFormat = errors.New("unknown capture format")
)

// Error describes a problem at a byte offset of a capture. Offset counts
// bytes of the decompressed capture stream; it is -1 when not applicable.
type Error struct {
	File   string
	Offset int64
	Kind   error // ErrTruncated, ErrCorrupt, ErrUnknownFormat or an I/O error
	Detail string
}

func (e *Error) Error() string {
	if e.Offset < 0 {
		return fmt.Sprintf("pcapfile: %s: %s", e.File, e.Detail)
	}
	return fmt.Sprintf("pcapfile: %s: offset %d: %s", e.File, e.Offset, e.Detail)
}

func (e *Error) Unwrap() error { return e.Kind }

// Format is the container format of a capture.
type Format uint8

// Formats recognised by Open.
const (
	FormatPcap   Format = iota + 1 // classic pcap, microsecond timestamps
	FormatPcapNs                   // classic pcap, nanosecond timestamps
	FormatPcapNG
)

func (f Format) String() string {
	switch f {
	case FormatPcap:
		return "pcap"
	case FormatPcapNs:
		return "pcap-ns"
	case FormatPcapNG:
		return "pcapng"
	}
	return "unknown"
}

// Packet is one captured packet.
type Packet struct {
	// Data is the captured bytes; it aliases the reader's buffer and is
	// valid only until the next Next call on the same Reader, unless the
	// caller retains that buffer (Reader.Chunk).
	Data      []byte
	Timestamp int64 // Unix nanoseconds (pcapng if_tsresol/if_tsoffset applied)
	// CaptureLength is len(Data); Length is the length on the wire as the
	// file records it (at least CaptureLength unless the file lies).
	CaptureLength int
	Length        int
	LinkType      layers.LinkType // per packet: pcapng interfaces may differ
	// Interface is the pcapng interface index within its section (0 for pcap).
	Interface int
	// InterfaceName is the pcapng if_name option ("" when absent or pcap).
	InterfaceName string
}

// DecryptionSecret is the raw content of a pcapng Decryption Secrets Block.
type DecryptionSecret struct {
	Type uint32 // e.g. 0x544c534b "TLSK": NSS key log lines
	Data []byte
}

// Reader reads packets from one capture. It is not safe for concurrent use.
type Reader struct {
	name   string
	closer io.Closer // the opened file; nil for stdin and NewReader
	size   int64

	raw    *countingReader // counts bytes taken from the underlying file
	rawBuf *chunkReader    // buffers raw; equals br unless compressed
	// compression is "gzip", "zstd" or ""; decClose releases the decoder.
	compression string
	decClose    func()
	br          *chunkReader // the decompressed capture stream
	off         int64        // offset in the capture stream of br's next byte
	err         error        // sticky: once set, Next returns it

	format    Format
	bigEndian bool

	// classic pcap
	recHdrLen int   // 16, or 24 for the modified (Kuznetsov) format
	tsScale   int64 // nanoseconds per fractional unit
	snapLen   uint32
	snapLimit uint32
	linkType  layers.LinkType

	// pcapng
	ng ngState
}

// countingReader counts what was read from the underlying stream.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Open opens the capture at path ("-" is standard input) and reads its
// header. The format is detected from the magic number; gzip and zstd are
// undone transparently.
func Open(path string) (*Reader, error) {
	if path == "-" {
		r, err := newReader(os.Stdin, "(stdin)", -1)
		return r, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pcapfile: %w", err)
	}
	size := int64(-1)
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	r, err := newReader(f, path, size)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// NewReader reads a capture from an arbitrary stream; name is used in
// errors. Size reports -1 and Close does not close src.
func NewReader(src io.Reader, name string) (*Reader, error) {
	return newReader(src, name, -1)
}

func newReader(src io.Reader, name string, size int64) (*Reader, error) {
	r := &Reader{name: name, size: size, raw: &countingReader{r: src}}
	// An in-memory stream needs no larger buffer than itself: a record
	// that does not fit is past its end. (Files keep the full buffer: they
	// may grow while being read.)
	bufSize := readBufferSize
	if l, ok := src.(interface{ Len() int }); ok && l.Len() < bufSize {
		bufSize = max(l.Len(), minBufferSize)
	}
	r.rawBuf = newChunkReader(r.raw, bufSize)
	r.br = r.rawBuf
	magic, err := r.rawBuf.Peek(4)
	dec, derr := r.decompressor(magic)
	if derr != nil {
		return nil, derr
	}
	if dec != nil {
		// The magic that matters is the decompressed stream's, and so is
		// its read error.
		r.br = newChunkReader(dec, readBufferSize)
		magic, err = r.br.Peek(4)
	}
	if len(magic) < 4 {
		if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, &Error{File: name, Offset: 0, Kind: ErrTruncated,
				Detail: fmt.Sprintf("file ends after %d bytes, before the capture header", len(magic))}
		}
		return nil, r.ioError(err)
	}
	switch m := uint32(magic[0])<<24 | uint32(magic[1])<<16 | uint32(magic[2])<<8 | uint32(magic[3]); m {
	case 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1, 0xa1b2cd34, 0x34cdb2a1:
		err = r.readPcapHeader()
	case ngBlockSHB:
		err = r.startPcapNG()
	default:
		return nil, &Error{File: name, Offset: -1, Kind: ErrUnknownFormat,
			Detail: fmt.Sprintf("unknown capture format (magic 0x%08x)", m)}
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// decompressor returns a decoder over rawBuf when magic announces gzip or
// zstd, and nil for an uncompressed capture.
func (r *Reader) decompressor(magic []byte) (io.Reader, error) {
	var dec io.Reader
	var err error
	var format string
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		format = "gzip"
		var gz *gzip.Reader
		if gz, err = gzip.NewReader(r.rawBuf); err == nil {
			dec, r.compression, r.decClose = gz, "gzip", func() { gz.Close() }
		}
	case len(magic) == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
		// Synchronous decoding (no goroutines) with a bounded window.
		format = "zstd"
		var zr *zstd.Decoder
		if zr, err = zstd.NewReader(r.rawBuf, zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(MaxZstdWindow)); err == nil {
			dec, r.compression, r.decClose = zr, "zstd", zr.Close
		}
	default:
		return nil, nil
	}
	if err != nil {
		kind := error(ErrCorrupt)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			kind = ErrTruncated
		}
		return nil, &Error{File: r.name, Offset: -1, Kind: kind, Detail: format + " header: " + err.Error()}
	}
	return dec, nil
}

// Next returns the next packet. It returns io.EOF at a clean end of the
// capture, an *Error wrapping ErrTruncated when the capture ends inside a
// record, and an *Error wrapping ErrCorrupt (or an I/O error) otherwise.
// After an error every later call returns the same error.
func (r *Reader) Next() (Packet, error) {
	if r.err != nil {
		return Packet{}, r.err
	}
	var p Packet
	var err error
	if r.format == FormatPcapNG {
		p, err = r.nextPcapNG()
	} else {
		p, err = r.nextPcap()
	}
	if err != nil {
		r.err = err
	}
	return p, err
}

// Chunk returns the read buffer that the Data of the packet Next returned
// last lies in (it was peeked after the last refill). Retaining it keeps
// that Data valid past the next Next call, until the matching Release.
// (A method, not a Packet field: Packet is copied through every layer per
// packet, and each word counts.)
func (r *Reader) Chunk() *Chunk { return r.br.c }

// ChunkStats returns the counters of the read buffers (chunks) of the
// decompressed stream.
func (r *Reader) ChunkStats() ChunkStats {
	p := r.br.pool
	return ChunkStats{Allocated: p.allocated.Load(), Reused: p.reused.Load(), Dropped: p.dropped.Load(), Joined: p.joined}
}

// Name returns the file name used in errors ("(stdin)" for standard input).
func (r *Reader) Name() string { return r.name }

// Format returns the container format.
func (r *Reader) Format() Format { return r.format }

// Compressed reports whether the capture is compressed.
func (r *Reader) Compressed() bool { return r.compression != "" }

// Compression returns "gzip", "zstd" or "" (uncompressed).
func (r *Reader) Compression() string { return r.compression }

// Size returns the size of the file in bytes, or -1 when unknown (stdin,
// pipes, NewReader).
func (r *Reader) Size() int64 { return r.size }

// BytesRead returns how many bytes of the underlying (possibly compressed)
// file have been consumed, for progress against Size.
func (r *Reader) BytesRead() int64 {
	if r.br.ra != nil {
		// Uncompressed: the capture stream is the file. (The read-ahead
		// goroutine owns raw's count.)
		return r.off
	}
	return r.raw.n - int64(r.rawBuf.Buffered())
}

// ReadAhead makes a goroutine read the file ahead, into chunks, while the
// caller parses: the file reads (the kernel copying the data) then overlap
// with packet processing instead of stalling it. It applies to uncompressed
// regular files opened with Open and reports whether read-ahead is on.
// Call it between Next calls of the Reader's one goroutine; Close stops the
// goroutine. Packets, errors and chunk retention behave as without it, but
// the goroutine may read up to about 2 MiB ahead of the packets returned.
func (r *Reader) ReadAhead() bool {
	if r.compression != "" || r.closer == nil || r.size < 0 || r.err != nil {
		return false
	}
	r.br.startReadAhead()
	return true
}

// Offset returns the offset in the decompressed capture stream of the next
// record.
func (r *Reader) Offset() int64 { return r.off }

// Close closes the file opened by Open. It does not close standard input
// or the stream given to NewReader.
func (r *Reader) Close() error {
	r.br.stopReadAhead()
	if r.decClose != nil {
		r.decClose()
		r.decClose = nil
	}
	if r.closer != nil {
		c := r.closer
		r.closer = nil
		return c.Close()
	}
	return nil
}

// peek returns the next n bytes of the capture stream without consuming
// them. At a record boundary (atBoundary) a stream that ends cleanly gives
// io.EOF; a stream that ends anywhere else gives ErrTruncated.
func (r *Reader) peek(n int, atBoundary bool, what string) ([]byte, error) {
	b, err := r.br.Peek(n)
	if err == nil {
		return b, nil
	}
	if errors.Is(err, bufio.ErrBufferFull) {
		// Only an in-memory stream has a buffer smaller than the largest
		// record, and it holds all of that stream.
		err = io.EOF
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		if atBoundary && len(b) == 0 && err == io.EOF {
			return nil, io.EOF
		}
		detail := fmt.Sprintf("truncated %s: needs %d bytes, the file ends after %d (cut mid-write?)", what, n, len(b))
		if err == io.ErrUnexpectedEOF && r.compression != "" {
			detail = fmt.Sprintf("truncated %s: the %s stream ends abruptly after %d of %d bytes (cut mid-write?)", what, r.compression, len(b), n)
		}
		return nil, &Error{File: r.name, Offset: r.off, Kind: ErrTruncated, Detail: detail}
	}
	return nil, r.ioError(err)
}

// consume advances past n bytes that were peeked.
func (r *Reader) consume(n int) {
	d, _ := r.br.Discard(n)
	r.off += int64(d)
}

// skip advances past n bytes that need not be buffered (n may exceed the
// buffer size).
func (r *Reader) skip(start int64, n int, what string) error {
	d, err := r.br.Discard(n)
	r.off += int64(d)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return &Error{File: r.name, Offset: start, Kind: ErrTruncated,
				Detail: fmt.Sprintf("truncated %s: the file ends %d bytes early (cut mid-write?)", what, n-d)}
		}
		return r.ioError(err)
	}
	return nil
}

func (r *Reader) ioError(err error) error {
	kind := err
	if r.compression != "" && !errors.Is(err, os.ErrClosed) {
		// A checksum or decoding error means damaged data, not a
		// failing disk: classify it as corruption but keep the cause.
		kind = fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return &Error{File: r.name, Offset: r.off, Kind: kind, Detail: "reading: " + err.Error()}
}

func (r *Reader) corrupt(off int64, format string, args ...any) error {
	return &Error{File: r.name, Offset: off, Kind: ErrCorrupt, Detail: fmt.Sprintf(format, args...)}
}

func (r *Reader) u16(b []byte) uint16 {
	if r.bigEndian {
		return uint16(b[0])<<8 | uint16(b[1])
	}
	return uint16(b[1])<<8 | uint16(b[0])
}

func (r *Reader) u32(b []byte) uint32 {
	if r.bigEndian {
		return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	}
	return uint32(b[3])<<24 | uint32(b[2])<<16 | uint32(b[1])<<8 | uint32(b[0])
}

// u64 reads a 64-bit value stored as two 32-bit halves in the section's
// byte order (the whole value is in that order, so halves swap too).
func (r *Reader) u64(b []byte) uint64 {
	if r.bigEndian {
		return uint64(r.u32(b))<<32 | uint64(r.u32(b[4:]))
	}
	return uint64(r.u32(b[4:]))<<32 | uint64(r.u32(b))
}

// captureLimit is the largest captured length accepted for a snap length.
func captureLimit(snapLen uint32) uint32 {
	limit := max(snapLen, snapLenSlack)
	if snapLen == 0 || limit > MaxCaptureLength {
		limit = MaxCaptureLength
	}
	return limit
}

// limitText names the limit that a captured length broke, for errors.
func limitText(snapLen, limit uint32) string {
	switch {
	case limit == snapLen:
		return "snap length " + strconv.FormatUint(uint64(snapLen), 10)
	case limit == MaxCaptureLength:
		return "the maximum " + strconv.Itoa(MaxCaptureLength)
	}
	return strconv.FormatUint(uint64(limit), 10) + " (snap length " + strconv.FormatUint(uint64(snapLen), 10) + ")"
}
