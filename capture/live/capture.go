package live

import (
	"errors"
	"fmt"

	"github.com/phonehome/phonehome/engine"
)

// Capture is an open live capture on one or more interfaces.
//
// Sources returns what to hand to the engine:
//   - pcap engine: one source (the interfaces merged when several), for
//     engine.Run, which shards flows over its workers itself;
//   - afpacket engine: Workers sources for engine.RunParallel. Source k reads
//     fanout socket k of every interface (merged when several): the kernel
//     picks the socket from the same symmetric flow hash on every interface,
//     so a flow whose directions are mirrored to two ports still meets one
//     worker.
type Capture struct {
	cfg     Config
	handles []Source // one per libpcap handle or AF_PACKET socket
	handleN []HandleInfo
	sources []engine.Source
	closers []Source // what Close closes: the merges, or the handles
}

// HandleInfo names a capture handle, for labelling its Stats.
type HandleInfo struct {
	Interface string
	Index     int // position in Config.Interfaces (Frame.Interface)
	Socket    int // fanout socket number (0 for libpcap)
	LinkType  uint32
}

// Open opens the capture. Every handle is open (and filtered) when it
// returns, so privileges can be dropped right after.
func Open(cfg Config) (*Capture, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Capture{cfg: cfg}
	// perIface[i] lists interface i's handles.
	perIface := make([][]Source, len(cfg.Interfaces))
	for i, name := range cfg.Interfaces {
		switch cfg.Engine {
		case EnginePcap:
			s, err := openPcap(cfg, i)
			if err != nil {
				c.closeHandles()
				return nil, err
			}
			perIface[i] = []Source{s}
			c.addHandle(s, HandleInfo{Interface: name, Index: i, LinkType: s.LinkType()})
		case EngineAFPacket:
			socks, err := openAFPacket(cfg, i)
			if err != nil {
				c.closeHandles()
				return nil, err
			}
			for k, s := range socks {
				perIface[i] = append(perIface[i], s)
				c.addHandle(s, HandleInfo{Interface: name, Index: i, Socket: k, LinkType: s.LinkType()})
			}
		}
	}
	groups := 1
	if cfg.Engine == EngineAFPacket {
		groups = cfg.Workers
	}
	for k := range groups {
		var members []Source
		for i := range perIface {
			if cfg.Engine == EnginePcap {
				members = append(members, perIface[i][0])
			} else {
				members = append(members, perIface[i][k])
			}
		}
		var src Source = members[0]
		if len(members) > 1 {
			src = Merge(cfg.ReadTimeout, members...)
		}
		c.sources = append(c.sources, src)
		c.closers = append(c.closers, src)
	}
	return c, nil
}

func (c *Capture) addHandle(s Source, info HandleInfo) {
	c.handles = append(c.handles, s)
	c.handleN = append(c.handleN, info)
}

func (c *Capture) closeHandles() {
	for _, h := range c.handles {
		_ = h.Close()
	}
}

// Config returns the configuration in use, defaults filled in.
func (c *Capture) Config() Config { return c.cfg }

// Sources returns the sources for the engine (see Capture).
func (c *Capture) Sources() []engine.Source { return c.sources }

// Parallel reports whether the sources are meant for engine.RunParallel
// (afpacket: one worker per fanout socket) rather than engine.Run.
func (c *Capture) Parallel() bool { return c.cfg.Engine == EngineAFPacket }

// Handles describes each capture handle, in the order of HandleStats.
func (c *Capture) Handles() []HandleInfo { return c.handleN }

// Stop makes every source's Next return io.EOF within the read timeout.
// Safe from any goroutine (a signal handler's).
func (c *Capture) Stop() {
	for _, s := range c.closers {
		s.Stop()
	}
	for _, h := range c.handles {
		h.Stop()
	}
}

// Close stops the capture and releases every handle. Call it once the
// engine returned: it invalidates the last frames' Data.
func (c *Capture) Close() error {
	c.Stop()
	var errs []error
	for _, s := range c.closers {
		errs = append(errs, s.Close())
	}
	// Closing a merge closed its members; closing twice is harmless.
	c.closeHandles()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("live: close: %w", err)
	}
	return nil
}

// HandleStats returns each handle's counters, in the order of Handles.
func (c *Capture) HandleStats() ([]Stats, error) {
	out := make([]Stats, len(c.handles))
	var errs []error
	for i, h := range c.handles {
		st, err := h.Stats()
		out[i] = st
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// Stats returns the counters summed over every handle. On error the sum
// still holds every counter that could be read.
func (c *Capture) Stats() (Stats, error) {
	per, err := c.HandleStats()
	var sum Stats
	for _, st := range per {
		sum.Add(st)
	}
	return sum, err
}
