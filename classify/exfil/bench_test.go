package exfil

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

func BenchmarkObserveFlow(b *testing.B) {
	d := newDet(b, nil)
	rng := rand.New(rand.NewPCG(1, 1))
	const pairs = 1000
	recs := make([]FlowRecord, 0, 64*pairs)
	for i := range 64 {
		for p := range pairs {
			start := t0 + int64(i)*int64(time.Minute) + rng.Int64N(int64(2*time.Second))
			r := conn(start, time.Second, 600+uint64(rng.IntN(50)), 1500, fmt.Sprintf("f%d-%d", p, i))
			r.Client = netip.AddrFrom4([4]byte{10, 0, byte(p >> 8), byte(p)})
			r.ServerName = fmt.Sprintf("svc%d.example.com", p%50)
			recs = append(recs, r)
		}
	}
	out := make([]Alert, 0, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out = d.ObserveFlow(&recs[i%len(recs)], out[:0])
	}
}

func BenchmarkObserveDNS(b *testing.B) {
	d := newDet(b, nil)
	rng := rand.New(rand.NewPCG(2, 2))
	qs := make([]DNSQuery, 0, 100_000)
	for i := range cap(qs) {
		reg := fmt.Sprintf("domain%d.com", i%500)
		qs = append(qs, DNSQuery{Client: netip.AddrFrom4([4]byte{10, 0, 0, byte(i % 200)}),
			Name: randLabel(rng, 24) + "." + reg, RegisteredDomain: reg, QType: 1,
			TimeNS: t0 + int64(i)*int64(time.Millisecond)})
	}
	out := make([]Alert, 0, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out = d.ObserveDNS(&qs[i%len(qs)], out[:0])
	}
}
