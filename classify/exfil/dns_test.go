package exfil

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func q(name, reg string, qtype uint16, at int64) DNSQuery {
	return DNSQuery{Client: client, Name: name, RegisteredDomain: reg, QType: qtype, TimeNS: at,
		NameLen: len(name) + 2, AnswerBytes: 60, AnswerCount: 1}
}

func feedDNS(d *Detectors, qs []DNSQuery) []Alert {
	var out []Alert
	for i := range qs {
		out = d.ObserveDNS(&qs[i], out)
	}
	return out
}

const b32 = "abcdefghijklmnopqrstuvwxyz234567"

func randLabel(rng *rand.Rand, n int) string {
	var b strings.Builder
	for range n {
		b.WriteByte(b32[rng.IntN(len(b32))])
	}
	return b.String()
}

func TestDNSTunnelFlagged(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var qs []DNSQuery
	for i := range 3000 { // iodine/dnscat-like: two 40-char base32 labels, TXT, two a second
		name := randLabel(rng, 40) + "." + randLabel(rng, 20) + ".t.exfil-tunnel.com"
		qs = append(qs, q(name, "exfil-tunnel.com", 16, t0+int64(i)*int64(500*time.Millisecond)))
	}
	d := newDet(t, nil)
	alerts := feedDNS(d, qs)
	alerts = d.Flush(qs[len(qs)-1].TimeNS, alerts)
	ts := ofKind(alerts, KindDNSTunnel)
	if len(ts) == 0 {
		t.Fatalf("tunnel not flagged; stats %+v", d.Stats())
	}
	first, last := ts[0], ts[len(ts)-1]
	t.Logf("tunnel: %d alerts, first %.3f: %s", len(ts), first.Score, first.Reason)
	t.Logf("last %.3f: %s", last.Score, last.Reason)
	if first.Figures.UniqueSubdomains > 200 {
		t.Fatalf("first alert should come near RITA's 100-name floor, came at %d", first.Figures.UniqueSubdomains)
	}
	if len(ts) < 2 || last.Score <= first.Score {
		t.Fatalf("alerts should escalate as unique names grow: %d alerts", len(ts))
	}
	if last.Score < 0.9 {
		t.Fatalf("last alert score %v", last.Score)
	}
	// Whole-capture figures: re-score the pair with the threshold at 0.
	k := dnsKey{client: client, domain: "exfil-tunnel.com"}
	p, _ := d.dns.pairs.get(k)
	p.alerted = false
	d.dns.cfg.AlertThreshold = 0
	full, _ := d.dns.evaluate(k, p, qs[len(qs)-1].TimeNS)
	t.Logf("whole capture %.3f: %s", full.Score, full.Reason)
	f := full.Figures
	if full.Score != 0.95 || !f.UniqueApprox || f.UniqueSubdomains < 2700 || f.UniqueSubdomains > 3300 ||
		f.MeanEntropy < 4 || f.SuspiciousQTypePct != 100 || f.Queries != 3000 || full.Destination != "exfil-tunnel.com" {
		t.Fatalf("tunnel figures: score %v %+v", last.Score, f)
	}
	if st := d.Stats(); st.DNSPairsApproximate != 1 {
		t.Fatalf("exact set should have switched to HyperLogLog once: %+v", st)
	}
}

// A workstation browsing: hundreds of ordinary names across many domains,
// each looked up repeatedly (A and AAAA), over a working day.
func TestOrdinaryBrowsingNotTunnel(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	hosts := []string{"www", "mail", "api", "cdn", "static", "login", "img", "m", "accounts", "assets", "app", "docs"}
	words := []string{"news", "shop", "bank", "travel", "weather", "sports", "cloud", "video", "music", "games",
		"health", "school", "city", "market", "energy", "social", "photo", "maps", "code", "search"}
	tlds := []string{"com", "org", "net", "de", "co.uk", "io"}
	var qs []DNSQuery
	at := t0
	for i := range 5000 {
		w := words[rng.IntN(len(words))] + words[rng.IntN(len(words))]
		reg := w + "." + tlds[rng.IntN(len(tlds))]
		name := hosts[rng.IntN(len(hosts))] + "." + reg
		at += int64(rng.IntN(10_000)) * int64(time.Millisecond)
		qs = append(qs, q(name, reg, []uint16{1, 28, 65}[i%3], at))
	}
	// And a large corporate domain with 180 ordinary host names (more than
	// RITA's 100 floor): low entropy and short labels keep it below the line.
	for i := range 180 {
		name := fmt.Sprintf("%s-%02d.corp.example.com", hosts[i%len(hosts)], i/len(hosts))
		qs = append(qs, q(name, "example.com", 1, at+int64(i)*int64(time.Second)))
	}
	d := newDet(t, nil)
	alerts := feedDNS(d, qs)
	alerts = d.Flush(at+int64(time.Hour), alerts)
	if len(alerts) != 0 {
		t.Fatalf("ordinary names flagged: %s", alerts[0].Reason)
	}
	p, _ := d.dns.pairs.get(dnsKey{client: client, domain: "example.com"})
	if p == nil || p.unique() != 180 {
		t.Fatal("corporate domain not tracked exactly")
	}
	d.dns.cfg.AlertThreshold = 0
	a, _ := d.dns.evaluate(dnsKey{client: client, domain: "example.com"}, p, at)
	t.Logf("corporate domain score %.3f: %s", a.Score, a.Reason)
}

func TestDNSBenignFloodsNotTunnel(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var qs []DNSQuery
	at := t0
	next := func() int64 { at += int64(50 * time.Millisecond); return at }
	ip4 := func() string {
		return fmt.Sprintf("%d.%d.%d.%d", rng.IntN(256), rng.IntN(256), rng.IntN(256), rng.IntN(256))
	}
	for range 3000 {
		// Reverse lookups.
		qs = append(qs, q(ip4()+".in-addr.arpa", "in-addr.arpa", 12, next()))
		// DNSBL on a listed zone and on an unlisted one (pattern only).
		qs = append(qs, q(ip4()+".zen.spamhaus.org", "spamhaus.org", 1, next()))
		qs = append(qs, q(ip4()+".bl.mailfilter-rbl.example", "mailfilter-rbl.example", 1, next()))
		qs = append(qs, q(ip4()+".dnsbl.other-list.net", "other-list.net", 16, next()))
		// mDNS / .local.
		qs = append(qs, q("android-"+randLabel(rng, 16)+".local", "", 255, next()))
		// CDN edge names.
		qs = append(qs, q(fmt.Sprintf("e%d.dscb.akamaiedge.net", rng.IntN(1_000_000)), "akamaiedge.net", 1, next()))
		qs = append(qs, q("d"+randLabel(rng, 13)+".cloudfront.net", "cloudfront.net", 1, next()))
	}
	// IPv6 DNSBL lookup: 32 nibbles under an unlisted zone.
	for range 500 {
		var b strings.Builder
		for range 32 {
			b.WriteByte("0123456789abcdef"[rng.IntN(16)])
			b.WriteByte('.')
		}
		qs = append(qs, q(b.String()+"v6bl.other-list.net", "other-list.net", 1, next()))
		qs = append(qs, q(strings.TrimSuffix(b.String(), ".")+".ip6.arpa", "ip6.arpa", 12, next()))
	}
	d := newDet(t, nil)
	alerts := feedDNS(d, qs)
	alerts = d.Flush(at, alerts)
	if len(alerts) != 0 {
		t.Fatalf("benign flood flagged: %s", alerts[0].Reason)
	}
	st := d.Stats()
	if st.DNSIgnoredSuffix != 6500 || st.DNSReversedIP != 6500 || st.DNSKnownBenign != 9000 {
		t.Fatalf("benign classes miscounted: %+v", st)
	}
}

func TestReversedIP(t *testing.T) {
	yes := []string{"4.3.2.1.zen", "1.2.0.127", "255.0.10.9.bl.x", strings.Repeat("a.", 31) + "f.list"}
	no := []string{"www", "1.2.3", "256.1.1.1.bl", "12.ab.3.4.x", "a.b.c.d.e", strings.Repeat("a.", 30) + "zz.list", ""}
	for _, s := range yes {
		if !reversedIP(s) {
			t.Errorf("reversedIP(%q) = false", s)
		}
	}
	for _, s := range no {
		if reversedIP(s) {
			t.Errorf("reversedIP(%q) = true", s)
		}
	}
}

func TestLabelEntropy(t *testing.T) {
	// "aabb": p=1/2,1/2 -> 1 bit; "abcd.efgh": 8 distinct -> 3 bits, max label 4.
	if e, m := labelEntropy("aabb"); e != 1 || m != 4 {
		t.Fatalf("entropy(aabb) = %v %d", e, m)
	}
	if e, m := labelEntropy("abcd.efgh"); e != 3 || m != 4 {
		t.Fatalf("entropy(abcd.efgh) = %v %d", e, m)
	}
	if e, _ := labelEntropy("..."); e != 0 {
		t.Fatal("empty labels have no entropy")
	}
}

func TestHyperLogLogAccuracy(t *testing.T) {
	for _, n := range []int{50, 1000, 20000} {
		var h hll
		for i := range n {
			h.add(fnv64(fmt.Sprintf("name-%d.example.com", i)))
		}
		got := float64(h.estimate())
		if got < float64(n)*0.9 || got > float64(n)*1.1 {
			t.Errorf("estimate(%d) = %v", n, got)
		}
	}
}

func TestDNSWindowResets(t *testing.T) {
	d := newDet(t, func(c *Config) { c.DNSTunnel.Window = time.Hour })
	var qs []DNSQuery
	for i := range 150 { // 150 names, but spread so that no hour holds 100
		qs = append(qs, q(fmt.Sprintf("%s.x.slow-example.com", randLabel(rand.New(rand.NewPCG(uint64(i), 1)), 40)),
			"slow-example.com", 16, t0+int64(i)*int64(time.Minute)))
	}
	if alerts := feedDNS(d, qs); len(alerts) != 0 {
		t.Fatalf("window not applied: %v", alerts[0].Reason)
	}
	if st := d.Stats(); st.DNSWindowResets != 2 {
		t.Fatalf("window resets %d, want 2", st.DNSWindowResets)
	}
	_ = netip.Addr{}
}
