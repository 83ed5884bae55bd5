package prune

import (
	"fmt"

	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/tensor"
)

// EvalMasks are the masks a pruned model is evaluated and materialised with: Deterministic,
// with the hidden-dimension gates made binary. Soft head, unit and layer gates multiply a
// linear map's output and fold into its weights; a soft hidden gate would scale the residual
// stream itself, which every layer norm reads nonlinearly, so no weight can absorb it.
func (g *Gates) EvalMasks() Set {
	z := g.Deterministic()
	for side := range numSides {
		if h := z[side][Hidden]; h != nil {
			for i, v := range h.Data {
				if v != 0 {
					h.Data[i] = 1
				}
			}
		}
	}
	return z
}

// LayerShape is what one materialised layer keeps.
type LayerShape struct {
	Heads, CrossHeads, Units int  // kept (non-zero) gates; 0 when the sublayer is removed
	Removed                  bool // every sublayer gate is 0: the layer is dropped whole
}

// Materialised describes the result of MaterialiseModel.
type Materialised struct {
	Model  *whisper.Model
	Layers [numSides][]LayerShape // per layer of the ORIGINAL model
	// Padding counts the zero heads and units added so that every layer of a stack has the
	// stack's (maximum) number of heads and units (see MaterialiseModel).
	PadHeads, PadUnits int
}

// MaterialiseModel builds the smaller dense model that computes what m computes under masks
// z (EvalMasks: soft gates are folded into the weights; every hidden gate 0 or 1).
//
// Per layer it removes the heads, units and sublayers whose gate is 0 (MaterialiseAttention,
// MaterialiseFFN) and drops layers whose every sublayer gate is 0 (they are identities).
// chorus's model has one head count and one FFN width per stack (whisper.Dims), so layers
// that keep fewer heads or units than the stack's largest are padded with zero heads and
// units — q = k = v = 0 and a zero column of the output projection, or a zero fc1 row and
// fc2 column, which add exactly 0 (act(0) = 0 for ReLU and GELU) — and a removed sublayer of
// a kept layer becomes all zeros. The outputs are the masked model's; the saving is bounded
// by the largest layer of each stack. Per-layer sizes in the config would remove the padding
// (the known gap: Dims, New, the caches and the alignment heads assume one size per stack).
//
// Hidden dimensions cannot be removed yet: a variant's config.json has one d_model for both
// stacks, and the two stacks' hidden gates are independent; a mask that zeroes one is an error.
func MaterialiseModel(m *whisper.Model, z Set) (*Materialised, error) {
	s, err := NewStructure(m.Dims)
	if err != nil {
		return nil, err
	}
	for side := range numSides {
		for k := range NumKinds {
			r, n, ok := s.Side[side].Shape(k)
			t := z[side][k]
			if ok != (t != nil) || (t != nil && len(t.Data) != r*n) {
				return nil, fmt.Errorf("prune: %s %s masks do not match the model (%d×%d gates expected)", side, k, r, n)
			}
		}
		for _, v := range z[side][Hidden].Data {
			if v != 1 {
				return nil, fmt.Errorf("prune: %s hidden gate %v: only binary hidden masks with every dimension kept can be materialised (one d_model for both stacks)", side, v)
			}
		}
	}
	ts, _ := m.Tensors()
	out := &Materialised{}
	src := whisper.MapSource{}
	for name, t := range ts {
		src[name] = t // stem, embeddings and final norms are kept as they are
	}
	d := m.Dims
	row := func(side Side, k Kind, l int) []float32 {
		_, n, _ := s.Side[side].Shape(k)
		return z[side][k].Data[l*n : (l+1)*n]
	}
	gate := func(side Side, k Kind, l int) float32 { return z[side][k].Data[l] }
	for side := range numSides {
		st := s.Side[side]
		maxH, maxU := 1, 1
		var kept []int
		for l := range st.Layers {
			var sh LayerShape
			if gate(side, Attn, l) != 0 {
				sh.Heads = len(Keep(row(side, Heads, l), st.Heads))
			}
			if st.Cross && gate(side, Cross, l) != 0 {
				sh.CrossHeads = len(Keep(row(side, CrossHeads, l), st.Heads))
			}
			if gate(side, FFN, l) != 0 {
				sh.Units = len(Keep(row(side, Units, l), st.FFN))
			}
			sh.Removed = gate(side, Attn, l) == 0 && gate(side, FFN, l) == 0 && (!st.Cross || gate(side, Cross, l) == 0)
			if !sh.Removed {
				kept = append(kept, l)
				maxH, maxU = max(maxH, sh.Heads, sh.CrossHeads), max(maxU, sh.Units)
			}
			out.Layers[side] = append(out.Layers[side], sh)
		}
		dd := st.HeadDim()
		prefix := "model.encoder.layers."
		if side == Decoder {
			prefix = "model.decoder.layers."
			d.NTextLayer, d.NTextHead, d.TextHeadDim, d.DecoderFFN = len(kept), maxH, dd, maxU
		} else {
			d.NAudioLayer, d.NAudioHead, d.AudioHeadDim, d.EncoderFFN = len(kept), maxH, dd, maxU
		}
		for name := range src {
			if len(name) > len(prefix) && name[:len(prefix)] == prefix {
				delete(src, name)
			}
		}
		for j, l := range kept {
			from, to := fmt.Sprintf("%s%d.", prefix, l), fmt.Sprintf("%s%d.", prefix, j)
			for _, ln := range []string{"self_attn_layer_norm", "encoder_attn_layer_norm", "final_layer_norm"} {
				for _, p := range []string{".weight", ".bias"} {
					if t, ok := ts[from+ln+p]; ok {
						src[to+ln+p] = t
					}
				}
			}
			subs := []struct {
				name        string
				heads, attn Kind
			}{{"self_attn", Heads, Attn}}
			if st.Cross {
				subs = append(subs, struct {
					name        string
					heads, attn Kind
				}{"encoder_attn", CrossHeads, Cross})
			}
			for _, sub := range subs {
				p := from + sub.name + "."
				w := AttentionWeights{
					Q: Linear{ts[p+"q_proj.weight"], ts[p+"q_proj.bias"]}, K: Linear{ts[p+"k_proj.weight"], nil},
					V: Linear{ts[p+"v_proj.weight"], ts[p+"v_proj.bias"]}, Out: Linear{ts[p+"out_proj.weight"], ts[p+"out_proj.bias"]},
				}
				a, h, ok := MaterialiseAttention(w, st.Heads, AttentionMasks{Heads: row(side, sub.heads, l), Layer: gate(side, sub.attn, l)})
				if !ok {
					a, h = AttentionWeights{}, 0
				}
				out.PadHeads += maxH - h
				q := to + sub.name + "."
				cin, kvin := w.Q.W.Shape[1], w.K.W.Shape[1]
				src[q+"q_proj.weight"] = padRows(a.Q.W, maxH*dd, cin)
				src[q+"q_proj.bias"] = padVec(a.Q.B, maxH*dd)
				src[q+"k_proj.weight"] = padRows(a.K.W, maxH*dd, kvin)
				src[q+"v_proj.weight"] = padRows(a.V.W, maxH*dd, kvin)
				src[q+"v_proj.bias"] = padVec(a.V.B, maxH*dd)
				src[q+"out_proj.weight"] = padCols(a.Out.W, w.Out.W.Shape[0], maxH*dd)
				src[q+"out_proj.bias"] = padVec(a.Out.B, w.Out.W.Shape[0])
			}
			f := FFNWeights{FC1: Linear{ts[from+"fc1.weight"], ts[from+"fc1.bias"]}, FC2: Linear{ts[from+"fc2.weight"], ts[from+"fc2.bias"]}}
			c := f.FC2.W.Shape[0]
			r, ok := MaterialiseFFN(f, FFNMasks{Units: row(side, Units, l), Layer: gate(side, FFN, l)})
			if !ok {
				r = FFNWeights{}
			}
			units := 0
			if r.FC1.W != nil {
				units = r.FC1.W.Shape[0]
			}
			out.PadUnits += maxU - units
			src[to+"fc1.weight"] = padRows(r.FC1.W, maxU, c)
			src[to+"fc1.bias"] = padVec(r.FC1.B, maxU)
			src[to+"fc2.weight"] = padCols(r.FC2.W, c, maxU)
			src[to+"fc2.bias"] = padVec(r.FC2.B, c)
		}
	}
	if out.Model, err = whisper.Load(d, src, nil, whisper.LoadOptions{}); err != nil {
		return nil, fmt.Errorf("prune: materialise: %w", err)
	}
	return out, nil
}

// padRows returns w [r, c] (nil: none) below which zero rows fill [n, c].
func padRows(w *tensor.T, n, c int) *tensor.T {
	out := tensor.New(n, c)
	if w != nil {
		copy(out.Data, w.Data)
	}
	return out
}

// padCols returns w [r, k] (nil: none) with zero columns filling [r, n].
func padCols(w *tensor.T, r, n int) *tensor.T {
	out := tensor.New(r, n)
	if w != nil {
		k := w.Shape[1]
		for i := range r {
			copy(out.Data[i*n:i*n+k], w.Data[i*k:(i+1)*k])
		}
	}
	return out
}

// padVec returns b (nil: none) followed by zeros, n values.
func padVec(b *tensor.T, n int) *tensor.T {
	out := tensor.New(n)
	if b != nil {
		copy(out.Data, b.Data)
	}
	return out
}
