package exfil

import (
	"math"
	"math/bits"
)

// hllPrecision gives 2^10 = 1024 one-byte registers (1 KiB per pair) and a
// standard error of about 1.04/sqrt(1024) = 3.3 %, enough to place a count
// in RITA's 100/500/800/1000 subdomain buckets.
const (
	hllPrecision = 10
	hllRegisters = 1 << hllPrecision
)

// hll is a HyperLogLog cardinality sketch over 64-bit hashes.
type hll struct {
	reg [hllRegisters]uint8
}

func (h *hll) add(x uint64) {
	x = mix64(x)
	i := x >> (64 - hllPrecision)
	w := x<<hllPrecision | 1<<(hllPrecision-1) // guard bit bounds the rank
	rank := uint8(bits.LeadingZeros64(w)) + 1
	if rank > h.reg[i] {
		h.reg[i] = rank
	}
}

func (h *hll) estimate() uint64 {
	const m = float64(hllRegisters)
	alpha := 0.7213 / (1 + 1.079/m)
	var sum float64
	zeros := 0
	for _, r := range h.reg {
		sum += math.Ldexp(1, -int(r))
		if r == 0 {
			zeros++
		}
	}
	e := alpha * m * m / sum
	if e <= 2.5*m && zeros > 0 { // small-range correction (linear counting)
		e = m * math.Log(m/float64(zeros))
	}
	return uint64(e + 0.5)
}

// mix64 is the splitmix64 finaliser; FNV output alone is too regular in
// its high bits for HyperLogLog.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// fnv64 hashes s with FNV-1a without allocating.
func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
