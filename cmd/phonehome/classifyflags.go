package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/phonehome/phonehome/classify/attribute"
	"github.com/phonehome/phonehome/classify/detect"
	"github.com/phonehome/phonehome/daemon"
	"github.com/phonehome/phonehome/engine"
	"github.com/phonehome/phonehome/signatures"
)

// dirList is a repeatable flag.
type dirList []string

func (d *dirList) String() string { return strings.Join(*d, ",") }
func (d *dirList) Set(s string) error {
	if s == "" {
		return errors.New("empty directory")
	}
	*d = append(*d, s)
	return nil
}

// classifyFlags are the analysis flags shared by replay and the daemon:
// attribution (signatures, GeoIP, alert deduplication) and the
// exfiltration detectors' main thresholds. Each has a key in the YAML
// configuration; flags given on the command line win.
type classifyFlags struct {
	fs           *flag.FlagSet
	sigDirs      dirList
	noDefaults   bool
	geoCountry   string
	geoASN       string
	alertWindow  time.Duration
	uploadFloor  uint64
	inventoryInt time.Duration
	summary      bool
	uploadBytes  uint64
	uploadRatio  float64
	beaconScore  float64
	tunnelScore  float64
	// closers release what build opened (the GeoIP databases).
	closers []io.Closer
}

func addClassifyFlags(fs *flag.FlagSet) *classifyFlags {
	c := &classifyFlags{fs: fs}
	fs.Var(&c.sigDirs, "signatures", "layer the signature files in `DIR` over the embedded defaults (repeatable, in order)")
	fs.BoolVar(&c.noDefaults, "no-default-signatures", false, "do not load the embedded default signatures")
	fs.StringVar(&c.geoCountry, "geoip-country", "", "MaxMind GeoLite2/GeoIP2 Country or City `FILE` (.mmdb) for destination.geo")
	fs.StringVar(&c.geoASN, "geoip-asn", "", "MaxMind GeoLite2/GeoIP2 ASN `FILE` (.mmdb) for destination.as and ASN signatures")
	fs.DurationVar(&c.alertWindow, "alert-window", daemon.DefaultAlertWindow, "fold repeats of the same (client host, rule) within `DURATION` into the next alert; 0 alerts on every flow")
	fs.Uint64Var(&c.uploadFloor, "upload-floor", attribute.DefaultUploadFloor, "client→server `BYTES` above which vendor traffic (dwarfing its reply) raises the alert's severity")
	fs.DurationVar(&c.inventoryInt, "inventory-interval", 0, "also emit changed host inventory rows every `DURATION` of packet time (0: only at the end)")
	fs.BoolVar(&c.summary, "summary", false, "print the vendor inventory table on stderr after the run")
	fs.Uint64Var(&c.uploadBytes, "upload-min-bytes", 0, "upload_heavy: client→server `BYTES` floor (default 10000000)")
	fs.Float64Var(&c.uploadRatio, "upload-min-ratio", 0, "upload_heavy: sent/received `RATIO` (default 10)")
	fs.Float64Var(&c.beaconScore, "beacon-min-score", 0, "beacon: alert above this RITA `SCORE` 0..1 (default 0.9)")
	fs.Float64Var(&c.tunnelScore, "tunnel-min-score", 0, "dns_tunnel: alert above this `SCORE` 0..1 (default 0.6)")
	return c
}

// apply writes the flags given on the command line over cfg.
func (c *classifyFlags) apply(cfg *daemon.Config) {
	set := map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["signatures"] {
		cfg.Signatures = c.sigDirs
	}
	if set["geoip-country"] {
		cfg.GeoIPCountry = c.geoCountry
	}
	if set["geoip-asn"] {
		cfg.GeoIPASN = c.geoASN
	}
	if set["alert-window"] {
		cfg.AlertWindow = c.alertWindow
	}
	if set["inventory-interval"] {
		cfg.InventoryInterval = c.inventoryInt
	}
	if set["upload-min-bytes"] {
		cfg.Exfil.Upload.MinBytes = c.uploadBytes
	}
	if set["upload-min-ratio"] {
		cfg.Exfil.Upload.MinRatio = c.uploadRatio
	}
	if set["beacon-min-score"] {
		cfg.Exfil.Beacon.AlertThreshold = c.beaconScore
	}
	if set["tunnel-min-score"] {
		cfg.Exfil.DNSTunnel.AlertThreshold = c.tunnelScore
	}
}

// loadSignatures loads the embedded defaults (unless disabled) and the
// configured directories.
func (c *classifyFlags) loadSignatures(cfg *daemon.Config) (*signatures.Set, error) {
	if c.noDefaults && len(cfg.Signatures) == 0 {
		return nil, fmt.Errorf("--no-default-signatures needs at least one --signatures DIR")
	}
	set, err := signatures.Load(!c.noDefaults, cfg.Signatures...)
	if err != nil {
		return nil, fmt.Errorf("signatures: %w", err)
	}
	return set, nil
}

// build loads the signatures and databases once and returns the classifier
// chain (vendor attribution, then the exfiltration detectors) and the
// Attributor, which the caller keeps for the inventory and for reloads.
func (c *classifyFlags) build(cfg *daemon.Config) (engine.Classifier, *attribute.Attributor, error) {
	if cfg.AlertWindow < 0 {
		return nil, nil, fmt.Errorf("--alert-window must not be negative")
	}
	set, err := c.loadSignatures(cfg)
	if err != nil {
		return nil, nil, err
	}
	acfg := attribute.Config{
		Signatures:     set,
		AlertWindow:    cfg.AlertWindow,
		UploadFloor:    c.uploadFloor,
		InventoryEvery: cfg.InventoryInterval,
	}
	if cfg.GeoIPCountry != "" || cfg.GeoIPASN != "" {
		db, err := attribute.OpenMMDB(cfg.GeoIPCountry, cfg.GeoIPASN)
		if err != nil {
			return nil, nil, err
		}
		c.closers = append(c.closers, db)
		acfg.Geo = db
	}
	a, err := attribute.New(acfg)
	if err != nil {
		c.close()
		return nil, nil, err
	}
	det, err := detect.New(cfg.Exfil)
	if err != nil {
		c.close()
		return nil, nil, err
	}
	return engine.Chain{a, det}, a, nil
}

// factory adapts build to the daemon: its reload re-reads the signature
// directories and swaps the set in, keeping the old one on error.
func (c *classifyFlags) factory() daemon.ClassifierFactory {
	return func(cfg *daemon.Config) (engine.Classifier, func(*daemon.Config) error, error) {
		cl, a, err := c.build(cfg)
		if err != nil {
			return nil, nil, err
		}
		reload := func(next *daemon.Config) error {
			set, err := c.loadSignatures(next)
			if err != nil {
				return err
			}
			a.Reload(set)
			return nil
		}
		return cl, reload, nil
	}
}

// close releases the databases build opened.
func (c *classifyFlags) close() {
	for _, cl := range c.closers {
		_ = cl.Close()
	}
	c.closers = nil
}
