package exfil

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// LongConnConfig configures long-connection alerts. RITA scores long
// connections at 1, 4, 8 and 12 hours (anchors.md §1a).
type LongConnConfig struct {
	Enabled bool `yaml:"enabled"`
	// Thresholds, ascending; each alerts once per flow when crossed.
	Thresholds []time.Duration `yaml:"thresholds"`
	// ScoreThresholds in seconds for RITA's bucketed score.
	ScoreThresholds Thresholds `yaml:"score_thresholds"`
	// MaxFlows bounds flows remembered with the thresholds they crossed.
	MaxFlows int `yaml:"max_flows"`
}

func defaultLongConnConfig() LongConnConfig {
	return LongConnConfig{
		Enabled:         true,
		Thresholds:      []time.Duration{time.Hour, 4 * time.Hour, 8 * time.Hour, 12 * time.Hour},
		ScoreThresholds: Thresholds{Base: 3600, Low: 14400, Med: 28800, High: 43200},
		MaxFlows:        65536,
	}
}

func (c LongConnConfig) validate() error {
	if len(c.Thresholds) == 0 || c.Thresholds[0] <= 0 || !slices.IsSorted(c.Thresholds) {
		return errors.New("thresholds must be positive and ascending")
	}
	if c.MaxFlows < 1 {
		return errors.New("max_flows must be >= 1")
	}
	return c.ScoreThresholds.validate()
}

type longDetector struct {
	cfg   LongConnConfig
	st    *Stats
	flows *lru[string, int] // flow id -> thresholds already alerted
}

func newLongDetector(cfg LongConnConfig, st *Stats) *longDetector {
	return &longDetector{cfg: cfg, st: st, flows: newLRU[string, int](cfg.MaxFlows)}
}

// observe alerts when a record shows the flow past a threshold it had not
// yet crossed. Several thresholds crossed between two records give one
// alert naming the highest.
func (l *longDetector) observe(r *FlowRecord, out []Alert) []Alert {
	if r.Transport == "tcp" && !r.ServerReplied {
		return out
	}
	dur := time.Duration(r.EndNS - r.StartNS)
	level := 0
	for level < len(l.cfg.Thresholds) && dur >= l.cfg.Thresholds[level] {
		level++
	}
	if level == 0 {
		return out
	}
	if r.FlowID == "" && !r.Final {
		return out // cannot remember an unnamed flow; its final record alerts
	}
	if r.FlowID != "" {
		done, _, _ := l.flows.getOrAdd(r.FlowID)
		if level <= *done {
			return out
		}
		*done = level
	}
	th := l.cfg.Thresholds[level-1]
	k := keyOf(r)
	state := "has been open"
	if r.Final {
		state = "lasted"
	}
	return append(out, Alert{
		Kind: KindLongConnection, Score: bucketedScore(dur.Seconds(), l.cfg.ScoreThresholds),
		Client: r.Client, Destination: k.destination(), Server: r.Server, ServerPort: r.ServerPort,
		FlowIDs: flowIDs(r.FlowID), TimeNS: r.EndNS,
		Reason: fmt.Sprintf("%s %s connection to %s %s %s, past the %s threshold (%d bytes out, %d in)",
			r.Client, r.Transport, k.destination(), state, dur.Round(time.Second), th, r.ClientBytes, r.ServerBytes),
		Figures: Figures{BytesOut: r.ClientBytes, BytesIn: r.ServerBytes, DurationSec: dur.Seconds(),
			ThresholdSec: th.Seconds(), Ratio: uploadRatio(r.ClientBytes, r.ServerBytes), Flows: 1},
	})
}
