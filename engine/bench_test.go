package engine_test

import (
	"bytes"
	"io"
	"sync/atomic"
	"testing"

	"github.com/phonehome/phonehome/capture/decode"
	"github.com/phonehome/phonehome/engine"
	"github.com/phonehome/phonehome/synth"
)

// benchFlowCount is how many flows the engine benchmarks cycle through.
const benchFlowCount = 256

// benchEngineFrames builds two frames (one each way) for each of
// benchFlowCount flows: TCP over IPv4, UDP over VLAN-tagged IPv6 and TCP
// inside VXLAN, about the mix a busy egress link shows.
func benchEngineFrames() [][]byte {
	var b synth.Builder
	payload := bytes.Repeat([]byte("p"), 1200)
	var frames [][]byte
	for i := range benchFlowCount {
		port := uint16(20000 + i)
		switch i % 4 {
		case 0, 1:
			cl := synth.Endpoint{Addr: synth.EP("10.0.0.1:1").Addr, Port: port}
			sv := synth.EP("198.18.0.1:443")
			frames = append(frames,
				bytes.Clone(b.TCP(synth.L2{}, cl, sv, 1, 1, synth.ACK|synth.PSH, payload)),
				bytes.Clone(b.TCP(synth.L2{}, sv, cl, 1, 1201, synth.ACK, nil)))
		case 2:
			cl := synth.Endpoint{Addr: synth.EP("[2001:db8::1]:1").Addr, Port: port}
			sv := synth.EP("[2001:db8::53]:53")
			l2 := synth.L2{VLANs: []uint16{10}}
			frames = append(frames,
				bytes.Clone(b.UDP(l2, cl, sv, payload[:60])),
				bytes.Clone(b.UDP(l2, sv, cl, payload[:200])))
		case 3:
			cl := synth.Endpoint{Addr: synth.EP("10.1.0.1:1").Addr, Port: port}
			sv := synth.EP("198.18.0.2:443")
			vtep1, vtep2 := synth.EP("192.0.2.1:49152"), synth.EP("192.0.2.2:4789")
			for _, inner := range [][]byte{
				bytes.Clone(b.TCP(synth.L2{}, cl, sv, 1, 1, synth.ACK|synth.PSH, payload[:500])),
				bytes.Clone(b.TCP(synth.L2{}, sv, cl, 1, 501, synth.ACK, nil)),
			} {
				vx := append([]byte{0x08, 0, 0, 0, 0, 0, 42, 0}, inner...)
				frames = append(frames, bytes.Clone(b.UDP(synth.L2{}, vtep1, vtep2, vx)))
			}
		}
	}
	return frames
}

// memSource replays frames in a loop, n frames in all, 1 µs apart.
type memSource struct {
	frames [][]byte
	n, i   int
	ts     int64
}

var _ engine.Source = (*memSource)(nil)

func (s *memSource) Next() (engine.Frame, error) {
	if s.n == 0 {
		return engine.Frame{}, io.EOF
	}
	s.n--
	f := s.frames[s.i]
	if s.i++; s.i == len(s.frames) {
		s.i = 0
	}
	s.ts += 1000
	return engine.Frame{Data: f, Timestamp: s.ts, Length: len(f), LinkType: decode.LinkTypeEthernet}, nil
}

// nopOutput drops events, counting them.
type nopOutput struct{ lines atomic.Int64 }

var _ engine.Output = (*nopOutput)(nil)

func (o *nopOutput) Write([]byte, string, string) error {
	o.lines.Add(1)
	return nil
}

func benchmarkEngine(b *testing.B, workers int) {
	frames := benchEngineFrames()
	var size int
	for _, f := range frames {
		size += len(f)
	}
	b.SetBytes(int64(size / len(frames)))
	b.ReportAllocs()
	src := &memSource{frames: frames, n: b.N, ts: 1_700_000_000_000_000_000}
	out := &nopOutput{}
	b.ResetTimer()
	st, err := engine.Run(src, out, engine.Config{Workers: workers})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if got := st.Packets.Load(); got != uint64(b.N) {
		b.Fatalf("%d of %d frames decoded", got, b.N)
	}
	// Every flow that got a packet ends at the end of the run with one record.
	if want := min((b.N+1)/2, len(frames)/2); out.lines.Load() < int64(want) {
		b.Fatalf("%d events for %d frames, want at least %d flow records", out.lines.Load(), b.N, want)
	}
}

// BenchmarkEngineInline times the whole one-worker path per packet (decode,
// flow table, flow records at the end) with a no-op output and no
// analyzers; one op is one frame.
func BenchmarkEngineInline(b *testing.B) { benchmarkEngine(b, 1) }

// BenchmarkEngineSharded2 is the same with flows sharded over two workers:
// per-packet cost of the reader goroutine's hashing, batching and copying.
func BenchmarkEngineSharded2(b *testing.B) { benchmarkEngine(b, 2) }
