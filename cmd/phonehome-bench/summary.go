package main

import (
	"fmt"
	"strings"
)

// replaySummary is what the benchmark reads from `phonehome replay`'s
// summary on stderr.
type replaySummary struct {
	Frames uint64
	Events uint64
}

// parseSummary reads the "packets N frames, ..." and "events N: ..." lines
// of the replay summary (cmd/phonehome printSummary).
func parseSummary(stderr string) (replaySummary, error) {
	var s replaySummary
	var haveFrames, haveEvents bool
	for _, line := range strings.Split(stderr, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "packets":
			if _, err := fmt.Sscanf(f[1], "%d", &s.Frames); err == nil {
				haveFrames = true
			}
		case "events":
			if _, err := fmt.Sscanf(strings.TrimSuffix(f[1], ":"), "%d", &s.Events); err == nil {
				haveEvents = true
			}
		}
	}
	if !haveFrames || !haveEvents {
		return s, fmt.Errorf("no packets/events lines in the replay summary: %q", stderr)
	}
	return s, nil
}
