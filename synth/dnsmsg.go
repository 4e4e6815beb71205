package synth

import (
	"fmt"
	"net/netip"

	mdns "github.com/miekg/dns"
)

// DNSQuery returns a packed query for name and qtype.
func DNSQuery(id uint16, name string, qtype uint16) ([]byte, error) {
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), qtype)
	m.Id = id
	m.RecursionDesired = true
	b, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("synth: pack query: %w", err)
	}
	return b, nil
}

// DNSAnswer is one record of a generated response: A/AAAA when Addr is
// valid, CNAME when Target is set, TXT when Text is set.
type DNSAnswer struct {
	Name   string
	TTL    uint32
	Addr   netip.Addr
	Target string
	Text   string
}

// DNSResponse answers a query built by DNSQuery with the given records and
// response code.
func DNSResponse(query []byte, rcode int, answers ...DNSAnswer) ([]byte, error) {
	q := new(mdns.Msg)
	if err := q.Unpack(query); err != nil {
		return nil, fmt.Errorf("synth: unpack query: %w", err)
	}
	m := new(mdns.Msg)
	m.SetRcode(q, rcode)
	m.RecursionAvailable = true
	for _, a := range answers {
		hdr := mdns.RR_Header{Name: mdns.Fqdn(a.Name), Class: mdns.ClassINET, Ttl: a.TTL}
		switch {
		case a.Target != "":
			hdr.Rrtype = mdns.TypeCNAME
			m.Answer = append(m.Answer, &mdns.CNAME{Hdr: hdr, Target: mdns.Fqdn(a.Target)})
		case a.Text != "":
			hdr.Rrtype = mdns.TypeTXT
			m.Answer = append(m.Answer, &mdns.TXT{Hdr: hdr, Txt: []string{a.Text}})
		case a.Addr.Is4():
			hdr.Rrtype = mdns.TypeA
			m.Answer = append(m.Answer, &mdns.A{Hdr: hdr, A: a.Addr.AsSlice()})
		case a.Addr.Is6():
			hdr.Rrtype = mdns.TypeAAAA
			m.Answer = append(m.Answer, &mdns.AAAA{Hdr: hdr, AAAA: a.Addr.AsSlice()})
		}
	}
	b, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("synth: pack response: %w", err)
	}
	return b, nil
}
