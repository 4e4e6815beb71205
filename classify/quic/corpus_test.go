package quic

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/phonehome/phonehome/internal/testcorpus"
)

// udpDatagram is one UDP payload read from a capture.
type udpDatagram struct {
	frame    int
	src, dst netip.AddrPort
	payload  []byte
}

// readUDP returns every UDP payload of a pcap or pcapng capture in order.
func readUDP(t testing.TB, path string) []udpDatagram {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic, err := br.Peek(4)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	type source interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	var src source
	var link layers.LinkType
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		r, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		src, link = r, r.LinkType()
	} else {
		r, err := pcapgo.NewReader(br)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		src, link = r, r.LinkType()
	}
	var out []udpDatagram
	for frame := 1; ; frame++ {
		data, _, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s frame %d: %v", path, frame, err)
		}
		pkt := gopacket.NewPacket(data, link, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
		udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if udp == nil {
			continue
		}
		var sa, da netip.Addr
		if ip4, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
			sa, _ = netip.AddrFromSlice(ip4.SrcIP)
			da, _ = netip.AddrFromSlice(ip4.DstIP)
		} else if ip6, ok := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
			sa, _ = netip.AddrFromSlice(ip6.SrcIP)
			da, _ = netip.AddrFromSlice(ip6.DstIP)
		}
		out = append(out, udpDatagram{
			frame:   frame,
			src:     netip.AddrPortFrom(sa.Unmap(), uint16(udp.SrcPort)),
			dst:     netip.AddrPortFrom(da.Unmap(), uint16(udp.DstPort)),
			payload: bytes.Clone(udp.Payload),
		})
	}
	return out
}

// flowKey names a UDP flow regardless of direction.
type flowKey struct{ a, b netip.AddrPort }

func keyOf(d udpDatagram) flowKey {
	if d.src.Compare(d.dst) < 0 {
		return flowKey{d.src, d.dst}
	}
	return flowKey{d.dst, d.src}
}

// corpusFlow is the test's stand-in for the monitor's flow table: one Conn
// per UDP flow, the client being the side that sent the first datagram that
// LooksLikeInitial.
type corpusFlow struct {
	client netip.AddrPort
	conn   *Conn
	errs   []error
}

// feedCapture runs every QUIC-looking UDP flow of a capture through Conn.
func feedCapture(t testing.TB, datagrams []udpDatagram) map[flowKey]*corpusFlow {
	flows := map[flowKey]*corpusFlow{}
	for _, d := range datagrams { // pass 1: who is the client
		k := keyOf(d)
		if _, ok := flows[k]; ok {
			continue
		}
		if _, ok := LooksLikeInitial(d.payload); ok {
			flows[k] = &corpusFlow{client: d.src, conn: NewConn()}
		}
	}
	for _, d := range datagrams { // pass 1b: Initials cut short by the snaplen
		k := keyOf(d)
		if _, ok := flows[k]; ok {
			continue
		}
		if h, err := parseLongHeader(d.payload); errors.Is(err, ErrTruncated) && h.ptype == typeInitial && len(h.dcid) >= 8 && Supported(h.version) {
			flows[k] = &corpusFlow{client: d.src, conn: NewConn()}
		}
	}
	for _, d := range datagrams {
		f := flows[keyOf(d)]
		if f == nil {
			continue
		}
		if err := f.conn.Feed(d.payload, d.src == f.client); err != nil {
			f.errs = append(f.errs, fmt.Errorf("frame %d: %w", d.frame, err))
		}
	}
	return flows
}

// tsharkUDPSNIs returns the distinct server names tshark decoded from UDP
// frames (QUIC Initials) of a capture, from its .tshark.tsv dump.
func tsharkUDPSNIs(t testing.TB, rel string) []string {
	t.Helper()
	raw, err := os.ReadFile(testcorpus.Path(t, rel+".tshark.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	cols := strings.Split(lines[0], "\t")
	udpCol, sniCol := slices.Index(cols, "udp.srcport"), slices.Index(cols, "tls.handshake.extensions_server_name")
	if udpCol < 0 || sniCol < 0 {
		t.Fatalf("%s: columns %v", rel, cols)
	}
	set := map[string]bool{}
	for _, l := range lines[1:] {
		f := strings.Split(l, "\t")
		if len(f) <= sniCol || f[udpCol] == "" || f[sniCol] == "" {
			continue
		}
		for _, s := range strings.Split(f[sniCol], ",") {
			set[s] = true
		}
	}
	return sortedKeys(set)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// quicCaptures lists the captures of COVERAGE.tsv's QUIC rows.
func quicCaptures(t testing.TB) []string {
	t.Helper()
	raw, err := os.ReadFile(testcorpus.Path(t, "COVERAGE.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	for _, l := range strings.Split(string(raw), "\n") {
		f := strings.Split(l, "\t")
		if len(f) >= 3 && (f[0] == "QUIC Initial" || f[0] == "QUIC ClientHello (decrypted Initial)") {
			for _, c := range strings.Fields(f[2]) {
				set[c] = true
			}
		}
	}
	if len(set) == 0 {
		t.Fatal("COVERAGE.tsv has no QUIC rows")
	}
	return sortedKeys(set)
}
