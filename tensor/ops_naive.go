package tensor

import "math"

// This file holds the naive references of every kernel: plain loops, float64 accumulation,
// written to be obviously right. The fast kernels in ops.go are tested against them.

// LinearNaive: out[M,N] = x[M,K]·w[N,K]ᵀ + b[N] (b may be nil). w has PyTorch's [out,in] layout.
func LinearNaive(out, x, w, b []float32, m, k, n int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += float64(x[i*k+p]) * float64(w[j*k+p])
			}
			if b != nil {
				s += float64(b[j])
			}
			out[i*n+j] = float32(s)
		}
	}
}

// LinearF16Naive is LinearNaive with the weight w [N, K] stored as IEEE halves.
func LinearF16Naive(out, x []float32, w []uint16, b []float32, m, k, n int) {
	wf := make([]float32, n*k)
	for i := range wf {
		wf[i] = F16ToF32(w[i])
	}
	LinearNaive(out, x, wf, b, m, k, n)
}

// LayerNormNaive normalises each of R rows of C values: (x-mean)/sqrt(var+eps)·gamma + beta,
// with the biased variance as torch.nn.LayerNorm uses.
func LayerNormNaive(out, x, gamma, beta []float32, rows, cols int, eps float32) {
	for r := 0; r < rows; r++ {
		row := x[r*cols : (r+1)*cols]
		var mean float64
		for _, v := range row {
			mean += float64(v)
		}
		mean /= float64(cols)
		var variance float64
		for _, v := range row {
			d := float64(v) - mean
			variance += d * d
		}
		variance /= float64(cols)
		inv := 1 / math.Sqrt(variance+float64(eps))
		for c, v := range row {
			y := (float64(v) - mean) * inv
			if gamma != nil {
				y *= float64(gamma[c])
			}
			if beta != nil {
				y += float64(beta[c])
			}
			out[r*cols+c] = float32(y)
		}
	}
}

// SoftmaxNaive applies a numerically stable softmax to each of R rows of C values, in place.
func SoftmaxNaive(x []float32, rows, cols int) {
	for r := 0; r < rows; r++ {
		row := x[r*cols : (r+1)*cols]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		var s float64
		for _, v := range row {
			s += math.Exp(float64(v) - mx)
		}
		for i, v := range row {
			row[i] = float32(math.Exp(float64(v)-mx) / s)
		}
	}
}

// LogSoftmaxNaive writes x - log(Σ exp x) for one row, in float64.
func LogSoftmaxNaive(out, x []float32) {
	mx := math.Inf(-1)
	for _, v := range x {
		mx = math.Max(mx, float64(v))
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - mx)
	}
	ls := mx + math.Log(s)
	for i, v := range x {
		out[i] = float32(float64(v) - ls)
	}
}

// GELUNaive is the exact erf form torch.nn.GELU uses by default: x·½(1+erf(x/√2)).
func GELUNaive(out, x []float32) {
	for i, v := range x {
		f := float64(v)
		out[i] = float32(0.5 * f * (1 + math.Erf(f/math.Sqrt2)))
	}
}

// ReLUNaive: max(x, 0); NaN stays NaN, as torch.relu.
func ReLUNaive(out, x []float32) {
	for i, v := range x {
		if v > 0 || v != v {
			out[i] = v
		} else {
			out[i] = 0
		}
	}
}

// Conv1dOut is the output length of a 1-D convolution.
func Conv1dOut(tin, kw, stride, pad int) int { return (tin+2*pad-kw)/stride + 1 }

// Conv1dNaive is a 1-D convolution with zero padding on time-major data:
// x [Tin, Cin], w [Cout, Cin, KW] (PyTorch's Conv1d layout), b [Cout] or nil, out [Tout, Cout].
func Conv1dNaive(out, x, w, b []float32, tin, cin, cout, kw, stride, pad int) {
	tout := Conv1dOut(tin, kw, stride, pad)
	for t := 0; t < tout; t++ {
		for o := 0; o < cout; o++ {
			var s float64
			if b != nil {
				s = float64(b[o])
			}
			for c := 0; c < cin; c++ {
				for j := 0; j < kw; j++ {
					ti := t*stride + j - pad
					if ti < 0 || ti >= tin {
						continue
					}
					s += float64(x[ti*cin+c]) * float64(w[(o*cin+c)*kw+j])
				}
			}
			out[t*cout+o] = float32(s)
		}
	}
}

// AttentionNaive is multi-head scaled dot-product attention on time-major, head-blocked data:
// q [Tq, H·D], k and v [Tk, H·D], out [Tq, H·D]; head h owns columns h·D…h·D+D-1 (Whisper's
// contiguous column blocks). Scores are q·kᵀ/√D. With causal set, query i sits at position
// Tk-Tq+i and sees keys up to that position (so it also serves incremental decoding).
func AttentionNaive(out, q, k, v []float32, tq, tk, heads, d int, causal bool) {
	w := heads * d
	scale := 1 / math.Sqrt(float64(d))
	scores := make([]float64, tk)
	for h := 0; h < heads; h++ {
		for i := 0; i < tq; i++ {
			limit := tk
			if causal {
				limit = tk - tq + i + 1
			}
			mx := math.Inf(-1)
			for j := 0; j < limit; j++ {
				var s float64
				for e := 0; e < d; e++ {
					s += float64(q[i*w+h*d+e]) * float64(k[j*w+h*d+e])
				}
				scores[j] = s * scale
				mx = math.Max(mx, scores[j])
			}
			var sum float64
			for j := 0; j < limit; j++ {
				scores[j] = math.Exp(scores[j] - mx)
				sum += scores[j]
			}
			for e := 0; e < d; e++ {
				var acc float64
				for j := 0; j < limit; j++ {
					acc += scores[j] * float64(v[j*w+h*d+e])
				}
				out[i*w+h*d+e] = float32(acc / sum)
			}
		}
	}
}

// ArgMaxNaive is the reference for ArgMax: one scan keeping the first strictly larger value.
func ArgMaxNaive(x []float32) int {
	best, bv := -1, float32(math.Inf(-1))
	for i, v := range x {
		if v > bv || (best < 0 && v == bv) {
			best, bv = i, v
		}
	}
	return best
}
