package attribute

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/phonehome/phonehome/event"
)

// mixedEvents is a stream like a busy egress: per flow a DNS answer, a TLS
// handshake or an HTTP request, and the final flow record; one flow in
// eight goes to a vendor name.
func mixedEvents(n int) []*event.Event {
	var evs []*event.Event
	for i := 0; i < n; i++ {
		client := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		server := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		name := fmt.Sprintf("www%d.example.com", i%200)
		if i%8 == 0 {
			name = fmt.Sprintf("dnl-%02d.geo.kaspersky.com", i%20)
			server = netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		}
		ts := t0 + int64(i)*1e6
		id := fmt.Sprint("flow", i)
		evs = append(evs, &event.Event{Timestamp: ts, Dataset: event.DatasetDNS,
			Source: event.Endpoint{IP: client}, Destination: event.Endpoint{IP: resolver.Addr, Port: 53, HasPort: true},
			DNS:       &event.DNS{Type: "answer", QuestionName: name, Answers: []event.DNSAnswer{{Name: name, Type: "A", TTL: 300, Data: server.String()}}},
			Phonehome: event.Phonehome{FlowID: "dns" + id}})
		dst := event.Endpoint{IP: server, Port: 443, HasPort: true}
		if i%3 == 0 {
			dst.Port = 80
			evs = append(evs, &event.Event{Timestamp: ts + 1e5, Dataset: event.DatasetHTTP, Source: event.Endpoint{IP: client}, Destination: dst,
				HTTP: &event.HTTP{URLDomain: name, URLPath: "/index.html", MIMEType: "text/html", UserAgent: "Mozilla/5.0"}, Phonehome: event.Phonehome{FlowID: id}})
		} else {
			evs = append(evs, &event.Event{Timestamp: ts + 1e5, Dataset: event.DatasetTLS, Source: event.Endpoint{IP: client}, Destination: dst,
				TLS: &event.TLS{ClientServerName: name, ClientJA3: "e7d705a3286e19ea42f587b344ee6865", ClientJA4: "t13d1516h2_8daaf6152771_b186095e22b6"}, Phonehome: event.Phonehome{FlowID: id}})
		}
		evs = append(evs, &event.Event{Timestamp: ts + 2e5, Dataset: event.DatasetFlow, Source: event.Endpoint{IP: client, Bytes: 900}, Destination: dst,
			Phonehome: event.Phonehome{FlowID: id, Flow: &event.FlowInfo{Final: true, ClientPayload: 500, ServerPayload: 4000}}})
	}
	return evs
}

func BenchmarkProcess(b *testing.B) {
	a, err := New(Config{Signatures: defaultSet(b), AlertWindow: 3600e9})
	if err != nil {
		b.Fatal(err)
	}
	evs := mixedEvents(2048)
	emit := func(*event.Event) {}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.Process(evs[i%len(evs)], emit)
	}
}
