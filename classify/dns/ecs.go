package dns

import (
	"strconv"

	mdns "github.com/miekg/dns"
)

// OpCodeString names an opcode as ECS dns.op_code expects ("QUERY",
// "NOTIFY", "UPDATE"...); unassigned values print as "OPCODE<n>".
func OpCodeString(op uint8) string {
	if s, ok := mdns.OpcodeToString[int(op)]; ok {
		return s
	}
	return "OPCODE" + strconv.Itoa(int(op))
}

// ResponseCodeString names a response code as ECS dns.response_code expects
// ("NOERROR", "NXDOMAIN", "SERVFAIL", "BADVERS"...); unassigned values print
// as "RCODE<n>". Pass Message.Rcode so that EDNS extended codes are named.
func ResponseCodeString(rcode uint16) string {
	// 16 is BADVERS in the header/OPT RCODE space and BADSIG only inside a
	// TSIG record; miekg's table keeps one name per value.
	if rcode == mdns.RcodeBadVers {
		return "BADVERS"
	}
	if s, ok := mdns.RcodeToString[int(rcode)]; ok {
		return s
	}
	return "RCODE" + strconv.Itoa(int(rcode))
}

// TypeName names a record type ("A", "AAAA", "TXT", "NULL"...); unknown types
// print as "TYPE<n>" (RFC 3597).
func TypeName(t uint16) string {
	return mdns.Type(t).String()
}

// ClassName names a class ("IN", "CH"...); unknown classes print as
// "CLASS<n>".
func ClassName(c uint16) string {
	return mdns.Class(c).String()
}

// HeaderFlags appends the set flags of m to dst in the order ECS documents
// for dns.header_flags: AA, TC, RD, RA, AD, CD, DO (DO is the EDNS DNSSEC OK
// bit). Pass a reused slice to avoid allocating.
func HeaderFlags(dst []string, m *Message) []string {
	if m.Authoritative {
		dst = append(dst, "AA")
	}
	if m.Truncated {
		dst = append(dst, "TC")
	}
	if m.RecursionDesired {
		dst = append(dst, "RD")
	}
	if m.RecursionAvailable {
		dst = append(dst, "RA")
	}
	if m.AuthenticatedData {
		dst = append(dst, "AD")
	}
	if m.CheckingDisabled {
		dst = append(dst, "CD")
	}
	if m.DNSSECOK {
		dst = append(dst, "DO")
	}
	return dst
}

// Transport is the transport protocol DNS travels over.
type Transport uint8

// Transports recognised by IsDNS.
const (
	UDP Transport = iota
	TCP
)

// Well-known DNS ports.
const (
	PortDNS  = 53
	PortMDNS = 5353
)

// IsDNS reports whether a packet between these ports is DNS by port: port 53
// over UDP or TCP, and port 5353 (mDNS) over UDP only.
func IsDNS(t Transport, srcPort, dstPort uint16) bool {
	switch t {
	case UDP:
		return srcPort == PortDNS || dstPort == PortDNS || srcPort == PortMDNS || dstPort == PortMDNS
	case TCP:
		return srcPort == PortDNS || dstPort == PortDNS
	}
	return false
}

// IsMDNS reports whether a packet between these ports is multicast DNS.
func IsMDNS(t Transport, srcPort, dstPort uint16) bool {
	return t == UDP && (srcPort == PortMDNS || dstPort == PortMDNS)
}
