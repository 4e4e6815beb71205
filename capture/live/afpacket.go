package live

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket/afpacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcap"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/phonehome/phonehome/engine"
)

// Ring geometry. TPACKET_V3 packs frames of any size into blocks, so the
// frame size only has to satisfy the kernel's checks; a block must hold the
// largest frame (snap length plus headers) or the kernel truncates it.
const (
	afpFrameSize    = 4096
	afpMinBlockSize = 1 << 20
	afpBlockHeaders = 1024 // block descriptor, tpacket3_hdr, sockaddr_ll, alignment
	afpMinBlocks    = 4
	// afpMaxBlockTimeout bounds how long a partly filled block waits before
	// the kernel hands it over: the added latency at low packet rates.
	afpMaxBlockTimeout = 50 * time.Millisecond
)

// Link types from the tcpdump LINKTYPE registry.
const (
	linkTypeEthernet = 1
	linkTypeRaw      = 101
)

// ARPHRD_ values (linux/if_arp.h) that carry Ethernet headers.
const (
	arphrdEther    = 1
	arphrdLoopback = 772
)

// ringGeometry returns the TPACKET_V3 block size and count for a ring of
// about bufferSize bytes that holds snapLen-byte frames.
func ringGeometry(bufferSize, snapLen int) (blockSize, numBlocks int) {
	blockSize = afpMinBlockSize
	for blockSize < snapLen+afpBlockHeaders {
		blockSize <<= 1
	}
	numBlocks = bufferSize / blockSize
	if numBlocks < afpMinBlocks {
		numBlocks = afpMinBlocks
	}
	return blockSize, numBlocks
}

// blockTimeout is the block retire timeout for a read timeout.
func blockTimeout(readTimeout time.Duration) time.Duration {
	t := readTimeout / 2
	if t > afpMaxBlockTimeout {
		t = afpMaxBlockTimeout
	}
	if t < time.Millisecond {
		t = time.Millisecond
	}
	return t
}

// afpSource is one AF_PACKET TPACKET_V3 socket, alone or one member of a
// fanout group.
type afpSource struct {
	name     string
	index    int // position in Config.Interfaces: Frame.Interface
	socket   int // position in the fanout group
	tp       *afpacket.TPacket
	linkType uint32
	// discardBefore drops frames stamped before the socket's filter and
	// fanout group were in place (see Stats.StartupDiscarded).
	discardBefore int64
	ifdrops       *ifaceDropCounter // nil except on an interface's first socket

	stopper
	delivered atomic.Uint64
	discarded atomic.Uint64
	readErrs  atomic.Uint64

	readMu  sync.Mutex // held by Next while it uses the ring
	statsMu sync.Mutex // guards the socket's life for Stats and the counters below
	closed  bool
	recv    wrapCounter
	drop    wrapCounter
	freezes wrapCounter
	ifdrop  uint64
}

var _ Source = (*afpSource)(nil)

// ifaceInfo returns the interface's hardware type (ARPHRD_*), asked of the
// kernel so it is right in the calling thread's network namespace.
func ifaceInfo(name string) (arphrd uint16, err error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFHWADDR, ifr); err != nil {
		return 0, err
	}
	// The union holds a struct sockaddr whose sa_family is the ARPHRD type.
	return ifr.Uint16(), nil
}

// compileFilter compiles a tcpdump expression for the socket's link type;
// with no expression it returns an accept-all program, whose return value
// is what enforces the snap length on an AF_PACKET socket.
func compileFilter(expr string, linkType uint32, snapLen int) ([]bpf.RawInstruction, error) {
	if expr == "" {
		return []bpf.RawInstruction{{Op: unix.BPF_RET | unix.BPF_K, K: uint32(snapLen)}}, nil
	}
	ins, err := pcap.CompileBPFFilter(layers.LinkType(linkType), snapLen, expr)
	if err != nil {
		return nil, err
	}
	raw := make([]bpf.RawInstruction, len(ins))
	for i, in := range ins {
		raw[i] = bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	return raw, nil
}

// Classic BPF ancillary load of the packet type (linux/filter.h).
const (
	skfAdOff     = 0xfffff000 // SKF_AD_OFF (-0x1000)
	skfAdPktType = 4          // SKF_AD_PKTTYPE
)

// skipOutgoing returns BPF instructions that drop packets the host sends:
// on loopback every packet is seen leaving and again arriving, and libpcap
// drops the first copy too. Jumps in the program that follows are relative,
// so it can be prefixed as is.
func skipOutgoing() []bpf.RawInstruction {
	return []bpf.RawInstruction{
		{Op: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: skfAdOff + skfAdPktType},
		{Op: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: unix.PACKET_OUTGOING},
		{Op: unix.BPF_RET | unix.BPF_K, K: 0},
	}
}

// openAFPacket opens cfg.Workers sockets on interface index, joined to one
// fanout group when there are several.
func openAFPacket(cfg Config, index int) (_ []*afpSource, err error) {
	name := cfg.Interfaces[index]
	arphrd, err := ifaceInfo(name)
	if err != nil {
		return nil, fmt.Errorf("live: afpacket %s: %w", name, err)
	}
	// Ethernet-framed devices are read raw; layer-3 devices (tun, WireGuard,
	// GRE, PPP) as datagrams starting at the IP header.
	sockType, linkType := afpacket.SocketRaw, uint32(linkTypeEthernet)
	if arphrd != arphrdEther && arphrd != arphrdLoopback {
		sockType, linkType = afpacket.SocketDgram, linkTypeRaw
	}
	filter, err := compileFilter(cfg.BPF, linkType, cfg.SnapLen)
	if err != nil {
		return nil, fmt.Errorf("live: afpacket %s: filter %q: %w", name, cfg.BPF, err)
	}
	if arphrd == arphrdLoopback {
		filter = append(skipOutgoing(), filter...)
	}
	blockSize, numBlocks := ringGeometry(cfg.BufferSize, cfg.SnapLen)
	group := cfg.FanoutGroup + uint16(index) // a fanout group spans one device
	srcs := make([]*afpSource, 0, cfg.Workers)
	defer func() {
		if err != nil {
			for _, s := range srcs {
				s.tp.Close()
			}
		}
	}()
	for i := range cfg.Workers {
		tp, err := afpacket.NewTPacket(
			afpacket.OptInterface(name),
			afpacket.OptTPacketVersion(afpacket.TPacketVersion3),
			sockType,
			afpacket.OptFrameSize(afpFrameSize),
			afpacket.OptBlockSize(blockSize),
			afpacket.OptNumBlocks(numBlocks),
			afpacket.OptBlockTimeout(blockTimeout(cfg.ReadTimeout)),
			afpacket.OptPollTimeout(cfg.ReadTimeout),
			// The kernel strips VLAN tags into metadata; put them back so
			// frames look as on the wire (and as libpcap shows them).
			afpacket.OptAddVLANHeader(true),
		)
		if err != nil {
			return nil, fmt.Errorf("live: afpacket %s socket %d: %w", name, i, err)
		}
		s := &afpSource{name: name, index: index, socket: i, tp: tp, linkType: linkType}
		srcs = append(srcs, s)
		if err := tp.SetBPF(filter); err != nil {
			return nil, fmt.Errorf("live: afpacket %s socket %d: attach filter: %w", name, i, err)
		}
		if cfg.Promiscuous && sockType == afpacket.SocketRaw {
			if err := tp.SetPromiscuous(true); err != nil {
				return nil, fmt.Errorf("live: afpacket %s socket %d: promiscuous: %w", name, i, err)
			}
		}
		if cfg.Workers > 1 {
			// Hash on the symmetric flow hash, after reassembling IPv4
			// fragments, so both directions and every fragment of a flow
			// land on one socket (PACKET_FANOUT_HASH is 0).
			if err := tp.SetFanout(afpacket.FanoutHashWithDefrag|afpacket.FanoutHash, group); err != nil {
				return nil, fmt.Errorf("live: afpacket %s socket %d: join fanout group %d: %w", name, i, group, err)
			}
		}
	}
	// Frames that arrived before the last socket joined the group were not
	// filtered or not shared out: skip them.
	ready := time.Now().UnixNano()
	for _, s := range srcs {
		s.discardBefore = ready
	}
	srcs[0].ifdrops = newIfaceDropCounter(name)
	return srcs, nil
}

// LinkType returns the socket's LINKTYPE_ value.
func (s *afpSource) LinkType() uint32 { return s.linkType }

// Next returns the next frame, engine.ErrNoPacket after ReadTimeout without
// one, io.EOF once stopped.
func (s *afpSource) Next() (engine.Frame, error) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	for {
		if s.drained() {
			return engine.Frame{}, io.EOF
		}
		data, ci, err := s.tp.ZeroCopyReadPacketData()
		if err != nil {
			switch {
			case s.stopped.Load():
				// Stopped and the ring is empty (a read timed out).
				return engine.Frame{}, io.EOF
			case errors.Is(err, afpacket.ErrTimeout):
				return engine.Frame{}, engine.ErrNoPacket
			}
			s.readErrs.Add(1)
			return engine.Frame{}, fmt.Errorf("live: afpacket %s socket %d: read: %w", s.name, s.socket, err)
		}
		ts := ci.Timestamp.UnixNano()
		if ts < s.discardBefore {
			s.discarded.Add(1)
			continue
		}
		s.delivered.Add(1)
		return engine.Frame{
			Data:      data,
			Timestamp: ts,
			Length:    ci.Length,
			LinkType:  s.linkType,
			Interface: s.index,
		}, nil
	}
}

// Close stops the source, waits for a read in progress and unmaps the ring.
func (s *afpSource) Close() error {
	s.Stop()
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	if s.closed {
		return nil
	}
	_, _ = s.readStatsLocked()
	s.readMu.Lock()
	s.tp.Close()
	s.closed = true
	s.readMu.Unlock()
	return nil
}

// Stats returns the socket's counters.
func (s *afpSource) Stats() (Stats, error) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	if s.closed {
		return s.statsLocked(), nil
	}
	return s.readStatsLocked()
}

func (s *afpSource) readStatsLocked() (Stats, error) {
	if s.ifdrops != nil {
		s.ifdrop = s.ifdrops.read()
	}
	_, v3, err := s.tp.SocketStats()
	if err != nil {
		return s.statsLocked(), fmt.Errorf("live: afpacket %s socket %d: stats: %w", s.name, s.socket, err)
	}
	// gopacket sums the kernel's read-and-reset counters in 32 bits.
	s.recv.update(uint32(v3.Packets()))
	s.drop.update(uint32(v3.Drops()))
	s.freezes.update(uint32(v3.QueueFreezes()))
	return s.statsLocked(), nil
}

func (s *afpSource) statsLocked() Stats {
	return Stats{
		Received:         s.recv.total,
		KernelDropped:    s.drop.total,
		InterfaceDropped: s.ifdrop,
		QueueFreezes:     s.freezes.total,
		Delivered:        s.delivered.Load(),
		StartupDiscarded: s.discarded.Load(),
		ReadErrors:       s.readErrs.Load(),
	}
}
