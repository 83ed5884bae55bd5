package tensor

import (
	"math"
	"testing"
)

// TestArgMaxKernel checks ArgMax against ArgMaxNaive on random lengths with ties, NaNs and
// infinities planted anywhere (in the vector body, across the four lane sets, in the tail).
func TestArgMaxKernel(t *testing.T) {
	r := newRNG(32)
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for trial := range 3000 {
		n := r.IntN(300)
		if trial%100 == 0 {
			n = 51865
		}
		x := randSlice(r, n, 1)
		for range r.IntN(4) {
			if n == 0 {
				break
			}
			switch i := r.IntN(n); r.IntN(5) {
			case 0:
				x[i] = nan
			case 1:
				x[i] = -inf
			case 2:
				x[i] = inf
			default:
				x[i] = x[r.IntN(n)] // a tie
			}
		}
		if trial%50 == 1 { // nothing above -Inf: the kernel declines, the scan decides
			for i := range x {
				x[i] = -inf
				if r.IntN(3) == 0 {
					x[i] = nan
				}
			}
		}
		if got, want := ArgMax(x), ArgMaxNaive(x); got != want {
			t.Fatalf("n=%d: ArgMax = %d, ArgMaxNaive = %d", n, got, want)
		}
	}
}
