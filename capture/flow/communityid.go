package flow

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"net/netip"
)

// CommunityID computes the Community ID v1 flow hash
// (https://github.com/corelight/community-id-spec) shared by Zeek, Suricata
// and Elastic. src/dst are as seen on the first packet; the function orders
// them itself, except for one-way ICMP messages, which keep their direction.
func CommunityID(seed uint16, src, dst netip.Addr, sport, dport uint16, proto uint8, icmpType, icmpCode uint8) string {
	oneWay := false
	switch proto {
	case 1, 58:
		m := icmp4Counterpart
		if proto == 58 {
			m = icmp6Counterpart
		}
		if c, ok := m[icmpType]; ok {
			sport, dport = uint16(icmpType), uint16(c)
		} else {
			sport, dport, oneWay = uint16(icmpType), uint16(icmpCode), true
		}
	}
	if !oneWay && !less(src, sport, dst, dport) {
		src, dst, sport, dport = dst, src, dport, sport
	}
	var buf [2 + 16 + 16 + 2 + 4]byte
	n := 0
	binary.BigEndian.PutUint16(buf[n:], seed)
	n += 2
	n += copy(buf[n:], src.AsSlice())
	n += copy(buf[n:], dst.AsSlice())
	buf[n] = proto
	n += 2 // protocol and one byte of padding
	if hasPorts(proto) {
		binary.BigEndian.PutUint16(buf[n:], sport)
		binary.BigEndian.PutUint16(buf[n+2:], dport)
		n += 4
	}
	sum := sha1.Sum(buf[:n])
	return "1:" + base64.StdEncoding.EncodeToString(sum[:])
}
