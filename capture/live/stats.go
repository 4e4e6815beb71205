package live

import (
	"os"
	"strconv"
	"strings"
)

// Stats are a capture handle's counters since it opened. Summed over
// handles by Capture.Stats. All are monotonic, so they map onto Prometheus
// counters directly.
type Stats struct {
	// Received counts packets that passed the BPF filter and reached the
	// kernel capture buffer, including those then dropped for lack of room
	// (libpcap ps_recv; AF_PACKET tp_packets).
	Received uint64 `json:"received"`
	// KernelDropped counts packets the kernel dropped because the capture
	// buffer or ring was full: the process did not keep up (ps_drop; tp_drops).
	KernelDropped uint64 `json:"kernel_dropped"`
	// InterfaceDropped counts packets the NIC or driver dropped before the
	// kernel saw them (rx_missed_errors + rx_fifo_errors since open; libpcap
	// ps_ifdrop). Counted once per interface, on its first socket. Drivers
	// that do not keep these counters report 0.
	InterfaceDropped uint64 `json:"interface_dropped"`
	// QueueFreezes counts TPACKET_V3 ring freezes (every block was full and
	// the kernel stopped filling the ring until one was released).
	QueueFreezes uint64 `json:"queue_freezes"`
	// Delivered counts frames Next returned.
	Delivered uint64 `json:"delivered"`
	// StartupDiscarded counts AF_PACKET frames that reached the ring before
	// its filter and fanout group were in place (so may not match the filter
	// or belong to this socket's share); they are skipped, not delivered.
	StartupDiscarded uint64 `json:"startup_discarded"`
	// ReadErrors counts reads that failed with an error other than a timeout.
	ReadErrors uint64 `json:"read_errors"`
}

// Add adds o's counters to s (summing handles).
func (s *Stats) Add(o Stats) {
	s.Received += o.Received
	s.KernelDropped += o.KernelDropped
	s.InterfaceDropped += o.InterfaceDropped
	s.QueueFreezes += o.QueueFreezes
	s.Delivered += o.Delivered
	s.StartupDiscarded += o.StartupDiscarded
	s.ReadErrors += o.ReadErrors
}

// wrapCounter extends a kernel or libpcap 32-bit counter that wraps to 64
// bits; it must be sampled at least once per 2^32 increments.
type wrapCounter struct {
	last  uint32
	total uint64
}

func (c *wrapCounter) update(v uint32) uint64 {
	c.total += uint64(v - c.last)
	c.last = v
	return c.total
}

// ifaceDropStats are the sysfs counters libpcap sums into ps_ifdrop.
var ifaceDropStats = [...]string{"rx_missed_errors", "rx_fifo_errors"}

// interfaceDrops reads the interface's NIC drop counters from sysfs; ok is
// false when none could be read (no such interface in this mount namespace).
func interfaceDrops(name string) (n uint64, ok bool) {
	for _, stat := range ifaceDropStats {
		b, err := os.ReadFile("/sys/class/net/" + name + "/statistics/" + stat)
		if err != nil {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			continue
		}
		n += v
		ok = true
	}
	return n, ok
}

// ifaceDropCounter reports interface drops since it was created.
type ifaceDropCounter struct {
	name string
	base uint64
	last uint64
}

func newIfaceDropCounter(name string) *ifaceDropCounter {
	base, _ := interfaceDrops(name)
	return &ifaceDropCounter{name: name, base: base}
}

// read returns drops since open; it never goes backwards (a counter reset
// by a driver reload keeps the last value).
func (c *ifaceDropCounter) read() uint64 {
	if v, ok := interfaceDrops(c.name); ok && v >= c.base && v-c.base > c.last {
		c.last = v - c.base
	}
	return c.last
}
