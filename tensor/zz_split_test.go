package tensor

import (
	"fmt"
	"testing"
)

func BenchmarkZZSplit(b *testing.B) {
	r := newRNG(1)
	for _, s := range []struct{ m, k, n int }{{1500, 384, 1536}, {1500, 1536, 384}, {64, 384, 1536}} {
		x, w := randSlice(r, s.m*s.k, 1), randSlice(r, s.n*s.k, 1)
		out := make([]float32, s.m*s.n)
		for _, mode := range []string{"blas1", "blas2", "split2"} {
			b.Run(fmt.Sprintf("%v/%s", s, mode), func(b *testing.B) {
				bt := 1
				if mode == "blas2" {
					bt = 2
				}
				withThreads(b, 2, bt, func() {
					for b.Loop() {
						if mode == "split2" {
							parallelFor(s.m, 16, func(lo, hi int) {
								Sgemm(false, true, hi-lo, s.n, s.k, 1, x[lo*s.k:], s.k, w, s.k, 0, out[lo*s.n:], s.n)
							})
						} else {
							Sgemm(false, true, s.m, s.n, s.k, 1, x, s.k, w, s.k, 0, out, s.n)
						}
					}
				})
				report(b, 2*float64(s.m*s.n*s.k), 0)
			})
		}
	}
}
