package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// sampleMMDB writes a test database of type typ mapping the sample's vendor
// range (RFC 5737 documentation space) to data.
func sampleMMDB(t *testing.T, typ string, data mmdbtype.Map) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: typ, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	_, n, _ := net.ParseCIDR("198.51.100.0/24")
	if err := tree.Insert(n, data); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), typ+".mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	return path
}

func decodeLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var evs []map[string]any
	for _, l := range lines(out) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("bad JSON: %v: %s", err, l)
		}
		evs = append(evs, m)
	}
	return evs
}

// field returns a dotted path of a decoded event.
func field(m map[string]any, path string) any {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

// TestReplayAttribution replays the sample with both GeoIP databases and
// checks the vendor alerts, the tagging of attributed flows, the inventory,
// the --summary table, and that every field is ECS (or phonehome.*).
func TestReplayAttribution(t *testing.T) {
	country := sampleMMDB(t, "GeoLite2-Country", mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String("RU")}})
	asn := sampleMMDB(t, "GeoLite2-ASN", mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(200107), "autonomous_system_organization": mmdbtype.String("Kaspersky Lab AO")})
	code, out, errs := runCLI(t, nil, "replay", "--quiet", "--summary", "--alert-window", "0", "--geoip-country", country, "--geoip-asn", asn, sample(t))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	evs := decodeLines(t, out)
	alertsByDst := map[string]map[string]any{}
	var inventory []map[string]any
	for _, ev := range evs {
		switch field(ev, "event.dataset") {
		case "phonehome.alert":
			alertsByDst[field(ev, "destination.ip").(string)] = ev
		case "phonehome.inventory":
			inventory = append(inventory, ev)
		}
	}
	// The update TLS flow (SNI), the KSN flow without SNI (DNS
	// correlation) and the bare-IP HTTP updater (path, content type).
	for dst, wantEvidence := range map[string]string{"198.51.100.10": "sni", "198.51.100.20": "dns_correlation", "198.51.100.11": "http_path"} {
		al := alertsByDst[dst]
		if al == nil {
			t.Errorf("no alert for %s", dst)
			continue
		}
		if field(al, "phonehome.vendor") != "Kaspersky" || field(al, "rule.category") != "vendor_telemetry" || field(al, "event.kind") != "alert" {
			t.Errorf("alert %s: %v", dst, al)
		}
		if field(al, "destination.geo.country_iso_code") != "RU" || field(al, "destination.as.number") != float64(200107) || field(al, "destination.as.organization.name") != "Kaspersky Lab AO" {
			t.Errorf("alert %s lacks geo: %v", dst, field(al, "destination"))
		}
		if pol, _ := field(al, "phonehome.policy").([]any); len(pol) == 0 {
			t.Errorf("alert %s lacks policies", dst)
		}
		found := false
		evl, _ := field(al, "phonehome.evidence").([]any)
		for _, e := range evl {
			if e.(map[string]any)["type"] == wantEvidence {
				found = true
			}
		}
		if !found {
			t.Errorf("alert %s evidence %v lacks %s", dst, evl, wantEvidence)
		}
	}
	if al := alertsByDst["198.51.100.20"]; al != nil && field(al, "destination.domain") != "ksn-a-geo.kaspersky-labs.com" {
		t.Errorf("correlated alert destination.domain %v", field(al, "destination.domain"))
	}
	// Every event of the attributed flows is tagged.
	for _, ev := range evs {
		dst, _ := field(ev, "destination.ip").(string)
		if dst != "198.51.100.10" && dst != "198.51.100.20" && dst != "198.51.100.11" {
			continue
		}
		if field(ev, "phonehome.vendor") != "Kaspersky" || field(ev, "rule.id") == nil || field(ev, "phonehome.purpose") == nil {
			t.Errorf("%v event to %s untagged", field(ev, "event.dataset"), dst)
		}
	}
	// Browsing hosts are not attributed.
	for _, ev := range evs {
		if src, _ := field(ev, "source.ip").(string); src == "192.168.56.22" && field(ev, "phonehome.vendor") != nil {
			t.Errorf("browser event attributed: %v", ev)
		}
	}
	if len(inventory) != 1 || field(inventory[0], "source.ip") != "192.168.56.21" || field(inventory[0], "event.kind") != "state" {
		t.Fatalf("inventory: %v", inventory)
	}
	// Connections to the vendor: two TLS at the start, five update checks
	// through the hour, one plain-HTTP updater fetch.
	if field(inventory[0], "phonehome.inventory.flows") != float64(8) {
		t.Errorf("inventory flows %v, want 8", field(inventory[0], "phonehome.inventory.flows"))
	}
	for _, want := range []string{"vendor inventory: 1 host/vendor pair(s)", "HOST", "192.168.56.21", "Kaspersky", "KL-UPD-006"} {
		if !strings.Contains(errs, want) {
			t.Errorf("--summary lacks %q:\n%s", want, errs)
		}
	}
	// Every field, including the geo and alert fields, is ECS.
	ecs := ecsFields(t)
	for _, ev := range evs {
		checkECS(t, ecs, ev)
	}
}

func TestReplayAlertWindow(t *testing.T) {
	_, zero, _ := runCLI(t, nil, "replay", "--quiet", "--alert-window", "0", sample(t))
	_, hour, _ := runCLI(t, nil, "replay", "--quiet", sample(t))
	count := func(out string) int { return strings.Count(out, `"dataset":"phonehome.alert"`) }
	if count(zero) <= count(hour) || count(hour) == 0 {
		t.Errorf("alerts: window 0 → %d, 1h → %d; want more with 0", count(zero), count(hour))
	}
	if code, _, errs := runCLI(t, nil, "replay", "--quiet", "--alert-window", "-1s", sample(t)); code == 0 || !strings.Contains(errs, "alert-window") {
		t.Errorf("negative window: exit %d %q", code, errs)
	}
}

const goodSigFile = `format: phonehome-signatures/v1
vendor: {name: Example Vendor}
signatures:
  - id: EX-TEL-001
    product: Example agent
    purpose: telemetry
    severity: medium
    confidence: high
    description: test-only telemetry endpoint
    references: [https://example.com/telemetry]
    match:
      - domain: telemetry.example.com
`

const brokenSigFile = `format: phonehome-signatures/v1
vendor: {name: Example Vendor}
signatures:
  - id: EX-TEL-002
    product: Example agent
    purpose: exfiltrate
    severity: medium
    confidence: high
    description: broken on purpose
    references: [https://example.com/telemetry]
    match:
      - ip: 10.0.0.1/8
`

func TestSignaturesCommand(t *testing.T) {
	good := t.TempDir()
	if err := os.WriteFile(filepath.Join(good, "example.yaml"), []byte(goodSigFile), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := t.TempDir()
	badFile := filepath.Join(bad, "broken.yaml")
	if err := os.WriteFile(badFile, []byte(brokenSigFile), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, nil, "signatures", "list")
	if code != 0 || !strings.Contains(out, "KL-UPD-001") || strings.Contains(out, "EX-TEL-001") {
		t.Fatalf("list: exit %d %q", code, errs)
	}
	code, out, _ = runCLI(t, nil, "signatures", "list", "--signatures", good)
	if code != 0 || !strings.Contains(out, "KL-UPD-001") || !strings.Contains(out, "EX-TEL-001") {
		t.Fatalf("layered list: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, nil, "signatures", "list", "--no-default-signatures", "--signatures", good)
	if code != 0 || strings.Contains(out, "KL-UPD-001") || !strings.Contains(out, "EX-TEL-001") {
		t.Fatalf("list without defaults: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, nil, "signatures", "check", filepath.Join(good, "example.yaml"))
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("check good: exit %d %q", code, out)
	}
	code, out, _ = runCLI(t, nil, "signatures", "check", badFile)
	if code != 1 || !strings.Contains(out, "broken.yaml:6:") || !strings.Contains(out, "broken.yaml:12:") {
		t.Fatalf("check broken: exit %d %q", code, out)
	}
	if code, _, _ := runCLI(t, nil, "signatures", "bogus"); code != 2 {
		t.Errorf("unknown subcommand: exit %d", code)
	}
	// A broken file is a clear error at the start of a replay.
	code, out, errs = runCLI(t, nil, "replay", "--quiet", "--signatures", bad, sample(t))
	if code != 1 || out != "" || !strings.Contains(errs, "broken.yaml:6:") {
		t.Fatalf("replay with broken signatures: exit %d stdout %d bytes stderr %q", code, len(out), errs)
	}
	code, _, errs = runCLI(t, nil, "replay", "--quiet", "--geoip-asn", badFile, sample(t))
	if code != 1 || !strings.Contains(errs, "broken.yaml") {
		t.Fatalf("replay with a bad database: exit %d %q", code, errs)
	}
}
