// Package dns is the DNS protocol layer of phonehome: it parses DNS messages
// (with github.com/miekg/dns, behind a guard against hostile compression and
// lying counts), sanitises names for logs, splits names at the public suffix,
// names ECS values, pairs queries with responses per flow and frames DNS over
// TCP.
package dns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	mdns "github.com/miekg/dns"
)

// Wire-format limits (RFC 1035 section 2.3.4 and 4.1.4).
const (
	headerLen = 12
	// minQuestionLen is the smallest question: root name (1) + type + class.
	minQuestionLen = 5
	// minRecordLen is the smallest record: root name (1) + type, class, TTL, rdlength.
	minRecordLen = 11
	// MaxNameWireLen is the longest encoded name RFC 1035 allows.
	MaxNameWireLen = 255
	// MaxCompressionPointers bounds the pointers followed for one name; it is
	// the value miekg/dns uses (a name of 255 octets cannot need more).
	MaxCompressionPointers = (MaxNameWireLen+1)/2 - 2
)

// Anomaly reasons returned by Parse. They are stable strings meant for
// event fields and counters.
const (
	AnomalyCountsExceedSize  = "section counts exceed message size"
	AnomalyForwardPointer    = "forward compression pointer"
	AnomalyPointerLoop       = "compression pointer loop"
	AnomalyTooManyPointers   = "too many compression pointers"
	AnomalyNameTooLong       = "name longer than 255 octets"
	AnomalyBadLabelType      = "reserved label type"
	AnomalyTruncatedName     = "name runs past message end"
	AnomalyTruncatedQuestion = "question runs past message end"
	AnomalyTruncatedRecord   = "record runs past message end"
	AnomalyBadRdata          = "record data does not parse"
	AnomalyTrailingBytes     = "bytes after last record"
	AnomalyMultipleOPT       = "more than one OPT record"
)

// ErrShortHeader is returned when fewer than 12 bytes are given: nothing of
// the message can be read.
var ErrShortHeader = errors.New("dns: message shorter than the 12-byte header")

// Question is one entry of the question section. Name is sanitised (see
// SanitizeName).
type Question struct {
	Name  string
	Type  uint16
	Class uint16
}

// Record is one resource record. Name is sanitised. Data is the RDATA as
// miekg/dns prints it (an address for A/AAAA, the target name for
// CNAME/NS/PTR/DNAME, "pref exchange" for MX, quoted strings for TXT,
// "\# len hex" for unknown types), sanitised so it is printable ASCII; target
// names of CNAME, NS, PTR and DNAME are sanitised like owner names.
type Record struct {
	Name  string
	Type  uint16
	Class uint16
	TTL   uint32
	Data  string
}

// Message is what could be read from one DNS message. Counts are the header
// values as sent, even when the message holds fewer entries.
type Message struct {
	ID                 uint16
	Opcode             uint8
	Response           bool // QR
	Authoritative      bool // AA
	Truncated          bool // TC
	RecursionDesired   bool // RD
	RecursionAvailable bool // RA
	Zero               bool // Z (reserved bit)
	AuthenticatedData  bool // AD
	CheckingDisabled   bool // CD

	// HeaderRcode is the 4-bit RCODE of the header. Rcode is the effective
	// response code: the 12-bit extended RCODE when an OPT record is present,
	// else HeaderRcode.
	HeaderRcode uint8
	Rcode       uint16

	// EDNS is set when an OPT record was read; DNSSECOK is its DO bit and
	// UDPSize its advertised payload size.
	EDNS     bool
	DNSSECOK bool
	UDPSize  uint16

	QDCount, ANCount, NSCount, ARCount uint16

	Questions   []Question
	Answers     []Record
	Authorities []Record
	Additionals []Record // OPT is reported through the EDNS fields, not here
}

// Parse reads a DNS message. It returns an error (and a nil Message) only when
// the 12-byte header is missing. Otherwise it returns every entry it could
// read, in order, and stops at the first entry it refuses, naming the reason in
// anomalies; a well-formed message has no anomalies.
//
// Before miekg/dns sees a name, guardName walks it: compression pointers must
// point strictly backwards (so no loop is possible), at most
// MaxCompressionPointers are followed and the name must fit in 255 octets. The
// same check runs on the names inside the RDATA of the types whose names may be
// compressed (RFC 3597 section 4); names inside other types are left to
// miekg/dns, which bounds pointer chasing itself. Section counts that the
// message cannot hold are reported, and work is bounded by the message length
// whatever the counts say.
func Parse(b []byte) (*Message, []string, error) {
	if len(b) < headerLen {
		return nil, nil, fmt.Errorf("%w (got %d)", ErrShortHeader, len(b))
	}
	m := &Message{}
	parseHeader(b, m)
	var anomalies []string
	need := int(m.QDCount)*minQuestionLen + (int(m.ANCount)+int(m.NSCount)+int(m.ARCount))*minRecordLen
	if need > len(b)-headerLen {
		anomalies = append(anomalies, AnomalyCountsExceedSize)
	}
	off := headerLen
	// Capacity hints are capped by what the message can hold: counts are
	// attacker-controlled.
	maxEntries := (len(b) - headerLen) / minQuestionLen
	if n := min(int(m.QDCount), maxEntries); n > 0 {
		m.Questions = make([]Question, 0, n)
	}
	for i := 0; i < int(m.QDCount); i++ {
		q, next, reason := parseQuestion(b, off)
		if reason != "" {
			return m, append(anomalies, fmt.Sprintf("question %d: %s", i, reason)), nil
		}
		m.Questions = append(m.Questions, q)
		off = next
	}
	maxRecords := (len(b) - off) / minRecordLen
	sections := [...]struct {
		name  string
		count uint16
		dst   *[]Record
	}{
		{"answer", m.ANCount, &m.Answers},
		{"authority", m.NSCount, &m.Authorities},
		{"additional", m.ARCount, &m.Additionals},
	}
	sawOPT := false
	for _, sec := range sections {
		if n := min(int(sec.count), maxRecords); n > 0 {
			*sec.dst = make([]Record, 0, n)
		}
		for i := 0; i < int(sec.count); i++ {
			rr, next, reason := parseRecord(b, off)
			if reason != "" {
				return m, append(anomalies, fmt.Sprintf("%s %d: %s", sec.name, i, reason)), nil
			}
			off = next
			if opt, ok := rr.(*mdns.OPT); ok {
				if sawOPT {
					anomalies = append(anomalies, AnomalyMultipleOPT)
					continue
				}
				sawOPT = true
				m.EDNS = true
				m.DNSSECOK = opt.Do()
				m.UDPSize = opt.UDPSize()
				m.Rcode = uint16(opt.ExtendedRcode()) | uint16(m.HeaderRcode)
				continue
			}
			*sec.dst = append(*sec.dst, recordOf(rr))
		}
	}
	if off < len(b) {
		anomalies = append(anomalies, AnomalyTrailingBytes)
	}
	return m, anomalies, nil
}

func parseHeader(b []byte, m *Message) {
	m.ID = binary.BigEndian.Uint16(b[0:])
	flags := binary.BigEndian.Uint16(b[2:])
	m.Response = flags&(1<<15) != 0
	m.Opcode = uint8(flags>>11) & 0xF
	m.Authoritative = flags&(1<<10) != 0
	m.Truncated = flags&(1<<9) != 0
	m.RecursionDesired = flags&(1<<8) != 0
	m.RecursionAvailable = flags&(1<<7) != 0
	m.Zero = flags&(1<<6) != 0
	m.AuthenticatedData = flags&(1<<5) != 0
	m.CheckingDisabled = flags&(1<<4) != 0
	m.HeaderRcode = uint8(flags & 0xF)
	m.Rcode = uint16(m.HeaderRcode)
	m.QDCount = binary.BigEndian.Uint16(b[4:])
	m.ANCount = binary.BigEndian.Uint16(b[6:])
	m.NSCount = binary.BigEndian.Uint16(b[8:])
	m.ARCount = binary.BigEndian.Uint16(b[10:])
}

func parseQuestion(b []byte, off int) (Question, int, string) {
	end, reason := guardName(b, off)
	if reason != "" {
		return Question{}, 0, reason
	}
	if end+4 > len(b) {
		return Question{}, 0, AnomalyTruncatedQuestion
	}
	name, _, err := mdns.UnpackDomainName(b, off)
	if err != nil { // guardName accepted it, so this is not expected
		return Question{}, 0, "name: " + err.Error()
	}
	return Question{
		Name:  SanitizeName(name),
		Type:  binary.BigEndian.Uint16(b[end:]),
		Class: binary.BigEndian.Uint16(b[end+2:]),
	}, end + 4, ""
}

// parseRecord guards the owner name and the compressible RDATA names, then
// lets miekg/dns unpack the record.
func parseRecord(b []byte, off int) (mdns.RR, int, string) {
	end, reason := guardName(b, off)
	if reason != "" {
		return nil, 0, reason
	}
	if end+10 > len(b) {
		return nil, 0, AnomalyTruncatedRecord
	}
	rrtype := binary.BigEndian.Uint16(b[end:])
	rdStart := end + 10
	rdEnd := rdStart + int(binary.BigEndian.Uint16(b[end+8:]))
	if rdEnd > len(b) {
		return nil, 0, AnomalyTruncatedRecord
	}
	if reason := guardRdataNames(b, rrtype, rdStart, rdEnd); reason != "" {
		return nil, 0, "rdata " + reason
	}
	rr, next, err := mdns.UnpackRR(b, off)
	if err != nil {
		return nil, 0, AnomalyBadRdata + ": " + err.Error()
	}
	if rr == nil || next != rdEnd {
		return nil, 0, AnomalyBadRdata
	}
	return rr, next, ""
}

// guardName checks the name at off and returns the offset just after it in
// place (after the first pointer when compressed), or a reason.
func guardName(b []byte, off int) (int, string) {
	end := -1
	wireLen := 0
	pointers := 0
	pos := off
	for {
		if pos >= len(b) {
			return 0, AnomalyTruncatedName
		}
		c := int(b[pos])
		switch c & 0xC0 {
		case 0x00:
			if c == 0 {
				wireLen++
				if wireLen > MaxNameWireLen {
					return 0, AnomalyNameTooLong
				}
				if end < 0 {
					end = pos + 1
				}
				return end, ""
			}
			wireLen += c + 1
			if wireLen > MaxNameWireLen {
				return 0, AnomalyNameTooLong
			}
			if pos+1+c > len(b) {
				return 0, AnomalyTruncatedName
			}
			pos += 1 + c
		case 0xC0:
			if pos+1 >= len(b) {
				return 0, AnomalyTruncatedName
			}
			target := int(binary.BigEndian.Uint16(b[pos:]) & 0x3FFF)
			if end < 0 {
				end = pos + 2
			}
			// A pointer must refer to a prior occurrence (RFC 1035 4.1.4).
			// Requiring strictly backward targets makes loops impossible.
			switch {
			case target == pos:
				return 0, AnomalyPointerLoop
			case target > pos:
				return 0, AnomalyForwardPointer
			}
			pointers++
			if pointers > MaxCompressionPointers {
				return 0, AnomalyTooManyPointers
			}
			pos = target
		default:
			return 0, AnomalyBadLabelType
		}
	}
}

// guardRdataNames walks the names inside the RDATA of the types whose names
// may be compressed (RFC 1035 types and the later ones RFC 3597 section 4
// lists as compressible in practice).
func guardRdataNames(b []byte, rrtype uint16, start, end int) string {
	if start == end {
		// Empty RDATA is legal in UPDATE (RFC 2136 2.4: class ANY/NONE).
		return ""
	}
	var skip, names int
	switch rrtype {
	case mdns.TypeCNAME, mdns.TypeNS, mdns.TypePTR, mdns.TypeDNAME, mdns.TypeMB,
		mdns.TypeMD, mdns.TypeMF, mdns.TypeMG, mdns.TypeMR:
		names = 1
	case mdns.TypeMX, mdns.TypeAFSDB, mdns.TypeRT, mdns.TypeKX:
		skip, names = 2, 1
	case mdns.TypeSOA, mdns.TypeMINFO, mdns.TypeRP:
		names = 2
	case mdns.TypeSRV:
		skip, names = 6, 1
	case mdns.TypePX:
		skip, names = 2, 2
	default:
		return ""
	}
	pos := start + skip
	for range names {
		if pos >= end {
			return AnomalyTruncatedName
		}
		// A name must stay inside its RDATA; only its pointers leave it.
		next, reason := guardName(b[:end], pos)
		if reason != "" {
			return reason
		}
		pos = next
	}
	return ""
}

// recordOf converts a miekg record into a Record with printable data.
func recordOf(rr mdns.RR) Record {
	h := rr.Header()
	r := Record{Name: SanitizeName(h.Name), Type: h.Rrtype, Class: h.Class, TTL: h.Ttl}
	if h.Rdlength == 0 {
		// No RDATA (UPDATE deletions, empty answers): miekg's printers
		// would show "<nil>" or ".", which are not data.
		return r
	}
	switch v := rr.(type) {
	case *mdns.A:
		r.Data = v.A.String()
	case *mdns.AAAA:
		r.Data = v.AAAA.String()
	case *mdns.CNAME:
		r.Data = SanitizeName(v.Target)
	case *mdns.NS:
		r.Data = SanitizeName(v.Ns)
	case *mdns.PTR:
		r.Data = SanitizeName(v.Ptr)
	case *mdns.DNAME:
		r.Data = SanitizeName(v.Target)
	default:
		r.Data = escapeUnprintable(rdataText(rr.String()))
	}
	return r
}

// rdataText returns the RDATA of miekg's "name\tttl\tclass\ttype\trdata"
// presentation: the text after the fourth tab. Names are escaped by miekg, so
// they hold no raw tab.
func rdataText(s string) string {
	for range 4 {
		i := strings.IndexByte(s, '\t')
		if i < 0 {
			return s
		}
		s = s[i+1:]
	}
	return s
}
