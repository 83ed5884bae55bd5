// Package prune is CoFi structured pruning (Xia, Zhong & Chen, "Structured Pruning Learns
// Compact and Accurate Models", ACL 2022) for chorus's Whisper models: hard-concrete L0 gates
// (Louizos, Welling & Kingma, "Learning Sparse Neural Networks through L0 Regularization",
// ICLR 2018) on attention heads, whole attention layers, FFN intermediate units, whole FFN
// layers and hidden dimensions, the expected parameter count those gates imply, the Lagrangian
// that drives it to a target sparsity, regularisers for non-uniform per-layer sparsity, and
// the helpers that cut a masked weight down to a smaller dense one.
//
// The model does not know about any of this: a pruning run samples a Set of masks per step
// (Gates.Sample, recorded on the tape) and the model multiplies its activations by them
// (tensor.Ctx.GroupScale); evaluation uses Gates.Deterministic; materialisation removes what
// the deterministic masks zero. Everything here is a pure function of the gates' log α, so
// the same code serves training, reporting and tests.
//
// ref: princeton-nlp/CoFiPruning models/l0_module.py (commit da855a8), cited by line below.
// Nothing is copied from it; the formulas are the papers'.
package prune

import (
	"fmt"
	"math"
	"slices"
)

// HardConcrete is the hard-concrete distribution of one gate (Louizos et al. 2018, §4.2):
//
//	u ~ U(ε, 1−ε)
//	s = σ((log u − log(1−u) + log α) / β)      binary concrete, eq. (10) with temperature β
//	s̄ = s·(r − l) + l                           stretched to (l, r), l < 0 < 1 < r
//	z = min(1, max(0, s̄))                       hard-clamped: exact zeros (and ones) have mass
//
// Its probability of a non-zero gate, the L0 "norm" that the expected parameter count is
// built from, is eq. (12):
//
//	P(z ≠ 0) = 1 − Q(s̄ ≤ 0) = σ(log α − β·log(−l/r))
//
// (CoFi's cdf_qz, l0_module.py#L179-L183, computes Q(s̄ ≤ 0) as σ(β·logit(−l/(r−l)) − log α),
// the same thing since logit(−l/(r−l)) = log(−l/r).)
type HardConcrete struct {
	// Beta is the temperature β; 2/3 in both papers.
	Beta float64
	// L and R are the stretch interval (l, r); (−0.1, 1.1) in both papers.
	L, R float64
	// Eps keeps the noise u in [ε, 1−ε] so that log u stays finite (CoFi's epsilon = 1e-6,
	// l0_module.py#L14, #L276-L281).
	Eps float64
	// SoftScale is the factor k of the deterministic gates' soft values σ(k·log α / β) (CoFi's
	// "magical number" 0.8, from Wang et al. 2020; l0_module.py#L26, #L298).
	SoftScale float64
	// Binary makes deterministic kept gates exactly 1 instead of CoFi's soft values.
	Binary bool
}

// DefaultHardConcrete is the configuration of both papers.
func DefaultHardConcrete() HardConcrete {
	return HardConcrete{Beta: 2.0 / 3.0, L: -0.1, R: 1.1, Eps: 1e-6, SoftScale: 0.8}
}

// Validate reports a configuration the distribution is not defined for.
func (h HardConcrete) Validate() error {
	switch {
	case !(h.Beta > 0) || math.IsInf(h.Beta, 0):
		return fmt.Errorf("prune: hard-concrete temperature %v must be positive", h.Beta)
	case !(h.L < 0) || !(h.R > 1) || math.IsInf(h.L, 0) || math.IsInf(h.R, 0):
		return fmt.Errorf("prune: hard-concrete stretch (%v, %v) must have l < 0 and r > 1", h.L, h.R)
	case !(h.Eps > 0 && h.Eps < 0.5):
		return fmt.Errorf("prune: hard-concrete noise bound %v outside (0, 0.5)", h.Eps)
	case !h.Binary && !(h.SoftScale > 0):
		return fmt.Errorf("prune: soft scale %v must be positive (or set Binary)", h.SoftScale)
	}
	return nil
}

func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// KeepProb is P(z ≠ 0) = σ(log α − β·log(−l/r)) (Louizos et al. eq. 12).
func (h HardConcrete) KeepProb(logAlpha float64) float64 {
	return sigmoid(logAlpha - h.Beta*math.Log(-h.L/h.R))
}

// OneProb is P(z = 1) = P(s̄ ≥ 1) = σ(log α − β·log((1−l)/(r−1))), the mass the clamp puts
// at exactly one (used by the tests of the sampler's distribution).
func (h HardConcrete) OneProb(logAlpha float64) float64 {
	return sigmoid(logAlpha - h.Beta*math.Log((1-h.L)/(h.R-1)))
}

// Sample draws gates z from log α and the noise u (one value each, u in (0, 1)), as the
// training forward does (CoFi _sample_z, l0_module.py#L283-L288):
// z = clamp(σ((log u − log(1−u) + log α)/β)·(r−l) + l, 0, 1).
// The noise is an argument so that the backward pass (and a finite-difference test) sees the
// same draw.
func (h HardConcrete) Sample(z, logAlpha, u []float32) {
	for i, la := range logAlpha {
		z[i] = float32(min(1, max(0, h.stretched(float64(la), float64(u[i])))))
	}
}

// stretched is s̄ before the clamp, computed with log1p for u near 0 or 1.
func (h HardConcrete) stretched(logAlpha, u float64) float64 {
	logit := math.Log(u) - math.Log1p(-u)
	return sigmoid((logit+logAlpha)/h.Beta)*(h.R-h.L) + h.L
}

// SampleNaive is the reference for Sample: the textbook formula in float64, with no care for
// cancellation.
func (h HardConcrete) SampleNaive(z, logAlpha, u []float32) {
	for i, la := range logAlpha {
		uu := float64(u[i])
		s := 1 / (1 + math.Exp(-(math.Log(uu)-math.Log(1-uu)+float64(la))/h.Beta))
		z[i] = float32(math.Min(1, math.Max(0, s*(h.R-h.L)+h.L)))
	}
}

// SampleBackward is the twin of Sample: it accumulates dlogAlpha += dz · ∂z/∂log α with the
// same noise u, where inside the clamp
//
//	∂z/∂log α = (r − l) · s(1 − s) / β
//
// and 0 where s̄ was clamped to 0 or 1 (hardtanh's gradient: a gate at exactly 0 or 1 passes
// no gradient, the reparameterisation trick of Louizos et al. §4.2).
func (h HardConcrete) SampleBackward(dlogAlpha, dz, logAlpha, u []float32) {
	for i, la := range logAlpha {
		logit := math.Log(float64(u[i])) - math.Log1p(-float64(u[i]))
		s := sigmoid((logit + float64(la)) / h.Beta)
		sb := s*(h.R-h.L) + h.L
		if sb <= 0 || sb >= 1 {
			continue
		}
		dlogAlpha[i] += float32(float64(dz[i]) * (h.R - h.L) * s * (1 - s) / h.Beta)
	}
}

// Deterministic writes the test-time gates of one group of log α (one layer's heads or
// units, the hidden dimensions, or one whole-layer gate) the way CoFi's _deterministic_z does
// (l0_module.py#L290-L305, after FLOP's hardconcrete.py): the expected number of zeros,
// n₀ = round(Σ (1 − P(z_i ≠ 0))) (Python's round: half to even), is kept exact by zeroing the
// n₀ gates with the smallest log α; the others take the soft value σ(k·log α/β) (k =
// SoftScale), or 1 when Binary. A group of one gate is thus 0 when P(z ≠ 0) < ½. Ties are
// broken by index (lower index zeroed first), so the result is deterministic.
func (h HardConcrete) Deterministic(z, logAlpha []float32) {
	n := len(logAlpha)
	var keep float64
	for _, la := range logAlpha {
		keep += h.KeepProb(float64(la))
	}
	zeros := int(math.RoundToEven(float64(n) - keep))
	for i, la := range logAlpha {
		if h.Binary {
			z[i] = 1
		} else {
			z[i] = float32(sigmoid(h.SoftScale * float64(la) / h.Beta))
		}
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	// σ is monotone, so the smallest soft values are the smallest log α.
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case logAlpha[a] < logAlpha[b]:
			return -1
		case logAlpha[a] > logAlpha[b]:
			return 1
		}
		return 0
	})
	for _, i := range order[:min(max(zeros, 0), n)] {
		z[i] = 0
	}
}
