// Package synth generates reproducible traffic captures with the project's
// own code: real protocol bytes (Go's crypto/tls handshakes, miekg/dns
// messages, net/http-shaped requests) inside frames built here, with
// timestamps the caller controls. Tests, the bundled sample capture and the
// benchmark capture all come from it; nothing is copied from elsewhere.
package synth

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// Writer writes a nanosecond-resolution pcap file.
type Writer struct {
	w        *bufio.Writer
	linkType uint32
	hdr      [16]byte
	Packets  int
	Bytes    int64
}

// NewWriter writes the pcap file header (snap length 262144).
func NewWriter(w io.Writer, linkType uint32) (*Writer, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], 0xa1b23c4d) // nanosecond magic
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 262144)
	binary.LittleEndian.PutUint32(h[20:], linkType)
	if _, err := bw.Write(h[:]); err != nil {
		return nil, fmt.Errorf("synth: write header: %w", err)
	}
	return &Writer{w: bw, linkType: linkType}, nil
}

// WritePacket writes one frame captured whole at time ts (unix ns).
func (w *Writer) WritePacket(ts int64, frame []byte) error {
	return w.WriteSnapped(ts, frame, len(frame))
}

// WriteSnapped writes a frame whose original length was wireLen.
func (w *Writer) WriteSnapped(ts int64, frame []byte, wireLen int) error {
	binary.LittleEndian.PutUint32(w.hdr[0:], uint32(ts/1e9))
	binary.LittleEndian.PutUint32(w.hdr[4:], uint32(ts%1e9))
	binary.LittleEndian.PutUint32(w.hdr[8:], uint32(len(frame)))
	binary.LittleEndian.PutUint32(w.hdr[12:], uint32(wireLen))
	if _, err := w.w.Write(w.hdr[:]); err != nil {
		return fmt.Errorf("synth: write record: %w", err)
	}
	if _, err := w.w.Write(frame); err != nil {
		return fmt.Errorf("synth: write record: %w", err)
	}
	w.Packets++
	w.Bytes += int64(len(frame)) + 16
	return nil
}

// Flush flushes buffered records.
func (w *Writer) Flush() error { return w.w.Flush() }
