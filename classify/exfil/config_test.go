package exfil

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestConfigYAML(t *testing.T) {
	c := DefaultConfig()
	doc := `
beacon:
  alert_threshold: 0.85
  max_pairs: 100
  dataset_window: 12h
dns_tunnel:
  known_benign_domains: [example.net]
  subdomain_thresholds: {base: 50, low: 100, med: 200, high: 300}
upload_heavy:
  min_bytes: 5000000
  pair_window: 30m
long_connection:
  thresholds: [30m, 2h]
`
	if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	if c.Beacon.AlertThreshold != 0.85 || c.Beacon.MaxPairs != 100 || c.Beacon.DatasetWindow != 12*time.Hour ||
		c.Beacon.HistBins != 24 || c.DNSTunnel.KnownBenignDomains[0] != "example.net" ||
		c.DNSTunnel.SubdomainThresholds.Med != 200 || c.Upload.MinBytes != 5_000_000 ||
		c.Upload.PairWindow != 30*time.Minute || !reflect.DeepEqual(c.LongConn.Thresholds, []time.Duration{30 * time.Minute, 2 * time.Hour}) {
		t.Fatalf("yaml not applied: %+v", c)
	}
	if _, err := New(c); err != nil {
		t.Fatal(err)
	}
	// Round trip keeps every field.
	b, err := yaml.Marshal(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var back Config
	if err := yaml.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, DefaultConfig()) {
		t.Fatalf("round trip differs (err %v):\n%s", err, b)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := map[string]func(*Config){
		"weights":         func(c *Config) { c.Beacon.TsWeight = 0.5 },
		"min unique":      func(c *Config) { c.Beacon.MinUniqueTimestamps = 2 },
		"bins":            func(c *Config) { c.Beacon.HistBins = 100 },
		"beacon buckets":  func(c *Config) { c.Beacon.ScoreThresholds.Low = 10 },
		"dns pairs":       func(c *Config) { c.DNSTunnel.MaxPairs = 0 },
		"dns weights":     func(c *Config) { c.DNSTunnel.RateWeight = 0.5 },
		"entropy ramp":    func(c *Config) { c.DNSTunnel.EntropyHigh = 1 },
		"upload ratio":    func(c *Config) { c.Upload.MinRatio = 0 },
		"long order":      func(c *Config) { c.LongConn.Thresholds = []time.Duration{4 * time.Hour, time.Hour} },
		"long empty":      func(c *Config) { c.LongConn.Thresholds = nil },
		"alert threshold": func(c *Config) { c.DNSTunnel.AlertThreshold = 2 },
	}
	for name, mut := range bad {
		c := DefaultConfig()
		mut(&c)
		if _, err := New(c); err == nil || !strings.HasPrefix(err.Error(), "exfil: ") {
			t.Errorf("%s: want a wrapped error, got %v", name, err)
		}
	}
}

// Replaying the same capture twice gives identical alerts: nothing reads the
// wall clock or depends on map order.
func TestDeterministicReplay(t *testing.T) {
	run := func() []Alert {
		d := newDet(t, nil)
		rng := rand.New(rand.NewPCG(11, 12))
		fs := beaconFlows(rng)
		for i := range 50 { // other clients' random traffic
			c := netip.AddrFrom4([4]byte{10, 2, 0, byte(i)})
			for j := range 40 {
				f := conn(t0+rng.Int64N(int64(sixHours)), time.Second, 500, 900, fmt.Sprintf("o%d-%d", i, j))
				f.Client = c
				fs = append(fs, f)
			}
		}
		out := feed(d, fs)
		return d.Flush(t0+int64(sixHours), out)
	}
	a, b := run(), run()
	if len(a) == 0 || !reflect.DeepEqual(a, b) {
		t.Fatalf("replays differ or empty: %d vs %d alerts", len(a), len(b))
	}
}

func TestBadFlowTimes(t *testing.T) {
	d := newDet(t, nil)
	r := conn(t0, time.Second, 1, 1, "x")
	r.EndNS = r.StartNS - 1
	if out := d.ObserveFlow(&r, nil); len(out) != 0 || d.Stats().FlowsBadTimes != 1 {
		t.Fatal("end before start must be counted and dropped")
	}
}
