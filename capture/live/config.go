// Package live captures packets from network interfaces for the span-port
// daemon, with libpcap or with Linux AF_PACKET TPACKET_V3 rings joined to a
// fanout group, and hands them to the engine as engine.Source values. It
// also drops root privileges once the capture is open.
package live

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"
)

// Engine names.
const (
	EnginePcap     = "pcap"
	EngineAFPacket = "afpacket"
)

// Defaults and limits.
const (
	DefaultSnapLen     = 262144
	DefaultBufferSize  = 64 << 20 // per libpcap handle / per AF_PACKET socket
	DefaultReadTimeout = 100 * time.Millisecond

	// MinBufferSize keeps a ring at least a few blocks deep.
	MinBufferSize = 4 << 20
	// MaxBufferSize bounds one ring or pcap buffer (pinned kernel memory).
	MaxBufferSize = 4 << 30
	// MaxWorkers bounds the fanout sockets per interface.
	MaxWorkers = 256
	// MaxInterfaces bounds -i repetitions.
	MaxInterfaces = 64
	minSnapLen    = 64
	maxSnapLen    = 1 << 20
)

// Config configures a live capture. Start from DefaultConfig before
// unmarshalling YAML: a false Promiscuous cannot be told from an unset one.
type Config struct {
	// Interfaces to capture on (one or more, "-i eth0 -i eth1").
	Interfaces []string `yaml:"interfaces"`
	// Engine is "pcap" (libpcap) or "afpacket" (TPACKET_V3 + fanout).
	Engine string `yaml:"engine"`
	// BPF is a tcpdump-syntax filter applied in the kernel.
	BPF string `yaml:"bpf"`
	// SnapLen is the most bytes kept of each frame.
	SnapLen int `yaml:"snaplen"`
	// Promiscuous puts the interfaces in promiscuous mode (span ports need it).
	Promiscuous bool `yaml:"promiscuous"`
	// BufferSize is the kernel buffer in bytes: the libpcap buffer per
	// interface, or the TPACKET_V3 ring per AF_PACKET socket.
	BufferSize int `yaml:"buffer_size"`
	// Workers is the number of AF_PACKET fanout sockets per interface
	// (default: number of CPUs). Ignored by the pcap engine.
	Workers int `yaml:"workers"`
	// FanoutGroup is the AF_PACKET fanout group id of the first interface;
	// interface i uses FanoutGroup+i. 0 derives one from the process id, so
	// two daemons on one host do not share (split) each other's packets.
	FanoutGroup uint16 `yaml:"fanout_group"`
	// ReadTimeout bounds how long Next blocks without a packet before it
	// returns engine.ErrNoPacket (and how fast Stop takes effect).
	ReadTimeout time.Duration `yaml:"read_timeout"`
}

// DefaultConfig returns the defaults: libpcap, promiscuous, 256 KiB snap
// length, 64 MiB buffers, one fanout socket per CPU, 100 ms read timeout.
func DefaultConfig() Config {
	return Config{
		Engine:      EnginePcap,
		SnapLen:     DefaultSnapLen,
		Promiscuous: true,
		BufferSize:  DefaultBufferSize,
		Workers:     runtime.NumCPU(),
		ReadTimeout: DefaultReadTimeout,
	}
}

// withDefaults fills zero fields with defaults and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.Engine == "" {
		c.Engine = EnginePcap
	}
	if c.SnapLen == 0 {
		c.SnapLen = DefaultSnapLen
	}
	if c.BufferSize == 0 {
		c.BufferSize = DefaultBufferSize
	}
	if c.Workers == 0 {
		c.Workers = runtime.NumCPU()
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.FanoutGroup == 0 {
		c.FanoutGroup = uint16(os.Getpid())
		if c.FanoutGroup == 0 {
			c.FanoutGroup = 1
		}
	}
	return c, c.validate()
}

func (c Config) validate() error {
	var errs []error
	if len(c.Interfaces) == 0 {
		errs = append(errs, errors.New("no interface"))
	}
	if len(c.Interfaces) > MaxInterfaces {
		errs = append(errs, fmt.Errorf("%d interfaces, at most %d", len(c.Interfaces), MaxInterfaces))
	}
	seen := make(map[string]bool, len(c.Interfaces))
	for _, name := range c.Interfaces {
		switch {
		case name == "":
			errs = append(errs, errors.New("empty interface name"))
		case seen[name]:
			errs = append(errs, fmt.Errorf("interface %q given twice", name))
		}
		seen[name] = true
	}
	if c.Engine != EnginePcap && c.Engine != EngineAFPacket {
		errs = append(errs, fmt.Errorf("engine %q: want %q or %q", c.Engine, EnginePcap, EngineAFPacket))
	}
	if c.SnapLen < minSnapLen || c.SnapLen > maxSnapLen {
		errs = append(errs, fmt.Errorf("snaplen %d: want %d..%d", c.SnapLen, minSnapLen, maxSnapLen))
	}
	if c.BufferSize < MinBufferSize || c.BufferSize > MaxBufferSize {
		errs = append(errs, fmt.Errorf("buffer_size %d: want %d..%d bytes", c.BufferSize, MinBufferSize, MaxBufferSize))
	}
	if c.Workers < 1 || c.Workers > MaxWorkers {
		errs = append(errs, fmt.Errorf("workers %d: want 1..%d", c.Workers, MaxWorkers))
	}
	if c.ReadTimeout < time.Millisecond || c.ReadTimeout > 10*time.Second {
		errs = append(errs, fmt.Errorf("read_timeout %v: want 1ms..10s", c.ReadTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("live: config: %w", err)
	}
	return nil
}

// drainLimit bounds how long a stopped source goes on reading what the
// kernel had already captured; a link still flooding at shutdown cannot
// keep the daemon alive.
const drainLimit = 2 * time.Second

// stopper is the stop state of a capture handle. After Stop, Next goes on
// returning what the kernel already holds until a read finds it empty (or
// drainLimit passed), so a shutdown loses no packet that reached the buffer.
type stopper struct {
	stopped atomic.Bool
	stopAt  atomic.Int64 // unix ns of Stop
}

// Stop makes Next return io.EOF once the kernel buffer is drained (within
// the read timeout if a read is blocked, at most drainLimit later).
func (s *stopper) Stop() {
	if s.stopped.CompareAndSwap(false, true) {
		s.stopAt.Store(time.Now().UnixNano())
	}
}

// drained reports whether a stopped source must end now.
func (s *stopper) drained() bool {
	return s.stopped.Load() && time.Now().UnixNano()-s.stopAt.Load() > int64(drainLimit)
}
