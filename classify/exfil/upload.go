package exfil

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// UploadConfig configures upload-heavy detection for single flows and for
// client->destination pairs summed over a window.
type UploadConfig struct {
	Enabled bool `yaml:"enabled"`
	// MinBytes is the client->server floor (10 MB): above common form posts,
	// mail with attachments and photo uploads, below any useful theft.
	MinBytes uint64 `yaml:"min_bytes"`
	// MinRatio of client->server to server->client bytes (10:1). A pure
	// upload still clears it when the counters include TCP ACK overhead
	// (about 2-4 % of the data), while downloads and interactive traffic
	// sit far below 1:1.
	MinRatio float64 `yaml:"min_ratio"`
	// PairWindow sums final flows per pair in tumbling windows, catching
	// theft split across many small connections.
	PairWindow time.Duration `yaml:"pair_window"`
	MaxPairs   int           `yaml:"max_pairs"`
	// MaxFlows bounds the flow IDs remembered as already alerted, so interim
	// and final records of one flow alert once.
	MaxFlows int `yaml:"max_flows"`
}

func defaultUploadConfig() UploadConfig {
	return UploadConfig{
		Enabled:    true,
		MinBytes:   10_000_000,
		MinRatio:   10,
		PairWindow: time.Hour,
		MaxPairs:   32768,
		MaxFlows:   65536,
	}
}

func (c UploadConfig) validate() error {
	switch {
	case c.MinBytes == 0 || c.MinRatio <= 0:
		return errors.New("min_bytes and min_ratio must be positive")
	case c.PairWindow <= 0:
		return errors.New("pair_window must be positive")
	case c.MaxPairs < 1 || c.MaxFlows < 1:
		return errors.New("max_pairs and max_flows must be >= 1")
	}
	return nil
}

type uploadPair struct {
	windowStart int64
	out, in     uint64
	flows       int
	first, last int64
	alerted     bool // pair alert raised in this window
	flowAlerted bool // a single flow of this pair already alerted in this window
}

type uploadDetector struct {
	cfg   UploadConfig
	st    *Stats
	pairs *lru[pairKey, uploadPair]
	flows *lru[string, struct{}]
}

func newUploadDetector(cfg UploadConfig, st *Stats) *uploadDetector {
	return &uploadDetector{cfg: cfg, st: st,
		pairs: newLRU[pairKey, uploadPair](cfg.MaxPairs),
		flows: newLRU[string, struct{}](cfg.MaxFlows)}
}

func uploadRatio(out, in uint64) float64 { return float64(out) / float64(max(in, 1)) }

// uploadScore is 0.5 at the thresholds, rising with each decade of volume
// above MinBytes and of ratio above MinRatio, to 1.
func (u *uploadDetector) uploadScore(out uint64, ratio float64) float64 {
	v := ramp(math.Log10(float64(out)/float64(u.cfg.MinBytes)), 0, 1)
	r := ramp(math.Log10(ratio/u.cfg.MinRatio), 0, 1)
	return round3(0.5 + 0.25*v + 0.25*r)
}

func (u *uploadDetector) heavy(out, in uint64) bool {
	return out >= u.cfg.MinBytes && uploadRatio(out, in) >= u.cfg.MinRatio
}

func (u *uploadDetector) observe(r *FlowRecord, out []Alert) []Alert {
	if r.Transport == "tcp" && !r.ServerReplied {
		return out
	}
	k := keyOf(r)
	flowAlert := false
	if u.heavy(r.ClientBytes, r.ServerBytes) && (r.Final || r.FlowID != "") {
		fresh := true
		if r.FlowID != "" {
			_, created, _ := u.flows.getOrAdd(r.FlowID)
			fresh = created
		}
		if fresh {
			flowAlert = true
			ratio := uploadRatio(r.ClientBytes, r.ServerBytes)
			dur := secs(r.EndNS - r.StartNS)
			state := "finished"
			if !r.Final {
				state = "still open"
			}
			out = append(out, Alert{
				Kind: KindUploadHeavy, Score: u.uploadScore(r.ClientBytes, ratio),
				Client: r.Client, Destination: k.destination(), Server: r.Server, ServerPort: r.ServerPort,
				FlowIDs: flowIDs(r.FlowID), TimeNS: r.EndNS,
				Reason: fmt.Sprintf("%s sent %d bytes to %s in one %s flow and received %d (%.0f:1) over %.0fs",
					r.Client, r.ClientBytes, k.destination(), state, r.ServerBytes, ratio, dur),
				Figures: Figures{BytesOut: r.ClientBytes, BytesIn: r.ServerBytes, Ratio: ratio, DurationSec: dur, Flows: 1},
			})
		}
	}
	if !r.Final && !flowAlert {
		return out // pair sums use final records only, so interim counters are not added twice
	}
	p, created, _ := u.pairs.getOrAdd(k)
	if created || r.StartNS-p.windowStart >= int64(u.cfg.PairWindow) {
		*p = uploadPair{windowStart: r.StartNS, first: r.StartNS}
	}
	if flowAlert {
		p.flowAlerted = true
	}
	if !r.Final {
		return out
	}
	p.out += r.ClientBytes
	p.in += r.ServerBytes
	p.flows++
	p.first = min(p.first, r.StartNS)
	p.last = max(p.last, r.EndNS)
	if p.alerted || p.flowAlerted || p.flows < 2 || !u.heavy(p.out, p.in) {
		return out
	}
	p.alerted = true
	ratio := uploadRatio(p.out, p.in)
	dur := secs(p.last - p.first)
	return append(out, Alert{
		Kind: KindUploadHeavy, Score: u.uploadScore(p.out, ratio),
		Client: r.Client, Destination: k.destination(), Server: r.Server, ServerPort: r.ServerPort,
		FlowIDs: flowIDs(r.FlowID), TimeNS: r.EndNS,
		Reason: fmt.Sprintf("%s sent %d bytes to %s across %d flows within %s and received %d (%.0f:1)",
			r.Client, p.out, k.destination(), p.flows, u.cfg.PairWindow, p.in, ratio),
		Figures: Figures{BytesOut: p.out, BytesIn: p.in, Ratio: ratio, DurationSec: dur, Flows: p.flows},
	})
}
