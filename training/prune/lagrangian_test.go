package prune

import (
	"math"
	"testing"
)

func TestTargetWarmup(t *testing.T) {
	for _, tc := range []struct {
		lag  Lagrangian
		step int
		want float64
	}{
		{Lagrangian{Target: 0.6, Warmup: 100}, 0, 0},
		{Lagrangian{Target: 0.6, Warmup: 100}, 25, 0.15},
		{Lagrangian{Target: 0.6, Warmup: 100}, 100, 0.6},
		{Lagrangian{Target: 0.6, Warmup: 100}, 1000, 0.6},
		{Lagrangian{Target: 0.6}, 0, 0.6},
	} {
		if got := tc.lag.TargetAt(tc.step); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%+v at step %d: %v, want %v", tc.lag, tc.step, got, tc.want)
		}
	}
	for _, bad := range []Lagrangian{{Target: 1}, {Target: 1.2}, {Target: -0.1}, {Target: math.NaN()}, {Target: 0.5, Warmup: -1}} {
		if bad.Validate() == nil {
			t.Errorf("%+v: want an error", bad)
		}
	}
}

// TestLagrangianTerm: value on a hand case and the three partial derivatives against
// central differences (float64, h = 1e-6).
func TestLagrangianTerm(t *testing.T) {
	// ŝ 0.3, t 0.5: e = −0.2; 2·(−0.2) + 3·0.04 = −0.28.
	if l, _, _, _ := LagrangianTerm(0.3, 0.5, 2, 3); math.Abs(l+0.28) > 1e-12 {
		t.Fatalf("L_c = %v, want −0.28", l)
	}
	x := []float64{0.3, 0.5, 2, 3} // ŝ, t, λ₁, λ₂
	f := func() float64 { l, _, _, _ := LagrangianTerm(x[0], x[1], x[2], x[3]); return l }
	_, ds, dl1, dl2 := LagrangianTerm(x[0], x[1], x[2], x[3])
	for i, got := range map[int]float64{0: ds, 2: dl1, 3: dl2} {
		old := x[i]
		x[i] = old + 1e-6
		lp := f()
		x[i] = old - 1e-6
		lm := f()
		x[i] = old
		if want := (lp - lm) / 2e-6; math.Abs(got-want) > 1e-8 {
			t.Errorf("argument %d: derivative %v, finite difference %v", i, got, want)
		}
	}
}
