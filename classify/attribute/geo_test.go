package attribute

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/phonehome/phonehome/event"
	"github.com/phonehome/phonehome/synth"
)

func testMMDB(t *testing.T) *MMDB {
	t.Helper()
	asn := writeMMDB(t, "GeoLite2-ASN", map[string]mmdbtype.Map{
		"198.51.100.0/24":   asnRecord(200107, "Kaspersky Lab AO"),
		"2001:db8:113::/48": asnRecord(64500, "Example Transit"),
	})
	country := writeMMDB(t, "GeoLite2-Country", map[string]mmdbtype.Map{
		"198.51.100.0/24":   countryRecord("RU"),
		"2001:db8:113::/48": countryRecord("NL"),
	})
	db, err := OpenMMDB(country, asn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestGeoEnrichmentAndASNEvidence(t *testing.T) {
	db := testMMDB(t)
	asnOnly := synth.Endpoint{Addr: ip("198.51.100.77"), Port: 443}
	v6 := synth.Endpoint{Addr: ip("2001:db8:113::80"), Port: 443}
	s := newScen(t)
	s.tcpFlow(synth.L2{}, host, asnOnly, t0, 400, 400)
	s.tlsFlow(synth.L2{}, ip("2001:db8:56::31"), v6, t0+sec, tlsOpts{sni: "www.example.com"})
	r := replay(t, s.bytes(), Config{Geo: db})
	al := checkAttributed(t, r, asnOnly, "Kaspersky", "KL-ASN-001", EvASN, "AS200107")
	if al.Severity != 21 || !strings.Contains(al.Reason, "weak") {
		t.Errorf("ASN alone: severity %d reason %q", al.Severity, al.Reason)
	}
	for _, ev := range r.flowEvents(asnOnly) {
		g := ev.Destination.Geo
		if g.CountryISOCode != "RU" || g.ASNumber != 200107 || g.ASOrg != "Kaspersky Lab AO" {
			t.Errorf("%s geo %+v", ev.Dataset, g)
		}
	}
	var tlsSeen bool
	for _, ev := range r.flowEvents(v6) {
		if ev.Phonehome.Vendor != "" {
			t.Errorf("unrelated v6 flow attributed: %+v", ev.Phonehome.Evidence)
		}
		if ev.Dataset == event.DatasetTLS {
			tlsSeen = true
		}
		if g := ev.Destination.Geo; g.CountryISOCode != "NL" || g.ASNumber != 64500 {
			t.Errorf("v6 %s geo %+v", ev.Dataset, g)
		}
	}
	if !tlsSeen {
		t.Error("no tls event to the v6 server")
	}
	// Without databases everything still works, without geo.
	r = replay(t, s.bytes(), Config{})
	for _, ev := range r.evs {
		if ev.Destination.Geo != (event.Geo{}) {
			t.Fatalf("geo without databases: %+v", ev.Destination.Geo)
		}
	}
}

func TestOpenMMDBErrors(t *testing.T) {
	asn := writeMMDB(t, "GeoLite2-ASN", map[string]mmdbtype.Map{"198.51.100.0/24": asnRecord(1, "x")})
	if _, err := OpenMMDB(asn, ""); err == nil || !strings.Contains(err.Error(), "not a country database") {
		t.Errorf("ASN file as country: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.mmdb")
	if err := os.WriteFile(bad, []byte("not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenMMDB("", bad); err == nil || !strings.Contains(err.Error(), "bad.mmdb") {
		t.Errorf("garbage file: %v", err)
	}
	if _, err := OpenMMDB(filepath.Join(t.TempDir(), "missing.mmdb"), ""); err == nil {
		t.Error("missing file opened")
	}
}
