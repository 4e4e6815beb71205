package pcapfile

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Records lets several goroutines parse one uncompressed classic pcap file
// in stretches: each reads a stretch itself (ReadAt, into a buffer of its
// own, so the bytes are in its core's cache when it parses them) and walks
// the records in it, the stretches taken in file order. A Reader instead
// reads the file through one buffer, on one goroutine.
type Records struct {
	hdr   *Reader // holds the file header's fields; reads nothing more
	f     *os.File
	size  int64
	start int64 // offset of the first record
}

// MaxRecordLength is the longest record Walk can be asked to hold whole: a
// record header and MaxCaptureLength bytes of packet.
const MaxRecordLength = 24 + MaxCaptureLength

// OpenRecords opens path for Records. ok is false, with no error, when the
// capture is not an uncompressed classic pcap regular file (pcapng, gzip,
// zstd, a pipe): read that with Open.
func OpenRecords(path string) (rs *Records, ok bool, err error) {
	r, err := Open(path)
	if err != nil {
		return nil, false, err
	}
	if r.compression != "" || r.size < 0 || (r.format != FormatPcap && r.format != FormatPcapNs) {
		r.Close()
		return nil, false, nil
	}
	f, ok := r.closer.(*os.File)
	if !ok {
		r.Close()
		return nil, false, nil
	}
	// The Reader stays only for the header's fields; its buffer goes.
	r.br, r.rawBuf, r.closer = nil, nil, nil
	return &Records{hdr: r, f: f, size: r.size, start: pcapFileHeaderLen}, true, nil
}

// Size is the file's size in bytes.
func (rs *Records) Size() int64 { return rs.size }

// Start is the offset of the first record.
func (rs *Records) Start() int64 { return rs.start }

// Close closes the file.
func (rs *Records) Close() error { return rs.f.Close() }

// ReadAt reads the file at off, as os.File.ReadAt does (io.EOF at the end).
func (rs *Records) ReadAt(p []byte, off int64) (int, error) {
	n, err := rs.f.ReadAt(p, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, rs.hdr.ioError(err)
	}
	return n, err
}

// Walk calls fn for each complete record at the start of b, which lies at
// file offset off and starts on a record boundary; Packet.Data aliases b,
// from index at. It returns the bytes the complete records took. A record
// that claims more than the snap length allows is an *Error (ErrCorrupt)
// at its offset, returned after the records before it.
func (rs *Records) Walk(b []byte, off int64, fn func(at int, p Packet)) (int, error) {
	r := rs.hdr
	done := 0
	for len(b)-done >= r.recHdrLen {
		p, n, err := r.recordHeader(b[done:], off+int64(done))
		if err != nil {
			return done, err
		}
		if len(b)-done < n {
			break
		}
		p.Data = b[done+r.recHdrLen : done+n : done+n]
		fn(done+r.recHdrLen, p)
		done += n
	}
	return done, nil
}

// Truncated is the error for a file that ends inside the record at off,
// of which tail holds what there is (as a Reader reports it).
func (rs *Records) Truncated(off int64, tail []byte) error {
	what, need := "pcap record header", rs.hdr.recHdrLen
	if len(tail) >= need {
		what = "pcap record"
		if _, n, err := rs.hdr.recordHeader(tail, off); err == nil {
			need = n
		}
	}
	return &Error{File: rs.hdr.name, Offset: off, Kind: ErrTruncated,
		Detail: fmt.Sprintf("truncated %s: needs %d bytes, the file ends after %d (cut mid-write?)", what, need, len(tail))}
}
