package live

import (
	"bytes"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/phonehome/phonehome/engine"
)

// readAll reads every source on its own goroutine until stop closes,
// sending copies of the frames to out tagged with the source's position.
func readAll(t *testing.T, srcs []engine.Source, out chan<- captured, stop <-chan struct{}) *sync.WaitGroup {
	t.Helper()
	var wg sync.WaitGroup
	for i, src := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				fr, err := src.Next()
				if errors.Is(err, engine.ErrNoPacket) {
					continue
				}
				if err != nil {
					return
				}
				fr.Data = bytes.Clone(fr.Data)
				select {
				case out <- captured{Frame: fr, source: i, at: time.Now()}:
				case <-stop:
					return
				}
			}
		}()
	}
	return &wg
}

type frameKey struct {
	flow     uint16
	dir, seq byte
}

// collect gathers tagged frames until want are all seen or the deadline.
func collect(t *testing.T, in <-chan captured, want int, deadline time.Duration) map[frameKey]captured {
	t.Helper()
	got := map[frameKey]captured{}
	timeout := time.After(deadline)
	for len(got) < want {
		select {
		case fr := <-in:
			flow, dir, seq, ok := tagOf(fr.Data)
			if !ok {
				continue
			}
			k := frameKey{flow, dir, seq}
			if _, dup := got[k]; dup {
				t.Errorf("frame %+v captured twice", k)
			}
			got[k] = fr
		case <-timeout:
			t.Fatalf("timed out with %d of %d frames", len(got), want)
		}
	}
	return got
}

// TestFanout: with two AF_PACKET sockets in a fanout group, every packet of
// a flow, both directions and a fragmented datagram (reassembled by the
// kernel), lands on the same socket, none is lost, and the flows spread
// over both sockets.
func TestFanout(t *testing.T) {
	f := newNetFixture(t, 1)
	p := f.pairs[0]
	cfg := testConfig(EngineAFPacket, p.capIf)
	cfg.Workers = 2
	cfg.BPF = "udp"
	c := openIn(t, f.capNS, cfg)
	srcs := c.Sources()
	if len(srcs) != 2 || !c.Parallel() {
		t.Fatalf("%d sources, parallel %v", len(srcs), c.Parallel())
	}
	frames := make(chan captured, 1024)
	stop := make(chan struct{})
	wg := readAll(t, srcs, frames, stop)

	peer := newInjector(t, f.peerNS, p.peerIf)
	// Frames written on the capture side leave through it: the sockets see
	// them as outgoing, the other direction of each flow.
	local := newInjector(t, f.capNS, p.capIf)
	const flows, perDir = 16, 3
	const fragSize = 1800
	want := 0
	for fl := range uint16(flows) {
		client := netip.AddrPortFrom(p.peerIP, 30000+fl)
		server := netip.AddrPortFrom(p.capIP, 443)
		for seq := range byte(perDir) {
			peer.send(t, udpFrame(t, p.peerMAC, p.capMAC, client, server, testPayload(fl, 0, seq, 80)))
			local.send(t, udpFrame(t, p.capMAC, p.peerMAC, server, client, testPayload(fl, 1, seq, 80)))
			want += 2
		}
		if fl%4 == 0 {
			for _, frag := range fragmentedUDP(t, p.peerMAC, p.capMAC, client, server, 1000+fl, testPayload(fl, 2, 0, fragSize)) {
				peer.send(t, frag)
			}
			want++
		}
	}
	got := collect(t, frames, want, 5*time.Second)
	close(stop)
	c.Stop()
	wg.Wait()

	socketOf := map[uint16]int{}
	perSocket := [2]int{}
	for k, fr := range got {
		if s, ok := socketOf[k.flow]; ok && s != fr.source {
			t.Errorf("flow %d on sockets %d and %d", k.flow, s, fr.source)
		}
		socketOf[k.flow] = fr.source
		perSocket[fr.source]++
		if k.dir == 2 {
			ip, udp := udpPorts(fr.Data)
			if ip == nil || udp == nil || ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0 ||
				len(fr.Data) != 14+20+8+fragSize {
				t.Errorf("flow %d: fragmented datagram not reassembled: %d bytes", k.flow, len(fr.Data))
			}
		}
	}
	if len(socketOf) != flows {
		t.Errorf("%d flows seen, want %d", len(socketOf), flows)
	}
	if perSocket[0] == 0 || perSocket[1] == 0 {
		t.Errorf("flows not spread: %v frames per socket", perSocket)
	}
	per, err := c.HandleStats()
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range per {
		if int(st.Delivered) < perSocket[i] || st.KernelDropped != 0 {
			t.Errorf("socket %d stats %+v, %d test frames", i, st, perSocket[i])
		}
	}
}

// TestMultiInterface: several interfaces are merged into the engine's
// sources. With pcap, one source carries both interfaces, each frame
// labelled with its interface; with afpacket, source k reads socket k of
// each interface, so a flow whose two directions are mirrored to two
// different ports still reaches one source.
func TestMultiInterface(t *testing.T) {
	for _, eng := range []string{EnginePcap, EngineAFPacket} {
		t.Run(eng, func(t *testing.T) {
			f := newNetFixture(t, 2)
			p0, p1 := f.pairs[0], f.pairs[1]
			cfg := testConfig(eng, p0.capIf, p1.capIf)
			cfg.BPF = "udp"
			if eng == EngineAFPacket {
				cfg.Workers = 2
			}
			c := openIn(t, f.capNS, cfg)
			srcs := c.Sources()
			if len(srcs) != cfg.Workers || len(c.Handles()) != 2*cfg.Workers {
				t.Fatalf("%d sources, %d handles", len(srcs), len(c.Handles()))
			}
			frames := make(chan captured, 1024)
			stop := make(chan struct{})
			wg := readAll(t, srcs, frames, stop)

			in0 := newInjector(t, f.peerNS, p0.peerIf)
			in1 := newInjector(t, f.peerNS, p1.peerIf)
			const flows, perDir = 16, 2
			for fl := range uint16(flows) {
				client := netip.AddrPortFrom(p0.peerIP, 20000+fl)
				server := netip.AddrPortFrom(netip.MustParseAddr("10.250.255.1"), 443)
				for seq := range byte(perDir) {
					// Requests mirrored to the first port, replies to the second.
					in0.send(t, udpFrame(t, p0.peerMAC, p0.capMAC, client, server, testPayload(fl, 0, seq, 90)))
					in1.send(t, udpFrame(t, p1.peerMAC, p1.capMAC, server, client, testPayload(fl, 1, seq, 90)))
				}
			}
			got := collect(t, frames, flows*perDir*2, 5*time.Second)
			close(stop)
			c.Stop()
			wg.Wait()

			sourceOf := map[uint16]int{}
			used := map[int]bool{}
			for k, fr := range got {
				if fr.Interface != int(k.dir) {
					t.Errorf("frame %+v: interface %d, want %d", k, fr.Interface, k.dir)
				}
				if s, ok := sourceOf[k.flow]; ok && s != fr.source {
					t.Errorf("flow %d on sources %d and %d", k.flow, s, fr.source)
				}
				sourceOf[k.flow] = fr.source
				used[fr.source] = true
			}
			if len(used) != len(srcs) {
				t.Errorf("%d of %d sources used", len(used), len(srcs))
			}
			st, err := c.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.Delivered < uint64(len(got)) {
				t.Errorf("stats %+v for %d frames", st, len(got))
			}
		})
	}
}
