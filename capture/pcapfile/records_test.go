package pcapfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

// walkAll walks the file behind rs in pieces of the given size, carrying the
// cut record's start from piece to piece as RunRecords does, and returns
// the packets and the error at the end.
func walkAll(t *testing.T, rs *Records, piece int) ([]Packet, error) {
	t.Helper()
	var got []Packet
	off := rs.Start()
	var tail []byte
	for k := 0; ; k++ {
		buf := make([]byte, piece)
		n, rerr := rs.ReadAt(buf, rs.Start()+int64(k*piece))
		data := append(bytes.Clone(tail), buf[:n]...)
		used, err := rs.Walk(data, off, func(at int, p Packet) {
			if len(p.Data) > 0 && &data[at] != &p.Data[0] {
				t.Fatalf("record at %d: Data does not start at index %d", off, at)
			}
			got = append(got, p)
		})
		if err != nil {
			return got, err
		}
		off += int64(used)
		tail = data[used:]
		if n < piece || rerr != nil {
			if len(tail) > 0 {
				return got, rs.Truncated(off, tail)
			}
			return got, nil
		}
	}
}

// TestRecordsWalkLikeReader: walking a file in pieces of any size gives the
// Reader's packets, in both byte orders and the modified format, and the
// Reader's errors for a record cut short and a corrupt one.
func TestRecordsWalkLikeReader(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for i, tc := range []struct {
		order binary.ByteOrder
		magic uint32
		extra int
	}{{binary.LittleEndian, 0xa1b2c3d4, 0}, {binary.BigEndian, 0xa1b23c4d, 0}, {binary.LittleEndian, 0xa1b2cd34, 8}} {
		b := newPcapBuilder(tc.order, tc.magic, 65535, uint32(layers.LinkTypeEthernet))
		for j := range 200 {
			b.record(uint32(1_700_000_000+j), uint32(j), payload(j, j*7%1400), uint32(j*7%1400), 1500, tc.extra)
		}
		raw := b.buf.Bytes()
		whole := filepath.Join(dir, "whole"+string(rune('a'+i))+".pcap")
		cut := filepath.Join(dir, "cut"+string(rune('a'+i))+".pcap")
		for path, data := range map[string][]byte{whole: raw, cut: raw[:len(raw)-5]} {
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		files = append(files, whole, cut)
	}
	// A record that claims more than the snap length allows.
	b := newPcapBuilder(binary.LittleEndian, 0xa1b2c3d4, 1500, 1)
	b.record(1, 0, payload(1, 100), 100, 100, 0)
	b.record(2, 0, payload(2, 100), 70000, 100, 0)
	bad := filepath.Join(dir, "corrupt.pcap")
	if err := os.WriteFile(bad, b.buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	files = append(files, bad)
	for _, path := range files {
		r, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		var want []Packet
		var wantErr error
		for {
			p, err := r.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					wantErr = err
				}
				break
			}
			p.Data = bytes.Clone(p.Data)
			want = append(want, p)
		}
		r.Close()
		rs, ok, err := OpenRecords(path)
		if err != nil || !ok {
			t.Fatalf("%s: ok %v, %v", path, ok, err)
		}
		for _, piece := range []int{1 << 20, 1000, 97} {
			got, err := walkAll(t, rs, piece)
			if len(got) != len(want) {
				t.Fatalf("%s, pieces of %d: %d packets, the Reader %d", path, piece, len(got), len(want))
			}
			for i := range got {
				if got[i].Timestamp != want[i].Timestamp || got[i].Length != want[i].Length || !bytes.Equal(got[i].Data, want[i].Data) {
					t.Fatalf("%s, pieces of %d: packet %d differs", path, piece, i)
				}
			}
			if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
				t.Fatalf("%s, pieces of %d: error %v, the Reader's %v", path, piece, err, wantErr)
			}
		}
		rs.Close()
	}
}
