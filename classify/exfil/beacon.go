package exfil

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"time"
)

// BeaconConfig configures beacon and strobe detection. Scoring constants
// default to RITA v5 default_config.hjson (anchors.md §1a).
type BeaconConfig struct {
	Enabled bool `yaml:"enabled"`
	// MaxPairs bounds tracked client->destination pairs (LRU eviction).
	MaxPairs int `yaml:"max_pairs"`
	// MaxConnsPerPair keeps the last N connections per pair (RITA keeps
	// 86,400; a sensor cannot). Worst case memory is
	// MaxPairs*MaxConnsPerPair*8 bytes.
	MaxConnsPerPair int `yaml:"max_conns_per_pair"`
	// MinUniqueTimestamps is RITA's unique_connection_threshold (4).
	MinUniqueTimestamps int `yaml:"min_unique_timestamps"`
	// DatasetWindow is the sliding dataset RITA would analyse (24h).
	DatasetWindow time.Duration `yaml:"dataset_window"`
	// MinDatasetSpan: no scoring until the capture spans this long, because
	// RITA's histogram and duration parts assume a long dataset.
	MinDatasetSpan time.Duration `yaml:"min_dataset_span"`
	// EvalEveryConns re-scores a pair after this many new connections.
	EvalEveryConns int `yaml:"eval_every_conns"`
	// AlertThreshold on RITA's 0..1 beacon score; RealertMargin is the rise
	// needed before the same pair alerts again.
	AlertThreshold float64 `yaml:"alert_threshold"`
	RealertMargin  float64 `yaml:"realert_margin"`

	TsWeight   float64 `yaml:"ts_weight"`
	DsWeight   float64 `yaml:"ds_weight"`
	DurWeight  float64 `yaml:"dur_weight"`
	HistWeight float64 `yaml:"hist_weight"`

	HistBins                  int     `yaml:"hist_bins"`
	HistModeSensitivity       float64 `yaml:"hist_mode_sensitivity"`
	HistBimodalOutlierRemoval int     `yaml:"hist_bimodal_outlier_removal"`
	HistBimodalMinHours       int     `yaml:"hist_bimodal_min_hours"`
	DurMinHours               int     `yaml:"dur_min_hours"`
	DurIdealConsistentHours   int     `yaml:"dur_ideal_consistent_hours"`
	// ScoreThresholds bucket score*100 into RITA's threat categories.
	ScoreThresholds Thresholds `yaml:"score_thresholds"`

	// StrobePerDay is RITA's strobe count (86,400 connections a day, one a
	// second), applied as a rate over tumbling StrobeWindow windows.
	StrobePerDay int           `yaml:"strobe_per_day"`
	StrobeWindow time.Duration `yaml:"strobe_window"`
	StrobeScore  float64       `yaml:"strobe_score"`
}

func defaultBeaconConfig() BeaconConfig {
	return BeaconConfig{
		Enabled:                   true,
		MaxPairs:                  32768,
		MaxConnsPerPair:           1024,
		MinUniqueTimestamps:       4,
		DatasetWindow:             24 * time.Hour,
		MinDatasetSpan:            30 * time.Minute,
		EvalEveryConns:            16,
		AlertThreshold:            0.9,
		RealertMargin:             0.05,
		TsWeight:                  0.25,
		DsWeight:                  0.25,
		DurWeight:                 0.25,
		HistWeight:                0.25,
		HistBins:                  24,
		HistModeSensitivity:       0.05,
		HistBimodalOutlierRemoval: 1,
		HistBimodalMinHours:       11,
		DurMinHours:               6,
		DurIdealConsistentHours:   12,
		ScoreThresholds:           Thresholds{Base: 50, Low: 70, Med: 90, High: 100},
		StrobePerDay:              86400,
		StrobeWindow:              time.Hour,
		StrobeScore:               ritaHighScore,
	}
}

func (c BeaconConfig) validate() error {
	switch {
	case c.MaxPairs < 1 || c.MaxConnsPerPair < 4:
		return errors.New("max_pairs must be >= 1 and max_conns_per_pair >= 4")
	case c.MinUniqueTimestamps < 4:
		return errors.New("min_unique_timestamps must be >= 4 (RITA needs 3 non-zero intervals)")
	case c.DatasetWindow <= 0 || c.MinDatasetSpan < 0 || c.StrobeWindow <= 0:
		return errors.New("dataset_window and strobe_window must be positive")
	case c.EvalEveryConns < 1:
		return errors.New("eval_every_conns must be >= 1")
	case c.HistBins < 1 || c.HistBins > 64:
		return errors.New("hist_bins must be 1..64")
	case c.DurMinHours < 1 || c.DurIdealConsistentHours < 1:
		return errors.New("dur_min_hours and dur_ideal_consistent_hours must be >= 1")
	case c.StrobePerDay < 1:
		return errors.New("strobe_per_day must be >= 1")
	}
	w := c.TsWeight + c.DsWeight + c.DurWeight + c.HistWeight
	for _, x := range []float64{c.TsWeight, c.DsWeight, c.DurWeight, c.HistWeight} {
		if x < 0 || x > 1 {
			return errors.New("weights must be within 0..1")
		}
	}
	if math.Abs(w-1) > 1e-9 { // RITA: "weights must sum to 1"
		return fmt.Errorf("weights sum to %v, not 1", w)
	}
	if err := checkScore("alert_threshold", c.AlertThreshold); err != nil {
		return err
	}
	if err := checkScore("strobe_score", c.StrobeScore); err != nil {
		return err
	}
	return c.ScoreThresholds.validate()
}

// beaconPair is the state of one client->destination pair: a ring of the
// last MaxConnsPerPair connection starts (unix seconds, as RITA) and
// client-sent bytes.
type beaconPair struct {
	ts       []uint32
	bytes    []uint32
	head     int // next slot to overwrite once the ring is full
	total    uint64
	lastEval uint64
	scored   bool

	alerted    bool
	alertScore float64

	strobeWinStart int64
	strobeCount    int
	strobe         bool

	server     netip.Addr
	port       uint16
	lastFlowID string
}

type beaconDetector struct {
	cfg   BeaconConfig
	st    *Stats
	pairs *lru[pairKey, beaconPair]
	hp    histParams

	firstNS, nowNS int64
	seen           bool
	strobeLimit    int

	// Scratch reused across evaluations (bounded by MaxConnsPerPair).
	tsBuf   []int64
	ivBuf   []float64
	szBuf   []float64
	scratch []float64
	counts  []int
}

func newBeaconDetector(cfg BeaconConfig, st *Stats) *beaconDetector {
	return &beaconDetector{
		cfg:   cfg,
		st:    st,
		pairs: newLRU[pairKey, beaconPair](cfg.MaxPairs),
		hp: histParams{
			Bins:             cfg.HistBins,
			ModeSensitivity:  cfg.HistModeSensitivity,
			OutlierRemoval:   cfg.HistBimodalOutlierRemoval,
			BimodalMinHours:  cfg.HistBimodalMinHours,
			DurMinHours:      cfg.DurMinHours,
			DurIdealConsHour: cfg.DurIdealConsistentHours,
		},
		strobeLimit: int(math.Ceil(float64(cfg.StrobePerDay) * float64(cfg.StrobeWindow) / float64(24*time.Hour))),
		tsBuf:       make([]int64, 0, cfg.MaxConnsPerPair),
		ivBuf:       make([]float64, 0, cfg.MaxConnsPerPair),
		szBuf:       make([]float64, 0, cfg.MaxConnsPerPair),
		scratch:     make([]float64, cfg.MaxConnsPerPair),
		counts:      make([]int, cfg.HistBins),
	}
}

func clampU32(v uint64) uint32 { return uint32(min(v, math.MaxUint32)) }

func (b *beaconDetector) observe(r *FlowRecord, out []Alert) []Alert {
	if r.Transport == "tcp" && !r.ServerReplied {
		return out // a refused or unanswered SYN is not a beacon
	}
	if !r.Final {
		return out // one connection counts once: at its final record
	}
	if !b.seen || r.StartNS < b.firstNS {
		b.firstNS = r.StartNS
	}
	b.seen = true
	b.nowNS = max(b.nowNS, r.EndNS)

	k := keyOf(r)
	p, created, _ := b.pairs.getOrAdd(k)
	if created {
		ts, by := p.ts[:0], p.bytes[:0] // keep a recycled pair's buffers
		*p = beaconPair{ts: ts, bytes: by}
	}
	p.server, p.port, p.lastFlowID = r.Server, r.ServerPort, r.FlowID
	sec := clampU32(uint64(r.StartNS / int64(time.Second)))
	if len(p.ts) < b.cfg.MaxConnsPerPair {
		p.ts = append(p.ts, sec)
		p.bytes = append(p.bytes, clampU32(r.ClientBytes))
	} else {
		p.ts[p.head], p.bytes[p.head] = sec, clampU32(r.ClientBytes)
		p.head = (p.head + 1) % len(p.ts)
		b.st.BeaconConnsDropped++
	}
	p.total++

	// Strobe: RITA flags count >= 86400 over its (one-day) dataset instead
	// of scoring a beacon; here the same rate over tumbling windows.
	if p.strobeCount == 0 || r.StartNS-p.strobeWinStart >= int64(b.cfg.StrobeWindow) {
		p.strobeWinStart, p.strobeCount = r.StartNS, 0
	}
	p.strobeCount++
	if p.strobe {
		return out
	}
	if p.strobeCount >= b.strobeLimit {
		p.strobe = true
		return append(out, b.strobeAlert(k, p, r.EndNS))
	}

	due := p.total-p.lastEval >= uint64(b.cfg.EvalEveryConns) ||
		(!p.scored && p.total >= uint64(b.cfg.MinUniqueTimestamps))
	if due {
		if a, ok := b.evaluate(k, p, b.nowNS); ok {
			out = append(out, a)
		}
	}
	return out
}

func (b *beaconDetector) strobeAlert(k pairKey, p *beaconPair, nowNS int64) Alert {
	win := b.cfg.StrobeWindow.Seconds()
	perDay := float64(p.strobeCount) / win * 86400
	return Alert{
		Kind: KindStrobe, Score: b.cfg.StrobeScore,
		Client: k.client, Destination: k.destination(), Server: p.server, ServerPort: p.port,
		FlowIDs: flowIDs(p.lastFlowID), TimeNS: nowNS,
		Reason: fmt.Sprintf("%s opened %d connections to %s within %s (%.0f a day, strobe threshold %d a day)",
			k.client, p.strobeCount, k.destination(), b.cfg.StrobeWindow, perDay, b.cfg.StrobePerDay),
		Figures: Figures{Connections: int(min(p.total, math.MaxInt32)), ConnsPerDay: perDay, RITAThreatScore: b.cfg.StrobeScore},
	}
}

func flowIDs(id string) []string {
	if id == "" {
		return nil
	}
	return []string{id}
}

// evaluate scores one pair against the dataset ending at nowNS and returns
// an alert when the score passes the threshold (or rises by the margin).
func (b *beaconDetector) evaluate(k pairKey, p *beaconPair, nowNS int64) (Alert, bool) {
	dsMax := nowNS / int64(time.Second)
	dsMin := max(b.firstNS/int64(time.Second), dsMax-int64(b.cfg.DatasetWindow/time.Second))
	if dsMax-dsMin < int64(b.cfg.MinDatasetSpan/time.Second) || dsMax <= dsMin {
		return Alert{}, false
	}
	ts, sz := b.tsBuf[:0], b.szBuf[:0]
	for i, t := range p.ts {
		if int64(t) >= dsMin {
			ts = append(ts, int64(t))
			sz = append(sz, float64(p.bytes[i]))
		}
	}
	slices.Sort(ts)
	unique := 0
	for i := range ts {
		if i == 0 || ts[i] != ts[i-1] {
			unique++
		}
	}
	if unique < b.cfg.MinUniqueTimestamps {
		return Alert{}, false
	}
	p.scored, p.lastEval = true, p.total
	b.st.BeaconEvaluations++

	tsr, nonZero, err := tsScore(ts, b.ivBuf, b.scratch)
	if err != nil {
		b.st.BeaconUnscorable++
		return Alert{}, false
	}
	slices.Sort(sz)
	dsr, err := dsScore(sz, b.scratch)
	if err != nil {
		b.st.BeaconUnscorable++
		return Alert{}, false
	}
	hr, err := histScore(dsMin, dsMax, ts, b.hp, b.counts)
	if err != nil {
		b.st.BeaconUnscorable++
		return Alert{}, false
	}
	coverage, _, dur, err := durationScore(dsMin, dsMax, ts[0], ts[len(ts)-1], hr, b.hp)
	if err != nil {
		b.st.BeaconUnscorable++
		return Alert{}, false
	}
	c := b.cfg
	score := beaconScore(tsr.Score, c.TsWeight, dsr.Score, c.DsWeight, dur, c.DurWeight, hr.Score, c.HistWeight)
	if score < c.AlertThreshold || (p.alerted && score < p.alertScore+c.RealertMargin) {
		return Alert{}, false
	}
	p.alerted, p.alertScore = true, score
	mean := float64(ts[len(ts)-1]-ts[0]) / float64(nonZero)
	return Alert{
		Kind: KindBeacon, Score: score,
		Client: k.client, Destination: k.destination(), Server: p.server, ServerPort: p.port,
		FlowIDs: flowIDs(p.lastFlowID), TimeNS: nowNS,
		Reason: fmt.Sprintf("%s connected to %s %d times about every %.0fs (jitter %.1fs, median %.0f bytes sent); RITA beacon score %.3f (timestamps %.3f, sizes %.3f, histogram %.3f, duration %.3f)",
			k.client, k.destination(), len(ts), tsr.Median, tsr.MAD, dsr.Median, score, tsr.Score, dsr.Score, hr.Score, dur),
		Figures: Figures{
			Connections: len(ts), UniqueTimestamps: unique,
			MeanIntervalSec: mean, MedianIntervalSec: tsr.Median, IntervalMADSec: tsr.MAD, IntervalSkew: tsr.Skew,
			MedianBytes: dsr.Median, BytesMAD: dsr.MAD, BytesSkew: dsr.Skew,
			TSScore: tsr.Score, DSScore: dsr.Score, HistScore: hr.Score, DurScore: dur,
			HistBars: hr.TotalBars, LongestRunBins: hr.LongestRun, Coverage: coverage,
			DatasetSpanSec:  float64(dsMax - dsMin),
			ConnsPerDay:     float64(len(ts)) / float64(dsMax-dsMin) * 86400,
			RITAThreatScore: bucketedScore(score*100, c.ScoreThresholds),
		},
	}, true
}

func (b *beaconDetector) flush(nowNS int64, out []Alert) []Alert {
	now := max(nowNS, b.nowNS)
	b.pairs.each(func(k pairKey, p *beaconPair) {
		if p.strobe || p.total < uint64(b.cfg.MinUniqueTimestamps) {
			return
		}
		if a, ok := b.evaluate(k, p, now); ok {
			out = append(out, a)
		}
	})
	return out
}
