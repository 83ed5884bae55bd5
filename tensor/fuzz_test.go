package tensor

import (
	"math"
	"testing"
)

// Fuzz targets: each derives small shapes and a deterministic RNG from the fuzz input and
// checks the fast kernel against its naive reference with the same tolerances as the table
// tests. Thread counts vary too, so the parallel splits are fuzzed along with the shapes.
// Run one with e.g. go test -run XXX -fuzz FuzzAttention -fuzztime 30s ./tensor/

func fuzzThreads(seed uint64) (chorus, blas int) {
	return 1 + int(seed%3), 1 + int(seed>>2%2)
}

// fuzzLevel makes the C kernels use the AVX2 or the AVX-512 variant, chosen by the seed, and
// returns the function that restores the detected level.
func fuzzLevel(seed uint64) func() {
	if levels := simdLevels(); len(levels) > 1 {
		setSIMDLevel(levels[seed>>3%uint64(len(levels))])
	}
	return func() { setSIMDLevel(simdLevel) }
}

func FuzzLinear(f *testing.F) {
	for _, s := range []uint64{0, 1, 2, 3, 42, 1 << 40} {
		f.Add(s, uint16(1), uint16(7), uint16(3), true)
		f.Add(s, uint16(9), uint16(64), uint16(33), false)
	}
	f.Fuzz(func(t *testing.T, seed uint64, m, k, n uint16, bias bool) {
		M, K, N := int(m%40), int(k%300), int(n%200)
		defer fuzzLevel(seed)()
		r := newRNG(seed)
		x, w := randSlice(r, M*K, 1), randSlice(r, N*K, 1)
		var b, ab []float32
		if bias {
			b = randSlice(r, N, 1)
			ab = absSlice(b)
		}
		want, abs := make([]float32, M*N), make([]float32, M*N)
		LinearNaive(want, x, w, b, M, K, N)
		LinearNaive(abs, absSlice(x), absSlice(w), ab, M, K, N)
		got := randSlice(r, M*N, 3)
		c, bl := fuzzThreads(seed)
		withThreads(t, c, bl, func() { Linear(got, x, w, b, M, K, N) })
		checkClose(t, "linear", got, want, dotTol(abs, K), 0)

		wh := make([]uint16, len(w))
		F32ToF16Slice(wh, w)
		LinearF16Naive(want, x, wh, b, M, K, N)
		old := f16TileFloats
		f16TileFloats = 16 * max(1, K) * (1 + int(seed%4)) // several tiles
		withThreads(t, c, bl, func() { LinearF16(got, x, wh, b, M, K, N) })
		f16TileFloats = old
		checkClose(t, "linear-f16", got, want, dotTol(abs, K), 0)
	})
}

func FuzzAttention(f *testing.F) {
	for _, s := range []uint64{0, 1, 7, 99} {
		f.Add(s, uint8(1), uint8(1), uint8(1), uint8(1), true)
		f.Add(s, uint8(5), uint8(9), uint8(3), uint8(17), true)
		f.Add(s, uint8(12), uint8(40), uint8(2), uint8(64), false)
	}
	f.Fuzz(func(t *testing.T, seed uint64, tq, tk, heads, d uint8, causal bool) {
		TQ, TK, H, D := 1+int(tq%48), 1+int(tk%64), 1+int(heads%6), 1+int(d%70)
		if causal && TQ > TK {
			TQ, TK = TK, TQ
		}
		defer fuzzLevel(seed)()
		r := newRNG(seed)
		w := H * D
		q, k, v := randSlice(r, TQ*w, 1), randSlice(r, TK*w, 1), randSlice(r, TK*w, 1)
		want := make([]float32, TQ*w)
		AttentionNaive(want, q, k, v, TQ, TK, H, D, causal)
		got := randSlice(r, TQ*w, 3)
		old := attnScoreFloats
		attnScoreFloats = TK * (1 + int(seed%20)) // 1 to 20 query rows per block
		c, bl := fuzzThreads(seed)
		withThreads(t, c, bl, func() { Attention(got, q, k, v, TQ, TK, H, D, causal) })
		attnScoreFloats = old
		checkClose(t, "attention", got, want, []float32{attnAtol}, 0)
	})
}

func FuzzConv1d(f *testing.F) {
	f.Add(uint64(0), uint8(5), uint8(3), uint8(4), uint8(3), uint8(1), uint8(1))
	f.Add(uint64(1), uint8(30), uint8(8), uint8(5), uint8(3), uint8(2), uint8(1))
	f.Add(uint64(2), uint8(1), uint8(1), uint8(1), uint8(1), uint8(1), uint8(0))
	f.Fuzz(func(t *testing.T, seed uint64, tin, cin, cout, kw, stride, pad uint8) {
		TIN, CIN, COUT := 1+int(tin%64), 1+int(cin%40), 1+int(cout%40)
		KW, S, P := 1+int(kw%7), 1+int(stride%4), int(pad%4)
		tout := Conv1dOut(TIN, KW, S, P)
		if tout < 1 {
			return
		}
		r := newRNG(seed)
		x, w := randSlice(r, TIN*CIN, 1), randSlice(r, COUT*CIN*KW, 1)
		var b, ab []float32
		if seed%2 == 0 {
			b = randSlice(r, COUT, 1)
			ab = absSlice(b)
		}
		want, abs := make([]float32, tout*COUT), make([]float32, tout*COUT)
		Conv1dNaive(want, x, w, b, TIN, CIN, COUT, KW, S, P)
		Conv1dNaive(abs, absSlice(x), absSlice(w), ab, TIN, CIN, COUT, KW, S, P)
		got := randSlice(r, tout*COUT, 3)
		c, bl := fuzzThreads(seed)
		withThreads(t, c, bl, func() { Conv1d(got, x, w, b, TIN, CIN, COUT, KW, S, P) })
		checkClose(t, "conv1d", got, want, dotTol(abs, CIN*KW), 0)
	})
}

func FuzzLayerNorm(f *testing.F) {
	f.Add(uint64(0), uint8(1), uint16(1), float32(0), float32(1))
	f.Add(uint64(1), uint8(7), uint16(384), float32(100), float32(0.1))
	f.Fuzz(func(t *testing.T, seed uint64, rows uint8, cols uint16, mean, scale float32) {
		R, C := 1+int(rows%32), 1+int(cols%600)
		if math.IsNaN(float64(mean)) || math.IsNaN(float64(scale)) || math.Abs(float64(mean)) > 1e4 ||
			math.Abs(float64(scale)) > 1e4 || math.Abs(float64(scale)) < 1e-3 {
			return // keep values where float32 x-mean still has ~24 bits left (|mean|/std <= 1e7)
		}
		r := newRNG(seed)
		x := randSlice(r, R*C, scale)
		for i := range x {
			x[i] += mean
		}
		g, b := randSlice(r, C, 2), randSlice(r, C, 1)
		want, got := make([]float32, R*C), make([]float32, R*C)
		LayerNormNaive(want, x, g, b, R, C, 1e-5)
		c, bl := fuzzThreads(seed)
		withThreads(t, c, bl, func() { LayerNorm(got, x, g, b, R, C, 1e-5) })
		checkClose(t, "layernorm", got, want, []float32{2e-6}, 1e-6)
	})
}

func FuzzSoftmax(f *testing.F) {
	f.Add(uint64(0), uint8(1), uint16(1), float32(1))
	f.Add(uint64(3), uint8(5), uint16(1500), float32(30))
	f.Fuzz(func(t *testing.T, seed uint64, rows uint8, cols uint16, scale float32) {
		R, C := 1+int(rows%16), 1+int(cols%2000)
		if !(math.Abs(float64(scale)) <= 16) {
			return // the documented error grows with |x-max|; keep it in the tested range
		}
		defer fuzzLevel(seed)()
		r := newRNG(seed)
		x := randSlice(r, R*C, scale)
		want := append([]float32(nil), x...)
		SoftmaxNaive(want, R, C)
		c, _ := fuzzThreads(seed)
		withThreads(t, c, 1, func() { Softmax(x, R, C) })
		checkClose(t, "softmax", x, want, []float32{1e-9}, softmaxRtol)
	})
}

func FuzzGELU(f *testing.F) {
	f.Add(uint32(0), uint32(0x3f800000), uint32(0xc0a00000))
	f.Add(uint32(0x7fc00000), uint32(0xff800000), uint32(0x00000001))
	f.Fuzz(func(t *testing.T, a, b, c uint32) {
		defer fuzzLevel(uint64(a ^ b ^ c))()
		x := []float32{math.Float32frombits(a), math.Float32frombits(b), math.Float32frombits(c)}
		for i := 0; i < 13; i++ { // pad to a full vector plus a tail
			x = append(x, x[i%3]*float32(i+1)/7)
		}
		want, got := make([]float32, len(x)), make([]float32, len(x))
		GELUNaive(want, x)
		GELU(got, x)
		checkClose(t, "gelu", got, want, geluTol(x), 0)
	})
}

func FuzzF32ToF16(f *testing.F) {
	f.Add(uint32(0x477ff000))
	f.Add(uint32(0x33000000))
	f.Fuzz(func(t *testing.T, bits uint32) {
		x := math.Float32frombits(bits)
		want := f32ToF16Ref(x)
		got := []uint16{0, 0, 0}
		F32ToF16Slice(got, []float32{x, x, x})
		if F32ToF16(x) != want || got[0] != want {
			t.Fatalf("%#08x: scalar %#04x bulk %#04x want %#04x", bits, F32ToF16(x), got[0], want)
		}
	})
}
