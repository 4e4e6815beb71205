// Package daemon runs phonehome as a span-port sensor: live capture, the
// same analysis as replay, several SIEM outputs, Prometheus metrics, a
// periodic stats event, SIGHUP reload and a clean SIGTERM shutdown. The
// command line (cmd/phonehome run) only parses flags into a Config.
package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/phonehome/phonehome/capture/flow"
	"github.com/phonehome/phonehome/capture/live"
	"github.com/phonehome/phonehome/classify/dissect"
	"github.com/phonehome/phonehome/classify/exfil"
	"github.com/phonehome/phonehome/sink"
)

// Config is the daemon's configuration file. Every command-line flag has a
// key here; flags given on the command line win.
type Config struct {
	Capture live.Config `yaml:"capture"`
	// User to switch to once the capture is open ("" keeps the current
	// user; run with CAP_NET_RAW instead of root then).
	User string `yaml:"user"`
	// MetricsAddr serves Prometheus metrics on /metrics ("" disables).
	MetricsAddr string `yaml:"metrics_addr"`
	// StatsInterval is how often a phonehome.stats event is written (0
	// disables).
	StatsInterval time.Duration `yaml:"stats_interval"`
	// CommunityIDSeed seeds Community ID hashes.
	CommunityIDSeed uint16         `yaml:"community_id_seed"`
	Flow            flow.Config    `yaml:"flow"`
	Dissect         dissect.Config `yaml:"dissect"`
	Exfil           exfil.Config   `yaml:"exfil"`
	// Signatures are directories of signature files layered over the
	// embedded default set (reloaded on SIGHUP).
	Signatures   []string `yaml:"signatures"`
	GeoIPCountry string   `yaml:"geoip_country"`
	GeoIPASN     string   `yaml:"geoip_asn"`
	// AlertWindow deduplicates vendor alerts per (client, rule).
	AlertWindow time.Duration `yaml:"alert_window"`
	// InventoryInterval is how often host inventory events are written.
	InventoryInterval time.Duration `yaml:"inventory_interval"`
	// Outputs are the sinks events go to (default: stdout).
	Outputs []sink.Config `yaml:"outputs"`
}

// Defaults.
const (
	DefaultStatsInterval     = time.Minute
	DefaultAlertWindow       = time.Hour
	DefaultInventoryInterval = time.Hour
)

// DefaultConfig returns the configuration used when no file is given.
func DefaultConfig() Config {
	return Config{
		Capture:           live.DefaultConfig(),
		StatsInterval:     DefaultStatsInterval,
		Exfil:             exfil.DefaultConfig(),
		AlertWindow:       DefaultAlertWindow,
		InventoryInterval: DefaultInventoryInterval,
	}
}

// LoadConfig reads a YAML configuration file over the defaults. Unknown
// keys are errors, so a typo does not silently keep a default.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	raw, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	// An empty file (io.EOF) loads as the defaults.
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, fmt.Errorf("config: %s: %w", path, err)
	}
	return cfg, nil
}

// Validate checks what can be checked without opening anything.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Capture.Interfaces) == 0 {
		errs = append(errs, errors.New("capture.interfaces: at least one interface is required"))
	}
	switch c.Capture.Engine {
	case live.EnginePcap, live.EngineAFPacket:
	default:
		errs = append(errs, fmt.Errorf("capture.engine: %q is not pcap or afpacket", c.Capture.Engine))
	}
	if c.StatsInterval < 0 || c.AlertWindow < 0 || c.InventoryInterval < 0 {
		errs = append(errs, errors.New("stats_interval, alert_window and inventory_interval must not be negative"))
	}
	if err := c.Exfil.Validate(); err != nil {
		errs = append(errs, err)
	}
	for i, o := range c.Outputs {
		switch o.Type {
		case "stdout", "file", "syslog", "kafka":
		default:
			errs = append(errs, fmt.Errorf("outputs[%d].type: %q is not stdout, file, syslog or kafka", i, o.Type))
		}
	}
	return errors.Join(errs...)
}
