package tensor

import (
	"fmt"
	"math"
)

// KVPanel is the key-panel width of the KV cache layout and of the fused attention kernels.
const KVPanel = 32

// KVCache holds one attention layer's keys and values for one sequence: up to Cap positions of
// H heads of width D, in float32 or in IEEE half precision (f32 compute either way).
//
// Layout. Positions are padded to lp, a multiple of KVPanel; head h owns one block of keys and
// one block of values, each lp·D values long and starting at h·lp·D:
//
//	keys   [H][lp/KVPanel][D][KVPanel]  key j, element e at (j/KVPanel)·D·KVPanel + e·KVPanel + j%KVPanel
//	values [H][lp][D]                   value j, element e at j·D + e
//
// so a decoding step reads each head's keys and values front to back as two contiguous
// streams, and the keys are already packed the way the fused attention kernel wants them (no
// packing per call, unlike Attention). Appending a position scatters its keys with stride
// KVPanel, which costs nothing next to the projections that produce them.
//
// Half precision halves the bytes a decoding step reads (Whisper tiny's cross-attention
// caches: 9.2 MB instead of 18.4 MB per token) at the price of rounding keys and values to 11
// significant bits (relative error <= 2^-11), which moves logits by ~1e-3.
type KVCache struct {
	k, v     []float32 // float32 storage, or nil
	k16, v16 []uint16  // half storage, or nil
	n        int       // positions in use
	limit    int       // capacity in positions
	lp       int       // limit rounded up to whole panels
	heads, d int
}

// NewKVCache allocates a cache for limit positions of heads heads of width d, in half
// precision when half is set.
func NewKVCache(limit, heads, d int, half bool) *KVCache {
	dims("kv cache", limit, heads, d)
	lp := (limit + KVPanel - 1) / KVPanel * KVPanel
	c := &KVCache{limit: limit, lp: lp, heads: heads, d: d}
	if half {
		c.k16, c.v16 = make([]uint16, heads*lp*d), make([]uint16, heads*lp*d)
	} else {
		c.k, c.v = make([]float32, heads*lp*d), make([]float32, heads*lp*d)
	}
	return c
}

// Len is the number of cached positions.
func (c *KVCache) Len() int { return c.n }

// Cap is the capacity in positions.
func (c *KVCache) Cap() int { return c.limit }

// Half reports whether the cache stores half-precision values.
func (c *KVCache) Half() bool { return c.k16 != nil }

// Width is H·D, the width of one position's keys (or values).
func (c *KVCache) Width() int { return c.heads * c.d }

// Append stores s positions of keys and values k, v [s, H·D] after the cached ones.
func (c *KVCache) Append(k, v []float32, s int) {
	w := c.heads * c.d
	need("kv cache k", k, s*w)
	need("kv cache v", v, s*w)
	if c.n+s > c.limit {
		panic(fmt.Sprintf("tensor: kv cache of %d positions full (%d + %d)", c.limit, c.n, s))
	}
	if s == 0 {
		return
	}
	if c.Half() {
		kvStoreF16(c.k16, c.v16, k, v, c.n, s, c.lp, c.heads, c.d)
	} else {
		kvStoreF32(c.k, c.v, k, v, c.n, s, c.lp, c.heads, c.d)
	}
	c.n += s
}

// Truncate drops cached positions beyond n.
func (c *KVCache) Truncate(n int) {
	if n < c.n {
		c.n = max(n, 0)
	}
}

// CopyFrom makes c an exact copy of src, which must have the same shape and precision.
func (c *KVCache) CopyFrom(src *KVCache) {
	if c.lp != src.lp || c.heads != src.heads || c.d != src.d || c.Half() != src.Half() {
		panic("tensor: kv cache copy between different shapes")
	}
	kn := (src.n + KVPanel - 1) / KVPanel * KVPanel * c.d // key values in use per head
	vn := src.n * c.d
	for h := range c.heads {
		o := h * c.lp * c.d
		if c.Half() {
			copy(c.k16[o:o+kn], src.k16[o:o+kn])
			copy(c.v16[o:o+vn], src.v16[o:o+vn])
		} else {
			copy(c.k[o:o+kn], src.k[o:o+kn])
			copy(c.v[o:o+vn], src.v[o:o+vn])
		}
	}
	c.n = src.n
}

// Unpack writes the cached keys and values as float32 rows k, v [Len, H·D] (the layout
// Attention takes): the reference reading of the cache layout.
func (c *KVCache) Unpack(k, v []float32) {
	w := c.heads * c.d
	need("kv unpack k", k, c.n*w)
	need("kv unpack v", v, c.n*w)
	for h := range c.heads {
		o := h * c.lp * c.d
		for j := range c.n {
			for e := range c.d {
				ki := o + j/KVPanel*c.d*KVPanel + e*KVPanel + j%KVPanel
				vi := o + j*c.d + e
				if c.Half() {
					k[j*w+h*c.d+e] = F16ToF32(c.k16[ki])
					v[j*w+h*c.d+e] = F16ToF32(c.v16[vi])
				} else {
					k[j*w+h*c.d+e] = c.k[ki]
					v[j*w+h*c.d+e] = c.v[vi]
				}
			}
		}
	}
}

// kvStoreGo is the pure-Go twin of chorus_kv_store_f32/f16 (simd.h).
func kvStoreGo[E float32 | uint16](kc, vc []E, k, v []float32, pos, s, lp, heads, d int, conv func(float32) E) {
	w := heads * d
	for h := range heads {
		o := h * lp * d
		for i := range s {
			j := pos + i
			kq := o + j/KVPanel*d*KVPanel + j%KVPanel
			for e := range d {
				kc[kq+e*KVPanel] = conv(k[i*w+h*d+e])
				vc[o+j*d+e] = conv(v[i*w+h*d+e])
			}
		}
	}
}

func id32(x float32) float32 { return x }

// AttentionKVNaive is the reference for AttentionKV: the cache unpacked into rows, then
// AttentionNaive.
func AttentionKVNaive(out, q []float32, c *KVCache, tq int, causal bool) {
	w := c.heads * c.d
	k, v := make([]float32, c.n*w), make([]float32, c.n*w)
	c.Unpack(k, v)
	AttentionNaive(out, q, k, v, tq, c.n, c.heads, c.d, causal)
}

// AttentionKV is Attention (q [Tq, H·D], out [Tq, H·D], scores q·kᵀ/√D, causal as there) with
// the keys and values of the c.Len() positions in cache c. See AttentionKVNaive.
//
// Work is split over heads on Threads() goroutines when the call is big enough. Per head:
//
//   - Tq <= attnStreamRows on AVX-512 (decoding): chorus_attn_kv_decode reads the head's key
//     panels and value rows in place, half-precision ones widened in registers, so a decoding
//     step's only memory traffic is one pass over the cache.
//   - Otherwise with the C kernels (prefill, AVX2): the fused kernel of Attention on the
//     cache's key panels directly; a half-precision head is widened into scratch first.
//   - Pure-Go build: the cache is unpacked into rows and Attention runs on them.
//
// Error: as Attention on the cached values (half-precision caches hold values already rounded
// to half).
func AttentionKV(out, q []float32, c *KVCache, tq int, causal bool) {
	w, tk, d := c.heads*c.d, c.n, c.d
	need("attention-kv q", q, tq*w)
	need("attention-kv out", out, tq*w)
	if tq == 0 {
		return
	}
	if tk == 0 {
		panic("tensor: attention with no keys")
	}
	if causal && tq > tk {
		panic(fmt.Sprintf("tensor: causal attention with %d queries but only %d keys", tq, tk))
	}
	if !attnFused() {
		k, v := getScratch(tk*w), getScratch(tk*w)
		defer putScratch(k)
		defer putScratch(v)
		c.Unpack(*k, *v)
		Attention(out, q, *k, *v, tq, tk, c.heads, d, causal)
		return
	}
	scale := float32(1 / math.Sqrt(float64(d)))
	np := (tk + KVPanel - 1) / KVPanel
	off := -1
	if causal {
		off = tk - tq
	}
	workers := 1
	if tq*tk*w*2 >= grainMACs/2 {
		workers = min(Threads(), c.heads)
	}
	// Row blocks as Attention's fused path, so a block's scores stay in L2. Per worker: the
	// scores of a block, the fused kernel's q tile (8·D + rows) and, for a half-precision cache
	// off the decoding kernel, the head's keys and values widened.
	rb := min(tq, max(24, attnScoreFloats/(np*KVPanel)/24*24))
	sn, qn, wn := rb*np*KVPanel, 8*d+rb, 0
	if c.Half() {
		wn = 2 * np * KVPanel * d
	}
	per := sn + qn + wn
	buf := getScratch(workers * per)
	defer putScratch(buf)
	parallelItems(c.heads, workers, func(wk, h int) {
		sc := (*buf)[wk*per : (wk+1)*per]
		s, qt, wide := sc[:sn], sc[sn:sn+qn], sc[sn+qn:]
		o := h * c.lp * d
		qh, oh := q[h*d:], out[h*d:]
		if tq <= attnStreamRows {
			var done bool
			if c.Half() {
				done = attnKVDecodeF16(tq, tk, d, scale, qh, w, c.k16[o:], c.v16[o:], d, s, off, oh, w)
			} else {
				done = attnKVDecodeF32(tq, tk, d, scale, qh, w, c.k[o:], c.v[o:], d, s, off, oh, w)
			}
			if done {
				return
			}
		}
		var kp, vh []float32
		if c.Half() {
			kp, vh = wide[:np*KVPanel*d], wide[np*KVPanel*d:]
			f16ToF32Kernel(kp, c.k16[o:o+np*KVPanel*d])
			f16ToF32Kernel(vh[:tk*d], c.v16[o:o+tk*d])
		} else {
			kp, vh = c.k[o:], c.v[o:]
		}
		for i0 := 0; i0 < tq; i0 += rb {
			i1 := min(i0+rb, tq)
			kn, co := tk, -1
			if causal {
				kn, co = tk-tq+i1, tk-tq+i0
			}
			attnRows(i1-i0, kn, d, scale, qh[i0*w:], w, kp, vh, d, s, qt, co, oh[i0*w:], w)
		}
	})
}
