package engine_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phonehome/phonehome/capture/decode"
	"github.com/phonehome/phonehome/capture/flow"
	"github.com/phonehome/phonehome/capture/pcapfile"
	"github.com/phonehome/phonehome/engine"
	"github.com/phonehome/phonehome/event"
	"github.com/phonehome/phonehome/internal/testcorpus"
	"github.com/phonehome/phonehome/synth"
)

// payloadDigest is an Analyzer that hashes every payload a flow's packets
// carry, in order, per direction: a payload the engine let go stale (a
// buffer reused before the worker read it) changes the digest.
type payloadDigest struct {
	mu     *sync.Mutex
	digest map[string]string
	cur    map[string]*[2][]byte
}

func newPayloadDigest() *payloadDigest {
	return &payloadDigest{mu: new(sync.Mutex), digest: map[string]string{}, cur: map[string]*[2][]byte{}}
}

func (d *payloadDigest) Packet(f *flow.Flow, dir flow.Direction, p *decode.Packet) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.cur[f.UID]
	if c == nil {
		c = new([2][]byte)
		d.cur[f.UID] = c
	}
	h := fnv.New64a()
	h.Write(c[dir])
	h.Write(p.Payload)
	c[dir] = h.Sum(nil)
}

func (d *payloadDigest) FlowEnded(f *flow.Flow, _ flow.EndReason, final bool, _ *event.Event) {
	if !final {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.cur[f.UID]
	if c == nil {
		c = new([2][]byte)
	}
	d.digest[f.UID] = fmt.Sprintf("%x/%x", c[0], c[1])
}
func (d *payloadDigest) Tick(int64)   {}
func (d *payloadDigest) Finish(int64) {}

// chunkedSource serves frames out of small reference-counted buffers, as
// pcapfile does, and poisons a buffer as soon as its last reference goes.
// Without owners it poisons the previous frame on every call instead.
type chunkedSource struct {
	frames   [][]byte
	ts       []int64
	i        int
	owners   bool
	cur      *poisonChunk
	prev     []byte
	live     atomic.Int64 // references held by the engine
	switches int
}

type poisonChunk struct {
	buf  []byte
	off  int
	refs atomic.Int32
	src  *chunkedSource
}

var _ engine.Retainer = (*poisonChunk)(nil)

func (c *poisonChunk) Retain() {
	c.refs.Add(1)
	c.src.live.Add(1)
}

func (c *poisonChunk) Release() {
	c.src.live.Add(-1)
	c.drop()
}

// drop releases a reference, poisoning the buffer with the last one.
func (c *poisonChunk) drop() {
	switch n := c.refs.Add(-1); {
	case n == 0:
		for i := range c.buf {
			c.buf[i] = 0xaa
		}
	case n < 0:
		panic("released more often than retained")
	}
}

// chunkSize holds a few frames, so that the engine retains many chunks.
const chunkSize = 8 << 10

func (s *chunkedSource) Next() (engine.Frame, error) {
	if s.i == len(s.frames) {
		if s.cur != nil {
			s.cur.drop()
			s.cur = nil
		}
		return engine.Frame{}, io.EOF
	}
	f := s.frames[s.i]
	fr := engine.Frame{Timestamp: s.ts[s.i], Length: len(f), LinkType: decode.LinkTypeEthernet}
	s.i++
	if !s.owners {
		for i := range s.prev {
			s.prev[i] = 0xaa
		}
		s.prev = bytes.Clone(f)
		fr.Data = s.prev
		return fr, nil
	}
	if s.cur == nil || s.cur.off+len(f) > len(s.cur.buf) || s.cur.refs.Load() > 1 && s.i%7 == 0 {
		if s.cur != nil {
			s.cur.drop()
		}
		s.cur = &poisonChunk{buf: make([]byte, max(chunkSize, len(f))), src: s}
		s.cur.refs.Store(1)
		s.switches++
	}
	c := s.cur
	fr.Data = c.buf[c.off : c.off+len(f) : c.off+len(f)]
	copy(fr.Data, f)
	c.off += len(f)
	return fr, nil
}

// FrameOwner implements engine.RetainingSource.
func (s *chunkedSource) FrameOwner() engine.Retainer {
	if !s.owners || s.cur == nil {
		return nil
	}
	return s.cur
}

var _ engine.RetainingSource = (*chunkedSource)(nil)

// fragment splits an Ethernet+IPv4 frame (20-byte IP header) into two IP
// fragments, the first carrying the first split bytes of the IP payload.
func fragment(frame []byte, split int) [][]byte {
	ip := frame[14:]
	payload := ip[20:]
	mk := func(part []byte, off int, more bool) []byte {
		f := append(bytes.Clone(frame[:34]), part...)
		binary.BigEndian.PutUint16(f[16:], uint16(20+len(part)))
		fl := uint16(off / 8)
		if more {
			fl |= 0x2000
		}
		binary.BigEndian.PutUint16(f[20:], fl)
		binary.BigEndian.PutUint16(f[24:], 0)
		var sum uint32
		for i := 14; i < 34; i += 2 {
			sum += uint32(binary.BigEndian.Uint16(f[i:]))
		}
		for sum > 0xffff {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(f[24:], ^uint16(sum))
		return f
	}
	return [][]byte{mk(payload[:split], 0, true), mk(payload[split:], split, false)}
}

// shardFrames builds many flows (TCP and UDP over IPv4 and VLAN-tagged IPv6,
// fragmented UDP datagrams) with payloads that differ per packet, spread
// over several seconds so time ticks fall between them.
func shardFrames() ([][]byte, []int64) {
	var b synth.Builder
	var frames [][]byte
	var ts []int64
	t := int64(1_700_000_000_000_000_000)
	add := func(f ...[]byte) {
		for _, x := range f {
			frames = append(frames, bytes.Clone(x))
			t += 3_000_000 // 3 ms: about 330 frames a second
			ts = append(ts, t)
		}
	}
	for i := range 3000 {
		port := uint16(10000 + i%400)
		pl := []byte(fmt.Sprintf("packet %d of flow %d %s", i, i%400, bytes.Repeat([]byte{byte(i)}, i%900)))
		switch i % 5 {
		case 0, 1:
			cl := synth.Endpoint{Addr: synth.EP("10.0.0.1:1").Addr, Port: port}
			sv := synth.EP("198.18.0.1:443")
			add(b.TCP(synth.L2{}, cl, sv, uint32(i), 1, synth.ACK|synth.PSH, pl), b.TCP(synth.L2{}, sv, cl, 1, uint32(i), synth.ACK, pl[:len(pl)/2]))
		case 2:
			cl := synth.Endpoint{Addr: synth.EP("[2001:db8::1]:1").Addr, Port: port}
			add(b.UDP(synth.L2{VLANs: []uint16{10}}, cl, synth.EP("[2001:db8::53]:53"), pl))
		case 3:
			cl := synth.Endpoint{Addr: synth.EP("10.0.9.9:1").Addr, Port: port}
			big := bytes.Repeat(pl, 3)
			add(fragment(b.UDP(synth.L2{}, cl, synth.EP("198.18.0.9:5353"), big), 8*((len(big)+8)/16))...)
		case 4:
			cl := synth.Endpoint{Addr: synth.EP("10.0.0.2:1").Addr, Port: port}
			add(b.UDP(synth.L2{}, cl, synth.EP("198.18.0.2:53"), pl))
		}
	}
	return frames, ts
}

type shardRun struct {
	lines   []string
	digests map[string]string
	stats   *engine.Stats
}

func runShard(t *testing.T, src engine.Source, workers int) shardRun {
	t.Helper()
	return runShardConfig(t, src, engine.Config{Workers: workers})
}

func runShardConfig(t *testing.T, src engine.Source, cfg engine.Config) shardRun {
	t.Helper()
	out := &collect{}
	d := newPayloadDigest()
	cfg.NewAnalyzer = func(int, engine.Emitter) engine.Analyzer { return d }
	st, err := engine.Run(src, out, cfg)
	if err != nil {
		t.Fatal(err)
	}
	lines := make([]string, len(out.lines))
	for i, l := range out.lines {
		lines[i] = string(l)
	}
	sort.Strings(lines)
	return shardRun{lines: lines, digests: d.digest, stats: st}
}

func sameRun(t *testing.T, name string, got, want shardRun) {
	t.Helper()
	if len(got.lines) != len(want.lines) {
		t.Fatalf("%s: %d events, want %d", name, len(got.lines), len(want.lines))
	}
	for i := range got.lines {
		if got.lines[i] != want.lines[i] {
			t.Fatalf("%s: event differs:\n got %s\nwant %s", name, got.lines[i], want.lines[i])
		}
	}
	if len(got.digests) != len(want.digests) {
		t.Fatalf("%s: %d flows, want %d", name, len(got.digests), len(want.digests))
	}
	for uid, d := range want.digests {
		if got.digests[uid] != d {
			t.Fatalf("%s: flow %s saw other payloads: %s, want %s", name, uid, got.digests[uid], d)
		}
	}
	g, w := got.stats, want.stats
	if g.Frames.Load() != w.Frames.Load() || g.Packets.Load() != w.Packets.Load() || g.CaptureBytes.Load() != w.CaptureBytes.Load() ||
		g.FirstPacket.Load() != w.FirstPacket.Load() || g.LastPacket.Load() != w.LastPacket.Load() || g.Defrag() != w.Defrag() {
		t.Errorf("%s: stats differ: frames %d/%d packets %d/%d defrag %+v/%+v", name,
			g.Frames.Load(), w.Frames.Load(), g.Packets.Load(), w.Packets.Load(), g.Defrag(), w.Defrag())
	}
}

// TestShardedPayloads checks that sharded runs hand every worker the
// payloads as they were read, whether the source lends its buffers
// (Frame.Owner, retained per batch, poisoned on release) or reuses them
// (payloads copied), including reassembled fragments, and that every
// reference taken is released.
func TestShardedPayloads(t *testing.T) {
	frames, ts := shardFrames()
	want := runShard(t, &chunkedSource{frames: frames, ts: ts}, 1)
	if want.stats.Defrag().Reassembled == 0 || len(want.digests) < 300 {
		t.Fatalf("test data too weak: %d flows, defrag %+v", len(want.digests), want.stats.Defrag())
	}
	if got := want.stats.Frames.Load(); got != uint64(len(frames)) {
		t.Fatalf("stats count %d frames, want %d", got, len(frames))
	}
	for _, workers := range []int{2, 3} {
		for _, owners := range []bool{false, true} {
			src := &chunkedSource{frames: frames, ts: ts, owners: owners}
			got := runShard(t, src, workers)
			name := fmt.Sprintf("%d workers, owners %v", workers, owners)
			sameRun(t, name, got, want)
			if n := src.live.Load(); n != 0 {
				t.Errorf("%s: %d references never released", name, n)
			}
			if owners && src.switches < 100 {
				t.Errorf("%s: only %d chunks used", name, src.switches)
			}
		}
	}
}

// pcapSource reads captures through pcapfile's Merger, lending its chunks.
type pcapSource struct{ m *pcapfile.Merger }

func (s pcapSource) Next() (engine.Frame, error) {
	p, _, err := s.m.Next()
	if err != nil {
		return engine.Frame{}, err
	}
	return engine.Frame{Data: p.Data, Timestamp: p.Timestamp, Length: p.Length, LinkType: uint32(p.LinkType), Interface: p.Interface}, nil
}

func (s pcapSource) FrameOwner() engine.Retainer {
	if c := s.m.Chunk(); c != nil {
		return c
	}
	return nil
}

// TestShardedPcapChunks replays corpus captures, merged, with pcapfile's
// chunks retained by a sharded run (with and without read-ahead): the same
// events and payloads as one worker.
func TestShardedPcapChunks(t *testing.T) {
	testcorpus.Corpus(t)
	names := []string{"ja4/tls12.pcap"}
	open := func(ahead bool) *pcapfile.Merger {
		var rs []*pcapfile.Reader
		// A few dozen small captures of the corpus, merged: many link
		// types, tunnels and fragments in one stream.
		for _, c := range testcorpus.Captures(t) {
			if testcorpus.Malformed[c] || len(rs) == 80 {
				continue
			}
			path := testcorpus.Path(t, c)
			if st, err := os.Stat(path); err != nil || st.Size() > 2<<20 {
				continue
			}
			r, err := pcapfile.Open(path)
			if err != nil {
				continue
			}
			t.Cleanup(func() { r.Close() })
			if ahead {
				r.ReadAhead()
			}
			rs = append(rs, r)
		}
		for _, n := range names {
			r, err := pcapfile.Open(testcorpus.Path(t, n))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			rs = append(rs, r)
		}
		return pcapfile.NewMerger(rs...)
	}
	want := runShard(t, pcapSource{open(false)}, 1)
	if len(want.digests) < 50 {
		t.Fatalf("only %d flows", len(want.digests))
	}
	for _, ahead := range []bool{false, true} {
		got := runShard(t, pcapSource{open(ahead)}, 3)
		sameRun(t, fmt.Sprintf("read-ahead %v", ahead), got, want)
	}
}

// TestShardedOutOfOrder replays closed connections whose last packets come
// slightly out of time order, as captures from several queues do: a late
// packet of connection A (older than connection B's last one) arrives after
// B's. A's close delay is then over at the next tick while B's is not;
// every run, with any number of workers and its own random shard seed,
// must end A the same way as one worker does (fin at that tick, not
// end_of_capture), whether or not A and B share a worker.
func TestShardedOutOfOrder(t *testing.T) {
	var b synth.Builder
	var frames [][]byte
	var ts []int64
	add := func(at int64, f []byte) {
		frames, ts = append(frames, bytes.Clone(f)), append(ts, at)
	}
	const ms = int64(time.Millisecond)
	t0 := int64(1_700_000_000) * int64(time.Second)
	sv := synth.EP("198.18.1.1:443")
	ep := func(port int) synth.Endpoint {
		return synth.Endpoint{Addr: synth.EP("10.1.0.1:1").Addr, Port: uint16(port)}
	}
	const pairs = 40
	for i := range pairs {
		a, c := ep(20000+i), ep(30000+i)
		add(t0+1590*ms+int64(i), b.TCP(synth.L2{}, a, sv, 1, 1, synth.ACK|synth.FIN, nil))
		add(t0+1591*ms+int64(i), b.TCP(synth.L2{}, sv, a, 1, 2, synth.ACK|synth.FIN, nil))
		add(t0+1940*ms+int64(i), b.TCP(synth.L2{}, c, sv, 1, 1, synth.ACK|synth.FIN, nil))
		add(t0+1950*ms+int64(i), b.TCP(synth.L2{}, sv, c, 1, 2, synth.ACK|synth.FIN, nil))
		// A's last packet, within its close delay but older than C's
		// last one, arrives after it.
		add(t0+1750*ms+int64(i), b.TCP(synth.L2{}, a, sv, 2, 2, synth.ACK, nil))
	}
	// Packet time enters the next second (a tick), then the capture ends.
	add(t0+2000*ms, b.UDP(synth.L2{}, ep(40000), synth.EP("198.18.1.2:53"), []byte("x")))
	add(t0+2050*ms, b.UDP(synth.L2{}, ep(40000), synth.EP("198.18.1.2:53"), []byte("y")))

	fc := flow.Config{CloseDelay: 200 * time.Millisecond}
	want := runShardConfig(t, &chunkedSource{frames: frames, ts: ts}, engine.Config{Workers: 1, Flow: fc})
	fin := 0
	for _, l := range want.lines {
		if strings.Contains(l, `"reason":"fin"`) {
			fin++
		}
	}
	if fin != pairs {
		t.Fatalf("one worker ended %d connections as fin, want the %d late ones", fin, pairs)
	}
	for run := range 6 {
		workers := 2 + run%2
		got := runShardConfig(t, &chunkedSource{frames: frames, ts: ts, owners: run%2 == 0}, engine.Config{Workers: workers, Flow: fc})
		sameRun(t, fmt.Sprintf("run %d, %d workers", run, workers), got, want)
	}
}
