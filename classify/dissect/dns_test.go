package dissect_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/phonehome/phonehome/event"
	"github.com/phonehome/phonehome/internal/testcorpus"
)

// TestDNSCutBySnapLength: tcpdump/dns_udp_2.pcap's response is cut by a
// 98-byte snap length. What was captured is still dissected (tshark shows
// the A record 192.139.46.66 from it), and the answer event carries the
// response's anomalies, the cut included.
func TestDNSCutBySnapLength(t *testing.T) {
	res := runPipeline(t, testcorpus.Path(t, "tcpdump/dns_udp_2.pcap"), 1)
	evs := res.dataset(event.DatasetDNS)
	if len(evs) != 1 || evs[0].DNS == nil || evs[0].DNS.Type != "answer" {
		t.Fatalf("want one answered transaction, got %d events", len(evs))
	}
	d := evs[0].DNS
	var addrs []string
	for _, a := range d.Answers {
		addrs = append(addrs, a.Data)
	}
	if d.ResponseCode != "NOERROR" || !slices.Contains(addrs, "192.139.46.66") {
		t.Errorf("rcode %s answers %v", d.ResponseCode, addrs)
	}
	if an := strings.Join(evs[0].Phonehome.Anomalies, "; "); !strings.Contains(an, "snap length") {
		t.Errorf("anomalies %q do not name the cut", an)
	}
}
