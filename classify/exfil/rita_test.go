package exfil

import (
	"math"
	"testing"
)

// Hand-computed checks of the RITA port (anchors.md §1a). The arithmetic is
// written out so a reader can verify each expectation.

func TestQuartilesMatchMontanaflynn(t *testing.T) {
	// Odd n=5: halves exclude the median element.
	q1, q2, q3 := quartiles([]float64{50, 55, 60, 65, 70})
	if q1 != 52.5 || q2 != 60 || q3 != 67.5 {
		t.Fatalf("odd quartiles = %v %v %v, want 52.5 60 67.5", q1, q2, q3)
	}
	// Even n=6: halves are the first and last three.
	q1, q2, q3 = quartiles([]float64{1, 2, 3, 4, 5, 6})
	if q1 != 2 || q2 != 3.5 || q3 != 5 {
		t.Fatalf("even quartiles = %v %v %v, want 2 3.5 5", q1, q2, q3)
	}
}

func TestTimestampScoreHandComputed(t *testing.T) {
	buf := make([]float64, 16)
	sc := make([]float64, 16)
	// Intervals 60,65,55,70,50 -> sorted 50 55 60 65 70.
	// Q1=52.5 Q2=60 Q3=67.5, IQR 15 >= 10, skew=(52.5+67.5-120)/15=0 -> 1.
	// |x-60| = 10 5 0 5 10 -> MAD 5 -> (60-5)/60 = 0.91667.
	// ts = round3((1+0.91667)/2) = 0.958.
	r, nz, err := tsScore([]int64{0, 60, 125, 180, 250, 300}, buf, sc)
	if err != nil || nz != 5 {
		t.Fatalf("tsScore err=%v nonzero=%d", err, nz)
	}
	if r.Score != 0.958 || r.Skew != 0 || r.MAD != 5 || r.Median != 60 {
		t.Fatalf("tsScore = %+v, want score 0.958 skew 0 mad 5 median 60", r)
	}
	// Intervals 10 20 30 100 200: Q1=15 Q2=30 Q3=150, skew=(15+150-60)/135=0.7778
	// -> 0.2222; |x-30| = 20 10 0 70 170 -> MAD 20 -> (30-20)/30=0.3333;
	// ts = round3(0.27778) = 0.278.
	r, _, err = tsScore([]int64{0, 10, 30, 60, 160, 360}, buf, sc)
	if err != nil || r.Score != 0.278 || math.Abs(r.Skew-105.0/135) > 1e-12 || r.MAD != 20 {
		t.Fatalf("skewed tsScore = %+v err=%v, want 0.278", r, err)
	}
	// Narrow IQR (< 10 s) forces skew to 0 even when lopsided: 60 60 61 69.
	r, _, _ = tsScore([]int64{0, 60, 120, 181, 250}, buf, sc)
	if r.Skew != 0 {
		t.Fatalf("IQR<10 should zero the skew, got %v", r.Skew)
	}
	// Duplicate timestamps give zero intervals, which are dropped: only 2 left.
	if _, _, err := tsScore([]int64{0, 0, 0, 60, 120}, buf, sc); err == nil {
		t.Fatal("want error with fewer than 3 non-zero intervals")
	}
}

func TestDataSizeScoreHandComputed(t *testing.T) {
	sc := make([]float64, 8)
	// Constant sizes: skew 0 -> 1, MAD 0 -> (100-0)/100 = 1 -> 1.
	if r, _ := dsScore([]float64{100, 100, 100, 100}, sc); r.Score != 1 {
		t.Fatalf("constant sizes = %+v, want 1", r)
	}
	// Median below 1 takes the size default MAD score 0: (1+0)/2 = 0.5.
	if r, _ := dsScore([]float64{0, 0, 0}, sc); r.Score != 0.5 {
		t.Fatalf("zero sizes = %+v, want 0.5", r)
	}
	// 100 200 400: Q1=100 Q2=200 Q3=400, skew=(100+400-400)/300=1/3 -> 0.6667;
	// |x-200| = 100 0 200 -> MAD 100 -> 0.5; round3(0.58333) = 0.583.
	if r, _ := dsScore([]float64{100, 200, 400}, sc); r.Score != 0.583 {
		t.Fatalf("100/200/400 = %+v, want 0.583", r)
	}
	if _, err := dsScore([]float64{1, 2}, sc); err == nil {
		t.Fatal("want error below 3 sizes")
	}
}

func TestHistogramAndDurationHandComputed(t *testing.T) {
	p := defaultHistParams()
	counts := make([]int, 24)
	// One connection in each 100 s bin of a 2400 s dataset: CV 0 -> 1;
	// bimodal (24+0)/(24-1) -> capped 1; run 24.
	var ts []int64
	for i := range 24 {
		ts = append(ts, int64(i*100+50))
	}
	h, err := histScore(0, 2400, ts, p, counts)
	if err != nil || h.Score != 1 || h.CV != 1 || h.TotalBars != 24 || h.LongestRun != 24 {
		t.Fatalf("flat histogram = %+v err=%v", h, err)
	}
	// coverage = ceil((2350-50)/2400*1000)/1000 = 0.959; consistency 24/12 -> 1.
	cov, cons, dur, _ := durationScore(0, 2400, 50, 2350, h, p)
	if cov != 0.959 || cons != 1 || dur != 1 {
		t.Fatalf("duration = %v %v %v, want 0.959 1 1", cov, cons, dur)
	}

	// Two a bin in bins 0-5, one in bins 6-11, none after: mean 0.75,
	// variance (6*1.5625+6*0.0625+12*0.5625)/24 = 0.6875, CV 1.1055 > 1 -> 0.
	// Bimodal: 12 bars >= 11, buckets {2:6, 1:6} -> (6+6)/(12-1) -> 1.
	ts = ts[:0]
	for i := range 12 {
		ts = append(ts, int64(i*100+10))
		if i < 6 {
			ts = append(ts, int64(i*100+20))
		}
	}
	h, _ = histScore(0, 2400, ts, p, counts)
	if h.CV != 0 || h.Bimodal != 1 || h.Score != 1 || h.TotalBars != 12 || h.LongestRun != 12 {
		t.Fatalf("two-level histogram = %+v", h)
	}
	// Consistency 12/12 = 1; coverage ceil(1100/2400*1000)/1000 = 0.459.
	cov, cons, dur, _ = durationScore(0, 2400, 10, 1110, h, p)
	if cov != 0.459 || cons != 1 || dur != 1 {
		t.Fatalf("duration = %v %v %v", cov, cons, dur)
	}

	// Five bars: no bimodal part (< 11) and no duration part (< 6 bars).
	// counts 1 1 1 1 1 then 0s: CV = sqrt(19/5) = 1.95 > 1 -> 0.
	h, _ = histScore(0, 2400, []int64{50, 150, 250, 350, 450}, p, counts)
	if h.Score != 0 || h.TotalBars != 5 {
		t.Fatalf("sparse histogram = %+v", h)
	}
	if _, _, dur, _ := durationScore(0, 2400, 50, 450, h, p); dur != 0 {
		t.Fatalf("duration with 5 bars = %v, want 0", dur)
	}
	// Wrap-around run: bars in bins 20-23 and 0-3 make a run of 8.
	ts = ts[:0]
	for _, b := range []int{0, 1, 2, 3, 20, 21, 22, 23} {
		ts = append(ts, int64(b*100+1))
	}
	h, _ = histScore(0, 2400, ts, p, counts)
	if h.LongestRun != 8 {
		t.Fatalf("wrapped run = %d, want 8", h.LongestRun)
	}
	// The last timestamp equal to the dataset end lands in the last bin.
	h, _ = histScore(0, 2400, []int64{2400}, p, counts)
	if counts[23] != 1 {
		t.Fatalf("end timestamp not in last bin: %v", counts)
	}
}

func TestBeaconAndBucketedScores(t *testing.T) {
	if s := beaconScore(0.958, .25, 1, .25, 1, .25, 0.6, .25); s != 0.89 {
		t.Fatalf("beaconScore = %v, want 0.89", s) // 0.25*3.558 = 0.8895 -> 0.89
	}
	beacon := Thresholds{50, 70, 90, 100}
	cases := []struct {
		v    float64
		th   Thresholds
		want float64
	}{
		{40, beacon, 0},
		{50, beacon, 0.2},
		{75, beacon, 0.45}, // 0.4 + 5/20*0.2
		{95, beacon, 0.7},  // 0.6 + 5/10*0.2
		{120, beacon, 0.8}, // capped at High
		{300, Thresholds{100, 500, 800, 1000}, 0.3},  // 0.2 + 200/400*0.2
		{5000, Thresholds{100, 500, 800, 1000}, 0.8}, // capped
		{7200, Thresholds{3600, 14400, 28800, 43200}, 0.2 + 3600.0/10800*0.2},
	}
	for _, c := range cases {
		if got := bucketedScore(c.v, c.th); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("bucketedScore(%v) = %v, want %v", c.v, got, c.want)
		}
	}
}

func defaultHistParams() histParams {
	c := defaultBeaconConfig()
	return histParams{Bins: c.HistBins, ModeSensitivity: c.HistModeSensitivity,
		OutlierRemoval: c.HistBimodalOutlierRemoval, BimodalMinHours: c.HistBimodalMinHours,
		DurMinHours: c.DurMinHours, DurIdealConsHour: c.DurIdealConsistentHours}
}
