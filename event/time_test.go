package event

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestAppendTimeLikeFormat(t *testing.T) {
	check := func(tm time.Time) {
		t.Helper()
		want := tm.UTC().AppendFormat(nil, TimeLayout)
		if got := appendTime(nil, tm.UTC()); string(got) != string(want) {
			t.Fatalf("%v: got %s, want %s", tm, got, want)
		}
	}
	for _, tm := range []time.Time{
		time.Unix(0, 0), time.Unix(0, 1), time.Unix(0, -1), time.Unix(0, 999_999_999),
		time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 27, 5, 0, 0, 0, time.FixedZone("CET", 3600)),
	} {
		check(tm)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		check(time.Unix(0, r.Int64()))
	}
}
