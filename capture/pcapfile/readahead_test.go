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

type readResult struct {
	pkts    []Packet
	data    [][]byte
	err     error
	secrets []DecryptionSecret
	read    int64
	joined  uint64
}

// readFile reads a capture file to its end, with or without read-ahead;
// with retain it keeps every chunk until the end (as a sharded engine
// does) and checks the data afterwards.
func readFile(t *testing.T, path string, ahead, retain bool) readResult {
	t.Helper()
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if ahead && !r.ReadAhead() {
		t.Fatal("no read-ahead on a regular file")
	}
	var res readResult
	var held []*Chunk
	for {
		p, err := r.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				res.err = err
			}
			break
		}
		res.pkts = append(res.pkts, p)
		if retain {
			r.Chunk().Retain()
			held = append(held, r.Chunk())
			res.data = append(res.data, p.Data)
		} else {
			res.data = append(res.data, bytes.Clone(p.Data))
		}
	}
	if retain {
		// The retained data must still be what was read.
		for i := range res.data {
			res.data[i] = bytes.Clone(res.data[i])
		}
		for _, c := range held {
			c.Release()
		}
	}
	res.secrets, _ = r.Secrets()
	res.read = r.BytesRead()
	res.joined = r.ChunkStats().Joined
	return res
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReadAhead reads files with and without read-ahead, retaining chunks
// or not: packets, secrets, errors and progress must be the same. The
// pcapng file has a secrets block larger than the read-ahead reserve, which
// straddles two chunks.
func TestReadAhead(t *testing.T) {
	pkts := chunkTestPackets()
	pcap := writePcap(true, 65535, layers.LinkTypeEthernet, pkts)
	// Read-ahead chunks start after the first read (a whole buffer, at
	// Open) and hold readBufferSize bytes each. Two secrets blocks, padded into
	// place with skipped blocks, straddle a chunk boundary: one starts
	// closer to it than the reserve, one farther (joined).
	boundary := func(k int) int { return readBufferSize + k*readBufferSize }
	ng := &ngBuilder{order: binary.LittleEndian}
	ng.shb(1, 0).idb(layers.LinkTypeEthernet, 65535)
	placed := 0
	for i, p := range pkts {
		ng.epb(0, uint64(p.ts/1000), p.data, uint32(p.wireLen))
		if placed < 2 && ng.buf.Len() > boundary(placed+1)-aheadReserve-200_000 {
			before := []int{100_000, aheadReserve + 40_000}[placed]
			pad := (boundary(placed+1) - before - ng.buf.Len() - 12) &^ 3
			ng.block(0x0bad, make([]byte, pad))
			ng.dsb(0x544c534b, payload(i, aheadReserve+100_000))
			placed++
		}
	}
	files := map[string][]byte{
		"pcap":             pcap,
		"pcapng":           ng.bytes(),
		"pcap truncated":   pcap[:len(pcap)-100],
		"pcapng truncated": ng.bytes()[:len(ng.bytes())-7],
		"pcap small":       writePcap(false, 65535, layers.LinkTypeEthernet, pkts[:3]),
	}
	for name, data := range files {
		t.Run(name, func(t *testing.T) {
			path := writeTemp(t, "c.pcap", data)
			want := readFile(t, path, false, false)
			if len(want.pkts) == 0 {
				t.Fatal("no packets")
			}
			for _, retain := range []bool{false, true} {
				got := readFile(t, path, true, retain)
				if len(got.pkts) != len(want.pkts) {
					t.Fatalf("retain %v: %d packets, want %d", retain, len(got.pkts), len(want.pkts))
				}
				for i := range want.pkts {
					g, w := got.pkts[i], want.pkts[i]
					if !bytes.Equal(got.data[i], want.data[i]) || g.Timestamp != w.Timestamp || g.Length != w.Length {
						t.Fatalf("retain %v: packet %d differs", retain, i)
					}
				}
				if (got.err == nil) != (want.err == nil) || got.err != nil && got.err.Error() != want.err.Error() {
					t.Errorf("retain %v: error %v, want %v", retain, got.err, want.err)
				}
				if len(got.secrets) != len(want.secrets) {
					t.Fatalf("retain %v: %d secrets, want %d", retain, len(got.secrets), len(want.secrets))
				}
				for i := range want.secrets {
					if !bytes.Equal(got.secrets[i].Data, want.secrets[i].Data) {
						t.Errorf("retain %v: secret %d differs", retain, i)
					}
				}
				if name == "pcapng" && got.joined != 1 {
					t.Errorf("retain %v: %d records joined, want 1", retain, got.joined)
				}
				if got.read != want.read {
					t.Errorf("retain %v: BytesRead %d, want %d", retain, got.read, want.read)
				}
			}
		})
	}
}

// TestReadAheadCloseEarly closes a reader whose goroutine is still reading
// ahead: Close must stop it (the race detector and the leak would show).
func TestReadAheadCloseEarly(t *testing.T) {
	path := writeTemp(t, "c.pcap", writePcap(false, 65535, layers.LinkTypeEthernet, chunkTestPackets()))
	for range 20 {
		r, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if !r.ReadAhead() {
			t.Fatal("no read-ahead on a regular file")
		}
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Reading on after Close fails as reading a closed file does, once the
	// chunks read ahead are used up; it must not hang.
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	r.ReadAhead()
	r.Close()
	for {
		_, err := r.Next()
		if err == nil {
			continue
		}
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("Next after Close: %v, want a closed-file error", err)
		}
		break
	}
}

// TestReadAheadNotApplicable: compressed files and streams stay as they are.
func TestReadAheadNotApplicable(t *testing.T) {
	pcap := writePcap(false, 65535, layers.LinkTypeEthernet, chunkTestPackets()[:10])
	r, err := Open(writeTemp(t, "c.pcap.gz", writeGzip(t, pcap)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.ReadAhead() {
		t.Error("read-ahead on a compressed file")
	}
	s, err := NewReader(bytes.NewReader(pcap), "mem")
	if err != nil {
		t.Fatal(err)
	}
	if s.ReadAhead() {
		t.Error("read-ahead on a stream")
	}
}
