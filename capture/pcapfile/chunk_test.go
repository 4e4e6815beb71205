package pcapfile

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
	"testing/iotest"
	"unsafe"

	"github.com/gopacket/gopacket/layers"
)

// plainReader hides bytes.Reader's Len, so the Reader keeps its full-size
// chunks as it does for files.
type plainReader struct{ r io.Reader }

func (p plainReader) Read(b []byte) (int, error) { return p.r.Read(b) }

// chunkTestPackets spans several read buffers: 2400 packets of up to 4 KiB.
func chunkTestPackets() []testPacket {
	var pkts []testPacket
	for i := range 2400 {
		data := payload(i, 60+(i*397)%4000)
		pkts = append(pkts, testPacket{ts: int64(i) * 1000, data: data, wireLen: len(data), link: layers.LinkTypeEthernet})
	}
	return pkts
}

// TestChunkRetain keeps every packet's chunk while reading on: the data of
// all packets must stay intact to the end, and released chunks are reused.
func TestChunkRetain(t *testing.T) {
	want := chunkTestPackets()
	pcap := writePcap(true, 65535, layers.LinkTypeEthernet, want)
	ng := &ngBuilder{order: binary.LittleEndian}
	ng.shb(1, 0).idb(layers.LinkTypeEthernet, 65535)
	for _, p := range want {
		ng.epb(0, uint64(p.ts/1000), p.data, uint32(p.wireLen))
	}
	for name, src := range map[string]func() io.Reader{
		"pcap":           func() io.Reader { return plainReader{bytes.NewReader(pcap)} },
		"pcap one byte":  func() io.Reader { return iotest.OneByteReader(bytes.NewReader(pcap)) },
		"pcap in memory": func() io.Reader { return bytes.NewReader(pcap) },
		"pcap gzip":      func() io.Reader { return plainReader{bytes.NewReader(writeGzip(t, pcap))} },
		"pcapng":         func() io.Reader { return plainReader{bytes.NewReader(ng.bytes())} },
	} {
		t.Run(name, func(t *testing.T) {
			r, err := NewReader(src(), name)
			if err != nil {
				t.Fatal(err)
			}
			var got []Packet
			var chunks []*Chunk
			for {
				p, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				c := r.Chunk()
				if c == nil || !within(p.Data, c.buf) {
					t.Fatalf("packet %d: data not in the reader's chunk", len(got))
				}
				c.Retain()
				got, chunks = append(got, p), append(chunks, c)
			}
			if len(got) != len(want) {
				t.Fatalf("got %d packets, want %d", len(got), len(want))
			}
			for i, p := range got {
				if !bytes.Equal(p.Data, want[i].data) {
					t.Fatalf("packet %d: retained data changed", i)
				}
			}
			distinct := map[*Chunk]bool{}
			for _, c := range chunks {
				distinct[c] = true
				c.Release()
			}
			st := r.ChunkStats()
			if len(distinct) < 2 || st.Allocated < uint64(len(distinct)) {
				t.Errorf("%d distinct chunks, stats %+v: the data should span several", len(distinct), st)
			}
		})
	}
}

// TestChunkReuse checks that chunks released before the reader needs a new
// one come back from the pool instead of being allocated.
func TestChunkReuse(t *testing.T) {
	want := chunkTestPackets()
	data := writePcap(false, 65535, layers.LinkTypeEthernet, want)
	data = append(append(data, data[24:]...), data[24:]...) // three rounds
	r, err := NewReader(plainReader{bytes.NewReader(data)}, "reuse")
	if err != nil {
		t.Fatal(err)
	}
	var held []*Chunk
	n := 0
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p.Data, want[n%len(want)].data) {
			t.Fatalf("packet %d: wrong data", n)
		}
		n++
		// Hold the last two chunks, as a pipeline with a short queue does.
		if len(held) == 0 || held[len(held)-1] != r.Chunk() {
			r.Chunk().Retain()
			held = append(held, r.Chunk())
			if len(held) > 2 {
				held[0].Release()
				held = held[1:]
			}
		}
	}
	if n != 3*len(want) {
		t.Fatalf("read %d packets, want %d", n, 3*len(want))
	}
	st := r.ChunkStats()
	if st.Reused == 0 || st.Allocated > 4 {
		t.Errorf("chunk stats %+v: released chunks should be reused", st)
	}
}

func TestChunkOverRelease(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("releasing an unretained chunk did not panic")
		}
	}()
	r, err := NewReader(bytes.NewReader(writePcap(false, 65535, layers.LinkTypeEthernet, chunkTestPackets()[:3])), "x")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Next()
	if err != nil {
		t.Fatal(err)
	}
	r.Chunk().Release() // the reader's own reference
	r.Chunk().Release()
}

// within reports whether sub lies inside buf's memory.
func within(sub, buf []byte) bool {
	if len(sub) == 0 || len(buf) == 0 {
		return false
	}
	s, b := uintptr(unsafe.Pointer(unsafe.SliceData(sub))), uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	return s >= b && s+uintptr(len(sub)) <= b+uintptr(len(buf))
}

// TestMergerChunk checks that the Merger names the chunk of the packet it
// returned last, whichever reader it came from, and that retaining those
// chunks keeps every packet's data.
func TestMergerChunk(t *testing.T) {
	pkts := chunkTestPackets()
	var a, b []testPacket
	for i, p := range pkts {
		if i%3 == 0 {
			a = append(a, p)
		} else {
			b = append(b, p)
		}
	}
	open := func(tp []testPacket) *Reader {
		r, err := NewReader(plainReader{bytes.NewReader(writePcap(true, 65535, layers.LinkTypeEthernet, tp))}, "m")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	m := NewMerger(open(a), open(b))
	if m.Chunk() != nil {
		t.Error("chunk before the first packet")
	}
	var data [][]byte
	var held []*Chunk
	for {
		p, _, err := m.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		c := m.Chunk()
		if c == nil || !within(p.Data, c.buf) {
			t.Fatalf("packet %d: data not in the merger's chunk", len(data))
		}
		c.Retain()
		held = append(held, c)
		data = append(data, p.Data)
	}
	if len(data) != len(pkts) {
		t.Fatalf("%d packets, want %d", len(data), len(pkts))
	}
	for i := range pkts {
		if !bytes.Equal(data[i], pkts[i].data) {
			t.Fatalf("packet %d: retained data changed", i)
		}
	}
	for _, c := range held {
		c.Release()
	}
}
