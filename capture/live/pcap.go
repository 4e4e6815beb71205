package live

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/gopacket/gopacket/pcap"

	"github.com/phonehome/phonehome/engine"
)

// Source is one capture handle: a libpcap handle or one AF_PACKET fanout
// socket (or a merge of several).
//
// Next's Frame.Data points into the kernel ring or libpcap's buffer and is
// valid until the next call to Next (or Close). Stop may be called from any
// goroutine at any time; Next then returns io.EOF within the read timeout.
// Close releases the handle; call it after the consumer stopped calling Next
// (after engine.Run returned), since it invalidates the last frame's Data.
// Stats may be called concurrently with Next and after Close (it then
// returns the last counters read).
type Source interface {
	engine.Source
	Stop()
	Close() error
	Stats() (Stats, error)
}

// pcapSource reads one interface through libpcap.
type pcapSource struct {
	name     string
	index    int // position in Config.Interfaces: Frame.Interface
	handle   *pcap.Handle
	linkType uint32

	stopper
	delivered atomic.Uint64
	readErrs  atomic.Uint64

	// readMu is held by Next while it uses the handle, so Close waits for a
	// read in progress instead of freeing the buffer under it.
	readMu sync.Mutex
	// statsMu guards the handle's life for Stats and the counters below.
	statsMu sync.Mutex
	closed  bool
	recv    wrapCounter
	drop    wrapCounter
	ifdrop  wrapCounter
}

var _ Source = (*pcapSource)(nil)

// Data link types libpcap reports where they differ from the LINKTYPE_
// values the decoder expects.
const (
	dltRaw     = 12 // DLT_RAW on Linux
	dltRawOBSD = 14
)

// openPcap opens and activates a libpcap handle on one interface.
func openPcap(cfg Config, index int) (*pcapSource, error) {
	name := cfg.Interfaces[index]
	in, err := pcap.NewInactiveHandle(name)
	if err != nil {
		return nil, fmt.Errorf("live: pcap %s: %w", name, err)
	}
	defer in.CleanUp()
	steps := []struct {
		what string
		err  error
	}{
		{"snaplen", in.SetSnapLen(cfg.SnapLen)},
		{"promiscuous", in.SetPromisc(cfg.Promiscuous)},
		// A positive timeout makes gopacket's read return
		// NextErrorTimeoutExpired when idle, and is libpcap's TPACKET_V3
		// block timeout. Immediate mode stays off: it makes libpcap fall
		// back to TPACKET_V2, one syscall per packet.
		{"timeout", in.SetTimeout(cfg.ReadTimeout)},
		{"buffer size", in.SetBufferSize(cfg.BufferSize)},
	}
	for _, s := range steps {
		if s.err != nil {
			return nil, fmt.Errorf("live: pcap %s: set %s: %w", name, s.what, s.err)
		}
	}
	h, err := in.Activate()
	if err != nil {
		return nil, fmt.Errorf("live: pcap %s: activate: %w", name, err)
	}
	if cfg.BPF != "" {
		if err := h.SetBPFFilter(cfg.BPF); err != nil {
			h.Close()
			return nil, fmt.Errorf("live: pcap %s: filter %q: %w", name, cfg.BPF, err)
		}
	}
	lt := uint32(h.LinkType())
	if lt == dltRaw || lt == dltRawOBSD {
		lt = 101 // LINKTYPE_RAW
	}
	return &pcapSource{name: name, index: index, handle: h, linkType: lt}, nil
}

// LinkType returns the handle's LINKTYPE_ value.
func (s *pcapSource) LinkType() uint32 { return s.linkType }

// Next returns the next frame, engine.ErrNoPacket after ReadTimeout without
// one, io.EOF once stopped.
func (s *pcapSource) Next() (engine.Frame, error) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	if s.drained() {
		return engine.Frame{}, io.EOF
	}
	// Zero copy is safe: the engine is done with Data before it calls Next
	// again (its sharded mode copies payloads out first).
	data, ci, err := s.handle.ZeroCopyReadPacketData()
	if err != nil {
		switch {
		case s.stopped.Load() || errors.Is(err, io.EOF):
			// Stopped and the buffer is empty (or the handle ended).
			return engine.Frame{}, io.EOF
		case errors.Is(err, pcap.NextErrorTimeoutExpired):
			return engine.Frame{}, engine.ErrNoPacket
		}
		s.readErrs.Add(1)
		return engine.Frame{}, fmt.Errorf("live: pcap %s: read: %w (%v)", s.name, err, s.handle.Error())
	}
	s.delivered.Add(1)
	return engine.Frame{
		Data:      data,
		Timestamp: ci.Timestamp.UnixNano(),
		Length:    ci.Length,
		LinkType:  s.linkType,
		Interface: s.index,
	}, nil
}

// Close stops the source, waits for a read in progress and closes the handle.
func (s *pcapSource) Close() error {
	s.Stop()
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	if s.closed {
		return nil
	}
	// Keep the final counters for Stats after Close.
	_, _ = s.readStatsLocked()
	s.readMu.Lock()
	s.handle.Close()
	s.closed = true
	s.readMu.Unlock()
	return nil
}

// Stats returns the handle's counters.
func (s *pcapSource) Stats() (Stats, error) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	if s.closed {
		return s.statsLocked(), nil
	}
	return s.readStatsLocked()
}

func (s *pcapSource) readStatsLocked() (Stats, error) {
	ps, err := s.handle.Stats()
	if err != nil {
		return s.statsLocked(), fmt.Errorf("live: pcap %s: stats: %w", s.name, err)
	}
	// libpcap keeps u_int counters: widen them across wraps.
	s.recv.update(uint32(ps.PacketsReceived))
	s.drop.update(uint32(ps.PacketsDropped))
	s.ifdrop.update(uint32(ps.PacketsIfDropped))
	return s.statsLocked(), nil
}

func (s *pcapSource) statsLocked() Stats {
	return Stats{
		Received:         s.recv.total,
		KernelDropped:    s.drop.total,
		InterfaceDropped: s.ifdrop.total,
		Delivered:        s.delivered.Load(),
		ReadErrors:       s.readErrs.Load(),
	}
}
