package prune

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/chorus-asr/chorus/asr/models/whisper"
)

// tinyDims is a model small enough to count element by element: encoder C 6, H 2 (D 3), F 8;
// decoder C 6, H 3 (D 2), F 5; two layers each.
var tinyDims = whisper.Dims{NMels: 3, NAudioCtx: 5, NAudioState: 6, NAudioHead: 2, NAudioLayer: 2, NVocab: 7,
	NTextCtx: 4, NTextState: 6, NTextHead: 3, NTextLayer: 2, EncoderFFN: 8, DecoderFFN: 5}

func mustStructure(t testing.TB, d whisper.Dims) Structure {
	t.Helper()
	s, err := NewStructure(d)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// bruteKept counts, element by element over the real checkpoint tensors (whisper.TensorSpecs,
// by name), the parameters that survive the gates ind (true: gate non-zero). It shares no code
// with Expected: each tensor's rule is read off its name and the masked computation.
func bruteKept(s Structure, d whisper.Dims, ind [numSides][NumKinds][]bool) (prunable, other int) {
	for _, spec := range whisper.TensorSpecs(d) {
		side := Encoder
		if strings.HasPrefix(spec.Name, "model.decoder.") {
			side = Decoder
		}
		st := s.Side[side]
		hid := ind[side][Hidden]
		var layer int
		inLayer := strings.Contains(spec.Name, ".layers.")
		if inLayer {
			fmt.Sscanf(spec.Name[strings.Index(spec.Name, ".layers.")+len(".layers."):], "%d", &layer)
		}
		at := func(k Kind, i int) bool { // per-layer gate i of kind k in this layer
			_, size, _ := st.Shape(k)
			return ind[side][k][layer*size+i]
		}
		d0 := st.HeadDim()
		var rule func(idx []int) bool
		name := spec.Name
		attn := func(kind, headKind Kind, inHid []bool) {
			switch {
			case strings.HasSuffix(name, "q_proj.weight"), strings.HasSuffix(name, "k_proj.weight"), strings.HasSuffix(name, "v_proj.weight"):
				in := hid
				if !strings.HasSuffix(name, "q_proj.weight") {
					in = inHid
				}
				rule = func(i []int) bool { return at(kind, 0) && at(headKind, i[0]/d0) && in[i[1]] }
			case strings.HasSuffix(name, "q_proj.bias"), strings.HasSuffix(name, "v_proj.bias"):
				rule = func(i []int) bool { return at(kind, 0) && at(headKind, i[0]/d0) }
			case strings.HasSuffix(name, "out_proj.weight"):
				rule = func(i []int) bool { return at(kind, 0) && hid[i[0]] && at(headKind, i[1]/d0) }
			case strings.HasSuffix(name, "out_proj.bias"), strings.HasSuffix(name, "attn_layer_norm.weight"), strings.HasSuffix(name, "attn_layer_norm.bias"):
				rule = func(i []int) bool { return at(kind, 0) && hid[i[0]] }
			}
		}
		switch {
		case inLayer && strings.Contains(name, ".self_attn"):
			attn(Attn, Heads, hid)
		case inLayer && strings.Contains(name, ".encoder_attn"):
			attn(Cross, CrossHeads, ind[Encoder][Hidden])
		case inLayer && strings.HasSuffix(name, "fc1.weight"):
			rule = func(i []int) bool { return at(FFN, 0) && at(Units, i[0]) && hid[i[1]] }
		case inLayer && strings.HasSuffix(name, "fc1.bias"):
			rule = func(i []int) bool { return at(FFN, 0) && at(Units, i[0]) }
		case inLayer && strings.HasSuffix(name, "fc2.weight"):
			rule = func(i []int) bool { return at(FFN, 0) && hid[i[0]] && at(Units, i[1]) }
		case inLayer: // fc2.bias, final_layer_norm
			rule = func(i []int) bool { return at(FFN, 0) && hid[i[0]] }
		case strings.HasSuffix(name, "conv2.weight"):
			rule = func(i []int) bool { return hid[i[0]] && hid[i[1]] }
		case strings.Contains(name, "embed_"): // [N, C]: positions or tokens
			rule = func(i []int) bool { return hid[i[1]] }
		default: // conv1 [C, M, 3] and biases, final layer norm: first index is a hidden dim
			rule = func(i []int) bool { return hid[i[0]] }
		}
		if rule == nil {
			panic("no rule for " + name)
		}
		n := 0
		idx := make([]int, len(spec.Shape))
		var walk func(dim int)
		walk = func(dim int) {
			if dim == len(spec.Shape) {
				if rule(idx) {
					n++
				}
				return
			}
			for i := range spec.Shape[dim] {
				idx[dim] = i
				walk(dim + 1)
			}
		}
		walk(0)
		if inLayer {
			prunable += n
		} else {
			other += n
		}
	}
	return prunable, other
}

// TestFullCountsMatchCheckpoint: with every gate kept, the counts are the real parameter
// counts of the checkpoint's tensors (the layers' tensors, and all of them).
func TestFullCountsMatchCheckpoint(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    whisper.Dims
	}{{"tiny test config", tinyDims}, {"whisper tiny", whisper.Tiny}, {"whisper base", whisper.Base}} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustStructure(t, tc.d)
			var all, layers int
			for _, spec := range whisper.TensorSpecs(tc.d) {
				n := 1
				for _, v := range spec.Shape {
					n *= v
				}
				all += n
				if strings.Contains(spec.Name, ".layers.") {
					layers += n
				}
			}
			full := s.Full()
			if full.Prunable() != float64(layers) || full.Total() != float64(all) {
				t.Fatalf("prunable %v total %v, checkpoint layers %d total %d", full.Prunable(), full.Total(), layers, all)
			}
		})
	}
}

// indicators turns 0/1 probabilities into gate indicators.
func indicators(p Probs) [numSides][NumKinds][]bool {
	var ind [numSides][NumKinds][]bool
	for side := range numSides {
		for k := range NumKinds {
			for _, v := range p[side][k] {
				ind[side][k] = append(ind[side][k], v != 0)
			}
		}
	}
	return ind
}

// TestExpectedHandCount: exact counts of one fixed pruning of tinyDims, computed by hand and
// by the element-wise brute force.
func TestExpectedHandCount(t *testing.T) {
	s := mustStructure(t, tinyDims)
	pr := NewProbs(s)
	for side := range numSides {
		for k := range NumKinds {
			for i := range pr[side][k] {
				pr[side][k][i] = 1
			}
		}
	}
	set := func(side Side, k Kind, v ...float64) { copy(pr[side][k], v) }
	set(Encoder, Heads, 1, 0, 1, 1)                                     // layer 0 keeps head 0
	set(Encoder, Attn, 1, 0)                                            // layer 1 attention removed
	set(Encoder, Units, 1, 0, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1) // layer 0 keeps 3 units
	set(Encoder, FFN, 1, 0)                                             // layer 1 FFN removed
	set(Encoder, Hidden, 1, 1, 0, 1, 0, 1)                              // 4 of 6 dims
	set(Decoder, Hidden, 1, 1, 1, 1, 1, 0)                              // 5 of 6 dims
	set(Decoder, Cross, 1, 0)                                           // layer 1 cross-attention removed
	c := s.Expected(pr)
	// Encoder, h = 4, D = 3. Layer 0 attention, one head: Q, K, V 3×4 each (36), Out 4×3 (12),
	// Q and V biases 3+3, Out bias 4, layer norm 2·4: 66. FFN, three units: fc1 3×4 + 3,
	// fc2 4×3 + 4, layer norm 8: 39. Layer 1: nothing.
	// Decoder, h = 5, h_E = 4, D = 2, three heads, F = 5. Self-attention: Q, K, V 6×5 each (90),
	// Out 5×6 (30), biases 6+6+5, norm 10: 147 per layer. Cross (layer 0): Q 6×5 (30), K, V
	// 6×4 each (48), Out 5×6 (30), biases 6+6+5, norm 10: 135. FFN: fc1 5×5 + 5, fc2 5×5 + 5,
	// norm 10: 70 per layer. Prunable: 66 + 39 + 2·147 + 135 + 2·70 = 674.
	// Other: encoder conv1 4·3·3 + 4, conv2 4·4·3 + 4, positions 5·4, norm 8: 120; decoder
	// tokens 7·5, positions 4·5, norm 10: 65.
	want := map[string]float64{"enc attn 0": 66, "enc ffn 0": 39, "enc layer 1": 0, "dec attn": 147,
		"dec cross 0": 135, "dec cross 1": 0, "dec ffn": 70, "prunable": 674, "enc other": 120, "dec other": 65}
	got := map[string]float64{"enc attn 0": c.Attn[Encoder][0], "enc ffn 0": c.FFN[Encoder][0], "enc layer 1": c.Layer(Encoder, 1),
		"dec attn": c.Attn[Decoder][1], "dec cross 0": c.Cross[Decoder][0], "dec cross 1": c.Cross[Decoder][1],
		"dec ffn": c.FFN[Decoder][0], "prunable": c.Prunable(), "enc other": c.Other[Encoder], "dec other": c.Other[Decoder]}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %v, hand count %v", k, got[k], w)
		}
	}
	bp, bo := bruteKept(s, tinyDims, indicators(pr))
	if float64(bp) != c.Prunable() || float64(bo) != c.Other[Encoder]+c.Other[Decoder] {
		t.Errorf("brute force prunable %d other %d, Expected %v %v", bp, bo, c.Prunable(), c.Other[Encoder]+c.Other[Decoder])
	}
}

// TestExpectedMonteCarlo: for random log α, the expected counts equal the mean of the
// brute-force counts over gates drawn from the hard-concrete sampler (N draws; the bound is
// 5 standard errors of the sample mean). This checks the product structure (independent
// gates), the hidden-pair term of conv2 and KeepProb together.
func TestExpectedMonteCarlo(t *testing.T) {
	s := mustStructure(t, tinyDims)
	hc := DefaultHardConcrete()
	r := newRNG(11)
	la := NewSet(s, 0)
	for side := range numSides {
		for k := range NumKinds {
			if x := la[side][k]; x != nil {
				for i := range x.Data {
					x.Data[i] = float32(4*r.Float64() - 2)
				}
			}
		}
	}
	c := s.Expected(hc.KeepProbs(&la))
	const n = 3000
	var sp, sp2, so, so2 float64
	for range n {
		var ind [numSides][NumKinds][]bool
		for side := range numSides {
			for k := range NumKinds {
				x := la[side][k]
				if x == nil {
					continue
				}
				u, z := make([]float32, len(x.Data)), make([]float32, len(x.Data))
				for i := range u {
					u[i] = float32(hc.Eps + (1-2*hc.Eps)*r.Float64())
				}
				hc.Sample(z, x.Data, u)
				for _, v := range z {
					ind[side][k] = append(ind[side][k], v != 0)
				}
			}
		}
		p, o := bruteKept(s, tinyDims, ind)
		sp, sp2 = sp+float64(p), sp2+float64(p*p)
		so, so2 = so+float64(o), so2+float64(o*o)
	}
	for _, tc := range []struct {
		name        string
		sum, sq, ex float64
	}{{"prunable", sp, sp2, c.Prunable()}, {"other", so, so2, c.Other[Encoder] + c.Other[Decoder]}} {
		mean := tc.sum / n
		se := math.Sqrt((tc.sq/n - mean*mean) / n)
		t.Logf("%s: expected %.2f, Monte Carlo %.2f ± %.2f", tc.name, tc.ex, mean, se)
		if math.Abs(mean-tc.ex) > 5*se {
			t.Errorf("%s: expected %.2f, Monte Carlo mean %.2f (5σ = %.2f)", tc.name, tc.ex, mean, 5*se)
		}
	}
}

// TestExpectedBackward checks the twin against central differences of Σ dc·counts with
// respect to every keep probability (float64 throughout: h = 1e-6, the counts are polynomial
// of degree ≤ 3, so the error is rounding, ~1e-16·|counts|/h).
func TestExpectedBackward(t *testing.T) {
	s := mustStructure(t, tinyDims)
	r := newRNG(12)
	p, dp := NewProbs(s), NewProbs(s)
	for side := range numSides {
		for k := range NumKinds {
			for i := range p[side][k] {
				p[side][k][i] = 0.1 + 0.8*r.Float64()
				dp[side][k][i] = r.Float64() // prefilled: the twin must accumulate
			}
		}
	}
	base := NewProbs(s)
	for side := range numSides {
		for k := range NumKinds {
			copy(base[side][k], dp[side][k])
		}
	}
	dc := newCounts(s)
	for side := range numSides {
		for l := range dc.Attn[side] {
			dc.Attn[side][l], dc.Cross[side][l], dc.FFN[side][l] = r.Float64()-0.5, r.Float64()-0.5, r.Float64()-0.5
		}
	}
	obj := func() float64 {
		c := s.Expected(p)
		var v float64
		for side := range numSides {
			for l := range c.Attn[side] {
				v += dc.Attn[side][l]*c.Attn[side][l] + dc.Cross[side][l]*c.Cross[side][l] + dc.FFN[side][l]*c.FFN[side][l]
			}
		}
		return v
	}
	s.ExpectedBackward(dp, dc, p)
	const h = 1e-6
	var worst, scale float64
	for side := range numSides {
		for k := range NumKinds {
			for i := range p[side][k] {
				old := p[side][k][i]
				p[side][k][i] = old + h
				lp := obj()
				p[side][k][i] = old - h
				lm := obj()
				p[side][k][i] = old
				want := (lp - lm) / (2 * h)
				got := dp[side][k][i] - base[side][k][i]
				worst = math.Max(worst, math.Abs(got-want))
				scale = math.Max(scale, math.Abs(want))
			}
		}
	}
	t.Logf("max |grad − fd| %.3g (max |grad| %.3g)", worst, scale)
	if worst > 1e-6*scale {
		t.Fatalf("max |grad − fd| %.3g exceeds %.3g", worst, 1e-6*scale)
	}
}

func TestNewStructureErrors(t *testing.T) {
	d := tinyDims
	d.NTextState, d.NTextHead = 4, 2
	if _, err := NewStructure(d); err == nil {
		t.Error("encoder and decoder widths differ: want an error")
	}
	d = tinyDims
	d.NAudioHead = 4
	if _, err := NewStructure(d); err == nil {
		t.Error("width 6 with 4 heads: want an error")
	}
}

// TestExpectedOther: the counts outside the layers against their expectation summed element
// by element over the checkpoint tensors, with each element's keep probability the product of
// its DISTINCT hidden gates (conv2's diagonal (c, c, k) depends on one gate, p_c, not p_c²).
// This pins the q = h² − Σp² + h term, which the Monte-Carlo test's 5σ bound cannot resolve.
func TestExpectedOther(t *testing.T) {
	s := mustStructure(t, tinyDims)
	r := newRNG(13)
	p := NewProbs(s)
	for side := range numSides {
		for i := range p[side][Hidden] {
			p[side][Hidden][i] = 0.1 + 0.8*r.Float64()
		}
	}
	var want [numSides]float64
	for _, spec := range whisper.TensorSpecs(tinyDims) {
		if strings.Contains(spec.Name, ".layers.") {
			continue
		}
		side := Encoder
		if strings.HasPrefix(spec.Name, "model.decoder.") {
			side = Decoder
		}
		h := p[side][Hidden]
		switch {
		case strings.HasSuffix(spec.Name, "conv2.weight"):
			for o := range spec.Shape[0] {
				for i := range spec.Shape[1] {
					q := h[o] * h[i]
					if o == i {
						q = h[o]
					}
					want[side] += q * float64(spec.Shape[2])
				}
			}
		case strings.Contains(spec.Name, "embed_"):
			want[side] += float64(spec.Shape[0]) * sum(h)
		default: // [C, …]: conv1 weight and the biases and norms
			n := 1
			for _, d := range spec.Shape[1:] {
				n *= d
			}
			want[side] += float64(n) * sum(h)
		}
	}
	c := s.Expected(p)
	for side := range numSides {
		if math.Abs(c.Other[side]-want[side]) > 1e-9*want[side] {
			t.Errorf("%s: Other %v, element-wise expectation %v", side, c.Other[side], want[side])
		}
	}
}
