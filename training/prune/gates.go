package prune

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/chorus-asr/chorus/tensor"
	"github.com/chorus-asr/chorus/training/trainer"
)

// Gates are the trainable parts of a CoFi run: one log α per gate of a Structure, and the
// Lagrange multipliers λ₁, λ₂ (scalars, [1] each).
type Gates struct {
	HC       HardConcrete
	S        Structure
	LogAlpha Set
	Lambda1  *tensor.T // [1], starts at 0 (CoFi)
	Lambda2  *tensor.T // [1]
}

// DefaultInit is CoFi's initial mean log α per kind (l0_module.py#L113-L171): 10 (kept almost
// surely) for heads, whole layers and hidden dimensions, and log(1−d) − log(d) = 0 for the
// FFN units (droprate_init d = ½).
var DefaultInit = [NumKinds]float64{Heads: 10, Attn: 10, CrossHeads: 10, Cross: 10, Units: 0, FFN: 10, Hidden: 10}

// NewGates returns gates for s with log α = init[kind] + noise uniform in ±0.01·√3 (CoFi draws
// N(mean, 0.01²); the same spread, reproducible from seed through tensor.SeededUniform).
func NewGates(s Structure, hc HardConcrete, init [NumKinds]float64, seed uint64) (*Gates, error) {
	if err := hc.Validate(); err != nil {
		return nil, err
	}
	g := &Gates{HC: hc, S: s, LogAlpha: NewSet(s, 0), Lambda1: tensor.New(1), Lambda2: tensor.New(1)}
	for side := range numSides {
		for k := range NumKinds {
			if t := g.LogAlpha[side][k]; t != nil {
				tensor.SeededUniform(t.Data, seed, g.name(side, k), init[k], 0.01*math.Sqrt(3))
			}
		}
	}
	return g, nil
}

func (g *Gates) name(side Side, k Kind) string {
	return fmt.Sprintf("prune.%s.%s.log_alpha", side, k)
}

// Params registers the gates and multipliers with the tape (Watch) and returns them as
// trainer params whose gradients live in the tape. None is weight-decayed: decay would pull
// log α towards "keep with probability ½" and the multipliers towards 0. The multipliers'
// gradients hold −∂L/∂λ (see Lagrangian), so the optimizer ascends on them.
func (g *Gates) Params(tape *tensor.Tape) []trainer.Param {
	var ps []trainer.Param
	add := func(name string, w *tensor.T) {
		tape.Watch(w)
		ps = append(ps, trainer.Param{Name: name, W: w, Grad: tape.Grad(w)})
	}
	for side := range numSides {
		for k := range NumKinds {
			if t := g.LogAlpha[side][k]; t != nil {
				add(g.name(side, k), t)
			}
		}
	}
	add("prune.lambda_1", g.Lambda1)
	add("prune.lambda_2", g.Lambda2)
	return ps
}

// Sample draws one training step's masks z = hard-concrete(log α, u), with fresh noise u from
// rng, and records each draw on ctx's tape (when attached and log α watched) so that the
// gradients reaching z through the model flow to log α (HardConcrete.SampleBackward). The
// masks and noise live in ctx's arena: valid until ctx.Reset.
func (g *Gates) Sample(ctx *tensor.Ctx, rng *rand.Rand) Set {
	var z Set
	lo, hi := g.HC.Eps, 1-g.HC.Eps
	for side := range numSides {
		for k := range NumKinds {
			la := g.LogAlpha[side][k]
			if la == nil {
				continue
			}
			u := ctx.New(la.Shape...)
			for i := range u.Data {
				u.Data[i] = float32(lo + (hi-lo)*rng.Float64())
			}
			out := ctx.New(la.Shape...)
			g.HC.Sample(out.Data, la.Data, u.Data)
			ctx.Custom(out, []*tensor.T{la}, func(dout []float32, d [][]float32) {
				g.HC.SampleBackward(d[0], dout, la.Data, u.Data)
			})
			z[side][k] = out
		}
	}
	return z
}

// Deterministic returns the evaluation masks (HardConcrete.Deterministic): per layer for the
// per-layer kinds — each layer's heads or units keep their own expected number of zeros, and
// a whole-layer gate is its own group of one — and over the whole vector for the hidden
// dimensions, as CoFi's forward(training=False) groups them (l0_module.py#L366-L377).
func (g *Gates) Deterministic() Set {
	var z Set
	for side := range numSides {
		for k := range NumKinds {
			la := g.LogAlpha[side][k]
			if la == nil {
				continue
			}
			out := tensor.New(la.Shape...)
			rows, size := la.Shape[0], la.Shape[1]
			for r := range rows {
				g.HC.Deterministic(out.Data[r*size:(r+1)*size], la.Data[r*size:(r+1)*size])
			}
			z[side][k] = out
		}
	}
	return z
}

// Constrain clamps every log α to [lo, hi] after an optimizer step (CoFi clamps to
// [log 10⁻², log 10²], constrain_parameters, l0_module.py#L173-L177): it keeps the gates
// from saturating so far that their gradient, p(1−p), vanishes.
func (g *Gates) Constrain(lo, hi float32) {
	for side := range numSides {
		for k := range NumKinds {
			if t := g.LogAlpha[side][k]; t != nil {
				for i, v := range t.Data {
					t.Data[i] = min(hi, max(lo, v))
				}
			}
		}
	}
}

// Sparsity summarises one evaluation of the sparsity objective.
type Sparsity struct {
	Expected float64 // ŝ = 1 − E[kept prunable] / prunable
	Target   float64 // t at this step (after warm-up)
	Loss     float64 // Lagrangian term plus regulariser
	Lagrange float64 // the Lagrangian term alone
	Regular  float64 // the non-uniformity regulariser alone
	Kept     Counts  // expected counts
	Full     Counts  // unpruned counts
}

// Objective evaluates the sparsity terms of the loss at optimizer step and, when tape is not
// nil, adds their gradients to the tape's buffers of the watched log α (descent) and of λ₁, λ₂
// (ascent: −∂/∂λ, see Lagrangian). Call it once per optimizer step, with the last
// micro-batch: the terms do not depend on the data.
func (g *Gates) Objective(lag Lagrangian, reg Regulariser, step int, tape *tensor.Tape) Sparsity {
	p := g.HC.KeepProbs(&g.LogAlpha)
	kept, full := g.S.Expected(p), g.S.Full()
	sp := Sparsity{Expected: 1 - kept.Prunable()/full.Prunable(), Target: lag.TargetAt(step), Kept: kept, Full: full}
	l1, l2 := float64(g.Lambda1.Data[0]), float64(g.Lambda2.Data[0])
	lc, ds, dl1, dl2 := LagrangianTerm(sp.Expected, sp.Target, l1, l2)
	dc := newCounts(g.S)
	sp.Regular = reg.Loss(kept, full, &dc)
	sp.Lagrange, sp.Loss = lc, lc+sp.Regular
	if tape == nil {
		return sp
	}
	// ŝ = 1 − Σ counts / prunable: every prunable count has ∂ŝ/∂count = −1/prunable.
	dcount := -ds / full.Prunable()
	for side := range numSides {
		for l := range dc.Attn[side] {
			dc.Attn[side][l] += dcount
			dc.Cross[side][l] += dcount
			dc.FFN[side][l] += dcount
		}
	}
	dp := NewProbs(g.S)
	g.S.ExpectedBackward(dp, dc, p)
	var dla Set
	for side := range numSides {
		for k := range NumKinds {
			if t := g.LogAlpha[side][k]; t != nil && tape.Watched(t) {
				dla[side][k] = tape.Grad(t)
			}
		}
	}
	KeepProbsBackward(&dla, dp, p)
	if tape.Watched(g.Lambda1) {
		tape.Grad(g.Lambda1).Data[0] -= float32(dl1)
	}
	if tape.Watched(g.Lambda2) {
		tape.Grad(g.Lambda2).Data[0] -= float32(dl2)
	}
	return sp
}
