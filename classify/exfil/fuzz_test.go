package exfil

import (
	"net/netip"
	"testing"
)

func checkAlerts(t *testing.T, as []Alert) {
	for _, a := range as {
		if a.Score < 0 || a.Score > 1 || a.Reason == "" || a.Kind == "" {
			t.Fatalf("bad alert %+v", a)
		}
	}
}

// FuzzObserveDNS feeds hostile names: the detector must not panic, and any
// alert must be well formed.
func FuzzObserveDNS(f *testing.F) {
	f.Add("4.3.2.1.zen.spamhaus.org", "spamhaus.org", uint16(1), int64(0), 10)
	f.Add("aGVsbG8gd29ybGQ.t.tunnel.example", "tunnel.example", uint16(16), int64(1e9), 80)
	f.Add("..", "", uint16(0), int64(-5), -1)
	f.Add("x.local", "x.local", uint16(255), int64(7), 0)
	f.Add("a.b.c.d.e.f.0.1.2.3.4.5.6.7.8.9.a.b.c.d.e.f.0.1.2.3.4.5.6.7.8.9.list.example", "list.example", uint16(1), int64(3), 3)
	f.Fuzz(func(t *testing.T, name, reg string, qtype uint16, at int64, ans int) {
		c := DefaultConfig()
		c.DNSTunnel.CandidateSubdomains = 1
		c.DNSTunnel.ExactSubdomains = 2
		c.DNSTunnel.AlertThreshold = 0
		d, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		var out []Alert
		for i := range 4 {
			q := DNSQuery{Client: netip.MustParseAddr("192.0.2.1"), Name: name + string(rune('a'+i)) + "." + reg,
				RegisteredDomain: reg, QType: qtype, TimeNS: at + int64(i), AnswerBytes: ans}
			out = d.ObserveDNS(&q, out)
			q.Name = name
			out = d.ObserveDNS(&q, out)
		}
		out = d.Flush(at, out)
		checkAlerts(t, out)
	})
}

// FuzzObserveFlow feeds lying counters and times.
func FuzzObserveFlow(f *testing.F) {
	f.Add(int64(0), int64(1e9), uint64(1), uint64(1), true, true, "tcp", "x")
	f.Add(int64(5e18), int64(-1), uint64(1<<63), uint64(0), false, true, "udp", "")
	f.Add(int64(1e9), int64(4e12), uint64(5e7), uint64(10), true, false, "tcp", "long")
	f.Fuzz(func(t *testing.T, start, dur int64, out, in uint64, replied, final bool, transport, id string) {
		c := DefaultConfig()
		c.Beacon.MinDatasetSpan = 0
		c.Beacon.AlertThreshold = 0
		d, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		var as []Alert
		for i := range 8 {
			r := FlowRecord{Client: netip.MustParseAddr("192.0.2.1"), Server: netip.MustParseAddr("198.51.100.1"),
				Transport: transport, StartNS: start + int64(i)*dur, EndNS: start + int64(i+1)*dur,
				ClientBytes: out, ServerBytes: in, ServerReplied: replied, Final: final || i%2 == 0, FlowID: id}
			as = d.ObserveFlow(&r, as)
		}
		as = d.Flush(start, as)
		checkAlerts(t, as)
	})
}
