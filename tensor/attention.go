package tensor

import (
	"fmt"
	"math"
)

// attnScoreFloats bounds one work item's score block (rows × visible keys): 64 Ki floats,
// 256 KiB, so the block that the score GEMM writes is still in L2 when softmax and the ·V GEMM
// read it. 1500×1500 encoder attention thus runs as 6 heads × 35 row blocks of 43 rows.
var attnScoreFloats = 1 << 16

// Attention is multi-head scaled dot-product attention on time-major, head-blocked data:
// q [Tq, H·D], k and v [Tk, H·D], out [Tq, H·D]; head h owns columns h·D…h·D+D-1. Scores are
// q·kᵀ/√D; with causal set, query i sits at position Tk-Tq+i and sees keys up to it (so the
// same call serves prefill and cached decoding). See AttentionNaive.
//
// Work is split into (head, block of query rows) items. Per item: S = Q_blk·K_hᵀ/√D read
// straight from the strided head columns (lda = H·D), a row softmax that also applies the
// causal limit, then O_blk = S·V_h written into out's head columns. Causal blocks only compute
// the keys their last row can see. Blocks of <= SmallM rows use chorus's streaming kernels
// (decoding: no GEMM packing for a 1×Tk product), larger ones Sgemm.
//
// Threading: items run on Threads() goroutines, each with its own pooled score buffer, when
// their GEMMs are chorus kernels or BLASThreads() == 1; otherwise the items run in order so
// each Sgemm gets all OpenBLAS threads, and only the softmax is split across goroutines
// (threads.go has the reasoning). Error: as Linear and Softmax, ~1e-6 relative.
func Attention(out, q, k, v []float32, tq, tk, heads, d int, causal bool) {
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
	scale := float32(1 / math.Sqrt(float64(d)))
	rb := max(1, min(tq, attnScoreFloats/tk))
	nb := (tq + rb - 1) / rb
	items := heads * nb

	own := rb <= SmallM && simdLevel > 0 // every product is a chorus kernel
	workers := 1
	if macs := tq * tk * w * 2; macs >= 2*grainMACs && (own || BLASThreads() == 1) {
		workers = min(Threads(), items)
	}
	bufs := make([]*[]float32, workers)
	for i := range bufs {
		bufs[i] = getScratch(rb * tk)
	}
	defer func() {
		for _, p := range bufs {
			putScratch(p)
		}
	}()

	parallelItems(items, workers, func(wk, it int) {
		h, blk := it%heads, it/heads
		i0 := blk * rb
		i1 := min(i0+rb, tq)
		rows := i1 - i0
		kn, off := tk, -1
		if causal {
			kn = tk - tq + i1 // keys visible to the block's last row
			off = tk - tq + i0
		}
		s := (*bufs[wk])[:rows*kn]
		qh, kh, vh, oh := q[i0*w+h*d:], k[h*d:], v[h*d:], out[i0*w+h*d:]

		if rows > SmallM || !gemmNTKernel(rows, kn, d, scale, qh, w, kh, w, nil, s, kn) {
			Sgemm(false, true, rows, kn, d, scale, qh, w, kh, w, 0, s, kn)
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
		if rows > SmallM || !gemmNNKernel(rows, d, kn, s, kn, vh, w, oh, w) {
			Sgemm(false, false, rows, d, kn, 1, s, kn, vh, w, 0, oh, w)
		}
	})
}
