package prune

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/chorus-asr/chorus/tensor"
)

func randomGates(t testing.TB, seed uint64) *Gates {
	t.Helper()
	g, err := NewGates(mustStructure(t, tinyDims), DefaultHardConcrete(), DefaultInit, seed)
	if err != nil {
		t.Fatal(err)
	}
	r := newRNG(seed)
	for side := range numSides {
		for k := range NumKinds {
			if x := g.LogAlpha[side][k]; x != nil {
				for i := range x.Data {
					x.Data[i] = float32(4*r.Float64() - 2)
				}
			}
		}
	}
	return g
}

// maskedGraph multiplies activations by sampled masks the way the model will: hidden dims on
// the input, one layer's head blocks, one layer's units after fc1, a whole-layer gate, and a
// decoder cross-attention row. It returns Σ w·out in float64.
func maskedGraph(ctx *tensor.Ctx, z Set, x, w1, w2 *tensor.T, seed []float32) (*tensor.T, float64) {
	h := ctx.GroupScale(x, z.Layer(ctx, Encoder, Hidden, 0))                     // [4, 6] · 6 dims
	h = ctx.GroupScale(h, z.Layer(ctx, Encoder, Heads, 1))                       // two heads of 3 columns
	u := ctx.GroupScale(ctx.Linear(h, w1, nil), z.Layer(ctx, Encoder, Units, 0)) // [4, 8] · 8 units
	o := ctx.GroupScale(ctx.Linear(u, w2, nil), z.Layer(ctx, Encoder, FFN, 0))   // whole layer
	o = ctx.GroupScale(o, z.Layer(ctx, Decoder, CrossHeads, 0))                  // three heads of 2
	var l float64
	for i, v := range o.Data {
		l += float64(seed[i]) * float64(v)
	}
	return o, l
}

// TestSampleOnTape: gradients of a masked graph with respect to every log α, through the
// taped hard-concrete draws, against central differences with the noise held fixed (the same
// rng seed). The forward is float32, so h = 1e-2 and the bound is 2e-3·max|grad| (as the
// tensor package's tape tests); gates whose draw is within 2h of a clamp edge are skipped,
// and unused gates must get exactly zero.
func TestSampleOnTape(t *testing.T) {
	g := randomGates(t, 21)
	r := newRNG(22)
	rnd := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(2*r.Float64() - 1)
		}
		return s
	}
	x, w1, w2 := tensor.FromData(rnd(24), 4, 6), tensor.FromData(rnd(48), 8, 6), tensor.FromData(rnd(48), 6, 8)
	seed := rnd(24)
	const noise = 99
	loss := func() float64 {
		ctx := tensor.NewCtx()
		_, l := maskedGraph(ctx, g.Sample(ctx, rand.New(rand.NewPCG(noise, 1))), x, w1, w2, seed)
		return l
	}
	ctx := tensor.NewTrainCtx()
	tape := ctx.Tape()
	params := g.Params(tape)
	if len(params) != 2*int(NumKinds)-2+2 { // encoder has no cross gates; plus λ₁, λ₂
		t.Fatalf("%d params", len(params))
	}
	z := g.Sample(ctx, rand.New(rand.NewPCG(noise, 1)))
	out, _ := maskedGraph(ctx, z, x, w1, w2, seed)
	tape.Seed(out, seed)
	tape.Backward()
	// Noise as Sample draws it, to find gates near a clamp edge.
	nr := rand.New(rand.NewPCG(noise, 1))
	const h = 1e-2
	var worst, scale float64
	checked, zero := 0, 0
	for side := range numSides {
		for k := range NumKinds {
			la := g.LogAlpha[side][k]
			if la == nil {
				continue
			}
			grad := tape.Grad(la).Data
			for i := range la.Data {
				u := g.HC.Eps + (1-2*g.HC.Eps)*nr.Float64()
				region := func(a float64) int { // 0: clamped to 0, 1: interior, 2: clamped to 1
					sb := g.HC.stretched(float64(la.Data[i])+a, float64(float32(u)))
					return min(2, max(0, int(math.Floor(sb))+1))
				}
				edge := region(-2*h) != region(2*h)
				if edge {
					continue
				}
				old := la.Data[i]
				la.Data[i] = old + h
				hp := float64(la.Data[i] - old)
				lp := loss()
				la.Data[i] = old - h
				hm := float64(old - la.Data[i])
				lm := loss()
				la.Data[i] = old
				want := (lp - lm) / (hp + hm)
				if want == 0 {
					zero++
					if grad[i] != 0 {
						t.Fatalf("%s %s[%d]: gradient %g where the loss does not depend on it", side, k, i, grad[i])
					}
					continue
				}
				checked++
				worst = math.Max(worst, math.Abs(float64(grad[i])-want))
				scale = math.Max(scale, math.Abs(want))
			}
		}
	}
	t.Logf("%d gates checked, %d without influence; max |grad − fd| %.3g (max |grad| %.3g)", checked, zero, worst, scale)
	if checked < 8 { // about 2/3 of the 20 gates the graph uses are interior draws
		t.Fatalf("only %d gates checked", checked)
	}
	if worst > 2e-3*scale+1e-6 {
		t.Fatalf("max |grad − fd| %.3g exceeds %.3g", worst, 2e-3*scale+1e-6)
	}
}

// TestObjectiveGradients: the sparsity objective's log α gradients (descent) and λ gradients
// (stored negated: ascent) against central differences of its value, with both regularisers
// on. The objective is float64 of float32 log α; h = 1e-3 (truncation ~1e-7 relative).
func TestObjectiveGradients(t *testing.T) {
	for _, reg := range []Regulariser{{}, {Entropy: 0.3}, {KL: 0.4}, {Entropy: 0.2, KL: 0.5}} {
		t.Run(fmt.Sprintf("%+v", reg), func(t *testing.T) {
			g := randomGates(t, 31)
			g.Lambda1.Data[0], g.Lambda2.Data[0] = 0.3, 0.7
			lag := Lagrangian{Target: 0.5, Warmup: 10}
			ctx := tensor.NewTrainCtx()
			tape := ctx.Tape()
			g.Params(tape)
			sp := g.Objective(lag, reg, 4, tape)
			if sp.Target != 0.2 {
				t.Fatalf("target at step 4 of 10: %v, want 0.2", sp.Target)
			}
			value := func() float64 { return g.Objective(lag, reg, 4, nil).Loss }
			var worst, scale float64
			check := func(label string, x *tensor.T, sign float64) {
				grad := tape.Grad(x).Data
				for i := range x.Data {
					old := x.Data[i]
					x.Data[i] = old + 1e-3
					hp := float64(x.Data[i] - old)
					lp := value()
					x.Data[i] = old - 1e-3
					hm := float64(old - x.Data[i])
					lm := value()
					x.Data[i] = old
					want := sign * (lp - lm) / (hp + hm)
					worst = math.Max(worst, math.Abs(float64(grad[i])-want))
					scale = math.Max(scale, math.Abs(want))
				}
			}
			for side := range numSides {
				for k := range NumKinds {
					if x := g.LogAlpha[side][k]; x != nil {
						check(fmt.Sprintf("%s %s", side, k), x, 1)
					}
				}
			}
			check("lambda1", g.Lambda1, -1)
			check("lambda2", g.Lambda2, -1)
			t.Logf("ŝ %.4f, loss %.5f; max |grad − fd| %.3g (max |grad| %.3g)", sp.Expected, sp.Loss, worst, scale)
			if worst > 1e-4*scale+1e-7 {
				t.Fatalf("max |grad − fd| %.3g exceeds %.3g", worst, 1e-4*scale+1e-7)
			}
		})
	}
}

// TestLambdaAscent: one plain descent step on the stored λ gradients raises the Lagrangian
// term while ŝ misses the target: the multipliers are maximised.
func TestLambdaAscent(t *testing.T) {
	g := randomGates(t, 41)
	lag := Lagrangian{Target: 0.6}
	tape := tensor.NewTrainCtx().Tape()
	g.Params(tape)
	before := g.Objective(lag, Regulariser{}, 0, tape)
	for _, l := range []*tensor.T{g.Lambda1, g.Lambda2} {
		l.Data[0] -= 0.5 * tape.Grad(l).Data[0]
	}
	after := g.Objective(lag, Regulariser{}, 0, nil)
	if !(after.Lagrange > before.Lagrange) {
		t.Fatalf("ŝ %.3f, t %.3f: Lagrangian %.5f → %.5f after a step, want an increase", before.Expected, before.Target, before.Lagrange, after.Lagrange)
	}
}

// TestDeterministicSet: evaluation masks group per layer (heads, units, layer gates) and over
// the whole vector (hidden), with the set's shapes.
func TestDeterministicSet(t *testing.T) {
	g := randomGates(t, 51)
	hc := g.HC
	z := g.Deterministic()
	for side := range numSides {
		for k := range NumKinds {
			la := g.LogAlpha[side][k]
			if (la == nil) != (z[side][k] == nil) {
				t.Fatalf("%s %s: log α %v, mask %v", side, k, la, z[side][k])
			}
			if la == nil {
				continue
			}
			rows, size := la.Shape[0], la.Shape[1]
			for r := range rows {
				want := make([]float32, size)
				hc.Deterministic(want, la.Data[r*size:(r+1)*size])
				for i, v := range want {
					if z[side][k].Data[r*size+i] != v {
						t.Fatalf("%s %s row %d: %v, want %v", side, k, r, z[side][k].Data[r*size:(r+1)*size], want)
					}
				}
			}
		}
	}
}

func newTape() *tensor.Tape { return tensor.NewTape() }
