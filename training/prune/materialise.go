package prune

import (
	"fmt"

	"github.com/chorus-asr/chorus/tensor"
)

// Materialising turns masked weights into smaller dense ones whose outputs equal the masked
// computation's on the kept coordinates (and the removed coordinates are exactly zero in the
// masked computation). A mask value that is neither 0 nor 1 (CoFi's soft deterministic
// gates) is folded into the weights it multiplies, as CoFi's prune_model_with_z does before
// it drops rows and columns, so nothing of the mask survives into the materialised model.
//
// The masked computation these helpers reproduce — the contract for the model-integration
// step, with m_in, m_kv, m_out hidden-dimension masks, m_h head gates (one per D columns),
// m_u unit gates, g the whole-sublayer gate:
//
//	attention  q = (x ⊙ m_in)·Wqᵀ + bq,  k = (y ⊙ m_kv)·Wkᵀ,  v = (y ⊙ m_kv)·Wvᵀ + bv
//	           a = Attention(q, k, v, H) ⊙ m_h
//	           o = ((a·Woutᵀ + bout) · g) ⊙ m_out                   (y = x for self-attention)
//	FFN        h = act((x ⊙ m_in)·W1ᵀ + b1) ⊙ m_u
//	           o = ((h·W2ᵀ + b2) · g) ⊙ m_out
//
// Dropping hidden dimensions also requires the layer norms to normalise over the kept
// dimensions only (CoFi modifies BERT's LayerNorm the same way); MaterialiseLayerNorm cuts
// their gains and shifts.

// Keep returns the indices of the non-zero entries of mask (nil mask: none given, every
// index of n kept). Nothing kept is an empty, non-nil slice: Select reads nil as "all".
func Keep(mask []float32, n int) []int {
	idx := []int{}
	for i := range n {
		if mask == nil || mask[i] != 0 {
			idx = append(idx, i)
		}
	}
	return idx
}

// HeadColumns expands kept head indices into the columns of a head-blocked [.., H·D] layout.
func HeadColumns(heads []int, d int) []int {
	cols := make([]int, 0, len(heads)*d)
	for _, h := range heads {
		for j := range d {
			cols = append(cols, h*d+j)
		}
	}
	return cols
}

// expand repeats each gate of a per-head mask over its D columns (nil stays nil).
func expand(mask []float32, d int) []float32 {
	if mask == nil {
		return nil
	}
	out := make([]float32, len(mask)*d)
	for i := range out {
		out[i] = mask[i/d]
	}
	return out
}

// Select returns w [N, K] cut to rows × cols (nil: all), each kept element multiplied by
// rowScale[row]·colScale[col] (nil scales: 1) — the folding of the masks that multiplied the
// weight's output (rows) and input (columns).
func Select(w *tensor.T, rows, cols []int, rowScale, colScale []float32) *tensor.T {
	n, k := w.Shape[0], w.Shape[1]
	if rows == nil {
		rows = Keep(nil, n)
	}
	if cols == nil {
		cols = Keep(nil, k)
	}
	out := tensor.New(len(rows), len(cols))
	for i, r := range rows {
		rs := float32(1)
		if rowScale != nil {
			rs = rowScale[r]
		}
		for j, c := range cols {
			cs := float32(1)
			if colScale != nil {
				cs = colScale[c]
			}
			out.Data[i*len(cols)+j] = w.Data[r*k+c] * rs * cs
		}
	}
	return out
}

// SelectVec returns b[idx]·scale[idx] (nil scale: 1); nil b stays nil (a missing bias).
func SelectVec(b *tensor.T, idx []int, scale []float32) *tensor.T {
	if b == nil {
		return nil
	}
	out := tensor.New(len(idx))
	for i, j := range idx {
		out.Data[i] = b.Data[j]
		if scale != nil {
			out.Data[i] *= scale[j]
		}
	}
	return out
}

// Linear is a weight W [N, K] and optional bias B [N].
type Linear struct {
	W, B *tensor.T
}

// AttentionWeights are one attention sublayer's projections (Whisper: K has no bias).
type AttentionWeights struct {
	Q, K, V, Out Linear
}

// AttentionMasks are the masks of one attention sublayer (see the contract above). Nil
// hidden masks mean every dimension kept at 1; Heads must have one gate per head.
type AttentionMasks struct {
	Heads       []float32 // [H]
	Layer       float32   // g
	In, KV, Out []float32 // [C] m_in, [C_kv] m_kv (nil for self-attention: m_in), [C] m_out
}

// MaterialiseAttention cuts an attention sublayer with heads heads to its kept heads and
// hidden dimensions. It returns ok false when the sublayer is removed (g = 0): the block then
// contributes nothing and is dropped whole. Otherwise the result's inputs are x's kept m_in
// columns and y's kept m_kv columns, its output the kept m_out columns, and it has
// len(Keep(Heads)) heads of the same width (so the 1/√D scale is unchanged); a kept sublayer
// with no kept head reduces to its output bias.
func MaterialiseAttention(a AttentionWeights, heads int, m AttentionMasks) (AttentionWeights, int, bool) {
	if m.Layer == 0 {
		return AttentionWeights{}, 0, false
	}
	c := a.Q.W.Shape[0]
	if len(m.Heads) != heads || c%heads != 0 {
		panic(fmt.Sprintf("prune: %d head gates for %d heads of a width-%d attention", len(m.Heads), heads, c))
	}
	d := c / heads
	kv := m.KV
	if kv == nil {
		kv = m.In
	}
	kept := Keep(m.Heads, heads)
	cols := HeadColumns(kept, d)
	in, kvIn, out := Keep(m.In, a.Q.W.Shape[1]), Keep(kv, a.K.W.Shape[1]), Keep(m.Out, a.Out.W.Shape[0])
	outScale := make([]float32, a.Out.W.Shape[0])
	for i := range outScale {
		outScale[i] = m.Layer
		if m.Out != nil {
			outScale[i] *= m.Out[i]
		}
	}
	return AttentionWeights{
		Q:   Linear{Select(a.Q.W, cols, in, nil, m.In), SelectVec(a.Q.B, cols, nil)},
		K:   Linear{Select(a.K.W, cols, kvIn, nil, kv), SelectVec(a.K.B, cols, nil)},
		V:   Linear{Select(a.V.W, cols, kvIn, nil, kv), SelectVec(a.V.B, cols, nil)},
		Out: Linear{Select(a.Out.W, out, cols, outScale, expand(m.Heads, d)), SelectVec(a.Out.B, out, outScale)},
	}, len(kept), true
}

// FFNWeights are one FFN sublayer's two projections.
type FFNWeights struct {
	FC1, FC2 Linear
}

// FFNMasks are the masks of one FFN sublayer (see the contract above); nil hidden masks mean
// every dimension kept at 1.
type FFNMasks struct {
	Units   []float32 // [F]
	Layer   float32
	In, Out []float32 // [C]
}

// MaterialiseFFN cuts an FFN sublayer to its kept units and hidden dimensions; ok is false
// when the sublayer is removed (g = 0). The unit gates act after the activation, so they are
// folded into fc2's columns, not fc1's rows.
func MaterialiseFFN(f FFNWeights, m FFNMasks) (FFNWeights, bool) {
	if m.Layer == 0 {
		return FFNWeights{}, false
	}
	units := Keep(m.Units, f.FC1.W.Shape[0])
	in, out := Keep(m.In, f.FC1.W.Shape[1]), Keep(m.Out, f.FC2.W.Shape[0])
	outScale := make([]float32, f.FC2.W.Shape[0])
	for i := range outScale {
		outScale[i] = m.Layer
		if m.Out != nil {
			outScale[i] *= m.Out[i]
		}
	}
	return FFNWeights{
		FC1: Linear{Select(f.FC1.W, units, in, nil, m.In), SelectVec(f.FC1.B, units, nil)},
		FC2: Linear{Select(f.FC2.W, out, units, outScale, m.Units), SelectVec(f.FC2.B, out, outScale)},
	}, true
}

// MaterialiseLayerNorm cuts a layer norm's gain and shift [C] to the kept hidden dimensions,
// folding the mask that multiplies its output (LN(x) ⊙ m = x̂ ⊙ (γ ⊙ m) + β ⊙ m).
func MaterialiseLayerNorm(gamma, beta *tensor.T, hidden []float32) (*tensor.T, *tensor.T) {
	idx := Keep(hidden, gamma.Shape[0])
	return SelectVec(gamma, idx, hidden), SelectVec(beta, idx, hidden)
}
