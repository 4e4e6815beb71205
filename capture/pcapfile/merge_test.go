package pcapfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

func TestMerger(t *testing.T) {
	// Source 0: timestamps 0,3,6,...; source 1: 1,4,7,... but cut short in
	// its 4th record; source 2: 2,5,8,... with a corrupt 3rd record;
	// source 3: empty.
	mk := func(src, n int) []testPacket {
		var p []testPacket
		for i := range n {
			d := payload(src*100+i, 20+src)
			p = append(p, testPacket{ts: int64(3*i+src) * 1e9, data: d, wireLen: len(d), link: layers.LinkTypeEthernet})
		}
		return p
	}
	src0 := writePcap(false, 65535, layers.LinkTypeEthernet, mk(0, 10))
	src1 := writePcap(true, 65535, layers.LinkTypeEthernet, mk(1, 4))
	src1 = src1[:len(src1)-5]
	b := newPcapBuilder(binary.LittleEndian, 0xa1b2c3d4, 65535, 1)
	for _, p := range mk(2, 2) {
		b.record(uint32(p.ts/1e9), 0, p.data, uint32(len(p.data)), uint32(len(p.data)), 0)
	}
	b.record(8, 0, nil, 1<<20, 10, 0)
	src2 := b.buf.Bytes()
	src3 := writePcap(false, 65535, layers.LinkTypeEthernet, nil)

	var readers []*Reader
	for i, data := range [][]byte{src0, src1, src2, src3} {
		r, err := NewReader(bytes.NewReader(data), []string{"a.pcap", "b.pcap", "c.pcap", "d.pcap"}[i])
		if err != nil {
			t.Fatal(err)
		}
		readers = append(readers, r)
	}
	m := NewMerger(readers...)
	var gotTS []int64
	var errs []*SourceError
	prevTS := int64(-1)
	for {
		p, src, err := m.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			var se *SourceError
			if !errors.As(err, &se) || src != se.Index {
				t.Fatalf("error %v (src %d) is not a SourceError", err, src)
			}
			errs = append(errs, se)
			continue
		}
		if p.Timestamp < prevTS {
			t.Errorf("out of order: %d after %d", p.Timestamp, prevTS)
		}
		prevTS = p.Timestamp
		i := int(p.Timestamp / 1e9)
		if i%3 != src || !bytes.Equal(p.Data, payload(src*100+i/3, 20+src)) {
			t.Errorf("packet ts %ds from source %d has wrong data %x", i, src, p.Data)
		}
		gotTS = append(gotTS, p.Timestamp/1e9)
	}
	want := []int64{0, 1, 2, 3, 4, 5, 6, 7, 9, 12, 15, 18, 21, 24, 27} // 10 was cut, 8 corrupt
	if len(gotTS) != len(want) {
		t.Fatalf("merged %v, want %v", gotTS, want)
	}
	for i := range want {
		if gotTS[i] != want[i] {
			t.Fatalf("merged %v, want %v", gotTS, want)
		}
	}
	if len(errs) != 2 || errs[0].Index != 2 || !errors.Is(errs[0], ErrCorrupt) || errs[0].Name != "c.pcap" ||
		errs[1].Index != 1 || !errors.Is(errs[1], ErrTruncated) {
		t.Errorf("errors %v", errs)
	}
	failed := m.Failed()
	if len(failed) != 2 || failed[0].Index != 2 || failed[1].Index != 1 {
		t.Errorf("Failed() = %v", failed)
	}
	if _, _, err := m.Next(); err != io.EOF {
		t.Errorf("after the end: %v", err)
	}
}

// TestMergerTies keeps equal timestamps in source order, and each
// source's packets in file order.
func TestMergerTies(t *testing.T) {
	var readers []*Reader
	for src := range 3 {
		var pkts []testPacket
		for i := range 3 {
			pkts = append(pkts, testPacket{ts: 5e9, data: []byte{byte(src), byte(i)}, wireLen: 2})
		}
		r, err := NewReader(bytes.NewReader(writePcap(false, 100, layers.LinkTypeRaw, pkts)), "t")
		if err != nil {
			t.Fatal(err)
		}
		readers = append(readers, r)
	}
	m := NewMerger(readers...)
	var got []byte
	for {
		p, src, err := m.Next()
		if err == io.EOF {
			break
		}
		if err != nil || int(p.Data[0]) != src {
			t.Fatalf("src %d data %x err %v", src, p.Data, err)
		}
		got = append(got, p.Data...)
	}
	want := []byte{0, 0, 0, 1, 0, 2, 1, 0, 1, 1, 1, 2, 2, 0, 2, 1, 2, 2}
	if !bytes.Equal(got, want) {
		t.Errorf("order %x, want %x", got, want)
	}
}

// TestMergerZeroAllocs: merging copies nothing and allocates nothing per
// packet.
func TestMergerZeroAllocs(t *testing.T) {
	var readers []*Reader
	for i := range 4 {
		data := genPcap(1000)
		if i%2 == 1 {
			data = genPcapNG(1000)
		}
		r, err := NewReader(bytes.NewReader(data), "m")
		if err != nil {
			t.Fatal(err)
		}
		readers = append(readers, r)
	}
	m := NewMerger(readers...)
	if _, _, err := m.Next(); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(2000, func() {
		if _, _, err := m.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per merged packet", allocs)
	}
}
