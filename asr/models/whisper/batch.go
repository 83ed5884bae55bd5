package whisper

import (
	"fmt"

	"github.com/chorus-asr/chorus/tensor"
)

// ForwardBatch encodes windows of different lengths at once — concurrent streams' windows,
// each as long as its audio (content-length encoding) — exactly as Forward encodes each:
// the conv stem and the attention run per window, while every row-wise op (layer norms,
// projections, the feed-forward blocks) runs on all windows' rows stacked, so one GEMM
// replaces several smaller ones. Nothing is padded, so no window sees another's frames.
// Inference only (no routing, no hooks, no tape).
//
// Shapes: mels[i] [M, 2·T_i]; result i [T_i, C].
func (e *Encoder) ForwardBatch(ctx *tensor.Ctx, mels []*tensor.T) []*tensor.T {
	if len(mels) == 1 {
		return []*tensor.T{e.Forward(ctx, mels[0])}
	}
	var segs []*tensor.T
	rows := make([]int, len(mels))
	for i, mel := range mels {
		x := ctx.GELU(e.Conv1.Forward(ctx, ctx.Transpose(mel)))
		x = ctx.GELU(e.Conv2.Forward(ctx, x)) // [T_i, C]
		if x.Shape[0] > e.Pos.Shape[0] {
			panic(fmt.Sprintf("whisper: %d audio frames exceed the %d positions", x.Shape[0], e.Pos.Shape[0]))
		}
		segs = append(segs, ctx.AddRows(x, e.Pos, 0))
		rows[i] = x.Shape[0]
	}
	x := stack(ctx, segs) // [ΣT_i, C]
	for i := range e.Layers {
		l := &e.Layers[i]
		h := l.AttnLN.Forward(ctx, x)
		a := &l.Attn
		q, k, v := a.Q.Forward(ctx, h), a.K.Forward(ctx, h), a.V.Forward(ctx, h)
		o := ctx.New(q.Shape...)
		w := q.Shape[1]
		off := 0
		for _, n := range rows {
			view := func(t *tensor.T) *tensor.T { return tensor.FromData(t.Data[off*w:(off+n)*w], n, w) }
			copy(o.Data[off*w:(off+n)*w], a.Attend(ctx, view(q), view(k), view(v), a.heads, false).Data)
			off += n
		}
		x = ctx.Add(x, a.Out.Forward(ctx, o))
		x = ctx.Add(x, l.MLP.Forward(ctx, l.MLPLN.Forward(ctx, x)))
	}
	x = e.LN.Forward(ctx, x)
	out := make([]*tensor.T, len(mels))
	off := 0
	c := x.Shape[1]
	for i, n := range rows {
		out[i] = tensor.FromData(x.Data[off*c:(off+n)*c], n, c)
		off += n
	}
	return out
}

// stack concatenates [T_i, C] tensors along rows.
func stack(ctx *tensor.Ctx, xs []*tensor.T) *tensor.T {
	n, c := 0, xs[0].Shape[1]
	for _, x := range xs {
		n += x.Shape[0]
	}
	out := ctx.New(n, c)
	off := 0
	for _, x := range xs {
		off += copy(out.Data[off:], x.Data)
	}
	return out
}
