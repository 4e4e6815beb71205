package pcapfile

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"

	"github.com/gopacket/gopacket/layers"
)

// pcapng block types (draft-ietf-opsawg-pcapng).
const (
	ngBlockSHB uint32 = 0x0A0D0D0A
	ngBlockIDB uint32 = 1
	ngBlockPB  uint32 = 2 // obsolete Packet Block
	ngBlockSPB uint32 = 3
	ngBlockEPB uint32 = 6
	ngBlockDSB uint32 = 0x0A

	ngByteOrderMagic = 0x1A2B3C4D
	ngMinBlock       = 12 // type, length, trailing length

	ngOptEnd      = 0
	ngOptIfName   = 2
	ngOptTsResol  = 9
	ngOptTsOffset = 14
)

type ngInterface struct {
	linkType layers.LinkType
	snapLen  uint32
	limit    uint32 // largest captured length accepted
	name     string
	// Timestamps are in units of 1/unitsPerSec s; nsPerUnit is set when
	// that is a whole number of nanoseconds (the usual µs/ns case), which
	// avoids a division per packet.
	unitsPerSec uint64
	nsPerUnit   uint64
	offsetNs    int64 // if_tsoffset
}

type ngState struct {
	ifaces         []ngInterface
	secrets        []DecryptionSecret
	secretBytes    int
	secretsDropped int
}

// Secrets returns the decryption secrets (pcapng DSBs) read so far and how
// many were dropped because they would exceed MaxSecretsBytes. DSBs
// normally precede the packets they decrypt. The slice must not be modified.
func (r *Reader) Secrets() (secrets []DecryptionSecret, dropped int) {
	return r.ng.secrets, r.ng.secretsDropped
}

// startPcapNG reads the first Section Header Block.
func (r *Reader) startPcapNG() error {
	r.format = FormatPcapNG
	return r.readSHB()
}

// readSHB reads a Section Header Block, which sets the byte order and
// resets the interfaces.
func (r *Reader) readSHB() error {
	start := r.off
	h, err := r.peek(ngMinBlock, false, "pcapng section header")
	if err != nil {
		return err
	}
	switch bom := uint32(h[8])<<24 | uint32(h[9])<<16 | uint32(h[10])<<8 | uint32(h[11]); bom {
	case ngByteOrderMagic:
		r.bigEndian = true
	case bits.ReverseBytes32(ngByteOrderMagic):
		r.bigEndian = false
	default:
		return r.corrupt(start, "pcapng section header: bad byte-order magic 0x%08x", bom)
	}
	b, err := r.peekBlock(ngBlockSHB, 28)
	if err != nil {
		return err
	}
	if major, minor := r.u16(b[12:]), r.u16(b[14:]); major != 1 {
		return &Error{File: r.name, Offset: start, Kind: ErrCorrupt,
			Detail: fmt.Sprintf("pcapng section header: unsupported version %d.%d (want 1.x)", major, minor)}
	}
	r.ng.ifaces = r.ng.ifaces[:0]
	r.consume(len(b))
	return nil
}

// peekBlock returns the whole block at the current offset after checking
// its length fields; it must fit the read buffer.
func (r *Reader) peekBlock(typ uint32, minLen uint32) ([]byte, error) {
	h, err := r.peek(8, false, "pcapng block header")
	if err != nil {
		return nil, err
	}
	blen := r.u32(h[4:])
	if err := r.checkBlockLen(typ, blen, minLen, readBufferSize); err != nil {
		return nil, err
	}
	b, err := r.peek(int(blen), false, blockName(typ))
	if err != nil {
		return nil, err
	}
	if trail := r.u32(b[blen-4:]); trail != blen {
		return nil, r.corrupt(r.off, "%s: trailing length %d does not match length %d", blockName(typ), trail, blen)
	}
	return b, nil
}

func (r *Reader) checkBlockLen(typ, blen, minLen, maxLen uint32) error {
	switch {
	case blen%4 != 0:
		return r.corrupt(r.off, "%s: length %d is not a multiple of 4", blockName(typ), blen)
	case blen < minLen:
		return r.corrupt(r.off, "%s: length %d is below the minimum %d", blockName(typ), blen, minLen)
	case blen > maxLen:
		return r.corrupt(r.off, "%s: length %d exceeds the maximum %d", blockName(typ), blen, maxLen)
	}
	return nil
}

func (r *Reader) nextPcapNG() (Packet, error) {
	for {
		h, err := r.peek(8, true, "pcapng block header")
		if err != nil {
			return Packet{}, err
		}
		switch typ := r.u32(h); typ {
		case ngBlockSHB:
			err = r.readSHB()
		case ngBlockIDB:
			err = r.readIDB()
		case ngBlockEPB, ngBlockPB:
			return r.readEPB(typ)
		case ngBlockSPB:
			return r.readSPB()
		case ngBlockDSB:
			err = r.readDSB()
		default:
			// Name resolution, statistics, custom and unknown blocks.
			err = r.skipBlock(typ)
		}
		if err != nil {
			return Packet{}, err
		}
	}
}

// readEPB reads an Enhanced Packet Block or an obsolete Packet Block; both
// put the captured length at 20 and the data at 28.
func (r *Reader) readEPB(typ uint32) (Packet, error) {
	b, err := r.peekBlock(typ, 32)
	if err != nil {
		return Packet{}, err
	}
	var ifID uint32
	if typ == ngBlockEPB {
		ifID = r.u32(b[8:])
	} else {
		ifID = uint32(r.u16(b[8:])) // then a 16-bit drops count
	}
	capLen, wireLen := r.u32(b[20:]), r.u32(b[24:])
	if int(ifID) >= len(r.ng.ifaces) {
		return Packet{}, r.corrupt(r.off, "pcapng packet block: interface %d not described (section has %d)", ifID, len(r.ng.ifaces))
	}
	iface := &r.ng.ifaces[ifID]
	if capLen > iface.limit {
		return Packet{}, r.corrupt(r.off, "pcapng packet block: captured length %d exceeds %s", capLen, limitText(iface.snapLen, iface.limit))
	}
	if uint64(capLen)+32 > uint64(len(b)) {
		return Packet{}, r.corrupt(r.off, "pcapng packet block: captured length %d overruns block length %d", capLen, len(b))
	}
	ts := uint64(r.u32(b[12:]))<<32 | uint64(r.u32(b[16:]))
	r.consume(len(b))
	return Packet{
		Data:          b[28 : 28+capLen : 28+capLen],
		Timestamp:     iface.nanos(ts),
		CaptureLength: int(capLen),
		Length:        int(wireLen),
		LinkType:      iface.linkType,
		Interface:     int(ifID),
		InterfaceName: iface.name,
	}, nil
}

// readSPB reads a Simple Packet Block: interface 0, no timestamp, captured
// length implied by the block length and interface 0's snap length.
func (r *Reader) readSPB() (Packet, error) {
	b, err := r.peekBlock(ngBlockSPB, 16)
	if err != nil {
		return Packet{}, err
	}
	if len(r.ng.ifaces) == 0 {
		return Packet{}, r.corrupt(r.off, "pcapng simple packet block before any interface description")
	}
	iface := &r.ng.ifaces[0]
	wireLen := r.u32(b[8:])
	capLen := min(uint64(wireLen), uint64(len(b)-16))
	if iface.snapLen != 0 {
		capLen = min(capLen, uint64(iface.snapLen))
	}
	if capLen > uint64(iface.limit) {
		return Packet{}, r.corrupt(r.off, "pcapng simple packet block: captured length %d exceeds %s", capLen, limitText(iface.snapLen, iface.limit))
	}
	r.consume(len(b))
	return Packet{
		Data:          b[12 : 12+capLen : 12+capLen],
		CaptureLength: int(capLen),
		Length:        int(wireLen),
		LinkType:      iface.linkType,
		InterfaceName: iface.name,
	}, nil
}

func (r *Reader) readIDB() error {
	start := r.off
	b, err := r.peekBlock(ngBlockIDB, 20)
	if err != nil {
		return err
	}
	if len(r.ng.ifaces) >= MaxInterfaces {
		return r.corrupt(start, "pcapng: more than %d interfaces in one section", MaxInterfaces)
	}
	iface := ngInterface{
		linkType:    layers.LinkType(r.u16(b[8:])),
		snapLen:     r.u32(b[12:]),
		unitsPerSec: 1e6, // default if_tsresol: microseconds
		nsPerUnit:   1e3,
	}
	iface.limit = captureLimit(iface.snapLen)
	opts := b[16 : len(b)-4]
	for pos := 0; pos+4 <= len(opts); {
		code, olen := r.u16(opts[pos:]), int(r.u16(opts[pos+2:]))
		if code == ngOptEnd {
			break
		}
		val := opts[pos+4:]
		if olen > len(val) {
			return r.corrupt(start, "pcapng interface description: option %d length %d overruns the block", code, olen)
		}
		val = val[:olen]
		switch code {
		case ngOptIfName:
			iface.name = string(val[:min(len(val), maxInterfaceName)])
		case ngOptTsResol:
			if len(val) != 1 {
				return r.corrupt(start, "pcapng interface description: if_tsresol has length %d, want 1", len(val))
			}
			if err := iface.setResolution(val[0]); err != nil {
				return r.corrupt(start, "pcapng interface description: %v", err)
			}
		case ngOptTsOffset:
			if len(val) != 8 {
				return r.corrupt(start, "pcapng interface description: if_tsoffset has length %d, want 8", len(val))
			}
			iface.offsetNs = int64(r.u64(val)) * 1e9
		}
		pos += 4 + (olen+3)&^3
	}
	r.ng.ifaces = append(r.ng.ifaces, iface)
	r.consume(len(b))
	return nil
}

// setResolution applies if_tsresol: 10^-v s, or 2^-v s when the top bit is
// set.
func (i *ngInterface) setResolution(v byte) error {
	exp := uint(v & 0x7f)
	if v&0x80 != 0 {
		if exp > 63 {
			return fmt.Errorf("if_tsresol 2^-%d is finer than supported", exp)
		}
		i.unitsPerSec = 1 << exp
	} else {
		if exp > 19 {
			return fmt.Errorf("if_tsresol 10^-%d is finer than supported", exp)
		}
		i.unitsPerSec = 1
		for range exp {
			i.unitsPerSec *= 10
		}
	}
	i.nsPerUnit = 0
	if 1e9%i.unitsPerSec == 0 {
		i.nsPerUnit = 1e9 / i.unitsPerSec
	}
	return nil
}

// nanos converts a timestamp in interface units to Unix nanoseconds.
func (i *ngInterface) nanos(ts uint64) int64 {
	if i.nsPerUnit != 0 {
		return int64(ts*i.nsPerUnit) + i.offsetNs
	}
	secs, frac := ts/i.unitsPerSec, ts%i.unitsPerSec
	hi, lo := bits.Mul64(frac, 1e9)
	ns, _ := bits.Div64(hi, lo, i.unitsPerSec) // frac < unitsPerSec, so no overflow
	return int64(secs)*1e9 + int64(ns) + i.offsetNs
}

// readDSB keeps the content of a Decryption Secrets Block, within
// MaxSecretsBytes.
func (r *Reader) readDSB() error {
	h, err := r.peek(8, false, "pcapng block header")
	if err != nil {
		return err
	}
	if blen := r.u32(h[4:]); blen > readBufferSize {
		r.ng.secretsDropped++
		return r.skipBlock(ngBlockDSB)
	}
	b, err := r.peekBlock(ngBlockDSB, 20)
	if err != nil {
		return err
	}
	typ, slen := r.u32(b[8:]), r.u32(b[12:])
	if uint64(slen)+20 > uint64(len(b)) {
		return r.corrupt(r.off, "pcapng decryption secrets block: secrets length %d overruns block length %d", slen, len(b))
	}
	if r.ng.secretBytes+int(slen) > MaxSecretsBytes {
		r.ng.secretsDropped++
	} else {
		r.ng.secretBytes += int(slen)
		r.ng.secrets = append(r.ng.secrets, DecryptionSecret{Type: typ, Data: append([]byte(nil), b[16:16+slen]...)})
	}
	r.consume(len(b))
	return nil
}

// skipBlock skips a block without buffering it whole, then checks its
// trailing length.
func (r *Reader) skipBlock(typ uint32) error {
	start := r.off
	h, err := r.peek(8, false, "pcapng block header")
	if err != nil {
		return err
	}
	blen := r.u32(h[4:])
	if err := r.checkBlockLen(typ, blen, ngMinBlock, MaxBlockLength); err != nil {
		return err
	}
	what := blockName(typ)
	if err := r.skip(start, int(blen)-4, what); err != nil {
		return err
	}
	t, err := r.peek(4, false, what)
	if err != nil {
		var fe *Error
		if errors.As(err, &fe) {
			fe.Offset = start // report the block, not its trailer
		}
		return err
	}
	if trail := r.u32(t); trail != blen {
		return r.corrupt(start, "%s: trailing length %d does not match length %d", what, trail, blen)
	}
	r.consume(4)
	return nil
}

// blockName names a block type for errors without allocating.
func blockName(typ uint32) string {
	switch typ {
	case ngBlockSHB:
		return "pcapng section header block"
	case ngBlockIDB:
		return "pcapng interface description block"
	case ngBlockPB:
		return "pcapng packet block"
	case ngBlockSPB:
		return "pcapng simple packet block"
	case ngBlockEPB:
		return "pcapng enhanced packet block"
	case ngBlockDSB:
		return "pcapng decryption secrets block"
	case 4:
		return "pcapng name resolution block"
	case 5:
		return "pcapng interface statistics block"
	}
	return "pcapng block of type 0x" + strconv.FormatUint(uint64(typ), 16)
}
