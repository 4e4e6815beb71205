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

// FuzzReader feeds arbitrary bytes: the reader must end with io.EOF or an
// *Error, never panic or loop, and hand out only consistent packets.
func FuzzReader(f *testing.F) {
	f.Add(genPcap(3))
	f.Add(genPcapNG(3))
	f.Add(writeGzip(f, genPcap(3)))
	f.Add(writeZstd(f, genPcapNG(3)))
	b := &ngBuilder{order: binary.BigEndian}
	b.shb(1, 0).idb(layers.LinkTypeEthernet, 16, b.option(ngOptTsResol, []byte{0x80 | 20}), b.option(ngOptTsOffset, b.u64(5)))
	b.spb(40, payload(1, 16)).pb(0, 9, payload(2, 9), 9).dsb(1, []byte("secret")).block(5, make([]byte, 20))
	f.Add(b.bytes())
	f.Add(newPcapBuilder(binary.BigEndian, 0xa1b2cd34, 10, 1).record(1, 2, payload(1, 10), 10, 10, 8).buf.Bytes())
	// Small corpus files, when the shared corpus is present.
	if matches, _ := filepath.Glob(filepath.Join("..", "..", "..", "shared", "corpus", "*", "*.pcap*")); len(matches) > 0 {
		added := 0
		for _, m := range matches {
			if st, err := os.Stat(m); err != nil || st.Size() > 4096 || filepath.Ext(m) == ".tsv" {
				continue
			}
			if data, err := os.ReadFile(m); err == nil && added < 40 {
				f.Add(data)
				added++
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data), "fuzz")
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("open error %v is not an *Error", err)
			}
			return
		}
		prevOff := r.Offset()
		// Each packet consumes at least 12 bytes of the decompressed stream,
		// which a gzip input can inflate; bound the loop generously.
		for range 1 << 20 {
			p, err := r.Next()
			if err != nil {
				var fe *Error
				if err != io.EOF && !errors.As(err, &fe) {
					t.Fatalf("error %v is neither io.EOF nor *Error", err)
				}
				if _, again := r.Next(); again != err {
					t.Fatalf("error not sticky: %v then %v", err, again)
				}
				return
			}
			if len(p.Data) != p.CaptureLength || p.CaptureLength > MaxCaptureLength {
				t.Fatalf("packet data %d bytes, capture length %d", len(p.Data), p.CaptureLength)
			}
			if r.Offset() <= prevOff {
				t.Fatalf("offset did not advance: %d -> %d", prevOff, r.Offset())
			}
			prevOff = r.Offset()
		}
		t.Fatal("reader did not finish")
	})
}
