package tensor

import "fmt"

// This file holds the fast kernels. Each has the signature and semantics of its naive twin in
// ops_naive.go (the suffix-free name); the differences are float32 arithmetic where the
// references use float64, with error bounds stated per kernel and checked by the tests.
// Kernels panic on slices too short for the declared shapes: that is a programming error, and
// the C kernels must never read out of bounds.

// SmallM is the largest row count that Linear and LinearF16 hand to chorus's own streaming
// kernel instead of a GEMM library. A GEMM library packs its operands first, which dominates
// small products: single-threaded on the 2-core EPYC (AVX-512 kernel, thread CPU time),
// 1×384×1536 took 60 µs with chorus's kernel and 148 µs with OpenBLAS, 8×384×1536 109 µs
// against 207 µs, 16×384×1536 190 µs against 284 µs, and OpenBLAS only catches up between 32
// and 64 rows. The kernel also streams an f16 weight once for all rows, converting it in
// registers.
const SmallM = 16

// parallel grains: below these many floats of work per goroutine, splitting costs more than
// it saves (a goroutine start and join is ~1-2 µs).
const (
	grainElems = 1 << 15 // elementwise ops and row kernels
	grainMACs  = 1 << 17 // multiply-adds of the small-m GEMM kernels
	// grainWeightBytes: a small-m GEMM streaming at least two of these of weight is split
	// even when its multiply-adds are few. Decoding reads each weight once per token from
	// memory, so the time is the bytes, and since the team (threads.go) hands work over in
	// ~1 µs, a 384×384 half-precision projection (288 KiB) is worth two threads: Whisper
	// tiny decoded 4% faster with the split (2.26 against 2.37 and 2.40 against 2.50 ms per
	// token in two runs, medians of ~1700 tokens per setting, the settings alternating token
	// by token in one process so that the host's load hit both alike).
	grainWeightBytes = 1 << 17
)

// dims panics when a shape argument is negative.
func dims(name string, d ...int) {
	for _, v := range d {
		if v < 0 {
			panic(fmt.Sprintf("tensor: %s with negative size in %v", name, d))
		}
	}
}

func need(name string, s []float32, n int) {
	if len(s) < n {
		panic(fmt.Sprintf("tensor: %s has %d values, need %d", name, len(s), n))
	}
}

// Linear: out[M,N] = x[M,K]·w[N,K]ᵀ + b[N] (b may be nil); w has PyTorch's [out,in] layout.
// Rows m <= SmallM use chorus's streaming kernel (split over output columns on Threads()
// goroutines); larger m use Sgemm with the bias preloaded into out (beta = 1), which costs the
// same as the zero fill a beta = 0 call does. Error: float32 accumulation, |err| ~ 1e-7·Σ|x·w|.
func Linear(out, x, w, b []float32, m, k, n int) {
	dims("linear", m, k, n)
	need("linear x", x, m*k)
	need("linear w", w, n*k)
	need("linear out", out, m*n)
	if b != nil {
		need("linear bias", b, n)
	}
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		fillBias(out, b, m, n)
		return
	}
	if m <= SmallM && simdLevel > 0 {
		gemmNTParallel(m, n, k, x, w, nil, b, out)
		return
	}
	if b != nil && linearBF16(out, x, w, b, m, k, n) {
		return
	}
	beta := float32(0)
	if b != nil {
		fillBias(out, b, m, n)
		beta = 1
	}
	sgemmRows(m, n, k, x, w, beta, out)
}

// splitRows is the fewest rows per goroutine when sgemmRows splits a GEMM: below ~64 rows
// each call's packing of the weight stops paying for itself.
const splitRows = 64

// sgemmRows computes out = x·wᵀ + beta·out for x [M,K], w [N,K]. With one OpenBLAS thread and
// several chorus threads it splits the rows over goroutines, one single-threaded Sgemm each
// (each packs w itself, which is cheap next to the product); otherwise it is one Sgemm call
// that OpenBLAS may split. See threads.go for why chorus prefers doing the split itself.
func sgemmRows(m, n, k int, x, w []float32, beta float32, out []float32) {
	sgemmRowsLd(m, n, k, x, w, beta, out, n)
}

// sgemmRowsLd is sgemmRows with out's row stride ldo (out may be a column block).
func sgemmRowsLd(m, n, k int, x, w []float32, beta float32, out []float32, ldo int) {
	gemmSplit(m, m*n*k, func(lo, hi int) {
		Sgemm(false, true, hi-lo, n, k, 1, x[lo*k:], k, w, k, beta, out[lo*ldo:], ldo)
	})
}

// fillBias sets each of the m rows of out[M,N] to b, or to zero when b is nil.
func fillBias(out, b []float32, m, n int) {
	for i := 0; i < m; i++ {
		if b == nil {
			clear(out[i*n : (i+1)*n])
		} else {
			copy(out[i*n:(i+1)*n], b[:n])
		}
	}
}

// gemmNTParallel runs the small-m kernel for out = x·wᵀ + b with w in f32 (w) or f16 (wh),
// splitting the output columns into Threads() blocks (multiples of 16, so each block starts
// on a fresh cache line of out for most shapes) when the product is big enough to pay for it.
func gemmNTParallel(m, n, k int, x, w []float32, wh []uint16, b, out []float32) {
	wb := 4 // bytes per weight
	if wh != nil {
		wb = 2
	}
	blocks := max(n*m*k/grainMACs, n*k*wb/grainWeightBytes)
	run := func(lo, hi int) {
		lo, hi = lo*16, min(hi*16, n)
		if lo >= hi {
			return
		}
		var bb []float32
		if b != nil {
			bb = b[lo:hi]
		}
		if wh != nil {
			gemmNTF16Kernel(m, hi-lo, k, 1, x, k, wh[lo*k:], k, bb, out[lo:], n)
		} else {
			gemmNTKernel(m, hi-lo, k, 1, x, k, w[lo*k:], k, bb, out[lo:], n)
		}
	}
	cols16 := (n + 15) / 16
	if blocks < 2 {
		run(0, cols16)
		return
	}
	parallelFor(cols16, max(1, cols16/blocks), run)
}

// LayerNorm normalises each of R rows of C values: (x-mean)/sqrt(var+eps)·gamma + beta with
// the biased variance (torch.nn.LayerNorm). gamma and beta may be nil. Sums are in float64 and
// x-mean keeps full relative precision (mean split into two floats), so the result is within
// a few float32 ulps of the float64 reference; rows run in parallel on Threads() goroutines.
func LayerNorm(out, x, gamma, beta []float32, rows, cols int, eps float32) {
	dims("layernorm", rows, cols)
	need("layernorm x", x, rows*cols)
	need("layernorm out", out, rows*cols)
	if gamma != nil {
		need("layernorm gamma", gamma, cols)
	}
	if beta != nil {
		need("layernorm beta", beta, cols)
	}
	if rows == 0 || cols == 0 {
		return
	}
	parallelFor(rows, max(1, grainElems/cols), func(lo, hi int) {
		layerNormKernel(out[lo*cols:hi*cols], x[lo*cols:hi*cols], gamma, beta, hi-lo, cols, eps)
	})
}

// Softmax applies a numerically stable softmax to each of R rows of C values, in place.
// Exponentials are float32 (~2 ulp) and the row sum is float64; relative error per entry is
// below ~3e-7 plus |x-max|·6e-8 (the rounding of x-max). A row holding a NaN, or whose max is
// ±Inf, becomes all NaN, as in the float64 reference.
func Softmax(x []float32, rows, cols int) {
	dims("softmax", rows, cols)
	need("softmax x", x, rows*cols)
	if rows == 0 || cols == 0 {
		return
	}
	parallelFor(rows, max(1, grainElems/cols), func(lo, hi int) {
		softmaxKernel(x[lo*cols:hi*cols], hi-lo, cols, cols, -1)
	})
}

// LogSoftmax writes x - log(Σ exp x) for one row (the decoder's token log-probabilities).
// Same error model as Softmax, in absolute terms: ~1e-7·max(1, |out|).
func LogSoftmax(out, x []float32) {
	need("log-softmax out", out, len(x))
	if len(x) == 0 {
		return
	}
	logSoftmaxKernel(out, x)
}

// GELU is the exact erf form torch.nn.GELU uses by default: x·½(1+erf(x/√2)). erf comes from
// piecewise polynomials fitted for float32 (tools/fit_erf.py): |err| <= ~1.2e-7·max(1,|x|)
// against the float64 reference, and GELU(-Inf) is NaN as in torch.
func GELU(out, x []float32) {
	need("gelu out", out, len(x))
	parallelFor(len(x), grainElems, func(lo, hi int) { geluKernel(out[lo:hi], x[lo:hi]) })
}

// ReLU: max(x, 0). NaN stays NaN (as torch.relu).
func ReLU(out, x []float32) {
	need("relu out", out, len(x))
	parallelFor(len(x), grainElems, func(lo, hi int) {
		o := out[lo:hi]
		for i, v := range x[lo:hi] {
			// Go's max is branchless and keeps NaN; a branch on the sign mispredicts on half
			// of a layer's activations (7× slower on the training step's 16 M per layer).
			o[i] = max(v, 0)
		}
	})
}

// Add: out = a + b elementwise (out may alias a or b).
func Add(out, a, b []float32) {
	need("add b", b, len(a))
	need("add out", out, len(a))
	parallelFor(len(a), grainElems, func(lo, hi int) {
		o, bb := out[lo:hi], b[lo:hi]
		for i, v := range a[lo:hi] {
			o[i] = v + bb[i]
		}
	})
}

// AddInPlace: dst += src elementwise (residual connections).
func AddInPlace(dst, src []float32) {
	need("add dst", dst, len(src))
	parallelFor(len(src), grainElems, func(lo, hi int) {
		d := dst[lo:hi]
		for i, v := range src[lo:hi] {
			d[i] += v
		}
	})
}

// AddRowsIndexed adds each row j of src [n, c] (n = len(idx)), times w[j] when w is not nil,
// to row idx[j] of dst [.., c]: the scatter that returns an expert's outputs to its tokens'
// rows (experts.FFN). The rows are added one after another on the calling goroutine, so
// repeated indices accumulate in order. It runs in chorus_add_rows_indexed where the CPU has
// AVX2 (a scalar Go loop was a third of the sparse block's time at 16-unit experts).
func AddRowsIndexed(dst, src []float32, idx []int32, w []float32, c int) {
	n := len(idx)
	need("add rows src", src, n*c)
	if w != nil {
		need("add rows weights", w, n)
	}
	for _, r := range idx {
		if r < 0 || (int(r)+1)*c > len(dst) {
			panic(fmt.Sprintf("tensor: add rows: row %d outside dst of %d rows", r, len(dst)/max(c, 1)))
		}
	}
	if n == 0 || c == 0 || addRowsIndexedKernel(dst, src, idx, w, c) {
		return
	}
	addRowsIndexedGo(dst, src, idx, w, c)
}

// ExpertFFN adds one expert's feed-forward output for the tokens idx lists into their dst
// rows: dst[idx[j]] += w[j]·(relu(x[idx[j]]·W1ᵀ + b1)·W2ᵀ) (w nil: weight 1), where x and dst
// are [*, c] row-major, w1t is the expert's fc1 weight transposed [c][s], b1 its s biases (or
// nil), w2r its fc2 weight transposed [s][c], and h scratch of 4·s floats. The expert's weights
// stay in cache while the tokens stream through it (chorus_expert_ffn): no gathered copy of
// the rows, no intermediate [n, s] and [n, c] buffers; four tokens at a time share each
// weight load. It reports false, doing nothing, when
// the CPU has no kernel for it (no AVX2, a build without cgo) or s or c is not a multiple of
// 8; callers then take their GEMM path. Error: float32 FMA accumulation in k order.
func ExpertFFN(dst, x []float32, idx []int32, w []float32, c, s int, w1t, b1, w2r, h []float32) bool {
	if len(idx) == 0 || c%8 != 0 || s%8 != 0 || c == 0 || s == 0 {
		return false
	}
	need("expert w1t", w1t, c*s)
	need("expert w2r", w2r, s*c)
	need("expert h", h, 4*s)
	if b1 != nil {
		need("expert b1", b1, s)
	}
	if w != nil {
		need("expert weights", w, len(idx))
	}
	for _, r := range idx {
		if r < 0 || (int(r)+1)*c > len(dst) || (int(r)+1)*c > len(x) {
			panic(fmt.Sprintf("tensor: expert ffn: row %d outside x of %d or dst of %d rows", r, len(x)/c, len(dst)/c))
		}
	}
	return expertFFNKernel(dst, x, idx, w, c, s, w1t, b1, w2r, h)
}

// ExpertFFNNaive is ExpertFFN in plain loops (the reference its kernel is tested against).
func ExpertFFNNaive(dst, x []float32, idx []int32, w []float32, c, s int, w1t, b1, w2r []float32) {
	h := make([]float32, s)
	for j, r := range idx {
		xr, d := x[int(r)*c:(int(r)+1)*c], dst[int(r)*c:(int(r)+1)*c]
		for u := range s {
			var a float32
			if b1 != nil {
				a = b1[u]
			}
			for k := range c {
				a += xr[k] * w1t[k*s+u]
			}
			h[u] = max(a, 0)
		}
		wt := float32(1)
		if w != nil {
			wt = w[j]
		}
		for i := range c {
			var y float32
			for u := range s {
				y += h[u] * w2r[u*c+i]
			}
			d[i] += wt * y
		}
	}
}

// addRowsIndexedGo is AddRowsIndexed's loop (no SIMD; and the reference its kernel is tested
// against).
func addRowsIndexedGo(dst, src []float32, idx []int32, w []float32, c int) {
	for j, r := range idx {
		d, x := dst[int(r)*c:(int(r)+1)*c], src[j*c:(j+1)*c]
		if w == nil {
			for i, v := range x {
				d[i] += v
			}
			continue
		}
		a := w[j]
		for i, v := range x {
			d[i] += a * v
		}
	}
}

// Scale: x *= s elementwise, in place.
func Scale(x []float32, s float32) {
	parallelFor(len(x), grainElems, func(lo, hi int) {
		p := x[lo:hi]
		for i := range p {
			p[i] *= s
		}
	})
}

// Transpose writes the [C, R] transpose of in [R, C] to out, in 32×32 blocks so both sides
// are walked a cache line at a time (a plain double loop misses on every write for large R).
func Transpose(out, in []float32, rows, cols int) {
	dims("transpose", rows, cols)
	need("transpose in", in, rows*cols)
	need("transpose out", out, rows*cols)
	const bs = 32
	for r0 := 0; r0 < rows; r0 += bs {
		r1 := min(r0+bs, rows)
		for c0 := 0; c0 < cols; c0 += bs {
			c1 := min(c0+bs, cols)
			for r := r0; r < r1; r++ {
				row := in[r*cols : r*cols+c1]
				for c := c0; c < c1; c++ {
					out[c*rows+r] = row[c]
				}
			}
		}
	}
}

// ArgMax returns the index of the largest value (the first on ties), ignoring NaNs; -1 when x
// is empty or all NaN. See ArgMaxNaive. With AVX-512 it is chorus_argmax (2.9 µs for Whisper's
// 51865 logits against 46 µs for the scalar loop, which greedy decoding pays every token).
func ArgMax(x []float32) int {
	if i, ok := argMaxKernel(x); ok {
		return i
	}
	return ArgMaxNaive(x)
}

// Conv1d is a 1-D convolution with zero padding on time-major data: x [Tin, Cin],
// w [Cout, Cin, KW] (PyTorch's layout), b [Cout] or nil, out [Tout, Cout]; see Conv1dNaive.
// It lays the input out as im2col rows ordered [KW, Cin] (so each tap is one contiguous copy
// of Cin values), permutes the weight to the same order, and runs one Linear:
// out = col[Tout, KW·Cin]·w'[Cout, KW·Cin]ᵀ + b. Scratch comes from a pool.
func Conv1d(out, x, w, b []float32, tin, cin, cout, kw, stride, pad int) {
	dims("conv1d", tin, cin, cout)
	if stride < 1 || kw < 1 || pad < 0 {
		panic(fmt.Sprintf("tensor: conv1d kw %d stride %d pad %d", kw, stride, pad))
	}
	tout := Conv1dOut(tin, kw, stride, pad)
	if tout < 0 {
		tout = 0
	}
	need("conv1d x", x, tin*cin)
	need("conv1d w", w, cout*cin*kw)
	need("conv1d out", out, tout*cout)
	if b != nil {
		need("conv1d bias", b, cout)
	}
	if tout == 0 || cout == 0 {
		return
	}
	if cin == 0 {
		fillBias(out, b, tout, cout)
		return
	}
	kk := kw * cin
	wp := getScratch(cout * kk)
	defer putScratch(wp)
	permuteConvWeight(*wp, w, cin, cout, kw)
	colp := getScratch(tout * kk)
	defer putScratch(colp)
	im2col(*colp, x, tin, cin, kw, stride, pad, tout)
	wt, col := *wp, *colp
	Linear(out, col, wt, b, tout, kk, cout)
}
