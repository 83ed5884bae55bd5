package whisper

import (
	"fmt"

	"github.com/chorus-asr/chorus/tensor"
)

// KV holds one attention layer's keys and values [len, C] for one sequence, with room to grow
// to a fixed capacity so appending a token never reallocates.
type KV struct {
	k, v  []float32
	n, c  int // rows in use, width
	limit int // capacity in rows
}

// NewKV allocates a cache of up to limit rows of width c.
func NewKV(limit, c int) *KV {
	return &KV{k: make([]float32, limit*c), v: make([]float32, limit*c), c: c, limit: limit}
}

// Len is the number of cached rows.
func (kv *KV) Len() int { return kv.n }

// Append adds rows k, v [S, C] and returns views of all cached keys and values.
func (kv *KV) Append(k, v *tensor.T) (*tensor.T, *tensor.T) {
	s := k.Shape[0]
	if kv.n+s > kv.limit {
		panic(fmt.Sprintf("whisper: kv cache of %d rows full (%d + %d)", kv.limit, kv.n, s))
	}
	copy(kv.k[kv.n*kv.c:], k.Data)
	copy(kv.v[kv.n*kv.c:], v.Data)
	kv.n += s
	return kv.K(), kv.V()
}

// Set replaces the contents with k, v [S, C] (cross-attention: the projected audio).
func (kv *KV) Set(k, v *tensor.T) {
	kv.n = 0
	kv.Append(k, v)
}

// K and V are views [len, C] of the cached rows.
func (kv *KV) K() *tensor.T { return tensor.FromData(kv.k[:kv.n*kv.c], kv.n, kv.c) }
func (kv *KV) V() *tensor.T { return tensor.FromData(kv.v[:kv.n*kv.c], kv.n, kv.c) }

// Truncate drops cached rows beyond n (a rejected draft, a rewound prefix).
func (kv *KV) Truncate(n int) {
	if n < kv.n {
		kv.n = n
	}
}

// CopyFrom makes kv an exact copy of src (beam search forks a hypothesis).
func (kv *KV) CopyFrom(src *KV) {
	copy(kv.k, src.k[:src.n*src.c])
	copy(kv.v, src.v[:src.n*src.c])
	kv.n = src.n
}

// Caches are the decoder's per-sequence caches: self-attention per layer (growing with the
// tokens) and cross-attention per layer (the audio window, shared by all hypotheses of it).
type Caches struct {
	Self  []*KV
	Cross []*KV
}

// NewCaches allocates caches for one decoding sequence of model m.
func (m *Model) NewCaches() *Caches {
	d := m.Dims
	c := &Caches{}
	for range d.NTextLayer {
		c.Self = append(c.Self, NewKV(d.NTextCtx, d.NTextState))
		c.Cross = append(c.Cross, NewKV(d.NAudioCtx, d.NTextState))
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
	for range d.NTextLayer {
		n.Self = append(n.Self, NewKV(d.NTextCtx, d.NTextState))
	}
	return n
}

// CopySelf copies src's self-attention caches into c.
func (c *Caches) CopySelf(src *Caches) {
	for i := range c.Self {
		c.Self[i].CopyFrom(src.Self[i])
	}
}
