package whisper

// Cross-attention read-out for word-level timestamps: OpenAI's find_alignment installs hooks
// on every decoder block's cross-attention, runs the whole model once over
// [SOT sequence, <|notimestamps|>, text…, <|endoftext|>] and keeps the QK scores of the
// alignment heads (ref: openai/whisper timing.py#L163-L207, model.py#L114-L139). The pass
// here is that one forward, separate from decoding: the normal path (Decoder.Forward) stays
// as it is and pays nothing for it.

import (
	"fmt"
	"math"

	"github.com/chorus-asr/chorus/tensor"
)

// DefaultAlignmentHeads are the heads OpenAI aligns with when a checkpoint publishes no
// mask: every cross-attention head of the last half of the decoder layers (ref:
// model.py#L270-L276), as many as each layer has (a pruned layer may have none).
func DefaultAlignmentHeads(d Dims) [][2]int {
	var heads [][2]int
	for l := d.NTextLayer / 2; l < d.NTextLayer; l++ {
		for h := range d.DecoderCrossHeads(l) {
			heads = append(heads, [2]int{l, h})
		}
	}
	return heads
}

// CheckAlignmentHeads reports a [layer, head] pair outside the decoder: beyond its layers, or
// beyond that layer's cross-attention heads.
func (d Dims) CheckAlignmentHeads(heads [][2]int) error {
	for _, lh := range heads {
		if lh[0] < 0 || lh[0] >= d.NTextLayer {
			return fmt.Errorf("whisper: alignment head %v outside %d layers", lh, d.NTextLayer)
		}
		if n := d.DecoderCrossHeads(lh[0]); lh[1] < 0 || lh[1] >= n {
			return fmt.Errorf("whisper: alignment head %v outside layer %d's %d cross-attention heads", lh, lh[0], n)
		}
	}
	return nil
}

// Align runs the decoder over tokens from position 0 against the current audio window (the
// one Encode, EncodeInPlace or SetAudio installed) and returns the logits [keep, V] of the
// last keep positions (keep ≤ 0: all) and, for each of heads ([decoder layer, head] pairs),
// the cross-attention scores q·kᵀ/√D [S, T] before the softmax, row-major. It uses caches of
// its own, so the hypotheses being decoded are left as they are; everything returned is a
// copy.
func (s *State) Align(tokens []int, heads [][2]int, keep int) (logits *tensor.T, scores [][]float32) {
	if err := s.m.Dims.CheckAlignmentHeads(heads); err != nil {
		panic(err)
	}
	if s.align == nil {
		s.align = s.m.ShareCross(s.cross)
	}
	s.align.Truncate(0)
	defer s.dec.Reset()
	logits, scores = s.m.Decoder.forwardAlign(s.dec, tokens, s.align, heads, keep)
	return logits.Clone(), scores
}

// forwardAlign is Decoder.Forward that also reads the cross-attention scores of heads out of
// each block; the block is DecoderLayer.Forward with its cross-attention written out so that
// the queries are computed once for both.
func (d *Decoder) forwardAlign(ctx *tensor.Ctx, tokens []int, c *Caches, heads [][2]int, keep int) (*tensor.T, [][]float32) {
	if len(tokens) > d.Pos.Shape[0] {
		panic(fmt.Sprintf("whisper: %d tokens exceed the %d text positions", len(tokens), d.Pos.Shape[0]))
	}
	s := len(tokens)
	scores := make([][]float32, len(heads))
	x := ctx.AddRows(d.tokenEmbedding(ctx, tokens, 1), d.Pos, 0)
	for i := range d.Layers {
		l := &d.Layers[i]
		x = ctx.Add(x, l.Attn.Self(ctx, l.AttnLN.Forward(ctx, x), l.Attn.heads, true, c.Self[i]))
		if l.Cross.heads == 0 { // pruned away: no scores to read (CheckAlignmentHeads)
			x = ctx.Add(x, l.Cross.Cross(ctx, l.CrossLN.Forward(ctx, x), c.Cross[i], nil, nil, 0))
			x = ctx.Add(x, l.MLP.Forward(ctx, l.MLPLN.Forward(ctx, x)))
			continue
		}
		q := l.Cross.Q.Forward(ctx, l.CrossLN.Forward(ctx, x)) // [S, H·D]
		var keys []float32
		for j, lh := range heads {
			if lh[0] != i {
				continue
			}
			if keys == nil {
				keys = crossKeys(ctx, c.Cross[i])
			}
			scores[j] = headScores(q, keys, c.Cross[i].Len(), l.Cross.heads, lh[1])
		}
		x = ctx.Add(x, l.Cross.Out.Forward(ctx, c.Cross[i].Attend(ctx, q, false)))
		x = ctx.Add(x, l.MLP.Forward(ctx, l.MLPLN.Forward(ctx, x)))
	}
	if keep > 0 && keep < s {
		x = ctx.Rows(x, s-keep, s)
	}
	return d.Tok.Forward(ctx, d.LN.Forward(ctx, x)), scores
}

// crossKeys unpacks a cross-attention cache's keys into rows [T, C] (arena scratch).
func crossKeys(ctx *tensor.Ctx, kv *KV) []float32 {
	n, w := kv.Len(), kv.c.Width()
	k, v := ctx.New(n, w), ctx.New(n, w)
	kv.c.Unpack(k.Data, v.Data)
	return k.Data
}

// headScores is q_h·k_hᵀ/√D [S, T] for head h of q [S, H·D] and keys [T, H·D]. Whisper scales q
// and k by D^-¼ each (model.py#L118, L130); one 1/√D on the product is the same up to
// rounding.
func headScores(q *tensor.T, keys []float32, t, heads, h int) []float32 {
	s, c := q.Shape[0], q.Shape[1]
	d := c / heads
	out := make([]float32, s*t)
	tensor.Sgemm(false, true, s, t, d, float32(1/math.Sqrt(float64(d))), q.Data[h*d:], c, keys[h*d:], c, 0, out, t)
	return out
}
