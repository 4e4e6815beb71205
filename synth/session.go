package synth

import (
	"math/rand/v2"
	"time"
)

// Capture is a pcap being generated: a writer and a frame builder.
type Capture struct {
	W *Writer
	B Builder
}

// Emit writes a frame at time ts.
func (c *Capture) Emit(ts int64, frame []byte) error { return c.W.WritePacket(ts, frame) }

// TCPConn generates one TCP connection's segments with consistent sequence
// numbers. T is the running packet time; RTT spaces requests and replies.
type TCPConn struct {
	C              *Capture
	L2             L2
	Client, Server Endpoint
	T              int64
	RTT            int64
	MSS            int
	cseq, sseq     uint32
	Err            error
}

// DefaultMSS is the segment size for generated data (a typical Ethernet MSS).
const DefaultMSS = 1448

// Open writes the three-way handshake and returns the connection.
func (c *Capture) Open(l2 L2, client, server Endpoint, ts int64, rtt time.Duration) *TCPConn {
	t := &TCPConn{C: c, L2: l2, Client: client, Server: server, T: ts, RTT: int64(rtt), MSS: DefaultMSS,
		cseq: uint32(ts>>7) ^ uint32(client.Port)<<16, sseq: uint32(ts>>9) ^ uint32(server.Port)<<8}
	t.seg(true, SYN, nil)
	t.cseq++
	t.T += t.RTT / 2
	t.seg(false, SYN|ACK, nil)
	t.sseq++
	t.T += t.RTT / 2
	t.seg(true, ACK, nil)
	return t
}

func (t *TCPConn) seg(fromClient bool, flags uint8, payload []byte) {
	if t.Err != nil {
		return
	}
	var f []byte
	if fromClient {
		f = t.C.B.TCP(t.L2, t.Client, t.Server, t.cseq, t.sseq, flags, payload)
	} else {
		f = t.C.B.TCP(t.L2, t.Server, t.Client, t.sseq, t.cseq, flags, payload)
	}
	t.Err = t.C.Emit(t.T, f)
}

// Send writes data from one side in MSS-sized segments, each group of two
// acknowledged by the peer, and advances time by half an RTT.
func (t *TCPConn) Send(fromClient bool, data []byte) {
	n := 0
	for off := 0; off < len(data); off += t.MSS {
		end := min(off+t.MSS, len(data))
		t.seg(fromClient, PSH|ACK, data[off:end])
		if fromClient {
			t.cseq += uint32(end - off)
		} else {
			t.sseq += uint32(end - off)
		}
		t.T += 1000 // 1 µs between back-to-back segments
		n++
		if n%2 == 0 || end == len(data) {
			t.seg(!fromClient, ACK, nil)
		}
	}
	t.T += t.RTT / 2
}

// SendDisordered writes data from one side as segments of at most mss bytes,
// in an order shuffled by rng, with every segment whose index is in dup sent
// twice (a retransmission), then one ACK from the peer.
func (t *TCPConn) SendDisordered(fromClient bool, data []byte, mss int, rng *rand.Rand, dup map[int]bool) {
	type segment struct {
		seq  uint32
		data []byte
		idx  int
	}
	base := t.cseq
	if !fromClient {
		base = t.sseq
	}
	var segs []segment
	for off, i := 0, 0; off < len(data); off, i = off+mss, i+1 {
		end := min(off+mss, len(data))
		segs = append(segs, segment{base + uint32(off), data[off:end], i})
	}
	if rng != nil {
		rng.Shuffle(len(segs), func(i, j int) { segs[i], segs[j] = segs[j], segs[i] })
	}
	for _, s := range segs {
		for k := 0; k < 1+btoi(dup[s.idx]); k++ {
			if fromClient {
				save := t.cseq
				t.cseq = s.seq
				t.seg(true, PSH|ACK, s.data)
				t.cseq = save
			} else {
				save := t.sseq
				t.sseq = s.seq
				t.seg(false, PSH|ACK, s.data)
				t.sseq = save
			}
			t.T += 1000
		}
	}
	if fromClient {
		t.cseq += uint32(len(data))
	} else {
		t.sseq += uint32(len(data))
	}
	t.seg(!fromClient, ACK, nil)
	t.T += t.RTT / 2
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Close writes a FIN exchange started by the client.
func (t *TCPConn) Close() error {
	t.seg(true, FIN|ACK, nil)
	t.cseq++
	t.T += t.RTT / 2
	t.seg(false, FIN|ACK, nil)
	t.sseq++
	t.T += t.RTT / 2
	t.seg(true, ACK, nil)
	return t.Err
}

// Reset writes an RST from the client.
func (t *TCPConn) Reset() error {
	t.seg(true, RST|ACK, nil)
	return t.Err
}

// UDPExchange writes a request datagram and, if reply is not nil, a reply
// one RTT later.
func (c *Capture) UDPExchange(l2 L2, client, server Endpoint, ts int64, rtt time.Duration, req, reply []byte) error {
	if err := c.Emit(ts, c.B.UDP(l2, client, server, req)); err != nil {
		return err
	}
	if reply == nil {
		return nil
	}
	return c.Emit(ts+int64(rtt), c.B.UDP(l2, server, client, reply))
}
