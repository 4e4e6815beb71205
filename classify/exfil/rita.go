package exfil

// Faithful port of RITA v5 beacon and bucket scoring (activecm/rita
// analysis/beacons.go and analysis/analysis.go at a3c51501; summarised in
// /work/shared/research/anchors.md §1a). Everything works on whole seconds,
// as RITA does (its timestamp lists are uint32 unix seconds), so the Bowley
// "interquartile range < 10" rule keeps its meaning.

import (
	"errors"
	"math"
	"sort"
)

var (
	errTooFewTimestamps = errors.New("exfil: beacon needs at least 4 timestamps and 3 non-zero intervals")
	errTooFewSizes      = errors.New("exfil: beacon needs at least 3 data sizes")
	errBadRange         = errors.New("exfil: beacon dataset or pair time range is empty")
)

// Thresholds are RITA's four category thresholds for calculateBucketedScore.
type Thresholds struct {
	Base float64 `yaml:"base"`
	Low  float64 `yaml:"low"`
	Med  float64 `yaml:"med"`
	High float64 `yaml:"high"`
}

// RITA's category scores (config.NONE/LOW/MEDIUM/HIGH_CATEGORY_SCORE).
const (
	ritaNoneScore = 0.2
	ritaLowScore  = 0.4
	ritaMedScore  = 0.6
	ritaHighScore = 0.8
)

// bucketedScore ports calculateBucketedScore (analysis.go:312-343): 0 below
// Base, then linear between none 0.2 / low 0.4 / medium 0.6 / high 0.8,
// capped at the High threshold.
func bucketedScore(value float64, t Thresholds) float64 {
	var s float64
	switch {
	case value < t.Base:
		return 0
	case value < t.Low:
		s = ritaNoneScore + (value-t.Base)/(t.Low-t.Base)*(ritaLowScore-ritaNoneScore)
	case value < t.Med:
		s = ritaLowScore + (value-t.Low)/(t.Med-t.Low)*(ritaMedScore-ritaLowScore)
	default:
		v := math.Min(value, t.High)
		s = ritaMedScore + (v-t.Med)/(t.High-t.Med)*(ritaHighScore-ritaMedScore)
	}
	return s
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// median of a sorted slice (montanaflynn/stats.Median).
func median(sorted []float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 0 {
		return (sorted[n/2-1] + sorted[n/2]) / 2
	}
	return sorted[n/2]
}

// quartiles ports montanaflynn/stats.Quartile, which RITA calls: for odd n
// the median element is left out of both halves.
func quartiles(sorted []float64) (q1, q2, q3 float64) {
	n := len(sorted)
	c1, c2 := n/2, n/2
	if n%2 == 1 {
		c1 = (n - 1) / 2
		c2 = c1 + 1
	}
	return median(sorted[:c1]), median(sorted), median(sorted[c2:])
}

// bowley ports calculateBowleySkewness: skew is forced to 0 when the IQR is
// below 10 or the median sits on a quartile; score = 1-|skew|.
func bowley(sorted []float64) (skew, score float64) {
	q1, q2, q3 := quartiles(sorted)
	num := q1 + q3 - 2*q2
	den := q3 - q1
	if den >= 10 && q2 != q1 && q2 != q3 {
		skew = num / den
	}
	return skew, 1 - math.Abs(skew)
}

// madScore ports calculateMedianAbsoluteDeviation: MAD about the median,
// score (median-MAD)/median when median >= 1, else defaultScore; clamped at 0.
// scratch must have len(sorted) capacity; it is overwritten.
func madScore(sorted, scratch []float64, defaultScore float64) (mad, score, med float64) {
	med = median(sorted)
	dev := scratch[:len(sorted)]
	for i, v := range sorted {
		dev[i] = math.Abs(v - med)
	}
	sort.Float64s(dev)
	mad = median(dev)
	score = defaultScore
	if med >= 1 {
		score = (med - mad) / med
	}
	if score < 0 || math.IsNaN(score) {
		score = 0
	}
	return mad, score, med
}

// statResult is one calculateStatisticalScore outcome with its figures.
type statResult struct {
	Score, Skew, MAD, Median float64
}

// statScore ports calculateStatisticalScore: round3((skewScore+madScore)/2).
func statScore(sorted, scratch []float64, defaultMad float64) statResult {
	skew, sk := bowley(sorted)
	mad, ms, med := madScore(sorted, scratch, defaultMad)
	return statResult{Score: round3((sk + ms) / 2), Skew: skew, MAD: mad, Median: med}
}

// tsScore ports getTimestampScore. ts must be sorted seconds; intervals and
// scratch need len(ts) capacity. Zero intervals are dropped before scoring.
func tsScore(ts []int64, intervals, scratch []float64) (statResult, int, error) {
	if len(ts) < 4 {
		return statResult{}, 0, errTooFewTimestamps
	}
	iv := intervals[:0]
	for i := 1; i < len(ts); i++ {
		if d := ts[i] - ts[i-1]; d > 0 {
			iv = append(iv, float64(d))
		}
	}
	if len(iv) < 3 {
		return statResult{}, len(iv), errTooFewTimestamps
	}
	sort.Float64s(iv)
	return statScore(iv, scratch, 1), len(iv), nil
}

// dsScore ports getDataSizeScore over sorted client-sent byte counts.
func dsScore(sizes, scratch []float64) (statResult, error) {
	if len(sizes) < 3 {
		return statResult{}, errTooFewSizes
	}
	return statScore(sizes, scratch, 0), nil
}

// histParams are RITA's histogram and duration settings.
type histParams struct {
	Bins             int
	ModeSensitivity  float64
	OutlierRemoval   int
	BimodalMinHours  int
	DurMinHours      int
	DurIdealConsHour int
}

// histResult holds the histogram sub-score and what the duration part needs.
type histResult struct {
	Score, CV, Bimodal    float64
	TotalBars, LongestRun int
}

// histScore ports getHistogramScore/createHistogram/getFrequencyCounts/
// calculateCoefficientOfVariationScore/calculateBimodalFitScore. ts sorted
// seconds; counts is scratch with len >= p.Bins.
func histScore(dsMin, dsMax int64, ts []int64, p histParams, counts []int) (histResult, error) {
	if len(ts) == 0 || dsMax <= dsMin || p.Bins <= 0 {
		return histResult{}, errBadRange
	}
	counts = counts[:p.Bins]
	clear(counts)
	step := float64(dsMax-dsMin) / float64(p.Bins)
	edge := func(i int) float64 { // computeHistogramBins: explicit first and last edge
		switch i {
		case 0:
			return float64(dsMin)
		case p.Bins:
			return float64(dsMax)
		}
		return float64(dsMin) + float64(i)*step
	}
	cur := 0
	next := edge(1)
	for _, t := range ts {
		ft := float64(t)
		if ft < next {
			counts[cur]++
			continue
		}
		for j := cur + 1; j < p.Bins; j++ {
			cur = j
			next = edge(j + 1)
			if ft < next {
				break
			}
		}
		counts[cur]++ // timestamps at or past the last edge land in the last bin
	}

	// getFrequencyCounts.
	var r histResult
	largest := 0
	for _, c := range counts {
		if c > 0 {
			r.TotalBars++
		}
		largest = max(largest, c)
	}
	binSize := math.Ceil(float64(largest) * p.ModeSensitivity)
	var fkeys, fvals [64]int // at most one frequency bucket per bin; bins capped at 64 by Config.Validate
	nf := 0
	run := 0
	for i := 0; i < 2*p.Bins; i++ {
		c := counts[i%p.Bins]
		if c > 0 {
			run++
		} else {
			r.LongestRun = max(r.LongestRun, run)
			run = 0
		}
		if i < p.Bins && c > 0 {
			key := int(math.Floor(float64(c)/binSize) * binSize)
			found := false
			for k := 0; k < nf; k++ {
				if fkeys[k] == key {
					fvals[k]++
					found = true
					break
				}
			}
			if !found {
				fkeys[nf], fvals[nf] = key, 1
				nf++
			}
		}
	}
	r.LongestRun = min(max(r.LongestRun, run), p.Bins)

	// calculateCoefficientOfVariationScore (population standard deviation).
	total := 0
	for _, c := range counts {
		total += c
	}
	mean := float64(total) / float64(p.Bins)
	var ss float64
	for _, c := range counts {
		d := float64(c) - mean
		ss += d * d
	}
	cv := math.Sqrt(ss/float64(p.Bins)) / math.Abs(mean)
	if cv <= 1 {
		r.CV = math.Min(round3(1-cv), 1)
	}

	// calculateBimodalFitScore; RITA resets a minimum below 6 to 11.
	minHours := p.BimodalMinHours
	if minHours < 6 {
		minHours = 11
	}
	if r.TotalBars >= minHours {
		l1, l2 := 0, 0
		for k := 0; k < nf; k++ {
			v := fvals[k]
			if v > l1 {
				l2, l1 = l1, v
			} else if v > l2 {
				l2 = v
			}
		}
		adj := math.Max(float64(r.TotalBars-p.OutlierRemoval), 1)
		r.Bimodal = math.Min(round3(float64(l1+l2)/adj), 1)
	}
	r.Score = math.Max(r.CV, r.Bimodal)
	return r, nil
}

// durationScore ports getDurationScore: only when at least DurMinHours bins
// are non-empty, max(coverage, consistency), each rounded up to 3 decimals
// and capped at 1.
func durationScore(dsMin, dsMax, first, last int64, h histResult, p histParams) (coverage, consistency, score float64, err error) {
	if p.DurMinHours < 1 || p.DurIdealConsHour < 1 || dsMax <= dsMin || last <= first {
		return 0, 0, 0, errBadRange
	}
	if h.TotalBars >= p.DurMinHours {
		coverage = math.Min(math.Ceil(float64(last-first)/float64(dsMax-dsMin)*1000)/1000, 1)
		consistency = math.Min(math.Ceil(float64(h.LongestRun)/float64(p.DurIdealConsHour)*1000)/1000, 1)
		score = math.Max(coverage, consistency)
	}
	return coverage, consistency, score, nil
}

// beaconScore ports getBeaconScore: weighted sum rounded to 3 decimals.
func beaconScore(ts, tsW, ds, dsW, dur, durW, hist, histW float64) float64 {
	return round3(ts*tsW + ds*dsW + dur*durW + hist*histW)
}
