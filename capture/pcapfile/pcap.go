package pcapfile

import (
	"io"

	"github.com/gopacket/gopacket/layers"
)

const pcapFileHeaderLen = 24

// readPcapHeader parses the 24-byte classic pcap file header.
func (r *Reader) readPcapHeader() error {
	h, err := r.peek(pcapFileHeaderLen, false, "pcap file header")
	if err != nil {
		return err
	}
	r.bigEndian = h[0] == 0xa1
	r.format, r.tsScale, r.recHdrLen = FormatPcap, 1000, 16
	switch r.u32(h) {
	case 0xa1b23c4d:
		r.format, r.tsScale = FormatPcapNs, 1
	case 0xa1b2cd34:
		// Kuznetsov's patched libpcap: 8 more bytes per record header
		// (ifindex, protocol, pkt_type), microsecond timestamps.
		r.recHdrLen = 24
	}
	if major := r.u16(h[4:]); major != 2 {
		return r.corrupt(4, "pcap header: unsupported version %d.%d (want 2.x)", major, r.u16(h[6:]))
	}
	snapLen := r.u32(h[16:])
	r.snapLen, r.snapLimit = snapLen, captureLimit(snapLen)
	// The upper bits of the link type field carry FCS information; the
	// link type proper is the low 16 bits.
	r.linkType = layers.LinkType(r.u32(h[20:]) & 0xffff)
	r.consume(pcapFileHeaderLen)
	return nil
}

func (r *Reader) nextPcap() (Packet, error) {
	h, err := r.peek(r.recHdrLen, true, "pcap record header")
	if err != nil {
		return Packet{}, err
	}
	p, n, err := r.recordHeader(h, r.off)
	if err != nil {
		return Packet{}, err
	}
	b, err := r.peek(n, false, "pcap record")
	if err != nil {
		return Packet{}, err
	}
	r.consume(n)
	p.Data = b[r.recHdrLen:n:n]
	return p, nil
}

// recordHeader reads the classic pcap record header h, at offset off: the
// packet but its Data, and the length of the whole record.
func (r *Reader) recordHeader(h []byte, off int64) (Packet, int, error) {
	sec, frac := r.u32(h), r.u32(h[4:])
	capLen, wireLen := r.u32(h[8:]), r.u32(h[12:])
	if capLen > r.snapLimit {
		return Packet{}, 0, r.corrupt(off, "record captured length %d exceeds %s", capLen, limitText(r.snapLen, r.snapLimit))
	}
	return Packet{
		// The pcap format stores seconds unsigned (as tshark and gopacket
		// read them), so captures run to 2106.
		Timestamp:     int64(sec)*1e9 + int64(frac)*r.tsScale,
		CaptureLength: int(capLen),
		Length:        int(wireLen),
		LinkType:      r.linkType,
	}, r.recHdrLen + int(capLen), nil
}

var _ io.Closer = (*Reader)(nil)
