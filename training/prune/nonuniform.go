package prune

import "math"

// The Lagrangian constrains only the total expected size, so how the kept parameters spread
// over layers is left to the task loss. These regularisers act on the per-layer keep ratios
// r_l = E[kept_l] / full_l (layers of both stacks, encoder first) to push layers apart, so
// that the pruned model can drop some layers nearly whole and keep others nearly intact —
// the non-uniform layouts CoFi finds in its Figure 4 — rather than thinning all alike.
// Both are optional terms of the loss; Regulariser says how they combine.

// logEps keeps the logarithms finite at r = 0 or 1 (a layer already removed or full).
const logEps = 1e-12

// BinaryEntropy is the mean Bernoulli entropy of the keep ratios,
//
//	H(r) = (1/n) Σ_l −r_l log r_l − (1−r_l) log(1−r_l)
//
// and its gradient ∂H/∂r_l = log((1−r_l)/r_l) / n. Minimising it polarises each layer towards
// kept (r → 1) or removed (r → 0); with the total fixed by the Lagrangian this makes the layout
// non-uniform.
func BinaryEntropy(r []float64) (h float64, dr []float64) {
	n := float64(len(r))
	dr = make([]float64, len(r))
	for i, v := range r {
		a, b := math.Max(v, logEps), math.Max(1-v, logEps)
		h -= v*math.Log(a) + (1-v)*math.Log(b)
		dr[i] = (math.Log(b) - math.Log(a)) / n
	}
	return h / n, dr
}

// KLFromUniform is the divergence of the layers' share of the kept parameters from an even
// share: with q_l = r_l / Σ_k r_k,
//
//	KL(q ‖ u) = Σ_l q_l log(n·q_l)
//
// and its gradient ∂KL/∂r_l = (log(n·q_l) − KL) / Σ_k r_k. It is 0 for uniform ratios and
// grows as they differ; maximising it (a negative weight in the loss, see Regulariser)
// pushes layers apart.
func KLFromUniform(r []float64) (kl float64, dr []float64) {
	n := float64(len(r))
	s := sum(r)
	dr = make([]float64, len(r))
	if s <= 0 {
		return 0, dr
	}
	logs := make([]float64, len(r))
	for i, v := range r {
		q := v / s
		logs[i] = math.Log(math.Max(n*q, logEps))
		kl += q * logs[i]
	}
	for i := range r {
		dr[i] = (logs[i] - kl) / s
	}
	return kl, dr
}

// Regulariser weights the non-uniformity terms: it adds
//
//	Entropy · H(r) − KL · KL(q ‖ u)
//
// to the loss, so positive weights both favour non-uniform layouts (lower entropy, larger
// divergence). Zero weights give the plain Lagrangian.
type Regulariser struct {
	Entropy, KL float64
}

// LayerRatios returns the keep ratios r_l = kept_l / full_l of every layer, encoder first.
func LayerRatios(kept, full Counts) []float64 {
	var r []float64
	for side := range numSides {
		for l := range kept.Attn[side] {
			r = append(r, kept.Layer(side, l)/full.Layer(side, l))
		}
	}
	return r
}

// Loss returns the regulariser's value on the expected counts and adds its gradient with
// respect to each layer's counts to dc (every sublayer of layer l gets ∂/∂r_l / full_l).
func (g Regulariser) Loss(kept, full Counts, dc *Counts) float64 {
	if g.Entropy == 0 && g.KL == 0 {
		return 0
	}
	r := LayerRatios(kept, full)
	var loss float64
	dr := make([]float64, len(r))
	if g.Entropy != 0 {
		h, d := BinaryEntropy(r)
		loss += g.Entropy * h
		for i := range dr {
			dr[i] += g.Entropy * d[i]
		}
	}
	if g.KL != 0 {
		kl, d := KLFromUniform(r)
		loss -= g.KL * kl
		for i := range dr {
			dr[i] -= g.KL * d[i]
		}
	}
	i := 0
	for side := range numSides {
		for l := range kept.Attn[side] {
			v := dr[i] / full.Layer(side, l)
			dc.Attn[side][l] += v
			dc.Cross[side][l] += v
			dc.FFN[side][l] += v
			i++
		}
	}
	return loss
}
