package quic

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/phonehome/phonehome/internal/testcorpus"
)

// encodeDatagrams packs a datagram sequence for FuzzFeed: per datagram a
// 2-byte length whose top bit marks the client direction, then the bytes.
func encodeDatagrams(ds [][]byte, fromClient []bool) []byte {
	var out []byte
	for i, d := range ds {
		if len(d) > 0x7fff {
			d = d[:0x7fff]
		}
		l := uint16(len(d))
		if fromClient[i] {
			l |= 0x8000
		}
		out = binary.BigEndian.AppendUint16(out, l)
		out = append(out, d...)
	}
	return out
}

// corpusAvailable reports whether the shared corpus sits beside the module,
// without skipping the caller as testcorpus does.
func corpusAvailable() bool {
	_, err := os.Stat(filepath.Join("..", "..", "..", "shared", "corpus", "COVERAGE.tsv"))
	return err == nil
}

func FuzzFeed(f *testing.F) {
	f.Add(encodeDatagrams([][]byte{readHex(f, "rfc9001-a2-client-initial.hex"), readHex(f, "rfc9001-a3-server-initial.hex")}, []bool{true, false}))
	f.Add(encodeDatagrams([][]byte{readHex(f, "rfc9369-a2-client-initial.hex"), readHex(f, "rfc9369-a4-retry.hex")}, []bool{true, false}))
	if corpusAvailable() {
		for _, rel := range quicCaptures(f) {
			flows := map[flowKey]*corpusFlow{}
			var ds [][]byte
			var dirs []bool
			for _, d := range readUDP(f, testcorpus.Path(f, rel)) {
				k := keyOf(d)
				fl := flows[k]
				if fl == nil {
					if _, ok := LooksLikeInitial(d.payload); !ok {
						continue
					}
					fl = &corpusFlow{client: d.src}
					flows[k] = fl
				}
				if len(ds) < 8 {
					ds = append(ds, d.payload)
					dirs = append(dirs, d.src == fl.client)
				}
			}
			if len(ds) > 0 {
				f.Add(encodeDatagrams(ds, dirs))
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := NewConn()
		for len(data) >= 2 {
			l := binary.BigEndian.Uint16(data)
			n := min(int(l&0x7fff), len(data)-2)
			_ = c.Feed(data[2:2+n], l&0x8000 != 0)
			data = data[2+n:]
		}
		checkBounds(t, c)
	})
}

// FuzzFrames drives the frame parser and stream reassembly directly, which
// FuzzFeed reaches only through authenticated packets.
func FuzzFrames(f *testing.F) {
	crypto := readHex(f, "rfc9001-a2-client-crypto.hex")
	f.Add(crypto, true)
	f.Add(readHex(f, "rfc9001-a3-server-payload.hex"), false)
	f.Add(append(cryptoFrame(100, []byte("later")), crypto...), true)
	f.Add([]byte{frameAckECN, 1, 0, 2, 0, 1, 1, 1, 1, 7, 8, 9, frameConnectionClose, 1, 0, 1, 'x'}, false)
	f.Fuzz(func(t *testing.T, payload []byte, client bool) {
		c := NewConn()
		c.sink.client = client
		// Twice, so that frames overlap what the first pass stored.
		for range 2 {
			_ = parseFrames(payload, &c.sink)
		}
		checkBounds(t, c)
		if m := c.ClientHello(); m != nil && (m[0] != 1 || len(m) < 4) {
			t.Fatalf("bad hello %x", m)
		}
	})
}

func checkBounds(t *testing.T, c *Conn) {
	t.Helper()
	for i := range c.streams {
		s := &c.streams[i]
		if cap(s.buf) > MaxCryptoStream || len(s.ranges) > maxCryptoRanges {
			t.Fatalf("stream %d: cap %d, %d ranges", i, cap(s.buf), len(s.ranges))
		}
		for j, r := range s.ranges {
			if r.start >= r.end || r.end > len(s.buf) || (j > 0 && s.ranges[j-1].end >= r.start) {
				t.Fatalf("stream %d: bad ranges %v (len %d)", i, s.ranges, len(s.buf))
			}
		}
	}
	if cap(c.scratch) > maxPacketSize || c.derivations > maxKeyDerivations {
		t.Fatalf("scratch %d, derivations %d", cap(c.scratch), c.derivations)
	}
}
