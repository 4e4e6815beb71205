package dissect_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/phonehome/phonehome/capture/flow"
	"github.com/phonehome/phonehome/capture/pcapfile"
	"github.com/phonehome/phonehome/classify/dissect"
	"github.com/phonehome/phonehome/engine"
	"github.com/phonehome/phonehome/internal/testcorpus"
)

// frameSource replays frames packed as [2-byte length][frame]... with one
// link type, a millisecond apart.
type frameSource struct {
	lt   uint32
	data []byte
	ts   int64
}

func (s *frameSource) Next() (engine.Frame, error) {
	if len(s.data) < 2 {
		return engine.Frame{}, io.EOF
	}
	n := int(binary.BigEndian.Uint16(s.data))
	s.data = s.data[2:]
	n = min(n, len(s.data))
	fr := s.data[:n]
	s.data = s.data[n:]
	s.ts += 1e6
	return engine.Frame{Data: fr, Timestamp: s.ts, Length: n, LinkType: s.lt}, nil
}

func packFrames(frames [][]byte) []byte {
	var out []byte
	for _, f := range frames {
		out = binary.BigEndian.AppendUint16(out, uint16(len(f)))
		out = append(out, f...)
	}
	return out
}

// fuzzPipelineSeeds are captures whose frames seed FuzzPipeline: DNS over
// UDP and TCP, TLS (split hellos too), QUIC, HTTP.
var fuzzPipelineSeeds = []string{
	"ja4/tls12.pcap", "arkime/tls-split-client-hello.pcap", "suricata-verify/tls__tls-client-hello-frag-01.pcap",
	"ja4/quic-tls-handshake.pcapng", "zeek/quic__quic-multiple-initial-fragmented-crypto.pcap",
	"suricata-verify/dns-tcp-ts-gap.pcap", "arkime/dns-flags0110.pcap", "ja4/http1-with-cookies.pcapng",
	"tcpdump/quic_vn.pcap", "arkime/https2-301-get.pcap", "ja4/socks-https-example.pcap", "zeek/tls__smtp-starttls.pcap",
	"ja4/https-connect.pcap", "zeek/tls__hrr.pcap", "zeek/quic__quic-decrypt-fail-google-de-51833.pcap",
}

// fuzzRunLimit is how long one input may take: far more than any capture of
// the input's size needs, so exceeding it means a hang.
const fuzzRunLimit = 5 * time.Second

// FuzzPipeline feeds frames through the decoder, the flow table and the
// dissectors (engine.Run with dissect.New): whatever the bytes, no panic,
// no hang, and every event line is written.
func FuzzPipeline(f *testing.F) {
	for _, rel := range fuzzPipelineSeeds {
		r, err := pcapfile.Open(testcorpus.Path(f, rel))
		if err != nil {
			continue
		}
		var frames [][]byte
		lt := uint32(0)
		for len(frames) < 24 { // small inputs keep minimisation quick
			p, err := r.Next()
			if err != nil {
				break
			}
			lt = uint32(p.LinkType)
			frames = append(frames, bytes.Clone(p.Data))
		}
		r.Close()
		f.Add(lt, packFrames(frames))
	}
	f.Add(uint32(101), packFrames([][]byte{{0x45, 0, 0, 20}}))
	f.Fuzz(func(t *testing.T, lt uint32, data []byte) {
		var stats dissect.Stats
		out := &collect{}
		cfg := engine.Config{
			Workers:     1,
			Flow:        flow.Config{MaxFlows: 64},
			NewAnalyzer: dissect.New(dissect.Config{StreamBuffer: 4096, StreamBudget: 1 << 16}, 1, &stats),
		}
		done := make(chan error, 1)
		go func() {
			_, err := engine.Run(&frameSource{lt: lt, data: data}, out, cfg)
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, io.EOF) {
				t.Fatalf("engine.Run: %v", err)
			}
		case <-time.After(fuzzRunLimit):
			t.Fatalf("engine.Run still busy after %v on %d bytes (link type %d)", fuzzRunLimit, len(data), lt)
		}
	})
}
