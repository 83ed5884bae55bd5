package whisper

import (
	"fmt"

	"github.com/chorus-asr/chorus/tensor"
)

// KV holds one attention layer's keys and values for one sequence, with room to grow to a
// fixed capacity so appending a token never reallocates. The storage and its layout are
// tensor.KVCache's: heads contiguous, keys packed for the attention kernels, and half
// precision for models whose weights are (see halfKV).
type KV struct {
	c *tensor.KVCache
}

// NewKV allocates a cache of up to limit positions of heads heads of width d, in half
// precision when half is set.
func NewKV(limit, heads, d int, half bool) *KV {
	return &KV{c: tensor.NewKVCache(limit, heads, d, half)}
}

// Len is the number of cached positions.
func (kv *KV) Len() int { return kv.c.Len() }

// Append adds keys and values k, v [S, C] after the cached ones.
func (kv *KV) Append(k, v *tensor.T) {
	if len(k.Shape) != 2 || !tensor.SameShape(k.Shape, v.Shape) || k.Shape[1] != kv.c.Width() {
		panic(fmt.Sprintf("whisper: kv append k %v v %v to a cache of width %d", k.Shape, v.Shape, kv.c.Width()))
	}
	kv.c.Append(k.Data, v.Data, k.Shape[0])
}

// advance counts s more positions without storing anything: the cache of an attention with
// no heads (a pruned layer), whose width is 0, still tracks how many tokens went by.
func (kv *KV) advance(s int) { kv.c.Append(nil, nil, s) }

// Set replaces the contents with k, v [S, C] (cross-attention: the projected audio).
func (kv *KV) Set(k, v *tensor.T) {
	kv.c.Truncate(0)
	kv.Append(k, v)
}

// Attend is attention of q [S, C] over the cached keys and values (causal: query i sits at
// position Len()-S+i).
func (kv *KV) Attend(ctx *tensor.Ctx, q *tensor.T, causal bool) *tensor.T {
	return ctx.AttentionKV(q, kv.c, causal)
}

// Truncate drops cached rows beyond n (a rejected draft, a rewound prefix).
func (kv *KV) Truncate(n int) { kv.c.Truncate(n) }

// CopyFrom makes kv an exact copy of src (beam search forks a hypothesis).
func (kv *KV) CopyFrom(src *KV) { kv.c.CopyFrom(src.c) }

// Caches are the decoder's per-sequence caches: self-attention per layer (growing with the
// tokens) and cross-attention per layer (the audio window, shared by all hypotheses of it).
type Caches struct {
	Self  []*KV
	Cross []*KV
}

// halfKV reports whether the model's caches store half precision: when its decoder weights
// do (LoadOptions.F16 or a half-precision checkpoint). Decoding is bound by memory traffic,
// and Whisper tiny's cross-attention caches are a fifth of a token's reads in float32; a
// float32 model keeps float32 caches, so its results stay exact to float32 rounding.
func (m *Model) halfKV() bool { return m.Decoder.Tok.W16 != nil }

// NewCaches allocates caches for one decoding sequence of model m, each layer's as wide as
// that layer's heads (a pruned layer's caches shrink with it; one without heads holds none).
func (m *Model) NewCaches() *Caches {
	d := m.Dims
	c := &Caches{}
	for i := range d.NTextLayer {
		c.Self = append(c.Self, NewKV(d.NTextCtx, d.DecoderSelfHeads(i), d.TextHD(), m.halfKV()))
		c.Cross = append(c.Cross, NewKV(d.NAudioCtx, d.DecoderCrossHeads(i), d.TextHD(), m.halfKV()))
	}
	return c
}

// Len is the number of tokens in the self-attention caches.
func (c *Caches) Len() int {
	if len(c.Self) == 0 {
		return 0
	}
	return c.Self[0].Len()
}

// Truncate rewinds the self-attention caches to n tokens.
func (c *Caches) Truncate(n int) {
	for _, kv := range c.Self {
		kv.Truncate(n)
	}
}

// ShareCross returns caches with fresh self-attention caches that share c's cross-attention
// caches (beam hypotheses of one window read the same audio keys and values).
func (m *Model) ShareCross(c *Caches) *Caches {
	d := m.Dims
	n := &Caches{Cross: c.Cross}
	for i := range d.NTextLayer {
		n.Self = append(n.Self, NewKV(d.NTextCtx, d.DecoderSelfHeads(i), d.TextHD(), m.halfKV()))
	}
	return n
}

// CopySelf copies src's self-attention caches into c.
func (c *Caches) CopySelf(src *Caches) {
	for i := range c.Self {
		c.Self[i].CopyFrom(src.Self[i])
	}
}
