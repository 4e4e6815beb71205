package live

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestConfigYAML(t *testing.T) {
	cfg := DefaultConfig()
	doc := `
interfaces: [eth0, eth1]
engine: afpacket
bpf: "not port 9092"
snaplen: 9000
buffer_size: 134217728
workers: 3
fanout_group: 42
read_timeout: 250ms
`
	if err := yaml.Unmarshal([]byte(doc), &cfg); err != nil {
		t.Fatal(err)
	}
	got, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Interfaces: []string{"eth0", "eth1"}, Engine: EngineAFPacket, BPF: "not port 9092", SnapLen: 9000,
		Promiscuous: true, BufferSize: 128 << 20, Workers: 3, FanoutGroup: 42, ReadTimeout: 250 * time.Millisecond}
	if strings.Join(got.Interfaces, ",") != "eth0,eth1" || got.Engine != want.Engine || got.BPF != want.BPF ||
		got.SnapLen != want.SnapLen || got.Promiscuous != want.Promiscuous || got.BufferSize != want.BufferSize ||
		got.Workers != want.Workers || got.FanoutGroup != want.FanoutGroup || got.ReadTimeout != want.ReadTimeout {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	// promiscuous: false must survive the defaults.
	cfg = DefaultConfig()
	if err := yaml.Unmarshal([]byte("interfaces: [eth0]\npromiscuous: false\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	if got, err := cfg.withDefaults(); err != nil || got.Promiscuous {
		t.Errorf("promiscuous false lost: %+v %v", got, err)
	}
}

func TestConfigDefaults(t *testing.T) {
	got, err := Config{Interfaces: []string{"eth0"}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if got.Engine != EnginePcap || got.SnapLen != DefaultSnapLen || got.BufferSize != DefaultBufferSize ||
		got.Workers != runtime.NumCPU() || got.ReadTimeout != DefaultReadTimeout || got.FanoutGroup == 0 {
		t.Errorf("defaults %+v", got)
	}
}

func TestConfigInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no interface", Config{}, "no interface"},
		{"duplicate", Config{Interfaces: []string{"a", "a"}}, "given twice"},
		{"empty name", Config{Interfaces: []string{""}}, "empty interface"},
		{"engine", Config{Interfaces: []string{"a"}, Engine: "dpdk"}, "engine"},
		{"snaplen", Config{Interfaces: []string{"a"}, SnapLen: 10}, "snaplen"},
		{"buffer", Config{Interfaces: []string{"a"}, BufferSize: 1024}, "buffer_size"},
		{"workers", Config{Interfaces: []string{"a"}, Workers: -1}, "workers"},
		{"timeout", Config{Interfaces: []string{"a"}, ReadTimeout: time.Hour}, "read_timeout"},
	} {
		_, err := tc.cfg.withDefaults()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one about %q", tc.name, err, tc.want)
		}
		if _, err := Open(tc.cfg); err == nil {
			t.Errorf("%s: Open accepted it", tc.name)
		}
	}
}

func TestRingGeometry(t *testing.T) {
	for _, tc := range []struct {
		buffer, snap     int
		block, numBlocks int
	}{
		{64 << 20, 262144, 1 << 20, 64},
		{4 << 20, 1500, 1 << 20, 4},
		{4 << 20, 1 << 20, 2 << 20, 4}, // block grows to hold a full frame; at least 4 blocks
		{100 << 20, 65535, 1 << 20, 100},
	} {
		b, n := ringGeometry(tc.buffer, tc.snap)
		if b != tc.block || n != tc.numBlocks {
			t.Errorf("ringGeometry(%d, %d) = %d, %d; want %d, %d", tc.buffer, tc.snap, b, n, tc.block, tc.numBlocks)
		}
		if b%afpFrameSize != 0 || b < tc.snap+afpBlockHeaders {
			t.Errorf("block %d does not fit frames of %d", b, tc.snap)
		}
	}
	if d := blockTimeout(100 * time.Millisecond); d != afpMaxBlockTimeout {
		t.Errorf("block timeout %v", d)
	}
	if d := blockTimeout(time.Millisecond); d != time.Millisecond {
		t.Errorf("block timeout %v", d)
	}
}

func TestWrapCounter(t *testing.T) {
	var c wrapCounter
	for _, step := range []struct {
		v    uint32
		want uint64
	}{{10, 10}, {4294967290, 4294967290}, {5, 4294967301}, {5, 4294967301}, {100, 4294967396}} {
		if got := c.update(step.v); got != step.want {
			t.Fatalf("update(%d) = %d, want %d", step.v, got, step.want)
		}
	}
}

// TestOpenErrors: a missing interface or a bad filter fails Open with an
// error naming it (afpacket compiles the filter before opening sockets, so
// that case needs no privilege).
func TestOpenErrors(t *testing.T) {
	cfg := testConfig(EngineAFPacket, "lo")
	cfg.BPF = "port and and"
	if _, err := Open(cfg); err == nil || !strings.Contains(err.Error(), "filter") {
		t.Errorf("bad filter: %v", err)
	}
	if os.Geteuid() == 0 {
		// libpcap compiles the filter on the activated handle (loopback).
		cfg := testConfig(EnginePcap, "lo")
		cfg.BPF = "port and and"
		if _, err := Open(cfg); err == nil || !strings.Contains(err.Error(), "filter") {
			t.Errorf("pcap bad filter: %v", err)
		}
	}
	for _, eng := range []string{EnginePcap, EngineAFPacket} {
		cfg := testConfig(eng, "phnosuchif0")
		if _, err := Open(cfg); err == nil || !strings.Contains(err.Error(), "phnosuchif0") {
			t.Errorf("%s: missing interface: %v", eng, err)
		}
	}
}
