package attribute

import (
	"crypto/x509/pkix"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phonehome/phonehome/event"
	"github.com/phonehome/phonehome/internal/testcorpus"
	"github.com/phonehome/phonehome/signatures"
	"github.com/phonehome/phonehome/synth"
)

var (
	host  = ip("192.168.56.21")
	host2 = ip("192.168.56.22")
)

// checkAttributed asserts every event of the flow to dst carries the
// attribution, and that exactly one alert names the flow.
func checkAttributed(t *testing.T, r *result, dst synth.Endpoint, vendor, rule, evType, evValue string) *event.Event {
	t.Helper()
	evs := r.flowEvents(dst)
	if len(evs) == 0 {
		t.Fatalf("no events to %v", dst)
	}
	var alert *event.Event
	var flowRec bool
	for _, ev := range evs {
		if ev.Dataset == event.DatasetAlert {
			if alert != nil {
				t.Fatalf("two alerts for %v", dst)
			}
			alert = ev
			continue
		}
		if ev.Dataset == event.DatasetFlow {
			flowRec = true
		}
		if ev.Phonehome.Vendor != vendor || ev.Phonehome.Product == "" || len(ev.Phonehome.Purpose) == 0 || ev.Rule == nil || ev.Rule.ID == "" {
			t.Errorf("%s event to %v not attributed: vendor %q rule %+v", ev.Dataset, dst, ev.Phonehome.Vendor, ev.Rule)
		}
	}
	if !flowRec {
		t.Fatalf("no flow record to %v", dst)
	}
	if alert == nil {
		t.Fatalf("no alert for %v", dst)
	}
	if alert.Phonehome.Vendor != vendor || (rule != "" && alert.Rule.ID != rule) {
		t.Errorf("alert: vendor %q rule %q, want %q %q", alert.Phonehome.Vendor, alert.Rule.ID, vendor, rule)
	}
	if !evHas(alert.Phonehome.Evidence, evType, evValue) {
		t.Errorf("alert evidence %+v lacks %s %q", alert.Phonehome.Evidence, evType, evValue)
	}
	checkAlertShape(t, alert)
	return alert
}

func checkAlertShape(t *testing.T, al *event.Event) {
	t.Helper()
	if al.Kind != "alert" || al.Dataset != event.DatasetAlert || strings.Join(al.Category, ",") != "network,intrusion_detection" {
		t.Errorf("alert header: kind %q dataset %q category %v", al.Kind, al.Dataset, al.Category)
	}
	if al.Rule == nil || al.Rule.Category != RuleCategory || al.Rule.Name == "" || al.Rule.Ruleset == "" || al.Rule.Reference == "" {
		t.Errorf("alert rule: %+v", al.Rule)
	}
	if al.Severity == 0 || al.Reason == "" || al.Phonehome.Alert == nil || al.Phonehome.FlowID == "" || al.Network.CommunityID == "" {
		t.Errorf("alert: severity %d reason %q alert %+v flow %q community %q", al.Severity, al.Reason, al.Phonehome.Alert, al.Phonehome.FlowID, al.Network.CommunityID)
	}
	if !al.Source.IP.IsValid() || !al.Destination.IP.IsValid() || !al.Source.HasCounters {
		t.Errorf("alert endpoints: %+v -> %+v", al.Source, al.Destination)
	}
	for _, e := range al.Phonehome.Evidence {
		if e.Type == "" || e.Value == "" || e.Field == "" {
			t.Errorf("incomplete evidence %+v", e)
		}
	}
}

func TestEvidenceAlone(t *testing.T) {
	kav := synth.Endpoint{Addr: ip("198.51.100.10"), Port: 443}
	cases := []struct {
		name     string
		build    func(s *scen, dst synth.Endpoint)
		dst      synth.Endpoint
		rule     string
		evType   string
		evValue  string
		evField  string
		severity int
	}{
		{"dns question", func(s *scen, _ synth.Endpoint) {
			s.lookup(synth.L2{}, host, t0, "dnl-01.geo.kaspersky.com", synth.DNSAnswer{Name: "dnl-01.geo.kaspersky.com", TTL: 300, Addr: ip("198.51.100.10")})
		}, resolver, "KL-UPD-006", EvDomain, "dnl-01.geo.kaspersky.com", "dns.question.name", 73},
		{"dns answer name via CNAME", func(s *scen, _ synth.Endpoint) {
			s.lookup(synth.L2{}, host, t0, "assets.example.net",
				synth.DNSAnswer{Name: "assets.example.net", TTL: 300, Target: "dnl-02.geo.kaspersky.com"},
				synth.DNSAnswer{Name: "dnl-02.geo.kaspersky.com", TTL: 300, Addr: ip("198.51.100.10")})
		}, resolver, "KL-UPD-006", EvDomain, "dnl-02.geo.kaspersky.com", "dns.answers.name", 73},
		{"sni", func(s *scen, dst synth.Endpoint) {
			s.tlsFlow(synth.L2{}, host, dst, t0, tlsOpts{sni: "ksn-stat-geo.kaspersky-labs.com"})
		}, kav, "KL-KSN-002", EvSNI, "ksn-stat-geo.kaspersky-labs.com", "tls.client.server_name", 73},
		{"http host", func(s *scen, dst synth.Endpoint) {
			s.httpFlow(synth.L2{}, host, dst, t0, "touch.kaspersky.com", "/", "", "text/html")
		}, synth.Endpoint{Addr: ip("198.51.100.12"), Port: 80}, "KL-WEB-005", EvHTTPHost, "touch.kaspersky.com", "url.domain", 47},
		{"http path on a bare-IP host", func(s *scen, dst synth.Endpoint) {
			s.httpFlow(synth.L2{}, host, dst, t0, "198.51.100.11", "/updaters/updater.xml.klz", "Mozilla/4.0", "text/xml")
		}, synth.Endpoint{Addr: ip("198.51.100.11"), Port: 80}, "KL-HTTP-001", EvHTTPPath, "/updaters/updater.xml.klz", "url.path", 73},
		{"content type", func(s *scen, dst synth.Endpoint) {
			s.httpFlow(synth.L2{}, host, dst, t0, "198.51.100.13", "/x/blob.bin", "", "application/x-kaspavdb")
		}, synth.Endpoint{Addr: ip("198.51.100.13"), Port: 80}, "KL-HTTP-005", EvContentType, "application/x-kaspavdb", "http.response.mime_type", 73},
		{"certificate SAN", func(s *scen, dst synth.Endpoint) {
			s.tlsFlow(synth.L2{}, host, dst, t0, tlsOpts{sans: []string{"ds.kaspersky.com"}})
		}, synth.Endpoint{Addr: ip("198.51.100.14"), Port: 443}, "KL-DOM-009", EvCertificate, "ds.kaspersky.com", "tls.server.x509.alternative_names", 47},
		{"certificate subject", func(s *scen, dst synth.Endpoint) {
			s.tlsFlow(synth.L2{}, host, dst, t0, tlsOpts{subject: pkix.Name{CommonName: "server.example.net", Organization: []string{"AO Kaspersky Lab"}}})
		}, synth.Endpoint{Addr: ip("198.51.100.15"), Port: 443}, "KL-CERT-002", EvCertificate, "", "tls.server.x509.subject.distinguished_name", 47},
		{"ip prefix (weak)", func(s *scen, dst synth.Endpoint) {
			s.tcpFlow(synth.L2{}, host, dst, t0, 300, 300)
		}, synth.Endpoint{Addr: ip("77.74.176.10"), Port: 443}, "KL-NET-001", EvIP, "77.74.176.10", "destination.ip", 21},
		{"dns correlation, tls without sni", func(s *scen, dst synth.Endpoint) {
			s.lookup(synth.L2{}, host2, t0, "ksn-a-geo.kaspersky-labs.com", synth.DNSAnswer{Name: "ksn-a-geo.kaspersky-labs.com", TTL: 60, Addr: dst.Addr})
			s.tlsFlow(synth.L2{}, host, dst, t0+sec, tlsOpts{})
		}, synth.Endpoint{Addr: ip("198.51.100.20"), Port: 443}, "KL-DOM-001", EvDNSCorrelation, "ksn-a-geo.kaspersky-labs.com", "destination.ip", 47},
		{"dns correlation through a CNAME, plain tcp", func(s *scen, dst synth.Endpoint) {
			s.lookup(synth.L2{}, host, t0, "mirror.example.org",
				synth.DNSAnswer{Name: "mirror.example.org", TTL: 300, Target: "edge.example.net"},
				synth.DNSAnswer{Name: "edge.example.net", TTL: 300, Target: "dnl-05.geo.kaspersky.com"},
				synth.DNSAnswer{Name: "dnl-05.geo.kaspersky.com", TTL: 300, Addr: dst.Addr})
			s.tcpFlow(synth.L2{}, host, dst, t0+2*sec, 500, 500)
		}, synth.Endpoint{Addr: ip("198.51.100.21"), Port: 8443}, "KL-UPD-006", EvDNSCorrelation, "dnl-05.geo.kaspersky.com", "destination.ip", 73},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newScen(t)
			c.build(s, c.dst)
			r := replay(t, s.bytes(), Config{})
			al := checkAttributed(t, r, c.dst, "Kaspersky", c.rule, c.evType, c.evValue)
			found := false
			for _, e := range al.Phonehome.Evidence {
				if e.Type == c.evType && e.Field == c.evField {
					found = true
				}
			}
			if !found {
				t.Errorf("evidence %+v lacks field %s", al.Phonehome.Evidence, c.evField)
			}
			if al.Severity != c.severity {
				t.Errorf("severity %d, want %d (reason %q)", al.Severity, c.severity, al.Reason)
			}
			if c.severity == 21 && !strings.Contains(al.Reason, "weak") {
				t.Errorf("weak-only alert does not say so: %q", al.Reason)
			}
			if c.dst.Port != 53 && len(r.flowEvents(c.dst)) > 0 && al.Destination.Bytes == 0 {
				t.Errorf("alert lacks the flow's bytes: %+v", al.Destination)
			}
		})
	}
}

func TestDNSCorrelationSetsDomainAndExpires(t *testing.T) {
	dst := synth.Endpoint{Addr: ip("198.51.100.20"), Port: 443}
	late := synth.Endpoint{Addr: ip("198.51.100.22"), Port: 443}
	s := newScen(t)
	s.lookup(synth.L2{}, host, t0, "mirror.example.org",
		synth.DNSAnswer{Name: "mirror.example.org", TTL: 30, Target: "ksn-a-geo.kaspersky-labs.com"},
		synth.DNSAnswer{Name: "ksn-a-geo.kaspersky-labs.com", TTL: 30, Addr: dst.Addr})
	s.lookup(synth.L2{}, host, t0, "dnl-09.geo.kaspersky.com", synth.DNSAnswer{Name: "dnl-09.geo.kaspersky.com", TTL: 60, Addr: late.Addr})
	s.tlsFlow(synth.L2{}, host, dst, t0+sec, tlsOpts{})
	// After the TTL (raised to the 60 s minimum) the address is no longer
	// tied to the name.
	s.tlsFlow(synth.L2{}, host, late, t0+5*int64(time.Minute), tlsOpts{})
	r := replay(t, s.bytes(), Config{})
	for _, ev := range r.flowEvents(dst) {
		if ev.Dataset != event.DatasetAlert && ev.Destination.Domain != "mirror.example.org" {
			t.Errorf("%s event: destination.domain %q, want the asked name", ev.Dataset, ev.Destination.Domain)
		}
	}
	checkAttributed(t, r, dst, "Kaspersky", "", EvDNSCorrelation, "ksn-a-geo.kaspersky-labs.com")
	for _, ev := range r.flowEvents(late) {
		if ev.Phonehome.Vendor != "" || ev.Destination.Domain != "" {
			t.Errorf("expired answer still used: %s vendor %q domain %q", ev.Dataset, ev.Phonehome.Vendor, ev.Destination.Domain)
		}
	}
	if st := r.a.Stats(); st.DNSExpired != 1 || st.DNSInserted != 2 {
		t.Errorf("dns stats %+v", st)
	}
}

func TestLookAlikesNeverAttributed(t *testing.T) {
	s := newScen(t)
	names := []string{"notkaspersky.com", "kaspersky.com.example.net", "kaspersky.co", "www.kaspersky.co", "kaspersky-labs.com.evil.example"}
	for i, n := range names {
		a := ip(fmt.Sprintf("203.0.113.%d", 1+i))
		s.lookup(synth.L2{}, host, t0+int64(i)*sec, n, synth.DNSAnswer{Name: n, TTL: 300, Addr: a})
		s.tlsFlow(synth.L2{}, host, synth.Endpoint{Addr: a, Port: 443}, t0+int64(i)*sec+sec/2, tlsOpts{sni: n, sans: []string{n}})
		s.httpFlow(synth.L2{}, host, synth.Endpoint{Addr: a, Port: 80}, t0+int64(i)*sec+sec/2, n, "/", "", "text/html")
	}
	r := replay(t, s.bytes(), Config{})
	for _, ev := range r.evs {
		if ev.Phonehome.Vendor != "" || ev.Dataset == event.DatasetAlert || ev.Dataset == event.DatasetInventory {
			t.Errorf("look-alike attributed: %s %v vendor %q evidence %+v", ev.Dataset, ev.Destination.IP, ev.Phonehome.Vendor, ev.Phonehome.Evidence)
		}
	}
	if n := len(r.dataset(event.DatasetTLS)); n != len(names) {
		t.Fatalf("%d tls events, want %d", n, len(names))
	}
}

func TestIPv6AndVLAN(t *testing.T) {
	v6host := ip("2001:db8:56::31")
	v6dst := synth.Endpoint{Addr: ip("2001:db8:113::80"), Port: 443}
	vlan := synth.L2{VLANs: []uint16{100, 20}}
	vlanHost := ip("10.20.0.5")
	vlanDst := synth.Endpoint{Addr: ip("198.51.100.50"), Port: 443}
	s := newScen(t)
	s.lookup(synth.L2{}, v6host, t0, "ksn-b-geo.kaspersky-labs.com", synth.DNSAnswer{Name: "ksn-b-geo.kaspersky-labs.com", TTL: 300, Addr: v6dst.Addr})
	s.tlsFlow(synth.L2{}, v6host, v6dst, t0+sec, tlsOpts{})
	s.tlsFlow(vlan, vlanHost, vlanDst, t0+2*sec, tlsOpts{sni: "s01.upd.kaspersky.com"})
	// The same address outside the VLAN is another host.
	s.tlsFlow(synth.L2{}, vlanHost, vlanDst, t0+3*sec, tlsOpts{sni: "s01.upd.kaspersky.com"})
	r := replay(t, s.bytes(), Config{AlertWindow: time.Hour})
	al := checkAttributed(t, r, v6dst, "Kaspersky", "", EvDNSCorrelation, "ksn-b-geo.kaspersky-labs.com")
	if !al.Destination.IP.Is6() || al.Network.Type != "ipv6" {
		t.Errorf("v6 alert: %v %s", al.Destination.IP, al.Network.Type)
	}
	var tagged, untagged int
	for _, al := range r.alerts() {
		if al.Destination.IP != vlanDst.Addr {
			continue
		}
		if al.Rule.ID != "KL-UPD-001" || al.Severity != 73 {
			t.Errorf("vlan alert rule %s severity %d", al.Rule.ID, al.Severity)
		}
		if al.Network.NumVLANs == 2 && al.Network.VLANs[0] == 100 && al.Network.VLANs[1] == 20 {
			tagged++
		} else if al.Network.NumVLANs == 0 {
			untagged++
		}
	}
	if tagged != 1 || untagged != 1 {
		t.Errorf("vlan alerts: %d tagged, %d untagged; want one each (hosts differ by VLAN)", tagged, untagged)
	}
	inv := r.a.Inventory()
	if len(inv) != 3 {
		t.Fatalf("inventory rows %d, want 3: %+v", len(inv), inv)
	}
}

func TestDedupWindow(t *testing.T) {
	dst := synth.Endpoint{Addr: ip("198.51.100.60"), Port: 443}
	build := func() []byte {
		s := newScen(t)
		for i := 0; i < 5; i++ {
			s.tlsFlow(synth.L2{}, host, dst, t0+int64(i)*int64(time.Minute), tlsOpts{sni: "s02.upd.kaspersky.com"})
		}
		// Another host is not folded into the first one's alert.
		s.tlsFlow(synth.L2{}, host2, dst, t0+10*int64(time.Minute), tlsOpts{sni: "s02.upd.kaspersky.com"})
		// After the window: one alert carrying the four repeats.
		s.tlsFlow(synth.L2{}, host, dst, t0+2*int64(time.Hour), tlsOpts{sni: "s02.upd.kaspersky.com"})
		return s.bytes()
	}
	pcap := build()
	r := replay(t, pcap, Config{AlertWindow: time.Hour})
	var got []string
	for _, al := range r.alerts() {
		got = append(got, al.Source.IP.String()+"/"+itoa(al.Phonehome.Alert.Suppressed))
		if al.Phonehome.Alert.Window != int64(time.Hour) {
			t.Errorf("window %d", al.Phonehome.Alert.Window)
		}
	}
	if want := "192.168.56.21/0 192.168.56.22/0 192.168.56.21/4"; strings.Join(got, " ") != want {
		t.Errorf("alerts (host/suppressed) %q, want %q", strings.Join(got, " "), want)
	}
	if st := r.a.Stats(); st.Suppressed != 4 || st.Alerts != 3 {
		t.Errorf("stats %+v", st)
	}
	r0 := replay(t, pcap, Config{AlertWindow: 0})
	if n := len(r0.alerts()); n != 7 {
		t.Errorf("window 0: %d alerts, want 7 (one per flow)", n)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func TestUploadRaisesSeverity(t *testing.T) {
	tel := synth.Endpoint{Addr: ip("198.51.100.70"), Port: 443}
	small := synth.Endpoint{Addr: ip("198.51.100.71"), Port: 443}
	weak := synth.Endpoint{Addr: ip("77.74.176.20"), Port: 443}
	s := newScen(t)
	s.tlsFlow(synth.L2{}, host, tel, t0, tlsOpts{sni: "ksn-stat-geo.kaspersky-labs.com", upload: 2 << 20})
	s.tlsFlow(synth.L2{}, host2, small, t0+sec, tlsOpts{sni: "ksn-stat-geo.kaspersky-labs.com"})
	s.tcpFlow(synth.L2{}, host, weak, t0+2*sec, 3<<20, 1000)
	r := replay(t, s.bytes(), Config{AlertWindow: time.Hour})
	sev := map[string]*event.Event{}
	for _, al := range r.alerts() {
		sev[al.Destination.IP.String()] = al
	}
	if al := sev[tel.Addr.String()]; al == nil || al.Severity != 99 || !strings.Contains(al.Reason, "large upload") {
		t.Errorf("upload alert: %+v", al)
	}
	if al := sev[small.Addr.String()]; al == nil || al.Severity != 73 || strings.Contains(al.Reason, "upload") {
		t.Errorf("small alert: %+v", al)
	}
	// Weak evidence alone never reaches high, even for an upload.
	if al := sev[weak.Addr.String()]; al == nil || al.Severity != 47 || !strings.Contains(al.Reason, "weak") {
		t.Errorf("weak upload alert: %+v", al)
	}
}

func TestInventory(t *testing.T) {
	upd := synth.Endpoint{Addr: ip("198.51.100.10"), Port: 443}
	httpUpd := synth.Endpoint{Addr: ip("198.51.100.11"), Port: 80}
	s := newScen(t)
	s.lookup(synth.L2{}, host, t0, "dnl-01.geo.kaspersky.com", synth.DNSAnswer{Name: "dnl-01.geo.kaspersky.com", TTL: 300, Addr: upd.Addr})
	s.tlsFlow(synth.L2{}, host, upd, t0+sec, tlsOpts{})
	s.tlsFlow(synth.L2{}, host, upd, t0+2*sec, tlsOpts{sni: "dnl-01.geo.kaspersky.com"})
	s.httpFlow(synth.L2{}, host, httpUpd, t0+3*sec, "198.51.100.11", "/updaters/updater.xml.klz", "", "application/x-kaspavupdate")
	s.tlsFlow(synth.L2{}, host2, synth.Endpoint{Addr: ip("203.0.113.5"), Port: 443}, t0+4*sec, tlsOpts{sni: "www.example.com"})
	r := replay(t, s.bytes(), Config{AlertWindow: time.Hour})
	inv := r.dataset(event.DatasetInventory)
	if len(inv) != 1 {
		t.Fatalf("%d inventory events, want 1", len(inv))
	}
	ev := inv[0]
	in := ev.Phonehome.Inventory
	if ev.Kind != "state" || ev.Source.IP != host || ev.Phonehome.Vendor != "Kaspersky" || in == nil || len(ev.Phonehome.Policy) == 0 {
		t.Fatalf("inventory event %+v", ev)
	}
	if in.Flows != 3 || in.Lookups != 1 || in.Bytes == 0 {
		t.Errorf("flows %d lookups %d bytes %d; want 3, 1, >0", in.Flows, in.Lookups, in.Bytes)
	}
	if in.FirstSeen != t0 || in.LastSeen <= t0+3*sec {
		t.Errorf("first %d last %d", in.FirstSeen-t0, in.LastSeen-t0)
	}
	if strings.Join(in.Purposes, ",") != "update" {
		t.Errorf("purposes %v", in.Purposes)
	}
	for _, want := range []string{"KL-UPD-006", "KL-HTTP-001", "KL-HTTP-005"} {
		if !contains(in.Rules, want) {
			t.Errorf("rules %v lack %s", in.Rules, want)
		}
	}
	for _, want := range []string{"domain:dnl-01.geo.kaspersky.com", "dns_correlation:dnl-01.geo.kaspersky.com", "sni:dnl-01.geo.kaspersky.com", "http_path:/updaters/updater.xml.klz", "content_type:application/x-kaspavupdate"} {
		if !contains(in.Evidence, want) {
			t.Errorf("evidence %v lacks %s", in.Evidence, want)
		}
	}
	var sb strings.Builder
	if err := r.a.WriteInventory(&sb); err != nil {
		t.Fatal(err)
	}
	tbl := sb.String()
	for _, want := range []string{"HOST", "VENDOR", "192.168.56.21", "Kaspersky", "2026-03-02 09:00:00", "update", "KL-UPD-006"} {
		if !strings.Contains(tbl, want) {
			t.Errorf("table lacks %q:\n%s", want, tbl)
		}
	}
	if strings.Contains(tbl, "192.168.56.22") {
		t.Errorf("table lists the unattributed host:\n%s", tbl)
	}
}

// TestInventoryTick: the daemon's periodic report emits changed rows only.
func TestInventoryTick(t *testing.T) {
	a, err := New(Config{Signatures: defaultSet(t), InventoryEvery: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var out []*event.Event
	emit := func(ev *event.Event) { out = append(out, ev) }
	dnsEv := func(ts int64) *event.Event {
		return &event.Event{Timestamp: ts, Dataset: event.DatasetDNS, Source: event.Endpoint{IP: host},
			Destination: event.Endpoint{IP: resolver.Addr, Port: 53, HasPort: true},
			DNS:         &event.DNS{QuestionName: "s00.upd.kaspersky.com"}, Phonehome: event.Phonehome{FlowID: "f1"}}
	}
	a.Tick(t0, emit)
	a.Process(dnsEv(t0+sec), emit)
	a.Tick(t0+int64(time.Minute), emit)
	if len(out) != 0 {
		t.Fatalf("inventory before the interval: %d events", len(out))
	}
	a.Tick(t0+6*int64(time.Minute), emit)
	if len(out) != 1 || out[0].Dataset != event.DatasetInventory || out[0].Phonehome.Inventory.Lookups != 1 {
		t.Fatalf("first report: %+v", out)
	}
	a.Tick(t0+12*int64(time.Minute), emit)
	if len(out) != 1 {
		t.Fatalf("unchanged row reported again")
	}
	a.Finish(t0+13*int64(time.Minute), emit)
	if len(out) != 2 {
		t.Fatalf("finish did not report every row")
	}
}

func TestQUICSNIAndJA(t *testing.T) {
	// A QUIC Initial needs a real client: the corpus's Chrome handshake
	// (SNI www.google.com) with a test-only signature for that name.
	dir := writeSigFile(t, "quic.yaml", `format: phonehome-signatures/v1
vendor: {name: Example QUIC Vendor}
signatures:
  - id: TEST-QUIC-001
    product: Example agent
    purpose: telemetry
    severity: medium
    confidence: high
    description: test-only signature for the QUIC SNI path
    references: [https://example.com/quic]
    match:
      - domain: www.google.com
`)
	set, err := signatures.Load(false, dir)
	if err != nil {
		t.Fatal(err)
	}
	pcap := readCorpus(t, "ja4/quic-tls-handshake.pcapng")
	r := replay(t, pcap, Config{Signatures: set})
	var quicTagged bool
	for _, ev := range r.dataset(event.DatasetTLS) {
		if ev.Network.Protocol == "quic" && evHas(ev.Phonehome.Evidence, EvQUICSNI, "www.google.com") && ev.Phonehome.Vendor == "Example QUIC Vendor" {
			quicTagged = true
		}
	}
	if !quicTagged {
		t.Fatal("no quic tls event attributed through quic_sni")
	}
	if len(r.alerts()) == 0 {
		t.Fatal("no alert for the QUIC flow")
	}
}

// TestJA3JA4: fingerprints from a lab-derived signature file.
func TestJA3JA4(t *testing.T) {
	dst := synth.Endpoint{Addr: ip("198.51.100.80"), Port: 443}
	s := newScen(t)
	s.tlsFlow(synth.L2{}, host, dst, t0, tlsOpts{})
	pcap := s.bytes()
	// Learn the generated client's fingerprints, then sign them.
	var ja3, ja4 string
	for _, ev := range replay(t, pcap, Config{}).dataset(event.DatasetTLS) {
		ja3, ja4 = ev.TLS.ClientJA3, ev.TLS.ClientJA4
	}
	if ja3 == "" || ja4 == "" {
		t.Fatal("no fingerprints in the tls event")
	}
	for _, c := range []struct{ kind, value, evType string }{{"ja3", ja3, EvJA3}, {"ja4", ja4, EvJA4}} {
		dir := writeSigFile(t, "lab.yaml", `format: phonehome-signatures/v1
vendor: {name: Example Lab Vendor}
signatures:
  - id: TEST-`+strings.ToUpper(c.kind)+`-001
    product: Example agent
    purpose: telemetry
    severity: medium
    confidence: medium
    description: test-only fingerprint signature
    references: [https://example.com/lab]
    match:
      - `+c.kind+`: "`+c.value+`"
`)
		set, err := signatures.Load(true, dir)
		if err != nil {
			t.Fatal(err)
		}
		r := replay(t, pcap, Config{Signatures: set})
		al := checkAttributed(t, r, dst, "Example Lab Vendor", "TEST-"+strings.ToUpper(c.kind)+"-001", c.evType, c.value)
		if !strings.HasSuffix(al.Rule.Ruleset, "lab.yaml") {
			t.Errorf("ruleset %q, want the file", al.Rule.Ruleset)
		}
	}
}

func readCorpus(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(testcorpus.Path(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestUserAgent: a lab-derived User-Agent signature attributes an HTTP
// flow to a bare IP with nothing else to go on.
func TestUserAgent(t *testing.T) {
	dir := writeSigFile(t, "ua.yaml", `format: phonehome-signatures/v1
vendor: {name: Example UA Vendor}
signatures:
  - id: TEST-UA-001
    product: Example updater
    purpose: update
    severity: high
    confidence: medium
    description: test-only User-Agent signature
    references: [https://example.com/ua]
    match:
      - user_agent: '^ExampleUpdater/[0-9.]+ '
`)
	set, err := signatures.Load(true, dir)
	if err != nil {
		t.Fatal(err)
	}
	dst := synth.Endpoint{Addr: ip("198.51.100.90"), Port: 80}
	other := synth.Endpoint{Addr: ip("198.51.100.91"), Port: 80}
	s := newScen(t)
	s.httpFlow(synth.L2{}, host, dst, t0, "198.51.100.90", "/", "ExampleUpdater/2.1 (win64)", "application/octet-stream")
	s.httpFlow(synth.L2{}, host, other, t0+sec, "198.51.100.91", "/", "NotExampleUpdater/2.1 (win64)", "application/octet-stream")
	r := replay(t, s.bytes(), Config{Signatures: set})
	al := checkAttributed(t, r, dst, "Example UA Vendor", "TEST-UA-001", EvUserAgent, "ExampleUpdater/2.1 (win64)")
	if al.Threat.IndicatorType != "software" || al.Severity != 73 {
		t.Errorf("threat %+v severity %d", al.Threat, al.Severity)
	}
	for _, ev := range r.flowEvents(other) {
		if ev.Phonehome.Vendor != "" {
			t.Errorf("other UA attributed: %s", ev.Dataset)
		}
	}
}
