package tensor

import (
	"fmt"
	"testing"
)

// Benchmarks for the shapes of Whisper tiny/base (d 384/512, 6/8 heads, 1500 encoder frames,
// 51865-token vocabulary). Each reports GFLOPS (2 flops per multiply-add) and, where the
// kernel is memory-bound, the weight bandwidth in GB/s. Thread settings are part of the name:
// tC/bB = SetThreads(C), SetBLASThreads(B).

var threadCases = []struct{ chorus, blas int }{{1, 1}, {2, 1}, {2, 2}}

func report(b *testing.B, flops, bytes float64) {
	s := b.Elapsed().Seconds() / float64(b.N)
	if flops > 0 {
		b.ReportMetric(flops/s/1e9, "GFLOPS")
	}
	if bytes > 0 {
		b.ReportMetric(bytes/s/1e9, "GB/s")
	}
}

func benchThreads(b *testing.B, name string, f func(b *testing.B)) {
	for _, tc := range threadCases {
		b.Run(fmt.Sprintf("%s/t%d-b%d", name, tc.chorus, tc.blas), func(b *testing.B) {
			withThreads(b, tc.chorus, tc.blas, func() { f(b) })
		})
	}
}

func BenchmarkLinear(b *testing.B) {
	r := newRNG(100)
	for _, s := range []struct{ m, k, n int }{
		{1500, 384, 1536}, {1500, 1536, 384}, {1, 384, 1536}, {3, 384, 1536}, {8, 384, 1536},
		{16, 384, 1536}, {1, 384, 51865}, {3, 384, 51865},
	} {
		x, w, bias := randSlice(r, s.m*s.k, 1), randSlice(r, s.n*s.k, 1), randSlice(r, s.n, 1)
		out := make([]float32, s.m*s.n)
		benchThreads(b, fmt.Sprintf("%dx%dx%d", s.m, s.k, s.n), func(b *testing.B) {
			for b.Loop() {
				Linear(out, x, w, bias, s.m, s.k, s.n)
			}
			report(b, 2*float64(s.m*s.k*s.n), 4*float64(s.n*s.k))
		})
	}
}

// BenchmarkSgemmSmallM is the library path Linear avoids for m <= SmallM (same shapes).
func BenchmarkSgemmSmallM(b *testing.B) {
	r := newRNG(101)
	for _, s := range []struct{ m, k, n int }{{1, 384, 1536}, {3, 384, 1536}, {8, 384, 1536}, {16, 384, 1536}, {1, 384, 51865}} {
		x, w := randSlice(r, s.m*s.k, 1), randSlice(r, s.n*s.k, 1)
		out := make([]float32, s.m*s.n)
		benchThreads(b, fmt.Sprintf("%dx%dx%d", s.m, s.k, s.n), func(b *testing.B) {
			for b.Loop() {
				Sgemm(false, true, s.m, s.n, s.k, 1, x, s.k, w, s.k, 0, out, s.n)
			}
			report(b, 2*float64(s.m*s.k*s.n), 4*float64(s.n*s.k))
		})
	}
}

// BenchmarkSmallMKernel is chorus's streaming kernel alone, above SmallM too, to place the
// crossover with Sgemm.
func BenchmarkSmallMKernel(b *testing.B) {
	if simdLevel == 0 {
		b.Skip("no SIMD kernels in this build")
	}
	r := newRNG(102)
	for _, m := range []int{1, 3, 8, 16, 32} {
		k, n := 384, 1536
		x, w := randSlice(r, m*k, 1), randSlice(r, n*k, 1)
		out := make([]float32, m*n)
		benchThreads(b, fmt.Sprintf("%dx%dx%d", m, k, n), func(b *testing.B) {
			for b.Loop() {
				gemmNTParallel(m, n, k, x, w, nil, nil, out)
			}
			report(b, 2*float64(m*k*n), 4*float64(n*k))
		})
	}
}

func BenchmarkLinearF16(b *testing.B) {
	r := newRNG(103)
	for _, s := range []struct{ m, k, n int }{
		{1, 384, 51865}, {3, 384, 51865}, {8, 384, 51865}, {1, 384, 1536}, {1500, 384, 1536},
	} {
		x, bias := randSlice(r, s.m*s.k, 1), randSlice(r, s.n, 1)
		w := make([]uint16, s.n*s.k)
		F32ToF16Slice(w, randSlice(r, s.n*s.k, 1))
		out := make([]float32, s.m*s.n)
		benchThreads(b, fmt.Sprintf("%dx%dx%d", s.m, s.k, s.n), func(b *testing.B) {
			for b.Loop() {
				LinearF16(out, x, w, bias, s.m, s.k, s.n)
			}
			report(b, 2*float64(s.m*s.k*s.n), 2*float64(s.n*s.k))
		})
	}
}

func BenchmarkAttention(b *testing.B) {
	r := newRNG(104)
	for _, s := range []struct {
		name             string
		tq, tk, heads, d int
		causal           bool
	}{
		{"encoder-1500x1500x6x64", 1500, 1500, 6, 64, false},
		{"decode-self-1x448x6x64", 1, 448, 6, 64, true},
		{"decode-cross-1x1500x6x64", 1, 1500, 6, 64, false},
		{"prefill-64x64x6x64", 64, 64, 6, 64, true},
	} {
		w := s.heads * s.d
		q, k, v := randSlice(r, s.tq*w, 1), randSlice(r, s.tk*w, 1), randSlice(r, s.tk*w, 1)
		out := make([]float32, s.tq*w)
		flops := 4 * float64(s.tq*s.tk*w)
		benchThreads(b, s.name, func(b *testing.B) {
			for b.Loop() {
				Attention(out, q, k, v, s.tq, s.tk, s.heads, s.d, s.causal)
			}
			report(b, flops, 0)
		})
	}
}

// BenchmarkAttentionRowBlock sweeps the score block size (attnScoreFloats) on the encoder shape.
func BenchmarkAttentionRowBlock(b *testing.B) {
	r := newRNG(105)
	tq, tk, h, d := 1500, 1500, 6, 64
	q, k, v := randSlice(r, tq*h*d, 1), randSlice(r, tk*h*d, 1), randSlice(r, tk*h*d, 1)
	out := make([]float32, tq*h*d)
	for _, rows := range []int{24, 72, 144, 384} {
		old := attnScoreFloats
		attnScoreFloats = rows * (tk + 31) / 32 * 32
		benchThreads(b, fmt.Sprintf("rows%d", rows), func(b *testing.B) {
			for b.Loop() {
				Attention(out, q, k, v, tq, tk, h, d, false)
			}
			report(b, 4*float64(tq*tk*h*d), 0)
		})
		attnScoreFloats = old
	}
}

func BenchmarkConv1d(b *testing.B) {
	r := newRNG(106)
	for _, s := range []struct{ tin, cin, cout, kw, stride, pad int }{
		{3000, 80, 384, 3, 1, 1}, {3000, 384, 384, 3, 2, 1},
	} {
		x := randSlice(r, s.tin*s.cin, 1)
		w, bias := randSlice(r, s.cout*s.cin*s.kw, 1), randSlice(r, s.cout, 1)
		tout := Conv1dOut(s.tin, s.kw, s.stride, s.pad)
		out := make([]float32, tout*s.cout)
		benchThreads(b, fmt.Sprintf("%dx%d-%d-k%ds%d", s.tin, s.cin, s.cout, s.kw, s.stride), func(b *testing.B) {
			for b.Loop() {
				Conv1d(out, x, w, bias, s.tin, s.cin, s.cout, s.kw, s.stride, s.pad)
			}
			report(b, 2*float64(tout*s.cout*s.cin*s.kw), 0)
		})
	}
}

func BenchmarkLayerNorm(b *testing.B) {
	r := newRNG(107)
	rows, cols := 1500, 384
	x, g, be := randSlice(r, rows*cols, 3), randSlice(r, cols, 1), randSlice(r, cols, 1)
	out := make([]float32, rows*cols)
	// Nominal 8 flops per element (mean 1, variance 3, normalise and affine 4).
	benchThreads(b, "1500x384", func(b *testing.B) {
		for b.Loop() {
			LayerNorm(out, x, g, be, rows, cols, 1e-5)
		}
		report(b, 8*float64(rows*cols), 8*float64(rows*cols))
	})
	b.Run("1500x384/go", func(b *testing.B) {
		for b.Loop() {
			layerNormGo(out, x, g, be, rows, cols, 1e-5)
		}
		report(b, 0, 8*float64(rows*cols))
	})
}

func BenchmarkGELU(b *testing.B) {
	r := newRNG(108)
	n := 1500 * 1536
	x := randSlice(r, n, 4)
	out := make([]float32, n)
	// Nominal 24 flops per element (the erf polynomials, the blend and x·½(1+erf)).
	benchThreads(b, "1500x1536", func(b *testing.B) {
		for b.Loop() {
			GELU(out, x)
		}
		report(b, 24*float64(n), 0)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/elem")
	})
	b.Run("1500x1536/go-table-erf", func(b *testing.B) {
		for b.Loop() {
			geluGo(out, x)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/elem")
	})
	b.Run("1500x1536/naive-math.Erf", func(b *testing.B) {
		for b.Loop() {
			GELUNaive(out, x)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/elem")
	})
	// The twin, as the training step's conv stem runs it (dx += dout·GELU'(x)).
	g := randSlice(r, n, 1)
	benchThreads(b, "backward-1500x1536", func(b *testing.B) {
		for b.Loop() {
			GELUBackward(out, g, x)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/elem")
	})
	b.Run("backward-1500x1536/go-float64", func(b *testing.B) {
		for b.Loop() {
			geluBackwardGo(out, g, x)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/elem")
	})
}

// BenchmarkLayerNormBackward times LayerNormBackward and the bias gradient (colSums) on one
// training batch's encoder activations (4000 frames × 256), and their float64 Go kernels on one
// thread for comparison.
func BenchmarkLayerNormBackward(b *testing.B) {
	r := newRNG(110)
	rows, cols := 4000, 256
	x, dout, gamma := randSlice(r, rows*cols, 2), randSlice(r, rows*cols, 1), randSlice(r, cols, 1)
	dx, dg, db := make([]float32, rows*cols), make([]float32, cols), make([]float32, cols)
	benchThreads(b, "layernorm", func(b *testing.B) {
		for b.Loop() {
			LayerNormBackward(dx, dg, db, dout, x, gamma, rows, cols, 1e-5)
		}
	})
	b.Run("layernorm/go-float64", func(b *testing.B) {
		g, bb := make([]float64, cols), make([]float64, cols)
		for b.Loop() {
			layerNormBackwardGo(dx, g, bb, dout, x, gamma, rows, cols, 1e-5)
		}
	})
	benchThreads(b, "colsums", func(b *testing.B) {
		for b.Loop() {
			colSums(db, dout, rows, cols)
		}
	})
	b.Run("colsums/go-float64", func(b *testing.B) {
		acc := make([]float64, cols)
		for b.Loop() {
			colSumsGo(acc, dout, rows, cols)
		}
	})
}

// BenchmarkReLU times ReLU and its twin on one training batch's encoder FFN activations
// (4000 frames × 1024 units, signs random): branchless loops, where a branch on the sign
// mispredicted on half the elements (5.5 → 0.7 ns per element on the session-4 EPYC, one thread).
func BenchmarkReLU(b *testing.B) {
	r := newRNG(109)
	n := 4000 * 1024
	x, g := randSlice(r, n, 1), randSlice(r, n, 1)
	out := make([]float32, n)
	benchThreads(b, "forward", func(b *testing.B) {
		for b.Loop() {
			ReLU(out, x)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/elem")
	})
	benchThreads(b, "backward", func(b *testing.B) {
		for b.Loop() {
			ReLUBackward(out, g, x)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/elem")
	})
}

func BenchmarkSoftmax(b *testing.B) {
	r := newRNG(109)
	rows, cols := 1500, 1500
	x := randSlice(r, rows*cols, 8)
	benchThreads(b, "1500x1500", func(b *testing.B) {
		for b.Loop() {
			Softmax(x, rows, cols)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(rows*cols), "ns/elem")
	})
	lx := randSlice(r, 51865, 8)
	out := make([]float32, len(lx))
	b.Run("logsoftmax-51865", func(b *testing.B) {
		for b.Loop() {
			LogSoftmax(out, lx)
		}
	})
}

func BenchmarkF16ToF32(b *testing.B) {
	r := newRNG(110)
	n := 384 * 51865
	src := make([]uint16, n)
	F32ToF16Slice(src, randSlice(r, n, 1))
	dst := make([]float32, n)
	benchThreads(b, "20M", func(b *testing.B) {
		for b.Loop() {
			F16ToF32Slice(dst, src)
		}
		report(b, 0, 6*float64(n))
	})
}

// BenchmarkEncoderLayer chains the kernels of one pre-norm transformer encoder layer at
// Whisper-tiny size (T 1500, D 384, 6 heads, FFN 1536): the number the threading policy in
// threads.go was chosen on.
func BenchmarkEncoderLayer(b *testing.B) {
	r := newRNG(111)
	T, D, H, F := 1500, 384, 6, 1536
	x := randSlice(r, T*D, 1)
	g, be := randSlice(r, D, 1), randSlice(r, D, 1)
	wq, wk, wv, wo := randSlice(r, D*D, 0.05), randSlice(r, D*D, 0.05), randSlice(r, D*D, 0.05), randSlice(r, D*D, 0.05)
	bq, bv, bo := randSlice(r, D, 0.05), randSlice(r, D, 0.05), randSlice(r, D, 0.05)
	w1, b1 := randSlice(r, F*D, 0.05), randSlice(r, F, 0.05)
	w2, b2 := randSlice(r, D*F, 0.05), randSlice(r, D, 0.05)
	h, q, k, v, att, o := make([]float32, T*D), make([]float32, T*D), make([]float32, T*D),
		make([]float32, T*D), make([]float32, T*D), make([]float32, T*D)
	f, f2, y := make([]float32, T*F), make([]float32, T*F), make([]float32, T*D)
	flops := 2 * float64(T) * (4*float64(D*D) + 2*float64(D*F) + 2*float64(T*D))
	benchThreads(b, "1500x384", func(b *testing.B) {
		for b.Loop() {
			LayerNorm(h, x, g, be, T, D, 1e-5)
			Linear(q, h, wq, bq, T, D, D)
			Linear(k, h, wk, nil, T, D, D)
			Linear(v, h, wv, bv, T, D, D)
			Attention(att, q, k, v, T, T, H, D/H, false)
			Linear(o, att, wo, bo, T, D, D)
			AddInPlace(o, x)
			LayerNorm(h, o, g, be, T, D, 1e-5)
			Linear(f, h, w1, b1, T, D, F)
			GELU(f2, f)
			Linear(y, f2, w2, b2, T, F, D)
			AddInPlace(y, o)
		}
		report(b, flops, 0)
	})
}
