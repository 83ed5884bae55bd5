package prune

import (
	"math"
	"testing"

	"github.com/chorus-asr/chorus/tensor"
)

func randT(r interface{ Float64() float64 }, shape ...int) *tensor.T {
	t := tensor.New(shape...)
	for i := range t.Data {
		t.Data[i] = float32(2*r.Float64() - 1)
	}
	return t
}

// cols returns x [R, C] cut to the given columns.
func cols(x *tensor.T, idx []int) *tensor.T {
	return Select(x, nil, idx, nil, nil)
}

// checkMaterialised compares the masked dense output [R, C] with the materialised one
// [R, len(kept)]: equal on the kept columns (float32 rounding of reordered sums: 1e-5) and
// exactly zero on the removed ones.
func checkMaterialised(t *testing.T, dense, small *tensor.T, kept []int) {
	t.Helper()
	c := dense.Shape[1]
	isKept := make([]bool, c)
	for _, j := range kept {
		isKept[j] = true
	}
	var worst float64
	for r := range dense.Shape[0] {
		for j := range c {
			if !isKept[j] && dense.Data[r*c+j] != 0 {
				t.Fatalf("removed column %d: dense output %v, want 0", j, dense.Data[r*c+j])
			}
		}
		for i, j := range kept {
			worst = math.Max(worst, math.Abs(float64(dense.Data[r*c+j]-small.Data[r*len(kept)+i])))
		}
	}
	t.Logf("max |masked − materialised| %.3g", worst)
	if worst > 1e-5 {
		t.Fatalf("max |masked − materialised| %.3g", worst)
	}
}

// TestMaterialiseAttention: one attention block computed with tensor ops, masked as the
// contract in materialise.go says (soft and zero gates), equals the materialised block on
// the kept coordinates; a removed block is all zeros and materialises to nothing.
func TestMaterialiseAttention(t *testing.T) {
	const c, heads, tq, tk = 6, 3, 4, 5
	for _, tc := range []struct {
		name   string
		cross  bool
		causal bool
		m      AttentionMasks
	}{
		{"self, soft gates", false, true, AttentionMasks{Heads: []float32{0.7, 0, 1}, Layer: 0.9,
			In: []float32{1, 0, 0.5, 1, 1, 0}, Out: []float32{1, 0, 0.5, 1, 1, 0}}},
		{"cross, own key/value mask", true, false, AttentionMasks{Heads: []float32{0, 1, 0.4}, Layer: 1,
			In: []float32{1, 1, 0, 1, 0.8, 1}, KV: []float32{0, 1, 1, 0.3, 1, 0}, Out: []float32{1, 1, 0, 1, 0.8, 1}}},
		{"no hidden masks", false, false, AttentionMasks{Heads: []float32{1, 1, 0}, Layer: 0.6}},
		{"removed", false, false, AttentionMasks{Heads: []float32{1, 1, 1}, Layer: 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRNG(81)
			a := AttentionWeights{
				Q: Linear{randT(r, c, c), randT(r, c)}, K: Linear{randT(r, c, c), nil},
				V: Linear{randT(r, c, c), randT(r, c)}, Out: Linear{randT(r, c, c), randT(r, c)},
			}
			x := randT(r, tq, c)
			y := x
			if tc.cross {
				y = randT(r, tk, c)
			}
			ctx := tensor.NewCtx()
			scale := func(v *tensor.T, m []float32) *tensor.T {
				if m == nil {
					return v
				}
				return ctx.GroupScale(v, tensor.FromData(m, len(m)))
			}
			kvMask := tc.m.KV
			if kvMask == nil {
				kvMask = tc.m.In
			}
			xm, ym := scale(x, tc.m.In), scale(y, kvMask)
			att := ctx.Attention(ctx.Linear(xm, a.Q.W, a.Q.B), ctx.Linear(ym, a.K.W, nil), ctx.Linear(ym, a.V.W, a.V.B), heads, tc.causal)
			dense := scale(scale(ctx.Linear(scale(att, tc.m.Heads), a.Out.W, a.Out.B), []float32{tc.m.Layer}), tc.m.Out)

			small, h, ok := MaterialiseAttention(a, heads, tc.m)
			if tc.m.Layer == 0 {
				for _, v := range dense.Data {
					if v != 0 {
						t.Fatalf("removed block: dense output %v", v)
					}
				}
				if ok {
					t.Fatal("removed block materialised")
				}
				return
			}
			if want := len(Keep(tc.m.Heads, heads)); !ok || h != want {
				t.Fatalf("ok %v, %d heads, want %d", ok, h, want)
			}
			xs, ys := cols(x, Keep(tc.m.In, c)), cols(y, Keep(kvMask, c))
			sa := ctx.Attention(ctx.Linear(xs, small.Q.W, small.Q.B), ctx.Linear(ys, small.K.W, nil), ctx.Linear(ys, small.V.W, small.V.B), h, tc.causal)
			checkMaterialised(t, dense, ctx.Linear(sa, small.Out.W, small.Out.B), Keep(tc.m.Out, c))
			if small.Q.W.Shape[0] != h*c/heads || small.Out.W.Shape[1] != h*c/heads {
				t.Fatalf("Q %v Out %v for %d heads", small.Q.W.Shape, small.Out.W.Shape, h)
			}
		})
	}
}

// TestMaterialiseFFN: the same for one FFN block (GELU), unit gates after the activation.
func TestMaterialiseFFN(t *testing.T) {
	const c, f, rows = 6, 8, 4
	for _, tc := range []struct {
		name string
		m    FFNMasks
	}{
		{"soft gates", FFNMasks{Units: []float32{1, 0, 0.3, 0, 1, 1, 0.9, 0}, Layer: 0.8,
			In: []float32{0, 1, 1, 0.5, 1, 1}, Out: []float32{0, 1, 1, 0.5, 1, 1}}},
		{"units only", FFNMasks{Units: []float32{0, 0, 1, 1, 1, 1, 1, 1}, Layer: 1}},
		{"removed", FFNMasks{Units: []float32{1, 1, 1, 1, 1, 1, 1, 1}, Layer: 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRNG(82)
			w := FFNWeights{FC1: Linear{randT(r, f, c), randT(r, f)}, FC2: Linear{randT(r, c, f), randT(r, c)}}
			x := randT(r, rows, c)
			ctx := tensor.NewCtx()
			scale := func(v *tensor.T, m []float32) *tensor.T {
				if m == nil {
					return v
				}
				return ctx.GroupScale(v, tensor.FromData(m, len(m)))
			}
			h := scale(ctx.GELU(ctx.Linear(scale(x, tc.m.In), w.FC1.W, w.FC1.B)), tc.m.Units)
			dense := scale(scale(ctx.Linear(h, w.FC2.W, w.FC2.B), []float32{tc.m.Layer}), tc.m.Out)
			small, ok := MaterialiseFFN(w, tc.m)
			if tc.m.Layer == 0 {
				if ok {
					t.Fatal("removed block materialised")
				}
				for _, v := range dense.Data {
					if v != 0 {
						t.Fatalf("removed block: dense output %v", v)
					}
				}
				return
			}
			hs := ctx.GELU(ctx.Linear(cols(x, Keep(tc.m.In, c)), small.FC1.W, small.FC1.B))
			checkMaterialised(t, dense, ctx.Linear(hs, small.FC2.W, small.FC2.B), Keep(tc.m.Out, c))
			if n := len(Keep(tc.m.Units, f)); small.FC1.W.Shape[0] != n || small.FC2.W.Shape[1] != n {
				t.Fatalf("fc1 %v fc2 %v, want %d units", small.FC1.W.Shape, small.FC2.W.Shape, n)
			}
		})
	}
}

// TestSelectHelpers pins the row/column/head selection on Arange data.
func TestSelectHelpers(t *testing.T) {
	w := tensor.New(3, 4)
	for i := range w.Data {
		w.Data[i] = float32(i)
	}
	got := Select(w, []int{2, 0}, []int{1, 3}, []float32{2, 1, 10}, []float32{1, 1, 1, 0.5})
	want := []float32{90, 55, 2, 3} // w[2,1]·10, w[2,3]·10·0.5, w[0,1]·2, w[0,3]·2·0.5
	for i := range want {
		if got.Data[i] != want[i] {
			t.Fatalf("Select: %v, want %v", got.Data, want)
		}
	}
	if hc := HeadColumns([]int{0, 2}, 2); len(hc) != 4 || hc[0] != 0 || hc[1] != 1 || hc[2] != 4 || hc[3] != 5 {
		t.Fatalf("HeadColumns: %v", hc)
	}
	g, b := MaterialiseLayerNorm(tensor.FromData([]float32{1, 2, 3}, 3), tensor.FromData([]float32{4, 5, 6}, 3), []float32{0.5, 0, 1})
	if g.Data[0] != 0.5 || g.Data[1] != 3 || b.Data[0] != 2 || b.Data[1] != 6 || len(g.Data) != 2 {
		t.Fatalf("layer norm: %v %v", g.Data, b.Data)
	}
}
