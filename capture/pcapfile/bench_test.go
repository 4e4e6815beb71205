package pcapfile

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

// genPcap builds an n-packet pcap with sizes cycling 60..1514 bytes.
func genPcap(n int) []byte {
	b := newPcapBuilder(binary.LittleEndian, 0xa1b2c3d4, 65535, 1)
	data := payload(1, 1514)
	for i := range n {
		size := 60 + (i*97)%1455
		b.record(uint32(1_700_000_000+i/1000), uint32(i%1000)*1000, data[:size], uint32(size), uint32(size), 0)
	}
	return b.buf.Bytes()
}

func genPcapNG(n int) []byte {
	b := &ngBuilder{order: binary.LittleEndian}
	b.shb(1, 0).idb(layers.LinkTypeEthernet, 0, b.option(ngOptTsResol, []byte{9}))
	data := payload(1, 1514)
	for i := range n {
		size := 60 + (i*97)%1455
		b.epb(0, uint64(1_700_000_000_000_000_000+i), data[:size], uint32(size))
	}
	return b.bytes()
}

// TestZeroAllocsPerPacket: Next allocates nothing, for every format.
func TestZeroAllocsPerPacket(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"pcap", genPcap(2000)},
		{"pcapng", genPcapNG(2000)},
		{"gzip", writeGzip(t, genPcap(2000))},
		{"zstd", writeZstd(t, genPcap(2000))},
	} {
		r, err := NewReader(bytes.NewReader(tc.data), tc.name)
		if err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(1000, func() {
			if _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per packet", tc.name, allocs)
		}
	}
}

func benchmarkRead(b *testing.B, data []byte) {
	r, err := NewReader(bytes.NewReader(data), "bench")
	if err != nil {
		b.Fatal(err)
	}
	// Throughput counts file bytes per packet on average.
	var packets int
	for {
		if _, err := r.Next(); err != nil {
			break
		}
		packets++
	}
	b.SetBytes(int64(len(data) / packets))
	b.ReportAllocs()
	b.ResetTimer()
	r, _ = NewReader(bytes.NewReader(data), "bench")
	for range b.N {
		if _, err := r.Next(); err != nil {
			if err != io.EOF {
				b.Fatal(err)
			}
			r, _ = NewReader(bytes.NewReader(data), "bench")
		}
	}
}

// BenchmarkReadPcap reads a generated 100k-packet pcap; one op is one packet.
func BenchmarkReadPcap(b *testing.B) { benchmarkRead(b, genPcap(100_000)) }

// BenchmarkReadPcapNG reads a generated 100k-packet pcapng.
func BenchmarkReadPcapNG(b *testing.B) { benchmarkRead(b, genPcapNG(100_000)) }
