package tensor

import (
	"math"
	"testing"
)

// TestAttentionReLUHand: one head, D=1, two keys: weights relu(q·k)/2 by hand.
func TestAttentionReLUHand(t *testing.T) {
	q := []float32{2}
	k := []float32{1, -3}
	v := []float32{5, 7}
	out := make([]float32, 1)
	AttentionReLU(out, q, k, v, 1, 2, 1, 1)
	// s = (2, -6); p = (1, 0); out = 5
	if out[0] != 5 {
		t.Fatalf("out %v, want 5", out[0])
	}
}

// TestAttentionReLUBackward checks the twin against central finite differences on random
// inputs (batched, two heads), through the taped op.
func TestAttentionReLUBackward(t *testing.T) {
	const tq, tk, heads, d, bs = 3, 4, 2, 3, 2
	w := heads * d
	q, k, v := New(bs, tq, w), New(bs, tk, w), New(bs, tk, w)
	SeededUniform(q.Data, 1, "rq", -1, 1)
	SeededUniform(k.Data, 2, "rk", -1, 1)
	SeededUniform(v.Data, 3, "rv", -1, 1)
	wts := make([]float32, bs*tq*w)
	SeededUniform(wts, 4, "rw", -1, 1)
	loss := func() float64 {
		out := make([]float32, bs*tq*w)
		for b := range bs {
			AttentionReLU(out[b*tq*w:(b+1)*tq*w], q.Data[b*tq*w:(b+1)*tq*w], k.Data[b*tk*w:(b+1)*tk*w], v.Data[b*tk*w:(b+1)*tk*w], tq, tk, heads, d)
		}
		var s float64
		for i, o := range out {
			s += float64(o) * float64(wts[i])
		}
		return s
	}
	ctx := NewTrainCtx()
	tape := ctx.Tape()
	for _, x := range []*T{q, k, v} {
		tape.Watch(x)
	}
	out := ctx.AttentionReLU(q, k, v, heads)
	tape.Seed(out, wts)
	tape.Backward()
	worst := 0.0
	for name, x := range map[string]*T{"q": q, "k": k, "v": v} {
		g := tape.Grad(x)
		for i := range x.Data {
			old := x.Data[i]
			const h = 1e-3
			x.Data[i] = old + h
			lp := loss()
			x.Data[i] = old - h
			lm := loss()
			x.Data[i] = old
			num := (lp - lm) / (2 * h)
			if diff := math.Abs(num - float64(g.Data[i])); diff > 2e-3 {
				t.Errorf("d%s[%d]: analytic %v, numeric %v", name, i, g.Data[i], num)
			} else {
				worst = math.Max(worst, diff)
			}
		}
	}
	t.Logf("max |analytic - numeric| %.2g", worst)
}
