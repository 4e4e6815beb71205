package exfil

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	t0     = time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC).UnixNano()
	client = netip.MustParseAddr("10.1.2.3")
	server = netip.MustParseAddr("203.0.113.7")
)

func newDet(t testing.TB, mut func(*Config)) *Detectors {
	t.Helper()
	c := DefaultConfig()
	if mut != nil {
		mut(&c)
	}
	d, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// conn builds a final, answered TCP flow.
func conn(start int64, dur time.Duration, out, in uint64, id string) FlowRecord {
	return FlowRecord{Client: client, Server: server, ServerPort: 443, Transport: "tcp",
		ServerName: "c2.example.net", StartNS: start, EndNS: start + int64(dur),
		ClientBytes: out, ClientPackets: 5, ServerBytes: in, ServerPackets: 5,
		ServerReplied: true, Final: true, FlowID: id}
}

// feed replays flows in the order a flow table would close them (by end).
func feed(d *Detectors, flows []FlowRecord) []Alert {
	slices.SortStableFunc(flows, func(a, b FlowRecord) int { return int(a.EndNS - b.EndNS) })
	var out []Alert
	for i := range flows {
		out = d.ObserveFlow(&flows[i], out)
	}
	return out
}

func ofKind(as []Alert, k Kind) []Alert {
	var r []Alert
	for _, a := range as {
		if a.Kind == k {
			r = append(r, a)
		}
	}
	return r
}

const sixHours = 6 * time.Hour

// beaconFlows: one connection every 60 s with +-2 s jitter for six hours,
// small request sizes, as a C2 implant checking in.
func beaconFlows(rng *rand.Rand) []FlowRecord {
	var fs []FlowRecord
	for i := 0; i < int(sixHours/time.Minute); i++ {
		j := time.Duration(rng.IntN(4001)-2000) * time.Millisecond
		start := t0 + int64(time.Duration(i)*time.Minute+j)
		fs = append(fs, conn(start, 800*time.Millisecond, 620+uint64(rng.IntN(9)), 1400, fmt.Sprintf("b%d", i)))
	}
	return fs
}

func TestBeaconFlagged(t *testing.T) {
	d := newDet(t, nil)
	alerts := feed(d, beaconFlows(rand.New(rand.NewPCG(1, 2))))
	alerts = d.Flush(t0+int64(sixHours), alerts)
	bs := ofKind(alerts, KindBeacon)
	if len(bs) == 0 {
		t.Fatalf("no beacon alert; stats %+v", d.Stats())
	}
	first := bs[0]
	t.Logf("beacon: %d alerts, first %.3f at +%s: %s", len(bs), first.Score,
		time.Duration(first.TimeNS-t0).Round(time.Second), first.Reason)
	if first.Destination != "c2.example.net" || first.Client != client || len(first.FlowIDs) != 1 ||
		first.TimeNS > t0+int64(time.Hour) {
		t.Fatalf("alert identity or timing: %+v", first)
	}
	// The whole six hours, scored at the end.
	a := scorePair(t, d, pairKey{client: client, name: "c2.example.net"}, t0+int64(sixHours))
	f := a.Figures
	t.Logf("six-hour score %.3f: %+v", a.Score, f)
	if a.Score < 0.95 || f.TSScore < 0.95 || f.DSScore < 0.95 || f.HistScore < 0.9 || f.DurScore < 0.99 {
		t.Fatalf("beacon score too low: %+v", f)
	}
	if f.MedianIntervalSec < 58 || f.MedianIntervalSec > 62 || f.IntervalMADSec > 2 || f.Connections != 360 {
		t.Fatalf("beacon figures off: %+v", f)
	}
	if f.RITAThreatScore < 0.6 {
		t.Fatalf("RITA threat bucket %v, want >= medium", f.RITAThreatScore)
	}
	// Re-alerts only on a rise by the margin: scores strictly increase by >= 0.05.
	for i := 1; i < len(bs); i++ {
		if bs[i].Score < bs[i-1].Score+0.05-1e-9 {
			t.Fatalf("re-alert without margin: %v then %v", bs[i-1].Score, bs[i].Score)
		}
	}
	if len(ofKind(alerts, KindStrobe)) != 0 {
		t.Fatal("a 60 s beacon is not a strobe")
	}
}

func TestRandomTimesNotBeacon(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	n := int(sixHours / time.Minute)
	var fs []FlowRecord
	for i := range n {
		start := t0 + rng.Int64N(int64(sixHours))
		fs = append(fs, conn(start, 800*time.Millisecond, 620+uint64(rng.IntN(9)), 1400, fmt.Sprintf("r%d", i)))
	}
	// Mark the dataset span exactly as in the beacon test.
	fs = append(fs, FlowRecord{Client: netip.MustParseAddr("10.9.9.9"), Server: server, Transport: "udp",
		StartNS: t0, EndNS: t0 + 1, ServerReplied: true, Final: true})
	d := newDet(t, nil)
	alerts := feed(d, fs)
	alerts = d.Flush(t0+int64(sixHours), alerts)
	if bs := ofKind(alerts, KindBeacon); len(bs) != 0 {
		t.Fatalf("random connections flagged: %s", bs[0].Reason)
	}
	// Score it directly to document the margin.
	a := scorePair(t, d, pairKey{client: client, name: "c2.example.net"}, t0+int64(sixHours))
	t.Logf("random-times RITA score %.3f (ts %.3f ds %.3f hist %.3f dur %.3f)", a.Score,
		a.Figures.TSScore, a.Figures.DSScore, a.Figures.HistScore, a.Figures.DurScore)
	if a.Figures.TSScore > 0.7 {
		t.Fatalf("random intervals should have a poor timestamp score, got %v", a.Figures.TSScore)
	}
}

// scorePair evaluates one pair with the alert threshold at 0, to read its
// score and figures.
func scorePair(t *testing.T, d *Detectors, k pairKey, now int64) Alert {
	t.Helper()
	p, ok := d.beacon.pairs.get(k)
	if !ok {
		t.Fatalf("pair %v not tracked", k)
	}
	saved := d.beacon.cfg.AlertThreshold
	d.beacon.cfg.AlertThreshold = 0
	p.alerted = false
	a, ok := d.beacon.evaluate(k, p, now)
	d.beacon.cfg.AlertThreshold = saved
	if !ok {
		t.Fatalf("pair %v unscorable", k)
	}
	return a
}

func TestStrobeFlagged(t *testing.T) {
	var fs []FlowRecord
	for i := range 2 * 3600 * 2 { // two connections a second for two hours
		fs = append(fs, conn(t0+int64(i)*int64(500*time.Millisecond), 100*time.Millisecond, 300, 300, fmt.Sprintf("s%d", i)))
	}
	d := newDet(t, nil)
	alerts := feed(d, fs)
	alerts = d.Flush(t0+int64(2*time.Hour), alerts)
	ss := ofKind(alerts, KindStrobe)
	if len(ss) != 1 {
		t.Fatalf("want one strobe alert, got %d (%v)", len(ss), alerts)
	}
	if ss[0].Score != 0.8 || ss[0].Figures.ConnsPerDay < 86400 {
		t.Fatalf("strobe alert %+v", ss[0])
	}
	if len(ofKind(alerts, KindBeacon)) != 0 {
		t.Fatal("strobes are not scored as beacons (RITA count < 86400 rule)")
	}
	if st := d.Stats(); st.BeaconConnsDropped == 0 || st.BeaconPairs != 1 {
		t.Fatalf("per-pair cap not exercised: %+v", st)
	}
}

func TestFailedAttemptsNotBeacon(t *testing.T) {
	fs := beaconFlows(rand.New(rand.NewPCG(1, 2)))
	for i := range fs {
		fs[i].ServerReplied = false
		fs[i].ServerBytes, fs[i].ServerPackets = 0, 0
	}
	d := newDet(t, nil)
	alerts := feed(d, fs)
	alerts = d.Flush(t0+int64(sixHours), alerts)
	if len(alerts) != 0 {
		t.Fatalf("failed attempts alerted: %v", alerts[0].Reason)
	}
	if st := d.Stats(); st.FlowsFailed != uint64(len(fs)) || st.BeaconPairs != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestInterimRecordsCountOnce(t *testing.T) {
	// Each beacon connection also emits an interim record: the pair must see
	// each connection once (same alerts, same connection count).
	fs := beaconFlows(rand.New(rand.NewPCG(1, 2)))
	var with []FlowRecord
	for _, f := range fs {
		im := f
		im.Final = false
		im.EndNS = f.StartNS + 1
		with = append(with, im, f)
	}
	a := newDet(t, nil)
	b := newDet(t, nil)
	x := a.Flush(t0+int64(sixHours), feed(a, fs))
	y := b.Flush(t0+int64(sixHours), feed(b, with))
	if len(x) == 0 || len(x) != len(y) || x[len(x)-1].Figures.Connections != y[len(y)-1].Figures.Connections {
		t.Fatalf("interim records changed the result: %d vs %d alerts", len(x), len(y))
	}
}

func TestUploadHeavy(t *testing.T) {
	d := newDet(t, nil)
	up := conn(t0, 3*time.Minute, 50_000_000, 12_000, "up1")
	up.ServerName = "files.example.org"
	down := conn(t0, 3*time.Minute, 400_000, 50_000_000, "down1")
	down.ServerName = "cdn.example.org"
	// Interim then final record of the upload: one alert only.
	im := up
	im.Final, im.EndNS, im.ClientBytes = false, t0+int64(2*time.Minute), 30_000_000
	var out []Alert
	out = d.ObserveFlow(&im, out)
	out = d.ObserveFlow(&up, out)
	out = d.ObserveFlow(&down, out)
	us := ofKind(out, KindUploadHeavy)
	if len(us) != 1 {
		t.Fatalf("want one upload alert, got %d: %v", len(us), out)
	}
	a := us[0]
	t.Logf("upload: %.3f %s", a.Score, a.Reason)
	if a.Destination != "files.example.org" || a.Figures.BytesOut != 30_000_000 || a.Figures.Ratio < 10 || a.Score < 0.5 || a.Score > 1 {
		t.Fatalf("upload alert %+v", a)
	}
	if !strings.Contains(a.Reason, "still open") {
		t.Fatalf("interim alert should say the flow is open: %s", a.Reason)
	}

	// The full 50 MB final record alone scores higher than the floor.
	d2 := newDet(t, nil)
	out = d2.ObserveFlow(&up, nil)
	if len(out) != 1 || out[0].Figures.BytesOut != 50_000_000 || out[0].Score <= 0.6 {
		t.Fatalf("50 MB upload: %v", out)
	}
}

func TestUploadAcrossManyFlows(t *testing.T) {
	d := newDet(t, nil)
	var fs []FlowRecord
	for i := range 30 { // 30 x 1 MB in half an hour, tiny replies
		f := conn(t0+int64(i)*int64(time.Minute), 20*time.Second, 1_000_000, 2_000, fmt.Sprintf("u%d", i))
		f.ServerName = "paste.example.com"
		fs = append(fs, f)
	}
	alerts := ofKind(feed(d, fs), KindUploadHeavy)
	if len(alerts) != 1 || alerts[0].Figures.Flows != 10 || alerts[0].Figures.BytesOut != 10_000_000 {
		t.Fatalf("pair upload alerts: %+v", alerts)
	}
}

func TestLongConnection(t *testing.T) {
	d := newDet(t, nil)
	var out []Alert
	for m := 30; m <= 300; m += 30 { // interim every 30 min, final at 5 h
		r := conn(t0, time.Duration(m)*time.Minute, uint64(m)*1000, uint64(m)*2000, "long1")
		r.ServerName = ""
		r.Final = m == 300
		out = d.ObserveFlow(&r, out)
	}
	ls := ofKind(out, KindLongConnection)
	if len(ls) != 2 {
		t.Fatalf("want 2 long-connection alerts, got %d: %v", len(ls), out)
	}
	if ls[0].Figures.ThresholdSec != 3600 || ls[1].Figures.ThresholdSec != 14400 {
		t.Fatalf("thresholds %v %v", ls[0].Figures.ThresholdSec, ls[1].Figures.ThresholdSec)
	}
	// RITA bucket: 1 h -> 0.2; 4 h -> 0.4.
	if ls[0].Score != 0.2 || ls[1].Score != 0.4 || ls[0].Destination != server.String() {
		t.Fatalf("scores %v %v dest %q", ls[0].Score, ls[1].Score, ls[0].Destination)
	}
	if !strings.Contains(ls[0].Reason, "has been open") {
		t.Fatalf("reason: %s", ls[0].Reason)
	}
	// A flow that closes before an hour never alerts.
	r := conn(t0, 59*time.Minute, 1, 1, "short")
	if out := d.ObserveFlow(&r, nil); len(out) != 0 {
		t.Fatalf("short flow alerted: %v", out)
	}
}

func TestBoundedUnderManyPairs(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000,000 pairs")
	}
	const pairs = 1_000_000
	const limit = 1000
	d := newDet(t, func(c *Config) {
		c.Beacon.MaxPairs, c.DNSTunnel.MaxPairs = limit, limit
		c.Upload.MaxPairs, c.Upload.MaxFlows, c.LongConn.MaxFlows = limit, limit, limit
	})
	var out []Alert
	var r FlowRecord
	var q DNSQuery
	names := make([]string, 4096) // distinct names, reused to keep the test light
	ids := make([]string, 3000)   // distinct flow ids cycling, so heavy flows have > limit ids
	for i := range names {
		names[i] = fmt.Sprintf("host%d.example%d.com", i, i)
	}
	for i := range ids {
		ids[i] = fmt.Sprintf("f%d", i)
	}
	for i := range pairs {
		c := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		start := t0 + int64(i)*int64(time.Millisecond)
		// Every 100th flow is long and upload-heavy, so the flow-ID caps fill too.
		dur, up, id := time.Second, uint64(1000), ids[i%len(ids)]
		if i%100 == 0 {
			dur, up, id = 2*time.Hour, 20_000_000, ids[(i/100)%len(ids)]
		}
		r = FlowRecord{Client: c, Server: server, ServerPort: 443, Transport: "tcp", StartNS: start,
			EndNS: start + int64(dur), ClientBytes: up, ServerBytes: 100,
			ServerReplied: true, Final: i%2 == 0, FlowID: id}
		out = d.ObserveFlow(&r, out[:0])
		n := names[i%len(names)]
		q = DNSQuery{Client: c, Name: n, RegisteredDomain: n[strings.IndexByte(n, '.')+1:], QType: 1, TimeNS: start}
		out = d.ObserveDNS(&q, out[:0])
	}
	st := d.Stats()
	t.Logf("stats %+v", st)
	if st.BeaconPairs != limit || st.DNSPairs != limit || st.UploadPairs != limit || st.LongFlows > limit {
		t.Fatalf("caps not held: %+v", st)
	}
	if st.BeaconPairEvictions != pairs/2-limit || st.DNSPairEvictions != pairs-limit ||
		st.UploadPairEvictions == 0 || st.LongFlowEvictions == 0 || st.UploadFlowEvictions == 0 {
		t.Fatalf("evictions not counted: %+v", st)
	}
	if int(d.beacon.pairs.n) > limit || int(d.dns.pairs.n) > limit {
		t.Fatal("node slices grew past the cap")
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("heap in use after 1,000,000 pairs: %d KiB", ms.HeapInuse/1024)
	if ms.HeapInuse > 64<<20 {
		t.Fatalf("heap %d bytes: state not bounded", ms.HeapInuse)
	}
	runtime.KeepAlive(d)
}
