package pcapfile

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// payload returns n deterministic bytes distinct per seed.
func payload(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seed*31 + i*7)
	}
	return b
}

// testPacket is what a test writes and expects back.
type testPacket struct {
	ts      int64 // unix ns
	data    []byte
	wireLen int
	link    layers.LinkType
	iface   int
	name    string
}

// writePcap writes packets with gopacket's pcap writer (little-endian).
func writePcap(nanos bool, snap uint32, link layers.LinkType, pkts []testPacket) []byte {
	var buf bytes.Buffer
	var w *pcapgo.Writer
	if nanos {
		w = pcapgo.NewWriterNanos(&buf)
	} else {
		w = pcapgo.NewWriter(&buf)
	}
	if err := w.WriteFileHeader(snap, link); err != nil {
		panic(err)
	}
	for _, p := range pkts {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, p.ts), CaptureLength: len(p.data), Length: p.wireLen}
		if err := w.WritePacket(ci, p.data); err != nil {
			panic(err)
		}
	}
	return buf.Bytes()
}

// pcapBuilder hand-builds classic pcap files in either byte order.
type pcapBuilder struct {
	order binary.ByteOrder
	buf   bytes.Buffer
}

func newPcapBuilder(order binary.ByteOrder, magic uint32, snap, link uint32) *pcapBuilder {
	b := &pcapBuilder{order: order}
	h := make([]byte, 24)
	order.PutUint32(h, magic)
	order.PutUint16(h[4:], 2)
	order.PutUint16(h[6:], 4)
	order.PutUint32(h[16:], snap)
	order.PutUint32(h[20:], link)
	b.buf.Write(h)
	return b
}

// record appends a record; extra is the number of extra header bytes (8
// for the modified format).
func (b *pcapBuilder) record(sec, frac uint32, data []byte, capLen, wireLen uint32, extra int) *pcapBuilder {
	h := make([]byte, 16+extra)
	b.order.PutUint32(h, sec)
	b.order.PutUint32(h[4:], frac)
	b.order.PutUint32(h[8:], capLen)
	b.order.PutUint32(h[12:], wireLen)
	b.buf.Write(h)
	b.buf.Write(data)
	return b
}

// ngBuilder hand-builds pcapng blocks in a chosen byte order.
type ngBuilder struct {
	order binary.AppendByteOrder
	buf   bytes.Buffer
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func (b *ngBuilder) u16(v uint16) []byte { return b.order.AppendUint16(nil, v) }
func (b *ngBuilder) u32(v uint32) []byte { return b.order.AppendUint32(nil, v) }
func (b *ngBuilder) u64(v uint64) []byte { return b.order.AppendUint64(nil, v) }

// option encodes one option (padded).
func (b *ngBuilder) option(code uint16, val []byte) []byte {
	o := append(b.u16(code), b.u16(uint16(len(val)))...)
	return pad4(append(o, val...))
}

// options encodes options followed by opt_endofopt.
func (b *ngBuilder) options(opts ...[]byte) []byte {
	var o []byte
	for _, x := range opts {
		o = append(o, x...)
	}
	if len(o) == 0 {
		return nil
	}
	return append(o, 0, 0, 0, 0)
}

// block appends a block with a correct length and trailer.
func (b *ngBuilder) block(typ uint32, body []byte) *ngBuilder {
	body = pad4(body)
	n := uint32(12 + len(body))
	b.buf.Write(b.u32(typ))
	b.buf.Write(b.u32(n))
	b.buf.Write(body)
	b.buf.Write(b.u32(n))
	return b
}

func (b *ngBuilder) shb(major, minor uint16) *ngBuilder {
	body := append(b.u32(ngByteOrderMagic), b.u16(major)...)
	body = append(body, b.u16(minor)...)
	body = append(body, b.u64(^uint64(0))...)
	body = append(body, b.options(b.option(4, []byte("pcapfile test")))...)
	return b.block(ngBlockSHB, body)
}

func (b *ngBuilder) idb(link layers.LinkType, snap uint32, opts ...[]byte) *ngBuilder {
	body := append(b.u16(uint16(link)), 0, 0)
	body = append(body, b.u32(snap)...)
	return b.block(ngBlockIDB, append(body, b.options(opts...)...))
}

func (b *ngBuilder) epb(iface uint32, ts uint64, data []byte, wireLen uint32) *ngBuilder {
	body := b.u32(iface)
	body = append(body, b.u32(uint32(ts>>32))...)
	body = append(body, b.u32(uint32(ts))...)
	body = append(body, b.u32(uint32(len(data)))...)
	body = append(body, b.u32(wireLen)...)
	body = append(pad4(append(body, data...)), b.options(b.option(2, b.u32(0)))...) // epb_flags
	return b.block(ngBlockEPB, body)
}

func (b *ngBuilder) pb(iface uint16, ts uint64, data []byte, wireLen uint32) *ngBuilder {
	body := append(b.u16(iface), 0, 0)
	body = append(body, b.u32(uint32(ts>>32))...)
	body = append(body, b.u32(uint32(ts))...)
	body = append(body, b.u32(uint32(len(data)))...)
	body = append(body, b.u32(wireLen)...)
	return b.block(ngBlockPB, append(body, data...))
}

func (b *ngBuilder) spb(wireLen uint32, data []byte) *ngBuilder {
	return b.block(ngBlockSPB, append(b.u32(wireLen), data...))
}

func (b *ngBuilder) dsb(typ uint32, secret []byte) *ngBuilder {
	body := append(b.u32(typ), b.u32(uint32(len(secret)))...)
	return b.block(ngBlockDSB, append(body, secret...))
}

func (b *ngBuilder) bytes() []byte { return b.buf.Bytes() }
