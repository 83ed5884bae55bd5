package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestLayerNormMasked: the kept columns equal LayerNormNaive of the kept sub-rows, the
// others are zero, and the backward twin matches central differences for x, γ and β.
func TestLayerNormMasked(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	const rows, cols = 3, 7
	keep := []int{0, 2, 3, 6}
	x, g, b := make([]float32, rows*cols), make([]float32, cols), make([]float32, cols)
	for _, s := range [][]float32{x, g, b} {
		for i := range s {
			s[i] = float32(2*r.Float64() - 1)
		}
	}
	out := make([]float32, rows*cols)
	LayerNormMasked(out, x, g, b, keep, rows, cols, 1e-5)
	sub, want := make([]float32, rows*len(keep)), make([]float32, rows*len(keep))
	gather(sub, x, keep, rows, cols)
	LayerNormNaive(want, sub, pick(g, keep), pick(b, keep), rows, len(keep), 1e-5)
	for rr := range rows {
		for j := range cols {
			got := out[rr*cols+j]
			w := float32(0)
			for i, k := range keep {
				if k == j {
					w = want[rr*len(keep)+i]
				}
			}
			if math.Abs(float64(got-w)) > 1e-6 {
				t.Fatalf("out[%d,%d] = %v, want %v", rr, j, got, w)
			}
		}
	}
	seed := make([]float32, rows*cols)
	for i := range seed {
		seed[i] = float32(2*r.Float64() - 1)
	}
	loss := func() float64 {
		LayerNormMasked(out, x, g, b, keep, rows, cols, 1e-5)
		var l float64
		for i, v := range out {
			l += float64(v) * float64(seed[i])
		}
		return l
	}
	dx, dg, db := make([]float32, len(x)), make([]float32, len(g)), make([]float32, len(b))
	LayerNormMaskedBackward(dx, dg, db, seed, x, g, keep, rows, cols, 1e-5)
	for name, p := range map[string][2][]float32{"x": {x, dx}, "gamma": {g, dg}, "beta": {b, db}} {
		w, d := p[0], p[1]
		for i := range w {
			old := w[i]
			w[i] = old + 1e-3
			lp := loss()
			w[i] = old - 1e-3
			lm := loss()
			w[i] = old
			fd := (lp - lm) / 2e-3
			if math.Abs(fd-float64(d[i])) > 2e-2*math.Abs(fd)+2e-3 {
				t.Errorf("d%s[%d] = %v, finite difference %v", name, i, d[i], fd)
			}
		}
	}
	// Removed columns pass no gradient and their γ, β none either.
	if dx[1] != 0 || dg[1] != 0 || db[5] != 0 {
		t.Fatalf("gradient on a removed column: dx %v dγ %v dβ %v", dx[1], dg[1], db[5])
	}
}
