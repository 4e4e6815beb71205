package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// floorReadBuffer is the floor's file buffer, the same size as pcapfile's,
// so the floor does not pay two read syscalls per packet (pcapgo reads its
// source directly).
const floorReadBuffer = 1 << 20

// floorCounts is what the floor child reports to the benchmark.
type floorCounts struct {
	Packets      uint64 // frames read
	Bytes        uint64 // captured bytes of those frames
	Transport    uint64 // frames decoded down to TCP or UDP
	DecodeErrors uint64 // frames gopacket failed to decode
}

const floorFormat = "floor packets=%d bytes=%d transport=%d decode_errors=%d"

func (c floorCounts) String() string {
	return fmt.Sprintf(floorFormat, c.Packets, c.Bytes, c.Transport, c.DecodeErrors)
}

func parseFloorCounts(s string) (floorCounts, error) {
	var c floorCounts
	if _, err := fmt.Sscanf(s, floorFormat, &c.Packets, &c.Bytes, &c.Transport, &c.DecodeErrors); err != nil {
		return c, fmt.Errorf("floor child printed %q: %w", s, err)
	}
	return c, nil
}

// floor reads every frame of a classic Ethernet pcap with pcapgo's zero-copy
// reader and decodes it with a DecodingLayerParser over preallocated layers,
// and does nothing else: the least any replay of the file must cost.
func floor(path string) (floorCounts, error) {
	f, err := os.Open(path)
	if err != nil {
		return floorCounts{}, err
	}
	defer f.Close()
	return floorRead(bufio.NewReaderSize(f, floorReadBuffer))
}

func floorRead(src io.Reader) (floorCounts, error) {
	var c floorCounts
	r, err := pcapgo.NewReader(src)
	if err != nil {
		return c, fmt.Errorf("pcapgo (the floor reads classic pcap only): %w", err)
	}
	if lt := r.LinkType(); lt != layers.LinkTypeEthernet {
		return c, fmt.Errorf("the floor decodes Ethernet captures only, this one is %v", lt)
	}
	var (
		eth     layers.Ethernet
		dot1q   layers.Dot1Q
		ip4     layers.IPv4
		ip6     layers.IPv6
		tcp     layers.TCP
		udp     layers.UDP
		payload gopacket.Payload
	)
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &dot1q, &ip4, &ip6, &tcp, &udp, &payload)
	// DNS, TLS and the other application layers the TCP and UDP layers
	// point at are not part of the floor: stop there without an error.
	parser.IgnoreUnsupported = true
	decoded := make([]gopacket.LayerType, 0, 16)
	for {
		data, _, err := r.ZeroCopyReadPacketData()
		if errors.Is(err, io.EOF) {
			return c, nil
		}
		if err != nil {
			return c, fmt.Errorf("pcapgo: after %d packets: %w", c.Packets, err)
		}
		c.Packets++
		c.Bytes += uint64(len(data))
		if err := parser.DecodeLayers(data, &decoded); err != nil {
			var unsupported gopacket.UnsupportedLayerType
			if !errors.As(err, &unsupported) {
				c.DecodeErrors++
			}
		}
		for _, t := range decoded {
			if t == layers.LayerTypeTCP || t == layers.LayerTypeUDP {
				c.Transport++
				break
			}
		}
	}
}
