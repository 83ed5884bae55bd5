package prune

// Counts are parameter counts of a Whisper structure, expected (from keep probabilities) or
// exact (from 0/1 masks), per side and layer and sublayer. The prunable parameters — the ones
// the sparsity target refers to, as CoFi's prunable_model_size (l0_module.py#L40-L50) — are
// the layers' attention, cross-attention and FFN sublayers including their biases and
// pre-norm layer norms. Other holds what lies outside the layers yet loses columns with the
// hidden dimensions (conv stem, positional and token embeddings, final layer norm); it is
// reported, not targeted (CoFi likewise leaves the embeddings out of the target).
type Counts struct {
	Attn, Cross, FFN [numSides][]float64 // [side][layer]
	Other            [numSides]float64
}

func newCounts(s Structure) Counts {
	var c Counts
	for side := range numSides {
		n := s.Side[side].Layers
		c.Attn[side], c.Cross[side], c.FFN[side] = make([]float64, n), make([]float64, n), make([]float64, n)
	}
	return c
}

// Layer is the count of one layer (all its sublayers).
func (c Counts) Layer(side Side, l int) float64 {
	return c.Attn[side][l] + c.Cross[side][l] + c.FFN[side][l]
}

// SideTotal is the count of one stack's layers.
func (c Counts) SideTotal(side Side) float64 {
	var t float64
	for l := range c.Attn[side] {
		t += c.Layer(side, l)
	}
	return t
}

// Prunable is the count of all layers of both stacks: the denominator of the sparsity.
func (c Counts) Prunable() float64 { return c.SideTotal(Encoder) + c.SideTotal(Decoder) }

// Total is Prunable plus Other: every parameter of the model.
func (c Counts) Total() float64 { return c.Prunable() + c.Other[Encoder] + c.Other[Decoder] }

// Full returns the counts of the unpruned model (every gate kept).
func (s Structure) Full() Counts {
	p := NewProbs(s)
	for side := range numSides {
		for k := range NumKinds {
			for i := range p[side][k] {
				p[side][k][i] = 1
			}
		}
	}
	return s.Expected(p)
}

func sum(x []float64) float64 {
	var t float64
	for _, v := range x {
		t += v
	}
	return t
}

// Expected returns the expected parameter counts when each gate is kept independently with
// its probability in p (CoFi eq. 5 and its hidden-dimension extension,
// l0_module.py#L215-L237). A parameter survives only if every structure it belongs to does,
// so its keep probability is the product of theirs; with h = Σ_c p(hidden_c) the expected
// number of kept hidden dimensions of the stack (h_E that of the encoder), D the head width
// and a, c, f a layer's attention, cross-attention and FFN gates:
//
//	attention  a · (Σ_h p(head_h) · D · (4h + 2) + 3h)
//	           Q, K, V: D rows × h columns per head, Out: h rows × D columns per head;
//	           Q and V biases D per head (K has none in Whisper); Out bias h; layer norm 2h
//	cross      c · (Σ_h p(head_h) · D · (2h + 2h_E + 2) + 3h)
//	           as attention, but K and V read the encoder's output: h_E columns
//	FFN        f · (Σ_u p(unit_u) · (2h + 1) + 3h)
//	           fc1 row + fc2 column + fc1 bias per unit; fc2 bias h; layer norm 2h
//
// and, outside the layers (Other), with q = h² − Σ p(hidden_c)² + h = E[(Σ z_c)²]:
//
//	encoder    h·(3M + 1) + 3q + h + h·AudioCtx + 2h    conv1, conv2, positions, final norm
//	decoder    h·V + h·TextCtx + 2h                        tokens (tied output), positions, norm
//
// With p of zeros and ones (a mask's support) the result is the exact count.
func (s Structure) Expected(p Probs) Counts {
	c := newCounts(s)
	hE := sum(p[Encoder][Hidden])
	for side := range numSides {
		st := s.Side[side]
		d := float64(st.HeadDim())
		h := sum(p[side][Hidden])
		for l := range st.Layers {
			heads := sum(p[side][Heads][l*st.Heads : (l+1)*st.Heads])
			c.Attn[side][l] = p[side][Attn][l] * (heads*d*(4*h+2) + 3*h)
			if st.Cross {
				ch := sum(p[side][CrossHeads][l*st.Heads : (l+1)*st.Heads])
				c.Cross[side][l] = p[side][Cross][l] * (ch*d*(2*h+2*hE+2) + 3*h)
			}
			units := sum(p[side][Units][l*st.FFN : (l+1)*st.FFN])
			c.FFN[side][l] = p[side][FFN][l] * (units*(2*h+1) + 3*h)
		}
	}
	var sq float64
	for _, v := range p[Encoder][Hidden] {
		sq += v * v
	}
	q := hE*hE - sq + hE
	c.Other[Encoder] = hE*float64(3*s.Mels+1) + 3*q + hE + hE*float64(s.AudioCtx) + 2*hE
	hD := sum(p[Decoder][Hidden])
	c.Other[Decoder] = hD*float64(s.Vocab) + hD*float64(s.TextCtx) + 2*hD
	return c
}

// ExpectedBackward is the twin of Expected for the prunable counts: given dc, the gradient
// of an objective with respect to each layer's counts (Attn, Cross, FFN), it accumulates the
// gradient with respect to the keep probabilities into dp. dc.Other is ignored: Other is
// reported, never optimised.
func (s Structure) ExpectedBackward(dp Probs, dc Counts, p Probs) {
	hE := sum(p[Encoder][Hidden])
	var dhE float64 // ∂/∂h_E, from the decoder's cross-attention, added to the encoder's dims
	for side := range numSides {
		st := s.Side[side]
		d := float64(st.HeadDim())
		h := sum(p[side][Hidden])
		var dh float64
		for l := range st.Layers {
			hs := p[side][Heads][l*st.Heads : (l+1)*st.Heads]
			heads := sum(hs)
			a, g := p[side][Attn][l], dc.Attn[side][l]
			dp[side][Attn][l] += g * (heads*d*(4*h+2) + 3*h)
			for i := range hs {
				dp[side][Heads][l*st.Heads+i] += g * a * d * (4*h + 2)
			}
			dh += g * a * (4*heads*d + 3)
			if st.Cross {
				chs := p[side][CrossHeads][l*st.Heads : (l+1)*st.Heads]
				ch := sum(chs)
				cg, gc := p[side][Cross][l], dc.Cross[side][l]
				dp[side][Cross][l] += gc * (ch*d*(2*h+2*hE+2) + 3*h)
				for i := range chs {
					dp[side][CrossHeads][l*st.Heads+i] += gc * cg * d * (2*h + 2*hE + 2)
				}
				dh += gc * cg * (2*ch*d + 3)
				dhE += gc * cg * 2 * ch * d
			}
			us := p[side][Units][l*st.FFN : (l+1)*st.FFN]
			units := sum(us)
			f, gf := p[side][FFN][l], dc.FFN[side][l]
			dp[side][FFN][l] += gf * (units*(2*h+1) + 3*h)
			for i := range us {
				dp[side][Units][l*st.FFN+i] += gf * f * (2*h + 1)
			}
			dh += gf * f * (2*units + 3)
		}
		for i := range dp[side][Hidden] {
			dp[side][Hidden][i] += dh
		}
	}
	for i := range dp[Encoder][Hidden] {
		dp[Encoder][Hidden][i] += dhE
	}
}
