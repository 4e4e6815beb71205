package main

import (
	"context"
	"time"
)

// probeFunc runs one trial at pps packets/s (0: tcpreplay --topspeed).
type probeFunc func(ctx context.Context, pps float64) (trialResult, error)

// searchLimits bound one engine's search.
type searchLimits struct {
	// Budget is the wall time the search may take; a trial is started only
	// if its estimated cost fits in what is left (the first always runs).
	Budget time.Duration
	// Resolution ends the search once the lossless and the failing rate are
	// within this fraction of each other.
	Resolution float64
	// MinPPS: below this rate the search gives up (nothing is lossless).
	MinPPS float64
	// Cost estimates a trial's wall time at a rate.
	Cost func(pps float64) time.Duration
	// Now is the clock (tests replace it).
	Now func() time.Time
}

// searchResult is the outcome for one engine.
type searchResult struct {
	Trials []trialResult
	// Best is the lossless trial with the highest achieved rate (nil: none).
	Best *trialResult
	// FirstFail is the failing trial with the lowest rate (nil: none
	// failed); every rate under it that was tried was lossless.
	FirstFail *trialResult
	// Ceiling is tcpreplay's --topspeed rate with the daemon capturing.
	Ceiling float64
	// Converged is false when the budget ran out before the resolution
	// was reached.
	Converged bool
}

// GeneratorLimited reports whether the sender, not phonehome, bounded the
// best rate: the best trial ran at --topspeed, or tcpreplay fell short of
// the rate asked of it.
func (s *searchResult) GeneratorLimited() bool {
	return s.Best != nil && (s.Best.Requested == 0 || s.Best.GeneratorLimited())
}

// search finds the highest lossless rate: one --topspeed trial gives the
// sender's ceiling (if even that is lossless, the search ends there), then
// the first guess is the rate the daemon actually sustained during that
// overload, and bisection narrows the bracket [lossless, failing] until it
// is within the resolution or the budget is spent. Each trial runs against
// a fresh daemon, so no trial inherits another's backlog.
func search(ctx context.Context, probe probeFunc, lim searchLimits, logTrial func(*trialResult)) (searchResult, error) {
	var res searchResult
	start := lim.Now()
	record := func(r trialResult) *trialResult {
		res.Trials = append(res.Trials, r)
		t := &res.Trials[len(res.Trials)-1]
		if logTrial != nil {
			logTrial(t)
		}
		return t
	}
	first, err := probe(ctx, 0)
	if err != nil {
		return res, err
	}
	top := record(first)
	res.Ceiling = top.Replay.PPS
	if top.Lossless() {
		res.Best, res.Converged = top, true
		return res, nil
	}
	// lo: highest requested rate found lossless (0: none yet);
	// hi: lowest rate found failing (the ceiling to start with).
	lo, hi := 0.0, res.Ceiling
	res.FirstFail = top
	// The daemon's share of what was sent at full speed is about what it
	// can sustain; start a little under it.
	next := 0.9 * hi
	if sent := top.Replay.Successful; sent > 0 {
		next = 0.95 * hi * float64(top.Daemon.Frames) / float64(sent)
	}
	for {
		if lo > 0 && (hi-lo) <= lim.Resolution*hi {
			res.Converged = true
			return res, nil
		}
		if next < lim.MinPPS {
			// Nothing lossless even at the floor rate.
			res.Converged = true
			return res, nil
		}
		if lim.Now().Sub(start)+lim.Cost(next) > lim.Budget {
			return res, nil
		}
		r, err := probe(ctx, next)
		if err != nil {
			return res, err
		}
		t := record(r)
		if t.Lossless() {
			lo = next
			if res.Best == nil || t.Replay.PPS > res.Best.Replay.PPS {
				res.Best = t
			}
			if t.GeneratorLimited() {
				// The sender cannot go faster at a paced rate: higher
				// requests would measure tcpreplay, not phonehome.
				res.Converged = true
				return res, nil
			}
		} else {
			// next < hi always, so this is the lowest failing rate yet.
			hi, res.FirstFail = next, t
		}
		if lo == 0 {
			next = 0.7 * hi // no lossless rate yet: step down geometrically
		} else {
			next = (lo + hi) / 2
		}
	}
}
