package tensor

import (
	"fmt"
	"math"
)

// attnScoreFloats bounds one work item's score block (query rows × visible keys): 128 Ki
// floats, 512 KiB, so the scores are still in L2 when the softmax and the ·V product read them.
// A variable so tests can force many small blocks.
var attnScoreFloats = 1 << 17

// attnStreamRows is the most query rows Attention serves with the streaming small-m kernels
// (decoding: one row per sequence, a few during prompt prefill); more rows pay for packing K
// and use the fused kernel.
const attnStreamRows = 4

// Attention is multi-head scaled dot-product attention on time-major, head-blocked data:
// q [Tq, H·D], k and v [Tk, H·D], out [Tq, H·D]; head h owns columns h·D…h·D+D-1. Scores are
// q·kᵀ/√D; with causal set, query i sits at position Tk-Tq+i and sees keys up to it (so the
// same call serves prefill and cached decoding). See AttentionNaive.
//
// Work is split into (head, block of query rows) items, each: scores for the block against the
// keys its last row can see, a row softmax that applies the causal limit, then the ·V product
// written into out's head columns. Three implementations, by size:
//
//   - Tq > attnStreamRows with the C kernels (prefill, encoder): fused. K is packed once per
//     head into panels of 32 keys (KVPanel, the layout of KVCache's keys); register-blocked
//     tiles compute 8×32 (AVX2: 6×16, two per panel) scores, the softmax leaves its 1/sum to
//     the ·V tiles of 6×64 (AVX2: 3×32) outputs, all in chorus's own code, so no OpenBLAS
//     call and no OpenBLAS threads are involved. 1500×1500, 6 heads of 64: 43 ms on one core
//     against 52 ms for the Sgemm path.
//   - Tq <= attnStreamRows with the C kernels (decoding): the streaming small-m kernels read
//     q, K and V in place; there is too little work per key to pay for packing. (The model's
//     decoding goes through AttentionKV, whose cache holds the keys packed already.)
//   - Otherwise (pure-Go build): Sgemm for both products on the strided head columns.
//
// Threading: items run on Threads() goroutines with per-goroutine pooled scratch, except on
// the Sgemm path with BLASThreads() > 1, where they run in order so each Sgemm gets all the
// OpenBLAS threads and only the softmax is split (threads.go). Error: as Linear and Softmax,
// ~1e-6 relative.
func Attention(out, q, k, v []float32, tq, tk, heads, d int, causal bool) {
	dims("attention", tq, tk, heads, d)
	w := heads * d
	need("attention q", q, tq*w)
	need("attention k", k, tk*w)
	need("attention v", v, tk*w)
	need("attention out", out, tq*w)
	if tq == 0 || w == 0 {
		return
	}
	if tk == 0 {
		panic("tensor: attention with no keys")
	}
	if causal && tq > tk {
		panic(fmt.Sprintf("tensor: causal attention with %d queries but only %d keys", tq, tk))
	}
	a := attnArgs{out: out, q: q, k: k, v: v, tq: tq, tk: tk, heads: heads, d: d, w: w, causal: causal,
		scale: float32(1 / math.Sqrt(float64(d)))}
	if tq > attnStreamRows && attnFused() {
		a.fused()
	} else {
		a.gemm()
	}
}

type attnArgs struct {
	out, q, k, v        []float32
	tq, tk, heads, d, w int
	causal              bool
	scale               float32
	rb, nb              int // query rows per block, blocks per head
}

// block returns the rows [i0, i1) of block blk, how many keys they see, and the causal offset
// of their first row for the softmax (-1 when not causal).
func (a *attnArgs) block(blk int) (i0, i1, kn, off int) {
	i0 = blk * a.rb
	i1 = min(i0+a.rb, a.tq)
	kn, off = a.tk, -1
	if a.causal {
		kn = a.tk - a.tq + i1
		off = a.tk - a.tq + i0
	}
	return
}

// workers is how many goroutines the items may use: several only when the whole call is worth
// a goroutine start and, on the Sgemm path, OpenBLAS is single-threaded.
func (a *attnArgs) workers(blasFree bool) int {
	if a.tq*a.tk*a.w*2 < 2*grainMACs || !(blasFree || BLASThreads() == 1) {
		return 1
	}
	return min(Threads(), a.heads*a.nb)
}

func (a *attnArgs) fused() {
	pw := attnPanel()
	kpad := (a.tk + pw - 1) / pw * pw
	// Blocks of whole 24-row groups (the tiles are 6 or 8 rows) when the scores allow.
	a.rb = min(a.tq, max(24, attnScoreFloats/kpad/24*24))
	a.nb = (a.tq + a.rb - 1) / a.rb
	kp := getScratch(a.heads * kpad * a.d)
	defer putScratch(kp)
	parallelFor(a.heads, max(1, grainElems/(a.tk*a.d)), func(lo, hi int) {
		for h := lo; h < hi; h++ {
			attnPackK((*kp)[h*kpad*a.d:], a.k[h*a.d:], a.w, a.tk, a.d, pw)
		}
	})
	workers := a.workers(true)
	sn, qn := a.rb*kpad, 8*a.d+a.rb
	buf := getScratch(workers * (sn + qn))
	defer putScratch(buf)
	parallelItems(a.heads*a.nb, workers, func(wk, it int) {
		h, blk := it%a.heads, it/a.heads
		i0, i1, kn, off := a.block(blk)
		s := (*buf)[wk*(sn+qn) : (wk+1)*(sn+qn)]
		attnRows(i1-i0, kn, a.d, a.scale, a.q[i0*a.w+h*a.d:], a.w, (*kp)[h*kpad*a.d:],
			a.v[h*a.d:], a.w, s[:sn], s[sn:], off, a.out[i0*a.w+h*a.d:], a.w)
	})
}

func (a *attnArgs) gemm() {
	a.rb = max(1, min(a.tq, attnScoreFloats/a.tk))
	a.nb = (a.tq + a.rb - 1) / a.rb
	own := a.rb <= attnStreamRows && simdLevel > 0 // every product is a chorus kernel
	workers := a.workers(own)
	buf := getScratch(workers * a.rb * a.tk)
	defer putScratch(buf)
	w, d := a.w, a.d
	parallelItems(a.heads*a.nb, workers, func(wk, it int) {
		h, blk := it%a.heads, it/a.heads
		i0, i1, kn, off := a.block(blk)
		rows := i1 - i0
		s := (*buf)[wk*a.rb*a.tk : wk*a.rb*a.tk+rows*kn]
		qh, kh, vh, oh := a.q[i0*w+h*d:], a.k[h*d:], a.v[h*d:], a.out[i0*w+h*d:]
		if rows > attnStreamRows || !gemmNTKernel(rows, kn, d, a.scale, qh, w, kh, w, nil, s, kn) {
			Sgemm(false, true, rows, kn, d, a.scale, qh, w, kh, w, 0, s, kn)
		}
		if workers == 1 && rows*kn >= 2*grainElems {
			parallelFor(rows, max(1, grainElems/kn), func(lo, hi int) {
				o := off
				if o >= 0 {
					o += lo
				}
				softmaxKernel(s[lo*kn:], hi-lo, kn, kn, o)
			})
		} else {
			softmaxKernel(s, rows, kn, kn, off)
		}
		if rows > attnStreamRows || !gemmNNKernel(rows, d, kn, s, kn, vh, w, oh, w) {
			Sgemm(false, false, rows, d, kn, 1, s, kn, vh, w, 0, oh, w)
		}
	})
}
