package attribute

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/phonehome/phonehome/event"
)

func answerEvent(q string, answers ...event.DNSAnswer) *event.DNS {
	return &event.DNS{Type: "answer", QuestionName: q, Answers: answers}
}

func TestDNSCacheChainsAndBounds(t *testing.T) {
	c := newDNSCache(3, time.Minute, time.Hour)
	// A CNAME loop and an unrelated address record must not hang or lie.
	c.add(answerEvent("a.example.net",
		event.DNSAnswer{Name: "a.example.net", Type: "CNAME", Data: "b.example.net."},
		event.DNSAnswer{Name: "b.example.net", Type: "CNAME", Data: "a.example.net."},
		event.DNSAnswer{Name: "B.Example.Net.", Type: "A", TTL: 10, Data: "192.0.2.1"},
		event.DNSAnswer{Name: "other.example.org", Type: "A", TTL: 99999999, Data: "192.0.2.2"},
		event.DNSAnswer{Name: "x.example.org", Type: "A", Data: "not an address"},
	), t0)
	e, ok := c.lookup(netip.MustParseAddr("192.0.2.1"), t0+30*sec)
	if !ok || e.asked != "a.example.net" || e.nchain != 2 || e.chain[1] != "b.example.net" {
		t.Fatalf("loop chain: %+v %v", e, ok)
	}
	// TTL 10 is raised to the one-minute minimum...
	if _, ok := c.lookup(netip.MustParseAddr("192.0.2.1"), t0+61*sec); ok {
		t.Error("entry outlived the minimum TTL")
	}
	// ...and a huge TTL capped at the maximum.
	if e, ok := c.lookup(netip.MustParseAddr("192.0.2.2"), t0+59*int64(time.Minute)); !ok || e.asked != "other.example.org" {
		t.Errorf("unrelated record: %+v %v", e, ok)
	}
	if _, ok := c.lookup(netip.MustParseAddr("192.0.2.2"), t0+61*int64(time.Minute)); ok {
		t.Error("entry outlived the maximum TTL")
	}
	if c.expired != 2 {
		t.Errorf("expired %d, want 2", c.expired)
	}
	// The limit holds and evictions are counted, least recently used first.
	for i := range 5 {
		c.add(answerEvent(fmt.Sprintf("h%d.example.net", i), event.DNSAnswer{Name: fmt.Sprintf("h%d.example.net", i), Type: "A", TTL: 300, Data: fmt.Sprintf("192.0.2.%d", 10+i)}), t0)
		if i == 2 {
			c.lookup(netip.MustParseAddr("192.0.2.10"), t0) // h0 becomes recent
		}
	}
	if c.entries.len() != 3 || c.entries.evicted != 2 {
		t.Errorf("entries %d evicted %d, want 3 and 2", c.entries.len(), c.entries.evicted)
	}
	if _, ok := c.lookup(netip.MustParseAddr("192.0.2.10"), t0); !ok {
		t.Error("recently used entry evicted")
	}
	if _, ok := c.lookup(netip.MustParseAddr("192.0.2.11"), t0); ok {
		t.Error("least recently used entry kept")
	}
	// IPv4-mapped IPv6 destinations find IPv4 answers.
	if _, ok := c.lookup(netip.MustParseAddr("::ffff:192.0.2.14"), t0); !ok {
		t.Error("mapped address not found")
	}
}

func TestFlowStateBounded(t *testing.T) {
	a, err := New(Config{Signatures: defaultSet(t), MaxFlows: 2})
	if err != nil {
		t.Fatal(err)
	}
	emit := func(*event.Event) {}
	for i := range 5 {
		a.Process(&event.Event{Timestamp: t0, Dataset: event.DatasetTLS, Source: event.Endpoint{IP: host},
			Destination: event.Endpoint{IP: netip.MustParseAddr("198.51.100.1"), Port: 443, HasPort: true},
			TLS:         &event.TLS{ClientServerName: "s00.upd.kaspersky.com"}, Phonehome: event.Phonehome{FlowID: fmt.Sprint("f", i)}}, emit)
	}
	if st := a.Stats(); st.FlowsEvicted != 3 || st.Attributed != 5 {
		t.Errorf("stats %+v", st)
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New without signatures")
	}
	if _, err := New(Config{Signatures: defaultSet(t), AlertWindow: -time.Second}); err == nil {
		t.Error("negative window accepted")
	}
}

// FuzzDNSCache feeds arbitrary answer sets: no panic, no hang, the bound
// holds, and every cached address maps to a name from the answer.
func FuzzDNSCache(f *testing.F) {
	f.Add("a.example.net", "a.example.net", "CNAME", "b.example.net", "b.example.net", "A", "192.0.2.1", uint32(60))
	f.Add("x", "x", "CNAME", "x", "x", "AAAA", "2001:db8::1", uint32(0))
	f.Add("Q.", "q", "A", "::ffff:10.0.0.1", "q", "CNAME", "q", uint32(1<<31))
	f.Fuzz(func(t *testing.T, q, n1, t1, d1, n2, t2, d2 string, ttl uint32) {
		c := newDNSCache(2, time.Minute, time.Hour)
		d := answerEvent(q, event.DNSAnswer{Name: n1, Type: t1, Data: d1, TTL: ttl}, event.DNSAnswer{Name: n2, Type: t2, Data: d2, TTL: ttl},
			event.DNSAnswer{Name: n1, Type: "A", Data: d2, TTL: ttl})
		c.add(d, t0)
		if c.entries.len() > 2 {
			t.Fatalf("%d entries over the limit", c.entries.len())
		}
		c.entries.each(func(ip netip.Addr, e *dnsEntry) {
			names := map[string]bool{normName(q): true, normName(n1): true, normName(n2): true, normName(d1): true, normName(d2): true}
			for i := 0; i < int(e.nchain); i++ {
				if !names[e.chain[i]] {
					t.Fatalf("%v cached under %q, not from the answer", ip, e.chain[i])
				}
			}
			if e.expires < t0+int64(time.Minute) || e.expires > t0+int64(time.Hour) {
				t.Fatalf("expiry %d outside the clamp", e.expires-t0)
			}
		})
	})
}
