package live

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/phonehome/phonehome/engine"
)

// The live tests build their network from scratch: two private network
// namespaces (capture side and peer side) joined by veth pairs created
// directly inside them, so nothing touches the host's namespace, routes or
// interfaces, and no packet can leave the pair. Traffic is raw frames
// written with AF_PACKET sockets, plus one kernel UDP datagram between
// addresses of 10.250.x.0/30 that exist only in those namespaces.

var fixtureSeq atomic.Int32

// requireRoot skips tests that need namespaces and packet sockets.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("live capture tests need root (network namespaces, packet sockets): run `sudo go test ./capture/live`")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("live capture tests need the ip command (iproute2): apt-get install iproute2")
	}
}

// vethPair is one veth link between the two namespaces.
type vethPair struct {
	capIf, peerIf   string
	capMAC, peerMAC net.HardwareAddr
	capIP, peerIP   netip.Addr // 10.250.x.1 (fake: not configured) and 10.250.x.2
}

type netFixture struct {
	capNS, peerNS string
	id            string
	pairs         []vethPair
}

func runIP(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newNetFixture creates the namespaces and n veth pairs, removed at cleanup.
func newNetFixture(t *testing.T, n int) *netFixture {
	t.Helper()
	requireRoot(t)
	seq := fixtureSeq.Add(1)
	f := &netFixture{id: fmt.Sprintf("%d%02d", os.Getpid()%100000, seq%100)}
	f.capNS = "phtest-" + f.id + "-c"
	f.peerNS = "phtest-" + f.id + "-p"
	for _, ns := range []string{f.capNS, f.peerNS} {
		runIP(t, "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		runIP(t, "-n", ns, "link", "set", "lo", "up")
		// Keep IPv6 autoconfiguration chatter off the links (best effort).
		_ = inNetns(ns, func() error {
			return os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0)
		})
	}
	for i := range n {
		p := vethPair{capIf: fmt.Sprintf("phc%s%d", f.id, i), peerIf: fmt.Sprintf("php%s%d", f.id, i)}
		sub := byte((int(seq)*8 + i*4) % 256)
		p.capIP = netip.AddrFrom4([4]byte{10, 250, sub, 1})
		p.peerIP = netip.AddrFrom4([4]byte{10, 250, sub, 2})
		// Both ends are created inside their namespaces: the host never
		// sees either.
		runIP(t, "link", "add", p.capIf, "netns", f.capNS, "type", "veth", "peer", "name", p.peerIf, "netns", f.peerNS)
		runIP(t, "-n", f.capNS, "link", "set", p.capIf, "up")
		runIP(t, "-n", f.peerNS, "link", "set", p.peerIf, "up")
		p.capMAC = ifaceMAC(t, f.capNS, p.capIf)
		p.peerMAC = ifaceMAC(t, f.peerNS, p.peerIf)
		runIP(t, "-n", f.peerNS, "addr", "add", p.peerIP.String()+"/30", "dev", p.peerIf)
		// A permanent neighbour entry lets the peer's kernel send to the
		// capture side, which has no address, without ARP.
		runIP(t, "-n", f.peerNS, "neigh", "add", p.capIP.String(), "lladdr", p.capMAC.String(), "dev", p.peerIf, "nud", "permanent")
		waitRunning(t, f.capNS, p.capIf)
		waitRunning(t, f.peerNS, p.peerIf)
		f.pairs = append(f.pairs, p)
	}
	return f
}

// inNetns runs fn on a thread switched into namespace ns; sockets fn opens
// stay in ns.
func inNetns(ns string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", ns, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it exits with this goroutine instead of
		// running other goroutines in the wrong namespace.
		return fmt.Errorf("setns back: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

func ifaceMAC(t *testing.T, ns, name string) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	if err := inNetns(ns, func() error {
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		mac = ifc.HardwareAddr
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return mac
}

func waitRunning(t *testing.T, ns, name string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		var up bool
		if err := inNetns(ns, func() error {
			ifc, err := net.InterfaceByName(name)
			if err != nil {
				return err
			}
			up = ifc.Flags&net.FlagRunning != 0
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if up {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s did not come up", name, ns)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openIn opens a capture from inside namespace ns.
func openIn(t *testing.T, ns string, cfg Config) *Capture {
	t.Helper()
	var c *Capture
	if err := inNetns(ns, func() error {
		var err error
		c, err = Open(cfg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// injector writes raw frames on one interface.
type injector struct {
	fd      int
	ifindex int
}

func newInjector(t *testing.T, ns, ifname string) *injector {
	t.Helper()
	in := &injector{fd: -1}
	if err := inNetns(ns, func() error {
		// Protocol 0: the socket sends only and receives nothing.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		in.fd = fd
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		in.ifindex = ifc.Index
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(in.fd) })
	return in
}

func (in *injector) send(t *testing.T, frame []byte) {
	t.Helper()
	sa := &unix.SockaddrLinklayer{Ifindex: in.ifindex, Protocol: htons(unix.ETH_P_IP)}
	if err := unix.Sendto(in.fd, frame, 0, sa); err != nil {
		t.Fatalf("send frame: %v", err)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// sendKernelUDP sends one datagram through the peer namespace's UDP stack.
func sendKernelUDP(t *testing.T, ns string, to netip.AddrPort, payload []byte) {
	t.Helper()
	if err := inNetns(ns, func() error {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(to))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(payload)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// marker starts every test payload: flow id, direction, sequence follow.
var marker = []byte("phonehome-live-test")

func testPayload(flow uint16, dir, seq byte, size int) []byte {
	p := make([]byte, size)
	copy(p, marker)
	binary.BigEndian.PutUint16(p[len(marker):], flow)
	p[len(marker)+2] = dir
	p[len(marker)+3] = seq
	for i := len(marker) + 4; i < size; i++ {
		p[i] = byte(i)
	}
	return p
}

// tagOf finds a test payload in a frame.
func tagOf(data []byte) (flow uint16, dir, seq byte, ok bool) {
	i := bytes.Index(data, marker)
	if i < 0 || len(data) < i+len(marker)+4 {
		return 0, 0, 0, false
	}
	j := i + len(marker)
	return binary.BigEndian.Uint16(data[j:]), data[j+2], data[j+3], true
}

// udpFrame builds an Ethernet/IPv4/UDP frame.
func udpFrame(t *testing.T, srcMAC, dstMAC net.HardwareAddr, src, dst netip.AddrPort, payload []byte) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, Id: 1,
		SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

// fragmentedUDP builds a UDP datagram split into two IPv4 fragments.
func fragmentedUDP(t *testing.T, srcMAC, dstMAC net.HardwareAddr, src, dst netip.AddrPort, id uint16, payload []byte) [][]byte {
	t.Helper()
	whole := udpFrame(t, srcMAC, dstMAC, src, dst, payload)
	ipPayload := whole[14+20:] // UDP header and data
	cut := (len(ipPayload) / 2) &^ 7
	var frames [][]byte
	for _, part := range []struct {
		data  []byte
		off   uint16
		flags layers.IPv4Flag
	}{
		{ipPayload[:cut], 0, layers.IPv4MoreFragments},
		{ipPayload[cut:], uint16(cut / 8), 0},
	} {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, Id: id,
			Flags: part.flags, FragOffset: part.off, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			eth, ip, gopacket.Payload(part.data)); err != nil {
			t.Fatal(err)
		}
		frames = append(frames, bytes.Clone(buf.Bytes()))
	}
	return frames
}

// udpPorts decodes a captured Ethernet frame's IPv4 and UDP headers.
func udpPorts(data []byte) (ip *layers.IPv4, udp *layers.UDP) {
	pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
	if l, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		ip = l
	}
	if l, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
		udp = l
	}
	return ip, udp
}

// captured is a frame copied out of a source.
type captured struct {
	engine.Frame
	source int
	at     time.Time // when Next returned it
}

// readUntil reads src until done says so or the deadline passes, copying
// each frame.
func readUntil(t *testing.T, src engine.Source, deadline time.Time, done func(frames []captured) bool) []captured {
	t.Helper()
	var frames []captured
	for !done(frames) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out with %d frames", len(frames))
		}
		fr, err := src.Next()
		if errors.Is(err, engine.ErrNoPacket) {
			continue
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		fr.Data = bytes.Clone(fr.Data)
		frames = append(frames, captured{Frame: fr, at: time.Now()})
	}
	return frames
}
