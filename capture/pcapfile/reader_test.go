package pcapfile

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/klauspost/compress/zstd"
)

func mustRead(t *testing.T, data []byte, name string) []Packet {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data), name)
	if err != nil {
		t.Fatalf("%s: open: %v", name, err)
	}
	pkts, err := readAll(r)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return pkts
}

func checkPackets(t *testing.T, got []Packet, want []testPacket) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d packets, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Timestamp != w.ts || !bytes.Equal(g.Data, w.data) || g.CaptureLength != len(w.data) ||
			g.Length != w.wireLen || g.LinkType != w.link || g.Interface != w.iface || g.InterfaceName != w.name {
			t.Errorf("packet %d: got ts=%d cap=%d len=%d link=%v if=%d %q data=%x\nwant ts=%d cap=%d len=%d link=%v if=%d %q data=%x",
				i, g.Timestamp, g.CaptureLength, g.Length, g.LinkType, g.Interface, g.InterfaceName, g.Data,
				w.ts, len(w.data), w.wireLen, w.link, w.iface, w.name, w.data)
		}
	}
}

func samplePackets(n int, link layers.LinkType, tsUnit int64) []testPacket {
	var pkts []testPacket
	base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	for i := range n {
		data := payload(i, 40+i*13)
		pkts = append(pkts, testPacket{ts: base + int64(i)*1234567*tsUnit, data: data, wireLen: len(data) + i, link: link})
	}
	return pkts
}

func TestPcapGopacketWriters(t *testing.T) {
	for _, nanos := range []bool{false, true} {
		want := samplePackets(20, layers.LinkTypeRaw, 1000) // whole microseconds survive both
		if nanos {
			want = samplePackets(20, layers.LinkTypeRaw, 1)
			want[3].ts += 7 // a nanosecond the microsecond format would lose
		}
		data := writePcap(nanos, 65535, layers.LinkTypeRaw, want)
		r, err := NewReader(bytes.NewReader(data), "w.pcap")
		if err != nil {
			t.Fatal(err)
		}
		if f := r.Format(); (f == FormatPcapNs) != nanos || f == FormatPcapNG {
			t.Errorf("nanos=%v: format %v", nanos, f)
		}
		got, err := readAll(r)
		if err != nil {
			t.Fatal(err)
		}
		checkPackets(t, got, want)
	}
}

func TestPcapBigEndianAndModified(t *testing.T) {
	want := []testPacket{
		{ts: 1_700_000_000*1e9 + 123456*1e3, data: payload(1, 60), wireLen: 60, link: layers.LinkTypeEthernet},
		{ts: 3_000_000_000 * 1e9, data: payload(2, 0), wireLen: 1500, link: layers.LinkTypeEthernet}, // past 2038: unsigned seconds
	}
	for _, tc := range []struct {
		name  string
		order binary.ByteOrder
		magic uint32
		extra int
		scale int64
	}{
		{"be-usec", binary.BigEndian, 0xa1b2c3d4, 0, 1000},
		{"be-nsec", binary.BigEndian, 0xa1b23c4d, 0, 1},
		{"le-modified", binary.LittleEndian, 0xa1b2cd34, 8, 1000},
	} {
		b := newPcapBuilder(tc.order, tc.magic, 65535, 1|0x10000000) // FCS bits above the link type
		for _, p := range want {
			sec := uint32(p.ts / 1e9)
			b.record(sec, uint32((p.ts-int64(sec)*1e9)/tc.scale), p.data, uint32(len(p.data)), uint32(p.wireLen), tc.extra)
		}
		t.Run(tc.name, func(t *testing.T) { checkPackets(t, mustRead(t, b.buf.Bytes(), tc.name), want) })
	}
}

func TestPcapNGGopacketWriter(t *testing.T) {
	var buf bytes.Buffer
	w, err := pcapgo.NewNgWriterInterface(&buf, pcapgo.NgInterface{Name: "eth0", LinkType: layers.LinkTypeEthernet, SnapLength: 65535, TimestampResolution: 9}, pcapgo.DefaultNgWriterOptions)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddInterface(pcapgo.NgInterface{Name: "tun0", LinkType: layers.LinkTypeRaw, SnapLength: 1500, TimestampResolution: 6}); err != nil {
		t.Fatal(err)
	}
	want := samplePackets(10, layers.LinkTypeEthernet, 1000)
	for i := range want {
		want[i].name = "eth0"
		if i%3 == 1 {
			want[i].iface, want[i].link, want[i].name = 1, layers.LinkTypeRaw, "tun0"
		}
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, want[i].ts), CaptureLength: len(want[i].data), Length: want[i].wireLen, InterfaceIndex: want[i].iface}
		if err := w.WritePacket(ci, want[i].data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	checkPackets(t, mustRead(t, buf.Bytes(), "w.pcapng"), want)
}

// TestPcapNGHandBuilt covers what the gopacket writer cannot produce: two
// sections of opposite byte order, if_tsresol in powers of 10 and 2,
// if_tsoffset, simple and obsolete packet blocks, blocks to skip, secrets.
func TestPcapNGHandBuilt(t *testing.T) {
	le := &ngBuilder{order: binary.LittleEndian}
	be := &ngBuilder{order: binary.BigEndian}
	var want []testPacket

	le.shb(1, 0)
	le.idb(layers.LinkTypeEthernet, 0, le.option(ngOptIfName, []byte("eth0")))                                         // µs default
	le.idb(layers.LinkTypeRaw, 0, le.option(ngOptTsResol, []byte{9}), le.option(ngOptTsOffset, le.u64(1_000_000_000))) // ns, +1e9 s
	le.idb(layers.LinkTypeLinuxSLL, 64, le.option(ngOptTsResol, []byte{0x80 | 10}))                                    // 1/1024 s
	le.block(4, append(le.u16(1), le.u16(8)...))                                                                       // NRB-ish: skipped
	le.dsb(0x544c534b, []byte("CLIENT_RANDOM 00 11\n"))
	le.epb(0, 1_700_000_000_123_456, payload(1, 70), 70)
	want = append(want, testPacket{ts: 1_700_000_000_123_456_000, data: payload(1, 70), wireLen: 70, link: layers.LinkTypeEthernet, name: "eth0"})
	le.epb(1, 700_000_000_000_000_001, payload(2, 33), 40)
	want = append(want, testPacket{ts: 1_700_000_000_000_000_001, data: payload(2, 33), wireLen: 40, link: layers.LinkTypeRaw, iface: 1})
	le.epb(2, 1_700_000_000*1024+512+1, payload(3, 64), 200) // 0.5 s + 1/1024 s
	want = append(want, testPacket{ts: 1_700_000_000_500_976_562, data: payload(3, 64), wireLen: 200, link: layers.LinkTypeLinuxSLL, iface: 2})
	le.block(5, make([]byte, 20))          // ISB
	le.block(0x40000BAD, []byte("custom")) // custom block, skipped
	le.pb(0, 5_000_001, payload(4, 10), 10)
	want = append(want, testPacket{ts: 5_000_001_000, data: payload(4, 10), wireLen: 10, link: layers.LinkTypeEthernet, name: "eth0"})

	// A new section in big-endian: interfaces reset; SPBs use interface 0.
	be.shb(1, 0)
	be.idb(layers.LinkTypeIPv4, 20)
	be.spb(50, payload(5, 20))
	want = append(want, testPacket{data: payload(5, 20), wireLen: 50, link: layers.LinkTypeIPv4})
	be.spb(8, payload(6, 8)) // shorter than the snap length
	want = append(want, testPacket{data: payload(6, 8), wireLen: 8, link: layers.LinkTypeIPv4})
	be.epb(0, 42, payload(7, 20), 20)
	want = append(want, testPacket{ts: 42_000, data: payload(7, 20), wireLen: 20, link: layers.LinkTypeIPv4})

	file := append(append([]byte(nil), le.bytes()...), be.bytes()...)
	r, err := NewReader(bytes.NewReader(file), "hand.pcapng")
	if err != nil {
		t.Fatal(err)
	}
	got, err := readAll(r)
	if err != nil {
		t.Fatal(err)
	}
	checkPackets(t, got, want)
	secrets, dropped := r.Secrets()
	if len(secrets) != 1 || dropped != 0 || secrets[0].Type != 0x544c534b || string(secrets[0].Data) != "CLIENT_RANDOM 00 11\n" {
		t.Errorf("secrets %+v dropped %d", secrets, dropped)
	}
	// gopacket agrees on the first two EPBs. (On the 1/1024 s interface it
	// is off by 256 ns: it scales by the truncated integer 1e9/1024.)
	ng, err := pcapgo.NewNgReader(bytes.NewReader(le.bytes()), pcapgo.NgReaderOptions{WantMixedLinkType: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		_, ci, err := ng.ReadPacketData()
		if err != nil {
			t.Fatal(err)
		}
		if ci.Timestamp.UnixNano() != got[i].Timestamp {
			t.Errorf("packet %d: gopacket ts %d, ours %d", i, ci.Timestamp.UnixNano(), got[i].Timestamp)
		}
	}
}

func writeGzip(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeZstd(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestOpenCompressedAndProgress(t *testing.T) {
	want := samplePackets(500, layers.LinkTypeEthernet, 1000)
	plain := writePcap(false, 65535, layers.LinkTypeEthernet, want)
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		data []byte
		gz   string
	}{
		{"plain.pcap.gz", plain, ""}, // misleading name: detected by magic
		{"packed.bin", writeGzip(t, plain), "gzip"},
		{"packed.pcap", writeZstd(t, plain), "zstd"},
	} {
		path := filepath.Join(dir, tc.name)
		if err := os.WriteFile(path, tc.data, 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if r.Compression() != tc.gz || r.Compressed() != (tc.gz != "") || r.Size() != int64(len(tc.data)) {
			t.Errorf("%s: compression=%q size=%d", tc.name, r.Compression(), r.Size())
		}
		var prev int64
		for i := range 250 {
			if _, err := r.Next(); err != nil {
				t.Fatalf("%s: packet %d: %v", tc.name, i, err)
			}
		}
		if prev = r.BytesRead(); prev <= 0 || prev > r.Size() {
			t.Errorf("%s: BytesRead %d mid-way of %d", tc.name, prev, r.Size())
		}
		if tc.gz == "" && prev != r.Offset() {
			t.Errorf("%s: BytesRead %d != offset %d for an uncompressed file", tc.name, prev, r.Offset())
		}
		got, err := readAll(r)
		if err != nil || len(got) != 250 {
			t.Fatalf("%s: %d more packets, %v", tc.name, len(got), err)
		}
		checkPackets(t, got, want[250:])
		if r.BytesRead() != r.Size() {
			t.Errorf("%s: BytesRead %d at the end, size %d", tc.name, r.BytesRead(), r.Size())
		}
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	}
}

func TestOpenStdin(t *testing.T) {
	want := samplePackets(50, layers.LinkTypeEthernet, 1000)
	data := writeGzip(t, writePcap(false, 65535, layers.LinkTypeEthernet, want))
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	go func() {
		pw.Write(data)
		pw.Close()
	}()
	saved := os.Stdin
	os.Stdin = pr
	defer func() { os.Stdin = saved }()
	r, err := Open("-")
	if err != nil {
		t.Fatal(err)
	}
	if r.Size() != -1 || r.Name() != "(stdin)" {
		t.Errorf("size %d name %q", r.Size(), r.Name())
	}
	got, err := readAll(r)
	if err != nil {
		t.Fatal(err)
	}
	checkPackets(t, got, want)
	if r.BytesRead() != int64(len(data)) {
		t.Errorf("BytesRead %d, want %d", r.BytesRead(), len(data))
	}
	r.Close()
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, want string
		data       []byte
		kind       error
	}{
		{"x.bin", "pcapfile: " + filepath.Join(dir, "x.bin") + ": unknown capture format (magic 0x7f454c46)", []byte("\x7fELF0123456789abcdefghijklmn"), ErrUnknownFormat},
		{"empty.pcap", "offset 0: file ends after 0 bytes", nil, ErrTruncated},
		{"gz.pcap", "gzip header", []byte{0x1f, 0x8b, 8}, ErrTruncated},
		{"v3.pcap", "offset 4: pcap header: unsupported version 3.0", func() []byte {
			b := newPcapBuilder(binary.LittleEndian, 0xa1b2c3d4, 100, 1).buf.Bytes()
			b[4] = 3
			b[6] = 0
			return b
		}(), ErrCorrupt},
		{"v2.pcapng", "offset 0: pcapng section header: unsupported version 2.0", (&ngBuilder{order: binary.BigEndian}).shb(2, 0).bytes(), ErrCorrupt},
	} {
		path := filepath.Join(dir, tc.name)
		if err := os.WriteFile(path, tc.data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, tc.kind) ||
			!strings.Contains(err.Error(), path) {
			t.Errorf("%s: got %v, want %q (%v)", tc.name, err, tc.want, tc.kind)
		}
	}
	if _, err := Open(filepath.Join(dir, "missing.pcap")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestCorruptRecords checks that a bad record in the middle of a file stops
// it with ErrCorrupt at that record's offset, after the packets before it.
func TestCorruptRecords(t *testing.T) {
	good := payload(1, 100)
	pcapWith := func(capLen uint32, snap uint32) []byte {
		b := newPcapBuilder(binary.LittleEndian, 0xa1b2c3d4, snap, 1)
		b.record(1, 0, good, 100, 100, 0)
		b.record(2, 0, good, 100, 100, 0).record(3, 0, payload(2, 16), capLen, 100, 0)
		return b.buf.Bytes()
	}
	ng := func(build func(b *ngBuilder)) []byte {
		b := &ngBuilder{order: binary.LittleEndian}
		b.shb(1, 0).idb(layers.LinkTypeEthernet, 0).epb(0, 1, good, 100).epb(0, 2, good, 100)
		build(b)
		return b.bytes()
	}
	const ngBad = 52 + 20 + 2*144 // SHB with a comment, IDB, two EPBs with epb_flags
	for _, tc := range []struct {
		name   string
		data   []byte
		offset int64
		want   string
	}{
		{"caplen>snap", pcapWith(70000, 65535), 24 + 2*116, "record captured length 70000 exceeds snap length 65535"},
		{"caplen>max", pcapWith(300000, 0), 24 + 2*116, "record captured length 300000 exceeds the maximum 262144"},
		{"caplen>slack", pcapWith(70000, 1), 24 + 2*116, "exceeds 65535 (snap length 1)"},
		{"ng-len%4", ng(func(b *ngBuilder) { b.buf.Write(b.u32(6)); b.buf.Write(b.u32(30)) }), ngBad, "length 30 is not a multiple of 4"},
		{"ng-len<12", ng(func(b *ngBuilder) { b.buf.Write(b.u32(0x99)); b.buf.Write(b.u32(8)) }), ngBad, "length 8 is below the minimum 12"},
		{"ng-trailer", ng(func(b *ngBuilder) { b.epb(0, 3, good, 100); b.buf.Bytes()[b.buf.Len()-1] = 9 }), ngBad, "trailing length 150995088 does not match length 144"},
		{"ng-skip-trailer", ng(func(b *ngBuilder) { b.block(0x99, make([]byte, 8)); b.buf.Bytes()[b.buf.Len()-4] = 0 }), ngBad, "trailing length 0 does not match length 20"},
		{"ng-iface", ng(func(b *ngBuilder) { b.epb(1, 3, good, 100) }), ngBad, "interface 1 not described (section has 1)"},
		{"ng-overrun", ng(func(b *ngBuilder) {
			b.epb(0, 3, good, 100)
			binary.LittleEndian.PutUint32(b.buf.Bytes()[ngBad+20:], 200)
		}), ngBad, "captured length 200 overruns block length 144"},
		{"ng-option", ng(func(b *ngBuilder) {
			b.idb(layers.LinkTypeRaw, 0, append(b.u16(ngOptIfName), b.u16(100)...))
		}), ngBad, "option 2 length 100 overruns the block"},
		{"ng-tsresol", ng(func(b *ngBuilder) { b.idb(layers.LinkTypeRaw, 0, b.option(ngOptTsResol, []byte{20})) }), ngBad, "if_tsresol 10^-20 is finer than supported"},
		{"ng-spb-new-section", ng(func(b *ngBuilder) { b.shb(1, 0).spb(4, good[:4]) }), ngBad + 52, "simple packet block before any interface"},
		{"ng-bom", ng(func(b *ngBuilder) { b.block(ngBlockSHB, make([]byte, 16)) }), ngBad, "bad byte-order magic 0x00000000"},
		{"ng-v2", ng(func(b *ngBuilder) { b.shb(2, 0) }), ngBad, "unsupported version 2.0"},
	} {
		r, err := NewReader(bytes.NewReader(tc.data), tc.name)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		pkts, err := readAll(r)
		var fe *Error
		if len(pkts) != 2 || !errors.As(err, &fe) || !errors.Is(err, ErrCorrupt) || fe.Offset != tc.offset ||
			!strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "pcapfile: "+tc.name+": offset ") {
			t.Errorf("%s: %d packets, err %v; want 2 packets then ErrCorrupt at offset %d: %q", tc.name, len(pkts), err, tc.offset, tc.want)
		}
		if _, again := r.Next(); again != err {
			t.Errorf("%s: error not sticky: %v", tc.name, again)
		}
	}
}

// recordEnds returns the offsets at which records end, computed
// independently of the reader for pcap (header 24, record 16+caplen).
func pcapRecordEnds(data []byte) []int {
	var ends []int
	for off := 24; off+16 <= len(data); {
		off += 16 + int(binary.LittleEndian.Uint32(data[off+8:]))
		ends = append(ends, off)
	}
	return ends
}

func ngRecordEnds(data []byte, packetTypes map[uint32]bool) (ends []int, packets []bool) {
	for off := 0; off+8 <= len(data); {
		typ := binary.LittleEndian.Uint32(data[off:])
		off += int(binary.LittleEndian.Uint32(data[off+4:]))
		ends = append(ends, off)
		packets = append(packets, packetTypes[typ])
	}
	return ends, packets
}

// TestTruncatedEverywhere cuts small files at every byte: the reader must
// deliver exactly the complete packets before the cut, then either a clean
// EOF (cut at a record boundary) or ErrTruncated; never a panic or a
// corrupt-record error.
func TestTruncatedEverywhere(t *testing.T) {
	pcap := writePcap(false, 65535, layers.LinkTypeEthernet, samplePackets(5, layers.LinkTypeEthernet, 1000))
	b := &ngBuilder{order: binary.LittleEndian}
	b.shb(1, 0).idb(layers.LinkTypeEthernet, 0, b.option(ngOptIfName, []byte("eth0"))).epb(0, 1, payload(1, 30), 30)
	b.block(5, make([]byte, 20)).spb(30, payload(2, 30)).dsb(1, []byte("k")).epb(0, 2, payload(3, 5), 5)
	ng := b.bytes()
	pcapEnds := pcapRecordEnds(pcap)
	ngEnds, ngIsPacket := ngRecordEnds(ng, map[uint32]bool{ngBlockEPB: true, ngBlockSPB: true})
	gz := writeGzip(t, pcap)
	zst := writeZstd(t, pcap)

	for _, tc := range []struct {
		name     string
		data     []byte
		expected func(n int) (packets int, clean bool)
	}{
		{"pcap", pcap, func(n int) (int, bool) {
			k := 0
			for k < len(pcapEnds) && pcapEnds[k] <= n {
				k++
			}
			return k, n == 24 || (k > 0 && pcapEnds[k-1] == n)
		}},
		{"pcapng", ng, func(n int) (int, bool) {
			k, clean := 0, false
			for i, end := range ngEnds {
				if end <= n {
					if ngIsPacket[i] {
						k++
					}
					clean = end == n // a section header alone is an empty capture
				}
			}
			return k, clean
		}},
		{"gzip", gz, func(n int) (int, bool) {
			if n == len(gz) {
				return len(pcapEnds), true
			}
			return -1, false // a cut gzip stream is truncated; how many packets depends on flushing
		}},
		{"zstd", zst, func(n int) (int, bool) {
			if n == len(zst) {
				return len(pcapEnds), true
			}
			return -1, false
		}},
	} {
		for n := 0; n <= len(tc.data); n++ {
			wantPkts, clean := tc.expected(n)
			r, err := NewReader(bytes.NewReader(tc.data[:n]), tc.name)
			var pkts []Packet
			if err == nil {
				pkts, err = readAll(r)
			}
			if clean {
				if err != nil || len(pkts) != wantPkts {
					t.Errorf("%s cut at %d: %d packets, %v; want %d and a clean end", tc.name, n, len(pkts), err, wantPkts)
				}
				continue
			}
			if !errors.Is(err, ErrTruncated) || (wantPkts >= 0 && len(pkts) != wantPkts) {
				t.Errorf("%s cut at %d: %d packets, %v; want %d then ErrTruncated", tc.name, n, len(pkts), err, wantPkts)
			}
		}
	}
}

// TestMaxRecord reads a record of exactly MaxCaptureLength.
func TestMaxRecord(t *testing.T) {
	want := []testPacket{{ts: 1e9, data: payload(9, MaxCaptureLength), wireLen: MaxCaptureLength, link: layers.LinkTypeEthernet}}
	checkPackets(t, mustRead(t, writePcap(false, MaxCaptureLength, layers.LinkTypeEthernet, want), "max.pcap"), want)
	b := &ngBuilder{order: binary.BigEndian}
	b.shb(1, 0).idb(layers.LinkTypeEthernet, 0).epb(0, 1e6, want[0].data, MaxCaptureLength)
	checkPackets(t, mustRead(t, b.bytes(), "max.pcapng"), want)
}

// TestCompressedCorrupt: damaged compressed data is a corrupt-capture
// error, not a truncation.
func TestCompressedCorrupt(t *testing.T) {
	plain := writePcap(false, 65535, layers.LinkTypeEthernet, samplePackets(300, layers.LinkTypeEthernet, 1000))
	gz := writeGzip(t, plain)
	gz[len(gz)-6] ^= 0xff // inside the CRC-32 trailer
	zst := writeZstd(t, plain)
	zst[len(zst)-2] ^= 0xff // inside the xxhash checksum
	for _, tc := range []struct {
		name, want string
		data       []byte
	}{{"bad.gz", "gzip: invalid checksum", gz}, {"bad.zst", "CRC check failed", zst}} {
		r, err := NewReader(bytes.NewReader(tc.data), tc.name)
		if err != nil {
			t.Fatal(err)
		}
		pkts, err := readAll(r)
		if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), tc.want) ||
			!strings.HasPrefix(err.Error(), "pcapfile: "+tc.name+": offset ") {
			t.Errorf("%s: %d packets, err %v; want a checksum error", tc.name, len(pkts), err)
		}
	}
}

// TestTruncatedLongRecord: a last record whose claimed length runs past the
// end of a small in-memory capture (larger than its buffer) is a
// truncation, like in a file.
func TestTruncatedLongRecord(t *testing.T) {
	b := newPcapBuilder(binary.LittleEndian, 0xa1b2c3d4, 65535, 1)
	b.record(1, 0, payload(1, 10), 10, 10, 0).record(2, 0, payload(2, 10), 50000, 50000, 0)
	for _, src := range []io.Reader{bytes.NewReader(b.buf.Bytes()), io.MultiReader(bytes.NewReader(b.buf.Bytes()))} {
		r, err := NewReader(src, "long.pcap")
		if err != nil {
			t.Fatal(err)
		}
		pkts, err := readAll(r)
		var fe *Error
		if len(pkts) != 1 || !errors.Is(err, ErrTruncated) || !errors.As(err, &fe) || fe.Offset != 24+26 {
			t.Errorf("%T: %d packets, %v; want 1 then ErrTruncated at offset 50", src, len(pkts), err)
		}
	}
}
