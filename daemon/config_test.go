package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := LoadConfig("../deploy/phonehome.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Capture.Engine != "afpacket" || cfg.Capture.Interfaces[0] != "eth1" || cfg.AlertWindow != time.Hour {
		t.Fatalf("example config read wrong: %+v", cfg.Capture)
	}
	if cfg.Exfil.Upload.MinBytes != 10000000 || len(cfg.Exfil.LongConn.Thresholds) != 4 || !cfg.Exfil.Beacon.Enabled {
		t.Fatalf("exfil section read wrong: %+v", cfg.Exfil)
	}
	if len(cfg.Outputs) != 1 || cfg.Outputs[0].File.Path == "" {
		t.Fatalf("outputs read wrong: %+v", cfg.Outputs)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown key":    "capture:\n  interfaces: [eth0]\n  engine: pcap\nmetrics_adr: x\n",
		"bad engine":     "capture:\n  interfaces: [eth0]\n  engine: dpdk\n",
		"no interface":   "capture:\n  engine: pcap\n",
		"bad duration":   "capture:\n  interfaces: [eth0]\nstats_interval: soon\n",
		"unknown output": "capture:\n  interfaces: [eth0]\noutputs:\n  - type: carrier-pigeon\n",
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(p)
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	empty := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if cfg, err := LoadConfig(empty); err != nil || cfg.StatsInterval != DefaultStatsInterval {
		t.Fatalf("empty file: %v %+v", err, cfg)
	}
}
