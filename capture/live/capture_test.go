package live

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/phonehome/phonehome/engine"
)

const testReadTimeout = 100 * time.Millisecond

func testConfig(engineName string, ifaces ...string) Config {
	cfg := DefaultConfig()
	cfg.Engine = engineName
	cfg.Interfaces = ifaces
	cfg.BufferSize = MinBufferSize
	cfg.Workers = 1
	cfg.ReadTimeout = testReadTimeout
	return cfg
}

// TestCapture checks, for both engines, that frames sent from the peer
// arrive whole, with link type, length, interface and timestamps right,
// that the BPF filter drops the rest, that an idle read returns
// ErrNoPacket, that Stop ends a blocked reader within a second and that
// the counters add up.
func TestCapture(t *testing.T) {
	for _, eng := range []string{EnginePcap, EngineAFPacket} {
		t.Run(eng, func(t *testing.T) {
			f := newNetFixture(t, 1)
			p := f.pairs[0]
			cfg := testConfig(eng, p.capIf)
			cfg.BPF = "udp and dst port 5000"
			c := openIn(t, f.capNS, cfg)
			srcs := c.Sources()
			if len(srcs) != 1 || c.Parallel() != (eng == EngineAFPacket) {
				t.Fatalf("%d sources, parallel %v", len(srcs), c.Parallel())
			}
			src := srcs[0]
			if h := c.Handles(); len(h) != 1 || h[0].LinkType != 1 || h[0].Interface != p.capIf {
				t.Fatalf("handles %+v", h)
			}

			peer := newInjector(t, f.peerNS, p.peerIf)
			from := netip.AddrPortFrom(p.peerIP, 40000)
			sent := map[byte][]byte{}
			start := time.Now()
			for i := range byte(5) {
				match := udpFrame(t, p.peerMAC, p.capMAC, from, netip.AddrPortFrom(p.capIP, 5000), testPayload(1, 0, i, 100+int(i)*300))
				other := udpFrame(t, p.peerMAC, p.capMAC, from, netip.AddrPortFrom(p.capIP, 6000), testPayload(2, 0, i, 100))
				sent[i] = match
				peer.send(t, other)
				peer.send(t, match)
			}
			// One datagram from the peer's own UDP stack.
			sendKernelUDP(t, f.peerNS, netip.AddrPortFrom(p.capIP, 5000), testPayload(3, 0, 0, 64))

			frames := readUntil(t, src, time.Now().Add(5*time.Second), func(fr []captured) bool { return len(fr) >= 6 })
			var kernel int
			for _, fr := range frames {
				if fr.LinkType != 1 || fr.Interface != 0 {
					t.Errorf("link type %d interface %d", fr.LinkType, fr.Interface)
				}
				if fr.Length != len(fr.Data) {
					t.Errorf("length %d, captured %d", fr.Length, len(fr.Data))
				}
				ts := time.Unix(0, fr.Timestamp)
				if ts.Before(start.Add(-time.Millisecond)) || ts.After(fr.at) {
					t.Errorf("timestamp %v outside [%v, %v]", ts, start, fr.at)
				}
				_, udp := udpPorts(fr.Data)
				if udp == nil || udp.DstPort != 5000 {
					t.Fatalf("filter let through %x", fr.Data)
				}
				flow, _, seq, ok := tagOf(fr.Data)
				switch {
				case ok && flow == 1:
					if !bytes.Equal(fr.Data, sent[seq]) {
						t.Errorf("frame %d differs from the one sent", seq)
					}
					delete(sent, seq)
				case ok && flow == 3:
					kernel++
				default:
					t.Errorf("unexpected frame %x", fr.Data)
				}
			}
			if len(sent) != 0 || kernel != 1 {
				t.Errorf("missing %d sent frames; %d kernel datagrams", len(sent), kernel)
			}

			// Nothing else matches the filter: the next read times out.
			before := time.Now()
			if _, err := src.Next(); !errors.Is(err, engine.ErrNoPacket) {
				t.Errorf("idle Next: %v, want ErrNoPacket", err)
			}
			if d := time.Since(before); d > time.Second {
				t.Errorf("idle Next took %v", d)
			}

			st, err := c.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.Delivered != 6 || st.Received < 6 || st.KernelDropped != 0 || st.ReadErrors != 0 {
				t.Errorf("stats %+v", st)
			}

			// Stop ends a reader blocked in Next.
			done := make(chan error, 1)
			go func() { done <- drainErr(src) }()
			time.Sleep(50 * time.Millisecond)
			stopped := time.Now()
			c.Stop()
			select {
			case err := <-done:
				if err != io.EOF {
					t.Errorf("after Stop: %v, want io.EOF", err)
				}
				if d := time.Since(stopped); d > time.Second {
					t.Errorf("Stop took %v", d)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("Next did not return after Stop")
			}
			if _, err := src.Next(); err != io.EOF {
				t.Errorf("Next after Stop: %v", err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if st, err := c.Stats(); err != nil || st.Delivered != 6 {
				t.Errorf("stats after Close: %+v %v", st, err)
			}
		})
	}
}

// drainErr reads until an error other than ErrNoPacket.
func drainErr(src engine.Source) error {
	for {
		if _, err := src.Next(); err != nil && !errors.Is(err, engine.ErrNoPacket) {
			return err
		}
	}
}

// TestNextZeroAlloc: reading a frame allocates nothing, for both engines.
func TestNextZeroAlloc(t *testing.T) {
	for _, eng := range []string{EnginePcap, EngineAFPacket} {
		t.Run(eng, func(t *testing.T) {
			f := newNetFixture(t, 1)
			p := f.pairs[0]
			cfg := testConfig(eng, p.capIf)
			cfg.BPF = "udp"
			c := openIn(t, f.capNS, cfg)
			src := c.Sources()[0]
			peer := newInjector(t, f.peerNS, p.peerIf)
			frame := udpFrame(t, p.peerMAC, p.capMAC, netip.AddrPortFrom(p.peerIP, 1), netip.AddrPortFrom(p.capIP, 2), testPayload(9, 0, 0, 200))
			const n = 300
			for range n {
				peer.send(t, frame)
			}
			// Wait for the first frame so the rest is in the buffer.
			readUntil(t, src, time.Now().Add(3*time.Second), func(fr []captured) bool { return len(fr) == 1 })
			allocs := testing.AllocsPerRun(n/2, func() {
				if _, err := src.Next(); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per frame", allocs)
			}
		})
	}
}
