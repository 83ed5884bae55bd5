package tensor

// ReLU attention (Wortsman et al., 2023, "Replacing softmax with ReLU in Vision
// Transformers", eq. 2): the attention weights are relu(q·kᵀ/√D)/L instead of a softmax,
// with L the number of keys, so a query attends to a sparse set of keys and heads can be
// switched off cleanly — the attention-side counterpart of ReLU feed-forward layers, used by
// chorus as a training option for models whose heads become experts.
//
// Shapes: q [Tq, H·D], k and v [Tk, H·D], out [Tq, H·D]; heads H, head width D.

import (
	"fmt"
	"math"
)

// AttentionReLU computes out = relu(q·kᵀ/√D)/Tk · v per head (no causal mask: encoder
// self-attention). It is its own naive reference (float64 accumulation, plain loops): the
// encoders it trains are small, and its twin below is written the same way.
func AttentionReLU(out, q, k, v []float32, tq, tk, heads, d int) {
	w := heads * d
	scale := 1 / math.Sqrt(float64(d))
	inv := 1 / float64(tk)
	p := make([]float64, tk)
	for h := range heads {
		for i := range tq {
			qi := q[i*w+h*d : i*w+(h+1)*d]
			for j := range tk {
				kj := k[j*w+h*d : j*w+(h+1)*d]
				var s float64
				for e, x := range qi {
					s += float64(x) * float64(kj[e])
				}
				p[j] = max(s*scale, 0) * inv
			}
			o := out[i*w+h*d : i*w+(h+1)*d]
			for e := range o {
				var acc float64
				for j := range tk {
					acc += p[j] * float64(v[j*w+h*d+e])
				}
				o[e] = float32(acc)
			}
		}
	}
}

// AttentionReLUBackward is AttentionReLU's twin: it accumulates dLoss/dq, dk, dv (any may be
// nil) from dout. With s = q·kᵀ/√D and p = relu(s)/Tk: dv += pᵀ·dout, dp = dout·vᵀ,
// ds = dp·1[s > 0]/Tk, dq += ds·k/√D, dk += dsᵀ·q/√D.
func AttentionReLUBackward(dq, dk, dv, dout, q, k, v []float32, tq, tk, heads, d int) {
	w := heads * d
	scale := 1 / math.Sqrt(float64(d))
	inv := 1 / float64(tk)
	for h := range heads {
		for i := range tq {
			qi := q[i*w+h*d : i*w+(h+1)*d]
			do := dout[i*w+h*d : i*w+(h+1)*d]
			for j := range tk {
				kj := k[j*w+h*d : j*w+(h+1)*d]
				vj := v[j*w+h*d : j*w+(h+1)*d]
				var s, dp float64
				for e := range d {
					s += float64(qi[e]) * float64(kj[e])
					dp += float64(do[e]) * float64(vj[e])
				}
				s *= scale
				if s <= 0 {
					continue // relu: no weight, no gradient through it
				}
				if dv != nil {
					pj := s * inv
					for e := range d {
						dv[j*w+h*d+e] += float32(pj * float64(do[e]))
					}
				}
				ds := dp * inv * scale
				if dq != nil {
					for e := range d {
						dq[i*w+h*d+e] += float32(ds * float64(kj[e]))
					}
				}
				if dk != nil {
					for e := range d {
						dk[j*w+h*d+e] += float32(ds * float64(qi[e]))
					}
				}
			}
		}
	}
}

// AttentionReLU is the op on tensors q [Tq, H·D] (or [B, Tq, H·D]) and k, v alike, taped when
// the context has a tape.
func (c *Ctx) AttentionReLU(q, k, v *T, heads int) *T {
	bs, tq, w := batchDims(q)
	kb, tk, kw := batchDims(k)
	if kb != bs || kw != w || !SameShape(k.Shape, v.Shape) || w%heads != 0 {
		panic(fmt.Sprintf("tensor: relu attention q %v k %v v %v heads %d", q.Shape, k.Shape, v.Shape, heads))
	}
	d := w / heads
	out := c.New(q.Shape...)
	for i := range bs {
		qs, ks := i*tq*w, i*tk*w
		AttentionReLU(out.Data[qs:qs+tq*w], q.Data[qs:qs+tq*w], k.Data[ks:ks+tk*w], v.Data[ks:ks+tk*w], tq, tk, heads, d)
	}
	if c.tape != nil {
		c.Custom(out, []*T{q, k, v}, func(dout []float32, g [][]float32) {
			for i := range bs {
				qs, ks := i*tq*w, i*tk*w
				sub := func(b []float32, lo, n int) []float32 {
					if b == nil {
						return nil
					}
					return b[lo : lo+n]
				}
				AttentionReLUBackward(sub(g[0], qs, tq*w), sub(g[1], ks, tk*w), sub(g[2], ks, tk*w),
					dout[qs:qs+tq*w], q.Data[qs:qs+tq*w], k.Data[ks:ks+tk*w], v.Data[ks:ks+tk*w], tq, tk, heads, d)
			}
		})
	}
	return out
}
