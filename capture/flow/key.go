// Package flow keeps the bidirectional flow table: 5-tuple (plus VLAN ids)
// keyed flows with per-direction counters, TCP state, idle and active
// timeouts driven by packet time, and a hard cap with least-recently-seen
// eviction. It also computes Community ID v1 flow hashes.
package flow

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"net/netip"

	"github.com/phonehome/phonehome/capture/decode"
)

// Key identifies a bidirectional flow. Endpoints are stored in canonical
// order (lower address/port first) so both directions find the same flow.
type Key struct {
	A, B         netip.Addr
	PortA, PortB uint16
	Proto        uint8
	// ICMPID distinguishes ICMP echo sessions; zero for other protocols.
	ICMPID uint16
	VLAN   [decode.MaxVLANs]uint16 // 802.1Q ids outermost first, 0 when untagged
}

// icmpCounterpart maps request/response ICMP types to each other, as the
// Community ID specification does, so echo request and reply share a flow.
var icmp4Counterpart = map[uint8]uint8{8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
var icmp6Counterpart = map[uint8]uint8{128: 129, 129: 128, 130: 131, 131: 130, 133: 134, 134: 133, 135: 136, 136: 135, 139: 140, 140: 139, 144: 145, 145: 144}

// portsOf returns the port-equivalents of a packet and whether an ICMP
// message is one-way (no counterpart: its direction is kept as seen).
func portsOf(p *decode.Packet) (sport, dport uint16, oneWay bool) {
	switch p.Proto {
	case decode.ProtoICMP, decode.ProtoICMPv6:
		m := icmp4Counterpart
		if p.Proto == decode.ProtoICMPv6 {
			m = icmp6Counterpart
		}
		if c, ok := m[p.ICMPType]; ok {
			return uint16(p.ICMPType), uint16(c), false
		}
		return uint16(p.ICMPType), uint16(p.ICMPCode), true
	}
	return p.SrcPort, p.DstPort, false
}

func hasPorts(proto uint8) bool {
	switch proto {
	case decode.ProtoTCP, decode.ProtoUDP, decode.ProtoSCTP, decode.ProtoICMP, decode.ProtoICMPv6:
		return true
	}
	return false
}

// less orders endpoints by address, then port.
func less(a netip.Addr, ap uint16, b netip.Addr, bp uint16) bool {
	if c := a.Compare(b); c != 0 {
		return c < 0
	}
	return ap < bp
}

// KeyOf returns the canonical key of a packet and whether the packet travels
// from endpoint A to endpoint B.
func KeyOf(p *decode.Packet) (Key, bool) {
	sport, dport, _ := portsOf(p)
	k := Key{Proto: p.Proto}
	k.VLAN = p.VLANs
	if p.Proto == decode.ProtoICMP || p.Proto == decode.ProtoICMPv6 {
		k.ICMPID = p.ICMPID
	}
	if less(p.Dst, dport, p.Src, sport) {
		k.A, k.PortA, k.B, k.PortB = p.Dst, dport, p.Src, sport
		return k, false
	}
	k.A, k.PortA, k.B, k.PortB = p.Src, sport, p.Dst, dport
	return k, true
}

// Hash returns a direction-independent hash of the key, used to shard flows
// across workers; seed comes from one maphash.MakeSeed shared by the shards.
func (k *Key) Hash(seed maphash.Seed) uint64 {
	var buf [keyBytes]byte
	return maphash.Bytes(seed, k.appendBytes(buf[:0]))
}

// keyBytes is the length of a key's canonical byte form.
const keyBytes = 16 + 16 + 4 + 1 + 2 + 2*decode.MaxVLANs

// appendBytes appends the key's canonical byte form, the input of its
// hashes (shard hash, flow id).
func (k *Key) appendBytes(dst []byte) []byte {
	a16, b16 := k.A.As16(), k.B.As16()
	dst = append(dst, a16[:]...)
	dst = append(dst, b16[:]...)
	dst = binary.BigEndian.AppendUint16(dst, k.PortA)
	dst = binary.BigEndian.AppendUint16(dst, k.PortB)
	dst = append(dst, k.Proto)
	dst = binary.BigEndian.AppendUint16(dst, k.ICMPID)
	for _, v := range k.VLAN {
		dst = binary.BigEndian.AppendUint16(dst, v)
	}
	return dst
}

// ShardHash returns a direction-independent hash of the flow p belongs to,
// equal for every packet that KeyOf maps to the same key, without building
// the key: it combines the two endpoints with a commutative sum, so the
// canonical ordering (address comparison) is not needed. It is several times
// cheaper than KeyOf plus Hash, which matters because one goroutine computes
// it for every packet when flows are sharded. seed varies the hash per run
// so that crafted traffic cannot aim at one shard.
func ShardHash(p *decode.Packet, seed uint64) uint64 {
	sport, dport, _ := portsOf(p)
	var shi, slo, dhi, dlo uint64
	if addrLayoutOK {
		shi, slo, dhi, dlo = addrWords(&p.Src, &p.Dst)
	} else {
		shi, slo, dhi, dlo = addrWordsAs16(&p.Src, &p.Dst)
	}
	h := endpointHash(shi, slo, p.Src.Is4(), sport, seed) + endpointHash(dhi, dlo, p.Dst.Is4(), dport, seed)
	extra := uint64(p.Proto)<<56 | uint64(p.VLANs[0])<<32 | uint64(p.VLANs[1])<<16
	if p.Proto == decode.ProtoICMP || p.Proto == decode.ProtoICMPv6 {
		extra |= uint64(p.ICMPID)
	}
	for _, v := range p.VLANs[2:] {
		extra = extra*0x100000001b3 ^ uint64(v)
	}
	return mix64(h ^ extra*0xd6e8feb86659fd93)
}

// Shard maps a ShardHash onto one of n shards by the high word of h*n,
// which the hash's mixing makes uniform: a multiply, where h%n was a 64-bit
// division for every packet.
func Shard(h uint64, n int) int {
	hi, _ := bits.Mul64(h, uint64(n))
	return int(hi)
}

// endpointHash mixes one endpoint, an address (as two words; v4 marks an
// IPv4 address) and a port: three independent seeded multiplies (they run
// in parallel), whose sum over the two endpoints ShardHash spreads with
// mix64. The family marker keeps an IPv4 address and its v4-mapped IPv6
// twin, distinct keys, apart.
func endpointHash(hi, lo uint64, v4 bool, port uint16, seed uint64) uint64 {
	if v4 {
		hi ^= 0x9e3779b97f4a7c15
	}
	return (hi^seed)*0xff51afd7ed558ccd ^ (lo^seed>>17)*0xc4ceb9fe1a85ec53 ^ (uint64(port)^seed>>43)*0x9e3779b97f4a7c15
}

// mix64 is the SplitMix64 finalizer: every input bit affects every output
// bit, so the low bits used for the shard index are well spread.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
