package whisper

import (
	"fmt"

	"github.com/chorus-asr/chorus/tensor"
)

// StepBatch feeds one token to each of several hypotheses of the same audio window — token i
// to caches[i] — and returns their logits [n, V], each row what Forward(ctx, tokens[i:i+1],
// caches[i], 1) returns. Beam search and best-of sampling step all their hypotheses at once
// this way: the row-wise work (embeddings, layer norms, projections, feed-forward blocks, the
// vocabulary projection) runs on the n rows stacked, one pass over each weight matrix instead
// of n; self-attention reads each hypothesis's own cache; cross-attention runs the n queries
// together when the hypotheses share their cross caches (State's do), else one by one.
// rt routes the feed-forward blocks (nil: dense), the n rows as n tokens.
func (d *Decoder) StepBatch(ctx *tensor.Ctx, tokens []int, caches []*Caches, rt Routing) *tensor.T {
	n := len(tokens)
	if n != len(caches) || n == 0 {
		panic(fmt.Sprintf("whisper: step of %d tokens for %d caches", n, len(caches)))
	}
	x := ctx.New(n, d.Tok.In)
	c := d.Tok.In
	for i, cs := range caches {
		if p := cs.Len(); p >= d.Pos.Shape[0] {
			panic(fmt.Sprintf("whisper: %d tokens exceed the %d text positions", p+1, d.Pos.Shape[0]))
		}
		row := d.tokenEmbedding(ctx, tokens[i:i+1], 1)
		pos := d.Pos.Data[cs.Len()*c : (cs.Len()+1)*c]
		for j := range c {
			x.Data[i*c+j] = row.Data[j] + pos[j]
		}
	}
	shared := true
	for _, cs := range caches[1:] {
		for l := range cs.Cross {
			shared = shared && cs.Cross[l] == caches[0].Cross[l]
		}
	}
	for l := range d.Layers {
		x = d.Layers[l].step(ctx, x, caches, l, shared, rt)
	}
	return d.Tok.Forward(ctx, d.LN.Forward(ctx, x))
}

// step is DecoderLayer.Forward for n hypotheses' single tokens x [n, C] (StepBatch).
func (l *DecoderLayer) step(ctx *tensor.Ctx, x *tensor.T, caches []*Caches, layer int, shared bool, rt Routing) *tensor.T {
	n := x.Shape[0]
	rowsOf := func(t *tensor.T, i int) *tensor.T {
		w := t.Shape[1]
		return tensor.FromData(t.Data[i*w:(i+1)*w], 1, w)
	}
	gather := func(out *tensor.T, i int, r *tensor.T) { copy(out.Data[i*r.Shape[1]:], r.Data) }

	// Self-attention: projections stacked, attention per hypothesis over its own cache.
	h := l.AttnLN.Forward(ctx, x)
	var a *tensor.T
	if l.Attn.heads == 0 {
		for _, cs := range caches {
			cs.Self[layer].advance(1)
		}
		a = outBias(ctx, h, &l.Attn.Out)
	} else {
		q, k, v := l.Attn.Q.Forward(ctx, h), l.Attn.K.Forward(ctx, h), l.Attn.V.Forward(ctx, h)
		o := ctx.New(n, q.Shape[1])
		for i, cs := range caches {
			kv := cs.Self[layer]
			kv.Append(rowsOf(k, i), rowsOf(v, i))
			gather(o, i, kv.Attend(ctx, rowsOf(q, i), true))
		}
		a = l.Attn.Out.Forward(ctx, o)
	}
	x = ctx.Add(x, a)

	// Cross-attention: the audio's keys and values are the same for every hypothesis.
	h = l.CrossLN.Forward(ctx, x)
	var cr *tensor.T
	if l.Cross.heads == 0 {
		cr = outBias(ctx, h, &l.Cross.Out)
	} else {
		q := l.Cross.Q.Forward(ctx, h)
		var o *tensor.T
		if shared {
			o = caches[0].Cross[layer].Attend(ctx, q, false)
		} else {
			o = ctx.New(n, q.Shape[1])
			for i, cs := range caches {
				gather(o, i, cs.Cross[layer].Attend(ctx, rowsOf(q, i), false))
			}
		}
		cr = l.Cross.Out.Forward(ctx, o)
	}
	x = ctx.Add(x, cr)
	return ctx.Add(x, l.MLP.ForwardRouted(ctx, l.MLPLN.Forward(ctx, x), rt))
}
