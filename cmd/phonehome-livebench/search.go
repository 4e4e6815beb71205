package main

import (
	"context"
	"time"
)

// maxTrials bounds one engine's trials whatever the budget.
const maxTrials = 64

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
	// Repeats is how many more times the best rate must be lossless
	// before it stands (0: once is enough).
	Repeats int
}

// searchResult is the outcome for one engine.
type searchResult struct {
	Trials []trialResult
	// Best is the lossless trial with the highest rate still standing (a
	// rate that failed on its repeat no longer counts); nil: none.
	Best *trialResult
	// Confirmed is set when Best's rate was lossless 1+Repeats times.
	Confirmed bool
	// FirstFail is the failing trial with the lowest rate (nil: none
	// failed); every rate under it that was tried was lossless.
	FirstFail *trialResult
	// Ceiling is tcpreplay's --topspeed rate with the daemon capturing.
	Ceiling float64
	// Converged is false when the budget ran out before the resolution
	// was reached and Best was repeated.
	Converged bool
}

// GeneratorLimited reports whether the sender, not phonehome, bounded the
// best rate: the best trial ran at --topspeed, or tcpreplay fell short of
// the rate asked of it.
func (s *searchResult) GeneratorLimited() bool {
	return s.Best != nil && (s.Best.Requested == 0 || s.Best.GeneratorLimited())
}

// search finds the highest lossless rate. A --topspeed trial gives the
// sender's ceiling; if it is lossless it is repeated once and, lossless
// again, ends the search (the sender is the limit). Otherwise the first
// guess is the rate the daemon actually sustained during that overload and
// bisection narrows the bracket [lossless, failing] to the resolution (or
// stops early if tcpreplay cannot reach a paced rate that was lossless).
// The best rate is then repeated: on a machine shared with other work one
// lucky trial must not make the figure; if the repeat fails, that rate
// becomes the failing end and the search goes on below it. Every trial
// runs against a fresh daemon, so none inherits another's backlog.
func search(ctx context.Context, probe probeFunc, lim searchLimits, logTrial func(*trialResult)) (searchResult, error) {
	var res searchResult
	start := lim.Now()
	fits := func(pps float64) bool { return lim.Now().Sub(start)+lim.Cost(pps) <= lim.Budget }
	run := func(pps float64) (*trialResult, error) {
		r, err := probe(ctx, pps)
		if err != nil {
			return nil, err
		}
		res.Trials = append(res.Trials, r)
		t := &res.Trials[len(res.Trials)-1]
		if logTrial != nil {
			logTrial(t)
		}
		return t, nil
	}
	// res.Trials never grows past maxTrials, so pointers into it stay valid.
	res.Trials = make([]trialResult, 0, maxTrials)

	top, err := run(0)
	if err != nil {
		return res, err
	}
	res.Ceiling = top.Replay.PPS
	if top.Lossless() {
		res.Best = top
		for range lim.Repeats {
			if !fits(0) {
				return res, nil
			}
			again, err := run(0)
			if err != nil {
				return res, err
			}
			if !again.Lossless() {
				res.Best, top = nil, again
				break
			}
			// Report the slowest lossless run.
			if again.Replay.PPS < res.Best.Replay.PPS {
				res.Best = again
			}
		}
		if res.Best != nil {
			res.Confirmed, res.Converged = lim.Repeats > 0, true
			return res, nil
		}
	}

	// lo: highest requested rate found lossless (0: none yet);
	// hi: lowest rate found failing (the ceiling to start with).
	lo, hi := 0.0, top.Replay.PPS
	res.FirstFail = top
	var passes []*trialResult    // lossless paced trials, rising rates
	repeats := map[float64]int{} // lossless repeats of a rate
	// The daemon's share of what was sent at full speed is about what it
	// can sustain; start a little under it.
	next := 0.9 * hi
	if sent := top.Replay.Successful; sent > 0 {
		next = 0.95 * hi * float64(top.Daemon.Frames) / float64(sent)
	}
	stopUp := false // a paced lossless trial fell short of its rate
	for len(res.Trials) < cap(res.Trials) {
		if lo > 0 && ((hi-lo) <= lim.Resolution*hi || stopUp) {
			if repeats[lo] >= lim.Repeats {
				res.Converged, res.Confirmed = true, lim.Repeats > 0
				return res, nil
			}
			next = lo // repeat the best rate
		} else if next < lim.MinPPS {
			res.Converged = true // nothing lossless even at the floor rate
			return res, nil
		}
		if !fits(next) {
			return res, nil
		}
		t, err := run(next)
		if err != nil {
			return res, err
		}
		repeat := next == lo
		switch {
		case t.Lossless() && repeat:
			repeats[lo]++
			// Keep the slower of the two lossless runs as the figure.
			if t.Replay.PPS < res.Best.Replay.PPS {
				res.Best = t
			}
		case t.Lossless():
			lo = next
			passes = append(passes, t)
			res.Best = t
			// The sender cannot go faster at a paced rate: higher
			// requests would measure tcpreplay, not phonehome.
			stopUp = stopUp || t.GeneratorLimited()
		default:
			// next < hi always, so this is the lowest failing rate yet.
			hi, res.FirstFail = next, t
			if repeat {
				// The best rate failed on its repeat: fall back to the
				// last lossless rate under it.
				passes = passes[:len(passes)-1]
				lo, res.Best, stopUp = 0, nil, false
				if n := len(passes); n > 0 {
					p := passes[n-1]
					lo, res.Best, stopUp = p.Requested, p, p.GeneratorLimited()
				}
			}
		}
		if lo == 0 {
			next = 0.7 * hi // no lossless rate yet: step down geometrically
		} else {
			next = (lo + hi) / 2
		}
	}
	return res, nil
}
