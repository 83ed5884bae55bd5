package prune

import (
	"math"
	"testing"
)

// TestNonUniformValues pins both regularisers on hand cases.
func TestNonUniformValues(t *testing.T) {
	for _, tc := range []struct {
		name  string
		r     []float64
		h, kl float64
	}{
		{"uniform halves", []float64{0.5, 0.5}, math.Ln2, 0},
		{"uniform", []float64{0.3, 0.3, 0.3}, -(0.3*math.Log(0.3) + 0.7*math.Log(0.7)), 0},
		// q = (0.8, 0.2): KL = 0.8·log 1.6 + 0.2·log 0.4.
		{"polarised", []float64{1, 0.25}, (0 + -(0.25*math.Log(0.25) + 0.75*math.Log(0.75))) / 2, 0.8*math.Log(1.6) + 0.2*math.Log(0.4)},
	} {
		h, _ := BinaryEntropy(tc.r)
		kl, _ := KLFromUniform(tc.r)
		if math.Abs(h-tc.h) > 1e-9 || math.Abs(kl-tc.kl) > 1e-9 {
			t.Errorf("%s: entropy %v KL %v, want %v %v", tc.name, h, kl, tc.h, tc.kl)
		}
	}
}

// TestNonUniformGradients checks both gradients against central differences (float64,
// h = 1e-6, ratios kept 0.05 from 0 and 1).
func TestNonUniformGradients(t *testing.T) {
	r := newRNG(61)
	x := make([]float64, 7)
	for i := range x {
		x[i] = 0.05 + 0.9*r.Float64()
	}
	for name, f := range map[string]func([]float64) (float64, []float64){"entropy": BinaryEntropy, "kl": KLFromUniform} {
		_, got := f(x)
		var worst float64
		for i := range x {
			old := x[i]
			x[i] = old + 1e-6
			lp, _ := f(x)
			x[i] = old - 1e-6
			lm, _ := f(x)
			x[i] = old
			worst = math.Max(worst, math.Abs(got[i]-(lp-lm)/2e-6))
		}
		t.Logf("%s: max |grad − fd| %.3g", name, worst)
		if worst > 1e-8 {
			t.Errorf("%s: max |grad − fd| %.3g", name, worst)
		}
	}
}

// TestRegulariserDirection: descent on each regulariser alone (λ = 0) moves the layers' keep
// ratios the way its doc says: the entropy term polarises them (mean |r − ½| grows; without
// the Lagrangian holding the total they may all go the same way), the KL term spreads them
// apart (their standard deviation grows).
func TestRegulariserDirection(t *testing.T) {
	spread := func(r []float64) float64 {
		m := sum(r) / float64(len(r))
		var v float64
		for _, x := range r {
			v += (x - m) * (x - m)
		}
		return math.Sqrt(v / float64(len(r)))
	}
	polar := func(r []float64) float64 {
		var v float64
		for _, x := range r {
			v += math.Abs(x - 0.5)
		}
		return v / float64(len(r))
	}
	for _, tc := range []struct {
		reg     Regulariser
		measure func([]float64) float64
	}{{Regulariser{Entropy: 1}, polar}, {Regulariser{KL: 1}, spread}} {
		reg := tc.reg
		g := randomGates(t, 71)
		for side := range numSides {
			for k := range NumKinds {
				if x := g.LogAlpha[side][k]; x != nil {
					for i := range x.Data {
						x.Data[i] *= 0.3 // near-uniform start
					}
				}
			}
		}
		ratios := func() []float64 {
			kept := g.S.Expected(g.HC.KeepProbs(&g.LogAlpha))
			return LayerRatios(kept, g.S.Full())
		}
		before := tc.measure(ratios())
		for range 50 {
			tape := newTape()
			g.Params(tape)
			g.Lambda1.Data[0], g.Lambda2.Data[0] = 0, 0 // regulariser only
			g.Objective(Lagrangian{Target: 0.5}, reg, 0, tape)
			for side := range numSides {
				for k := range NumKinds {
					if x := g.LogAlpha[side][k]; x != nil {
						gr := tape.Grad(x).Data
						for i := range x.Data {
							x.Data[i] -= 20 * gr[i]
						}
					}
				}
			}
		}
		after := tc.measure(ratios())
		t.Logf("%+v: measure %.4f → %.4f", reg, before, after)
		if !(after > 1.5*before) {
			t.Errorf("%+v: measure %.4f → %.4f, want it to grow", reg, before, after)
		}
	}
}
