//go:build race

package signatures

// raceEnabled: the race detector allocates in instrumented code, so
// allocation counts are only checked without it.
const raceEnabled = true
