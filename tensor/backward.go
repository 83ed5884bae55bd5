package tensor

import (
	"fmt"
	"math"
	"math/bits"
	"sync"
)

// This file holds the backward twins of the kernels in ops.go and attention.go, in llm.c's
// style: XxxBackward(dinp, dw, db, dout, inp, w, …) takes the gradients first, then the
// forward's arguments in the forward's order. Every twin ACCUMULATES (+=) into its gradient
// buffers, so a weight used twice (Whisper's tied token embedding) or a tensor read by two
// branches (the residual stream) sums its gradients without the caller zeroing in between.
// A nil gradient buffer means "not needed" (a frozen weight, the input mel) and skips that
// part of the work. Each twin is tested against central finite differences of a float64
// reference forward (backward_test.go).

// LinearBackward is the twin of Linear (out[M,N] = x[M,K]·w[N,K]ᵀ + b[N]):
//
//	dx[M,K] += dout[M,N]·w[N,K]
//	dw[N,K] += dout[M,N]ᵀ·x[M,K]
//	db[N]   += Σ_rows dout
//
// dx, dw and db may each be nil. The products are Sgemm calls with beta = 1, split over
// goroutines by output rows under the same policy as Linear (threads.go); the bias sum is
// accumulated in float64.
func LinearBackward(dx, dw, db, dout, x, w []float32, m, k, n int) {
	need("linear backward dout", dout, m*n)
	if m == 0 || n == 0 {
		return
	}
	if dx != nil {
		need("linear backward dx", dx, m*k)
		need("linear backward w", w, n*k)
		gemmSplit(m, m*n*k, func(lo, hi int) {
			Sgemm(false, false, hi-lo, k, n, 1, dout[lo*n:], n, w, k, 1, dx[lo*k:], k)
		})
	}
	if dw != nil {
		need("linear backward dw", dw, n*k)
		need("linear backward x", x, m*k)
		// Split the wider side of dw [N,K] over the threads: each packs its share of that
		// operand and all of the other, so splitting the wider one packs less (the bf16 GEMM
		// converts as it packs; an FFN's second layer has N = 256, K = 1024).
		if k > n {
			// Columns lo…hi of dw come from columns lo…hi of x.
			gemmSplit(k, m*n*k, func(lo, hi int) {
				Sgemm(true, false, n, hi-lo, m, 1, dout, n, x[lo:], k, 1, dw[lo:], k)
			})
		} else {
			// Rows lo…hi of dw are columns lo…hi of dout: op(A) = dout[:, lo:hi]ᵀ.
			gemmSplit(n, m*n*k, func(lo, hi int) {
				Sgemm(true, false, hi-lo, k, m, 1, dout[lo:], n, x, k, 1, dw[lo*k:], k)
			})
		}
	}
	if db != nil {
		need("linear backward db", db, n)
		colSums(db, dout, m, n)
	}
}

// gemmSplit runs fn over [0, rows) either at once (one Sgemm that OpenBLAS may thread itself)
// or in row blocks on Threads() goroutines, each a single-threaded Sgemm: the split that
// sgemmRows makes for the forward product, for the same reasons (threads.go).
func gemmSplit(rows, macs int, fn func(lo, hi int)) {
	if BLASThreads() > 1 || Threads() == 1 || rows < 2*splitRows || macs < 4*grainMACs {
		fn(0, rows)
		return
	}
	parallelFor(rows, splitRows, fn)
}

// sumChunk is how many rows one partial sum of colSums and LayerNormBackward's γ/β gradients
// covers. Rows are cut into fixed chunks (whatever the thread count), each chunk summed in
// float64 by one goroutine, and the chunks' partials added in order: the result does not
// depend on scheduling or on how many threads ran, and every thread gets work even when the
// matrix has few columns (d_model 256 was a single column block before).
const sumChunk = 256

// colSums adds the column sums of x [R, C] to dst [C], accumulating in float64 (a bias
// gradient sums up to 1500 rows per sample; float32 accumulation would lose ~3 digits).
func colSums(dst, x []float32, rows, cols int) {
	if rows == 0 || cols == 0 {
		return
	}
	chunks := (rows + sumChunk - 1) / sumChunk
	pp := getF64(chunks * cols)
	defer putF64(pp)
	part := *pp
	clear(part)
	parallelItems(chunks, Threads(), func(_, ch int) {
		r0, r1 := ch*sumChunk, min((ch+1)*sumChunk, rows)
		colSumsKernel(part[ch*cols:(ch+1)*cols], x[r0*cols:], r1-r0, cols)
	})
	for ch := range chunks {
		for j, v := range part[ch*cols : (ch+1)*cols] {
			dst[j] += float32(v)
		}
	}
}

// colSumsGo is colSums' pure-Go kernel: acc[j] += Σ_r x[r·cols + j].
func colSumsGo(acc []float64, x []float32, rows, cols int) {
	acc = acc[:cols]
	for r := range rows {
		for j, v := range x[r*cols : (r+1)*cols] {
			acc[j] += float64(v)
		}
	}
}

// LayerNormBackward is the twin of LayerNorm. With x̂ = (x−μ)·r, r = 1/√(var+eps) recomputed
// per row (cheaper to redo than to keep two more activations per row), and g = dout·γ:
//
//	dx     += r·(g − mean(g) − x̂·mean(g·x̂))
//	dgamma += Σ_rows dout·x̂
//	dbeta  += Σ_rows dout
//
// gamma may be nil (γ = 1); any gradient may be nil. Rows are computed in float64, in chunks
// of sumChunk rows that run in parallel; each chunk's γ/β partial sums are added in chunk
// order (see sumChunk), so no two goroutines add into the same value and the sums have a
// fixed order.
func LayerNormBackward(dx, dgamma, dbeta, dout, x, gamma []float32, rows, cols int, eps float32) {
	need("layernorm backward dout", dout, rows*cols)
	need("layernorm backward x", x, rows*cols)
	if gamma != nil {
		need("layernorm backward gamma", gamma, cols)
	}
	if rows == 0 || cols == 0 {
		return
	}
	if dx != nil {
		need("layernorm backward dx", dx, rows*cols)
	}
	if dgamma != nil {
		need("layernorm backward dgamma", dgamma, cols)
	}
	if dbeta != nil {
		need("layernorm backward dbeta", dbeta, cols)
	}
	chunks := (rows + sumChunk - 1) / sumChunk
	pp := getF64(2 * chunks * cols) // per chunk: Σ dout·x̂, then Σ dout
	defer putF64(pp)
	part := *pp
	clear(part)
	parallelItems(chunks, Threads(), func(_, ch int) {
		r0, r1 := ch*sumChunk, min((ch+1)*sumChunk, rows)
		var dxc []float32
		if dx != nil {
			dxc = dx[r0*cols : r1*cols]
		}
		layerNormBackwardKernel(dxc, part[2*ch*cols:(2*ch+1)*cols], part[(2*ch+1)*cols:(2*ch+2)*cols],
			dout[r0*cols:r1*cols], x[r0*cols:r1*cols], gamma, r1-r0, cols, eps)
	})
	for ch := range chunks {
		g, b := part[2*ch*cols:(2*ch+1)*cols], part[(2*ch+1)*cols:(2*ch+2)*cols]
		for j := range cols {
			if dgamma != nil {
				dgamma[j] += float32(g[j])
			}
			if dbeta != nil {
				dbeta[j] += float32(b[j])
			}
		}
	}
}

// layerNormBackwardGo is LayerNormBackward's pure-Go kernel for rows rows (float64): dx += the
// row gradient (dx nil: skipped), gacc[j] += Σ dout·x̂, bacc[j] += Σ dout.
func layerNormBackwardGo(dx []float32, gacc, bacc []float64, dout, x, gamma []float32, rows, cols int, eps float32) {
	for r := range rows {
		xr, dr := x[r*cols:(r+1)*cols], dout[r*cols:(r+1)*cols]
		var s float64
		for _, v := range xr {
			s += float64(v)
		}
		mean := s / float64(cols)
		var ss float64
		for _, v := range xr {
			d := float64(v) - mean
			ss += d * d
		}
		inv := 1 / math.Sqrt(ss/float64(cols)+float64(eps))
		var sg, sgx float64 // Σ g, Σ g·x̂
		for c, v := range xr {
			d := float64(dr[c])
			xh := (float64(v) - mean) * inv
			gacc[c] += d * xh
			bacc[c] += d
			g := d
			if gamma != nil {
				g *= float64(gamma[c])
			}
			sg += g
			sgx += g * xh
		}
		if dx == nil {
			continue
		}
		sg /= float64(cols)
		sgx /= float64(cols)
		o := dx[r*cols : (r+1)*cols]
		for c, v := range xr {
			g := float64(dr[c])
			if gamma != nil {
				g *= float64(gamma[c])
			}
			xh := (float64(v) - mean) * inv
			o[c] += float32(inv * (g - sg - xh*sgx))
		}
	}
}

// invSqrt2Pi is 1/√(2π), the standard normal density at 0.
const invSqrt2Pi = 0.3989422804014327

// GELUBackward is the twin of GELU (exact erf form, y = x·Φ(x)):
//
//	dx += dout·(Φ(x) + x·φ(x)),  φ(x) = exp(−x²/2)/√(2π)
//
// Φ uses the same fitted erf as the forward (erfAbs, |err| < 1e-9), evaluated in float64.
func GELUBackward(dx, dout, x []float32) {
	need("gelu backward dout", dout, len(x))
	need("gelu backward dx", dx, len(x))
	parallelFor(len(x), grainElems, func(lo, hi int) { geluBackwardKernel(dx[lo:hi], dout[lo:hi], x[lo:hi]) })
}

// geluBackwardGo is GELUBackward's pure-Go kernel (the !cgo build, CPUs without AVX2), in
// float64; the SIMD kernel (chorus_gelu_backward) is float32 with the same erf.
func geluBackwardGo(dx, dout, x []float32) {
	d, g := dx[:len(x)], dout[:len(x)]
	for i, v := range x {
		f := float64(v)
		e := math.Copysign(erfAbs(math.Abs(f)*(1/math.Sqrt2)), f) // no branch on the sign
		cdf := 0.5 * (1 + e)
		d[i] += float32(float64(g[i]) * (cdf + f*invSqrt2Pi*math.Exp(-0.5*f*f)))
	}
}

// ReLUBackward is the twin of ReLU: dx += dout where x > 0. At x = 0 the gradient is 0, and
// a NaN input passes no gradient, as torch's threshold_backward.
func ReLUBackward(dx, dout, x []float32) {
	need("relu backward dout", dout, len(x))
	need("relu backward dx", dx, len(x))
	parallelFor(len(x), grainElems, func(lo, hi int) {
		xs := x[lo:hi]
		d, g := dx[lo:hi][:len(xs)], dout[lo:hi][:len(xs)]
		for i, v := range xs {
			// Branchless: the gradient's bits masked by v > 0 (a conditional move), since a
			// branch on the sign mispredicts on half the units (4.6× slower).
			var k uint32
			if v > 0 {
				k = 1
			}
			d[i] += math.Float32frombits(math.Float32bits(g[i]) & -k)
		}
	})
}

// TransposeBackward is the twin of Transpose (out[C,R] = in[R,C]ᵀ): din[R,C] += dout[C,R]ᵀ,
// walked in the same 32×32 blocks.
func TransposeBackward(din, dout []float32, rows, cols int) {
	need("transpose backward dout", dout, rows*cols)
	need("transpose backward din", din, rows*cols)
	const bs = 32
	for c0 := 0; c0 < cols; c0 += bs {
		c1 := min(c0+bs, cols)
		for r0 := 0; r0 < rows; r0 += bs {
			r1 := min(r0+bs, rows)
			for c := c0; c < c1; c++ {
				row := dout[c*rows : c*rows+r1]
				for r := r0; r < r1; r++ {
					din[r*cols+c] += row[r]
				}
			}
		}
	}
}

// EmbeddingBackward is the twin of the embedding lookup (out[i] = table[ids[i]]): it
// scatter-adds each row of dout [len(ids), C] into dtable [V, C]. Repeated ids add up, so it
// runs serially.
func EmbeddingBackward(dtable, dout []float32, ids []int, cols int) {
	need("embedding backward dout", dout, len(ids)*cols)
	for i, id := range ids {
		if id < 0 || (id+1)*cols > len(dtable) {
			panic(fmt.Sprintf("tensor: embedding backward id %d outside a table of %d rows", id, len(dtable)/max(cols, 1)))
		}
		d := dtable[id*cols : (id+1)*cols]
		for j, v := range dout[i*cols : (i+1)*cols] {
			d[j] += v
		}
	}
}

// LogSoftmaxBackward is the twin of a row-wise LogSoftmax y = x − logsumexp(x), given the
// forward's OUTPUT y (the probabilities exp(y) are what the gradient needs, and y is what the
// caller keeps): dx += dout − exp(y)·Σ dout, per row of C values.
func LogSoftmaxBackward(dx, dout, y []float32, rows, cols int) {
	need("log-softmax backward dout", dout, rows*cols)
	need("log-softmax backward y", y, rows*cols)
	need("log-softmax backward dx", dx, rows*cols)
	parallelFor(rows, max(1, grainElems/max(1, cols)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			g, yr, d := dout[r*cols:(r+1)*cols], y[r*cols:(r+1)*cols], dx[r*cols:(r+1)*cols]
			var s float64
			for _, v := range g {
				s += float64(v)
			}
			for j, v := range yr {
				d[j] += float32(float64(g[j]) - math.Exp(float64(v))*s)
			}
		}
	})
}

// Conv1dBackward is the twin of Conv1d (x [Tin, Cin], w [Cout, Cin, KW], out [Tout, Cout]).
// Like the forward it works on the im2col matrix col [Tout, KW·Cin] and the weight permuted to
// w' [Cout, KW·Cin], so the convolution is the Linear out = col·w'ᵀ + b and its gradients are
// LinearBackward's:
//
//	dw'  = doutᵀ·col   → added to dw after permuting back to [Cout, Cin, KW]
//	dcol = dout·w'     → col2im: each input row gathers the taps that read it
//	db  += Σ_rows dout
//
// dx, dw and db may each be nil; with dx nil (the first conv reads the mel, which needs no
// gradient) the dcol product is skipped. Scratch comes from the kernel pool.
func Conv1dBackward(dx, dw, db, dout, x, w []float32, tin, cin, cout, kw, stride, pad int) {
	if stride < 1 || kw < 1 || pad < 0 {
		panic(fmt.Sprintf("tensor: conv1d backward kw %d stride %d pad %d", kw, stride, pad))
	}
	tout := max(0, Conv1dOut(tin, kw, stride, pad))
	need("conv1d backward dout", dout, tout*cout)
	if tout == 0 || cout == 0 {
		return
	}
	kk := kw * cin
	if db != nil {
		need("conv1d backward db", db, cout)
		colSums(db, dout, tout, cout)
	}
	if dw != nil {
		need("conv1d backward dw", dw, cout*kk)
		need("conv1d backward x", x, tin*cin)
		colp := getScratch(tout * kk)
		im2col(*colp, x, tin, cin, kw, stride, pad, tout)
		dwp := getScratch(cout * kk)
		dwt := *dwp
		clear(dwt)
		LinearBackward(nil, dwt, nil, dout, *colp, nil, tout, kk, cout)
		putScratch(colp)
		for o := 0; o < cout; o++ {
			src, dst := dwt[o*kk:(o+1)*kk], dw[o*kk:(o+1)*kk]
			for c := 0; c < cin; c++ {
				for j := 0; j < kw; j++ {
					dst[c*kw+j] += src[j*cin+c]
				}
			}
		}
		putScratch(dwp)
	}
	if dx != nil {
		need("conv1d backward dx", dx, tin*cin)
		need("conv1d backward w", w, cout*kk)
		wp := getScratch(cout * kk)
		defer putScratch(wp)
		wt := *wp
		permuteConvWeight(wt, w, cin, cout, kw)
		dcp := getScratch(tout * kk)
		defer putScratch(dcp)
		dcol := *dcp
		clear(dcol)
		LinearBackward(dcol, nil, nil, dout, nil, wt, tout, kk, cout)
		// col2im as a gather: input row ti was read by output t through tap j when
		// t·stride + j − pad = ti, so rows are independent and run in parallel.
		parallelFor(tin, max(1, grainElems/max(1, kk)), func(lo, hi int) {
			for ti := lo; ti < hi; ti++ {
				d := dx[ti*cin : (ti+1)*cin]
				for j := 0; j < kw; j++ {
					num := ti + pad - j
					if num < 0 || num%stride != 0 {
						continue
					}
					t := num / stride
					if t >= tout {
						continue
					}
					for c, v := range dcol[t*kk+j*cin : t*kk+(j+1)*cin] {
						d[c] += v
					}
				}
			}
		})
	}
}

// permuteConvWeight writes w [Cout, Cin, KW] as w' [Cout, KW·Cin] (tap-major rows, the order
// of im2col's columns).
func permuteConvWeight(wt, w []float32, cin, cout, kw int) {
	kk := kw * cin
	parallelFor(cout, max(1, grainElems/kk), func(lo, hi int) {
		for o := lo; o < hi; o++ {
			src, dst := w[o*kk:(o+1)*kk], wt[o*kk:(o+1)*kk]
			for c := 0; c < cin; c++ {
				for j := 0; j < kw; j++ {
					dst[j*cin+c] = src[c*kw+j]
				}
			}
		}
	})
}

// im2col lays x [Tin, Cin] out as col [Tout, KW·Cin], row t holding the KW input rows that
// output t reads (zeros where they fall in the padding): the same layout Conv1d builds.
func im2col(col, x []float32, tin, cin, kw, stride, pad, tout int) {
	kk := kw * cin
	parallelFor(tout, max(1, grainElems/kk), func(lo, hi int) {
		for t := lo; t < hi; t++ {
			row := col[t*kk : (t+1)*kk]
			for j := 0; j < kw; j++ {
				dst := row[j*cin : (j+1)*cin]
				if ti := t*stride + j - pad; ti >= 0 && ti < tin {
					copy(dst, x[ti*cin:(ti+1)*cin])
				} else {
					clear(dst)
				}
			}
		}
	})
}

// attnBackScoreFloats bounds one block of AttentionBackward's probability matrix (and of its
// dP twin): 64 Ki floats, 256 KiB each, the forward's L2-sized block (attnScoreFloats). A
// variable so tests can force several blocks on small shapes.
var attnBackScoreFloats = 1 << 16

// AttentionBackward is the twin of Attention (q [Tq, H·D], k, v [Tk, H·D], head h in columns
// h·D…h·D+D−1, scale s = 1/√D, causal: query i sees keys up to Tk−Tq+i). Per head it recomputes
// the probabilities P = softmax(s·Q·Kᵀ) (storing them would cost H·Tq·Tk floats per layer,
// 13.5 M for the 1500-frame encoder) and applies the standard gradients:
//
//	dP = dO·Vᵀ
//	dS = P∘(dP − rowsum(dP∘P))
//	dQ += s·dS·K,  dK += s·dSᵀ·Q,  dV += Pᵀ·dO
//
// Masked entries have P = 0, hence dS = 0: the causal mask needs no special case. Query rows
// are processed in blocks whose score matrix stays in L2 (as the forward). Heads write
// disjoint columns of dq, dk, dv, so heads run in parallel — on Threads() goroutines when
// BLASThreads() == 1, otherwise one after another with each Sgemm threaded by OpenBLAS (the
// forward's policy, threads.go). dq, dk, dv may each be nil.
func AttentionBackward(dq, dk, dv, dout, q, k, v []float32, tq, tk, heads, d int, causal bool) {
	w := heads * d
	need("attention backward q", q, tq*w)
	need("attention backward k", k, tk*w)
	need("attention backward v", v, tk*w)
	need("attention backward dout", dout, tq*w)
	if dq != nil {
		need("attention backward dq", dq, tq*w)
	}
	if dk != nil {
		need("attention backward dk", dk, tk*w)
	}
	if dv != nil {
		need("attention backward dv", dv, tk*w)
	}
	if tq == 0 || w == 0 || (dq == nil && dk == nil && dv == nil) {
		return
	}
	if tk == 0 {
		panic("tensor: attention backward with no keys")
	}
	if causal && tq > tk {
		panic(fmt.Sprintf("tensor: causal attention backward with %d queries but only %d keys", tq, tk))
	}
	scale := float32(1 / math.Sqrt(float64(d)))

	workers := 1
	if macs := tq * tk * w * 4; macs >= 2*grainMACs && BLASThreads() == 1 {
		workers = min(Threads(), heads)
	}
	block := attnBackScoreFloats
	if workers == 1 && BLASThreads() > 1 {
		// Heads run one after another and OpenBLAS threads each product: bigger products
		// amortise its thread hand-off. Measured at 1500×1500, 6 heads of 64, 2 cores: 179 ms
		// in 64 Ki-float blocks, 140 ms with a whole head per block (2 × 9 MiB scratch), the
		// same as heads on goroutines with BLAS threads = 1 in 64 Ki blocks (141 ms).
		block = 1 << 22
	}
	rb := max(1, min(tq, block/tk))
	bufs := make([]*[]float32, 2*workers)
	for i := range bufs {
		bufs[i] = getScratch(rb * tk)
	}
	defer func() {
		for _, p := range bufs {
			putScratch(p)
		}
	}()

	parallelItems(heads, workers, func(wk, h int) {
		for i0 := 0; i0 < tq; i0 += rb {
			i1 := min(i0+rb, tq)
			rows := i1 - i0
			kn, off := tk, -1
			if causal {
				kn = tk - tq + i1
				off = tk - tq + i0
			}
			p := (*bufs[2*wk])[:rows*kn]
			dp := (*bufs[2*wk+1])[:rows*kn]
			qh, kh, vh := q[i0*w+h*d:], k[h*d:], v[h*d:]
			doh := dout[i0*w+h*d:]
			// The row passes (softmax, dS) use the goroutines themselves when heads do not.
			byRows := func(fn func(lo, hi int)) {
				if workers == 1 && rows*kn >= 2*grainElems {
					parallelFor(rows, max(1, grainElems/kn), fn)
				} else {
					fn(0, rows)
				}
			}

			Sgemm(false, true, rows, kn, d, scale, qh, w, kh, w, 0, p, kn)
			byRows(func(lo, hi int) {
				o := off
				if o >= 0 {
					o += lo
				}
				softmaxKernel(p[lo*kn:], hi-lo, kn, kn, o)
			})
			if dv != nil {
				Sgemm(true, false, kn, d, rows, 1, p, kn, doh, w, 1, dv[h*d:], w)
			}
			if dq == nil && dk == nil {
				continue
			}
			Sgemm(false, true, rows, kn, d, 1, doh, w, vh, w, 0, dp, kn)
			byRows(func(lo, hi int) { softmaxGrad(dp[lo*kn:hi*kn], p[lo*kn:hi*kn], kn) })
			if dq != nil {
				Sgemm(false, false, rows, d, kn, scale, dp, kn, kh, w, 1, dq[i0*w+h*d:], w)
			}
			if dk != nil {
				Sgemm(true, false, kn, d, rows, scale, dp, kn, qh, w, 1, dk[h*d:], w)
			}
		}
	})
}

// softmaxGrad turns dP into dS = P∘(dP − rowsum(dP∘P)) in place, for rows of n values.
func softmaxGrad(dp, p []float32, n int) {
	for i := 0; i+n <= len(p); i += n {
		pr, gr := p[i:i+n], dp[i:i+n]
		var dot float64
		for j, pv := range pr {
			dot += float64(pv) * float64(gr[j])
		}
		dd := float32(dot)
		for j, pv := range pr {
			gr[j] = pv * (gr[j] - dd)
		}
	}
}

// f64Pool recycles float64 scratch (per-row statistics, CTC lattices) so training steps,
// which run the same shapes every step, do not allocate. Power-of-two size classes, as the
// float32 pool in threads.go.
var f64Pool [64]sync.Pool

// getF64 returns a float64 buffer of length n (contents undefined); release with putF64.
func getF64(n int) *[]float64 {
	c := 0
	if n > 1 {
		c = bits.Len(uint(n - 1))
	}
	if p, ok := f64Pool[c].Get().(*[]float64); ok {
		*p = (*p)[:n]
		return p
	}
	b := make([]float64, n, 1<<c)
	return &b
}

// putF64 returns a buffer obtained from getF64.
func putF64(p *[]float64) {
	c := 0
	if cap(*p) > 1 {
		c = bits.Len(uint(cap(*p) - 1))
	}
	f64Pool[c].Put(p)
}
