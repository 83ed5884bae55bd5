package prune

import (
	"fmt"
	"strings"

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
	// Hidden are the residual-stream dimensions each stack kept, as indices into the original
	// width (nil: every one). Tensors outside the model that read a stack's stream, such as a
	// CTC head over the encoder's output, keep these columns (CutColumns).
	Hidden [numSides][]int
}

// MaterialiseModel builds the smaller dense model that computes what m computes under masks
// z (EvalMasks: soft gates are folded into the weights; every hidden gate 0 or 1).
//
// Per layer it removes the heads, units and sublayers whose gate is 0 (MaterialiseAttention,
// MaterialiseFFN) and drops layers whose every sublayer gate is 0 (they are identities). Each
// kept layer keeps exactly its own heads and units: when a stack's kept layers all have the
// same sizes the dimensions stay uniform (a plain Whisper config any reader loads), otherwise
// they carry per-layer sizes (whisper.Dims.EncoderSizes, DecoderSizes), so nothing is padded
// and the stored parameters are the kept ones. A removed sublayer of a kept layer keeps no
// head or unit: what remains of it is its (zero) output bias and its layer norm.
//
// Hidden dimensions whose gate is 0 are removed from everything that spans the stack's
// residual stream (cutHidden): the stacks' gates are independent, so the encoder and decoder
// widths may then differ (whisper.Dims NAudioState, NTextState; the decoder's cross-attention
// keys and values read the encoder's kept dimensions). A hidden gate must be 0 or 1
// (EvalMasks), and every stack must keep at least one dimension.
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
			if v != 0 && v != 1 {
				return nil, fmt.Errorf("prune: %s hidden gate %v: a hidden dimension is kept (1) or removed (0); a soft gate scales the residual stream, which no weight can absorb (use EvalMasks)", side, v)
			}
		}
		if len(Keep(z[side][Hidden].Data, s.Side[side].Width)) == 0 {
			return nil, fmt.Errorf("prune: every %s hidden dimension removed", side)
		}
	}
	ts, _ := m.Tensors()
	out := &Materialised{}
	src := whisper.MapSource{}
	for name, t := range ts {
		src[name] = t // stem, embeddings and final norms are kept as they are
	}
	d := m.Dims
	var widths [numSides]int // kept residual widths
	row := func(side Side, k Kind, l int) []float32 {
		_, n, _ := s.Side[side].Shape(k)
		return z[side][k].Data[l*n : (l+1)*n]
	}
	gate := func(side Side, k Kind, l int) float32 { return z[side][k].Data[l] }
	for side := range numSides {
		st := s.Side[side]
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
			}
			out.Layers[side] = append(out.Layers[side], sh)
		}
		keep := Keep(z[side][Hidden].Data, st.Width)
		if widths[side] = len(keep); widths[side] < st.Width {
			out.Hidden[side] = keep
		}
		setSizes(&d, side, st, widths[side], kept, out.Layers[side])
		prefix := "model.encoder.layers."
		if side == Decoder {
			prefix = "model.decoder.layers."
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
				a, _, ok := MaterialiseAttention(w, st.Heads, AttentionMasks{Heads: row(side, sub.heads, l), Layer: gate(side, sub.attn, l)})
				if !ok { // removed: no head, and an output bias of zeros
					c := w.Out.W.Shape[0]
					a = AttentionWeights{Q: Linear{tensor.New(0, w.Q.W.Shape[1]), tensor.New(0)}, K: Linear{tensor.New(0, w.K.W.Shape[1]), nil},
						V: Linear{tensor.New(0, w.V.W.Shape[1]), tensor.New(0)}, Out: Linear{tensor.New(c, 0), tensor.New(c)}}
				}
				q := to + sub.name + "."
				src[q+"q_proj.weight"], src[q+"q_proj.bias"] = a.Q.W, a.Q.B
				src[q+"k_proj.weight"] = a.K.W
				src[q+"v_proj.weight"], src[q+"v_proj.bias"] = a.V.W, a.V.B
				src[q+"out_proj.weight"], src[q+"out_proj.bias"] = a.Out.W, a.Out.B
			}
			f := FFNWeights{FC1: Linear{ts[from+"fc1.weight"], ts[from+"fc1.bias"]}, FC2: Linear{ts[from+"fc2.weight"], ts[from+"fc2.bias"]}}
			r, ok := MaterialiseFFN(f, FFNMasks{Units: row(side, Units, l), Layer: gate(side, FFN, l)})
			if !ok { // removed: no unit, and an output bias of zeros
				c := f.FC2.W.Shape[0]
				r = FFNWeights{FC1: Linear{tensor.New(0, c), tensor.New(0)}, FC2: Linear{tensor.New(c, 0), tensor.New(c)}}
			}
			src[to+"fc1.weight"], src[to+"fc1.bias"] = r.FC1.W, r.FC1.B
			src[to+"fc2.weight"], src[to+"fc2.bias"] = r.FC2.W, r.FC2.B
		}
	}
	if out.Hidden[Encoder] != nil || out.Hidden[Decoder] != nil {
		if err := cutHidden(src, out.Hidden[Encoder], out.Hidden[Decoder]); err != nil {
			return nil, err
		}
		d.NAudioState, d.NTextState = widths[Encoder], widths[Decoder]
	}
	if out.Model, err = whisper.Load(d, src, nil, whisper.LoadOptions{}); err != nil {
		return nil, fmt.Errorf("prune: materialise: %w", err)
	}
	return out, nil
}

// setSizes writes into d the sizes of the kept layers (indices into shapes) of side, whose
// unpruned stack is st and whose kept residual width is width. Layers that all keep the same
// number of heads (self and cross alike) and units, at least one each, with the width
// divisible by that head count, stay a uniform stack; otherwise the stack gets per-layer
// sizes and keeps st's head count and FFN width as its uniform values, the bound of every
// layer. The head width is st's: pruning removes heads, not columns of a head.
func setSizes(d *whisper.Dims, side Side, st Stack, width int, kept []int, shapes []LayerShape) {
	uniform := true
	var first LayerShape
	if len(kept) > 0 {
		first = shapes[kept[0]]
	}
	for _, l := range kept {
		sh := shapes[l]
		if sh.Heads != first.Heads || sh.Units != first.Units || sh.Heads == 0 || sh.Units == 0 ||
			width%sh.Heads != 0 || (side == Decoder && sh.CrossHeads != sh.Heads) {
			uniform = false
		}
	}
	heads, units := st.Heads, st.FFN
	if uniform && len(kept) > 0 {
		heads, units = first.Heads, first.Units
	}
	if side == Encoder {
		d.NAudioLayer, d.AudioHeadDim, d.NAudioHead, d.EncoderFFN, d.EncoderSizes = len(kept), st.HeadDim(), heads, units, nil
		if !uniform {
			for _, l := range kept {
				d.EncoderSizes = append(d.EncoderSizes, whisper.EncoderLayerSize{Heads: shapes[l].Heads, FFN: shapes[l].Units})
			}
		}
		return
	}
	d.NTextLayer, d.TextHeadDim, d.NTextHead, d.DecoderFFN, d.DecoderSizes = len(kept), st.HeadDim(), heads, units, nil
	if !uniform {
		for _, l := range kept {
			sh := shapes[l]
			d.DecoderSizes = append(d.DecoderSizes, whisper.DecoderLayerSize{SelfHeads: sh.Heads, CrossHeads: sh.CrossHeads, FFN: sh.Units})
		}
	}
}

// cutHidden removes, from every tensor of src (a materialised model's, its layers already
// cut), the residual-stream dimensions of the encoder not in enc and of the decoder not in
// dec (nil: all kept). What spans a stack's stream: the conv stem's channels (the masked
// encoder gates conv1's output as well as the stream), the positional and token embeddings'
// columns, every layer norm, the input columns of every projection that reads the stream
// (q, k, v, fc1, an expert gate; the decoder's cross-attention keys and values read the
// encoder's), and the output rows and biases of every projection that writes it (out_proj,
// fc2). A tensor this does not know is an error, not a silent miss.
func cutHidden(src whisper.MapSource, enc, dec []int) error {
	has := func(name string, suffixes ...string) bool {
		for _, s := range suffixes {
			if strings.HasSuffix(name, s) {
				return true
			}
		}
		return false
	}
	for name, t := range src {
		own := enc
		switch {
		case strings.HasPrefix(name, "model.decoder."):
			own = dec
		case !strings.HasPrefix(name, "model.encoder."):
			return fmt.Errorf("prune: materialise hidden dimensions: unknown tensor %s", name)
		}
		switch {
		case has(name, "conv1.weight"):
			src[name] = selectConv(t, own, nil)
		case has(name, "conv2.weight"):
			src[name] = selectConv(t, own, own)
		case has(name, "layer_norm.weight", "layer_norm.bias", "out_proj.bias", "fc2.bias", "conv1.bias", "conv2.bias"):
			src[name] = SelectVec(t, orAll(own, t.Shape[0]), nil)
		case has(name, "out_proj.weight", "fc2.weight"):
			src[name] = Select(t, own, nil, nil, nil)
		case has(name, "encoder_attn.k_proj.weight", "encoder_attn.v_proj.weight"):
			src[name] = Select(t, nil, enc, nil, nil)
		case has(name, "q_proj.weight", "k_proj.weight", "v_proj.weight", "fc1.weight", "gate.weight",
			"embed_positions.weight", "embed_tokens.weight"):
			src[name] = Select(t, nil, own, nil, nil)
		case has(name, "q_proj.bias", "v_proj.bias", "fc1.bias"):
			// inside a sublayer: heads and units, not the stream
		default:
			return fmt.Errorf("prune: materialise hidden dimensions: unknown tensor %s", name)
		}
	}
	return nil
}

// orAll is idx, or every index of n when idx is nil.
func orAll(idx []int, n int) []int {
	if idx == nil {
		return Keep(nil, n)
	}
	return idx
}

// selectConv cuts a conv1d weight [out, in, k] to the output channels out and input channels
// in (nil: all).
func selectConv(w *tensor.T, out, in []int) *tensor.T {
	o, i, k := w.Shape[0], w.Shape[1], w.Shape[2]
	out, in = orAll(out, o), orAll(in, i)
	r := tensor.New(len(out), len(in), k)
	for a, oc := range out {
		for b, ic := range in {
			copy(r.Data[(a*len(in)+b)*k:(a*len(in)+b+1)*k], w.Data[(oc*i+ic)*k:(oc*i+ic+1)*k])
		}
	}
	return r
}

// CutColumns returns w [N, K] with only the columns idx (nil: w itself): a tensor outside the
// model that reads a stack's residual stream, cut as MaterialiseModel cut the stream.
func CutColumns(w *tensor.T, idx []int) *tensor.T {
	if idx == nil {
		return w
	}
	return Select(w, nil, idx, nil, nil)
}
