package decode

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// logSumExpNaive is the float64 reference of logSumExp.
func logSumExpNaive(x []float32) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, float64(v))
	}
	if math.IsInf(m, 0) {
		return m
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - m)
	}
	return m + math.Log(s)
}

// vocabLogits are n logits of a decoder step: spread like a trained model's (a few near the
// top, most far below), with every fifth token masked as the filters do.
func vocabLogits(n int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64()*4 + 3)
		if i%5 == 4 {
			x[i] = negInf
		}
	}
	return x
}

func TestLogSumExp(t *testing.T) {
	inf := float32(math.Inf(1))
	cases := map[string][]float32{
		"empty":      nil,
		"one":        {2.5},
		"all masked": {negInf, negInf},
		"plus inf":   {1, inf, negInf},
		"ties":       {3, 3, 3, 3},
		"wide":       {-80, 0, 80},
		"vocab":      vocabLogits(2022, 1),
		"whisper":    vocabLogits(51865, 2),
		"large":      {1e4, 1e4 - 1, -1e4},
	}
	for name, x := range cases {
		got, want := logSumExp(x), logSumExpNaive(x)
		if math.IsInf(want, 0) {
			if got != want {
				t.Errorf("%s: %v, want %v", name, got, want)
			}
			continue
		}
		// float32 normaliser: an ulp of max(1, |lse|) or so.
		if tol := 3e-7 * max(1, math.Abs(want)); math.Abs(got-want) > tol {
			t.Errorf("%s: %.9g, want %.9g (|Δ| %.3g > %.3g)", name, got, want, math.Abs(got-want), tol)
		}
		if m, w := maxOf(x), float32(math.Inf(-1)); len(x) > 0 {
			for _, v := range x {
				w = max(w, v)
			}
			if m != w {
				t.Errorf("%s: maxOf %v, want %v", name, m, w)
			}
		}
	}
}

// BenchmarkLogSumExp compares logSumExp with its float64 reference over chorus-micro's
// vocabulary (2022 logits) and Whisper's (51865).
func BenchmarkLogSumExp(b *testing.B) {
	for _, n := range []int{2022, 51865} {
		x := vocabLogits(n, 3)
		b.Run("simd/"+strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				logSumExp(x)
			}
		})
		b.Run("naive/"+strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				logSumExpNaive(x)
			}
		})
	}
}

// sampleSoftmaxNaive is the float64 sampler sampleSoftmax replaced (two exponentials per
// token), kept as the benchmark's baseline.
func sampleSoftmaxNaive(l []float32, temp float64, rng *rand.Rand) int {
	m := float64(maxOf(l))
	var sum float64
	for _, v := range l {
		sum += math.Exp((float64(v) - m) / temp)
	}
	u := rng.Float64() * sum
	last := 0
	for i, v := range l {
		w := math.Exp((float64(v) - m) / temp)
		if w == 0 {
			continue
		}
		if u -= w; u < 0 {
			return i
		}
		last = i
	}
	return last
}

// TestSampleSoftmaxMatchesNaive: with the same random draws the two samplers pick the same
// token except where a draw falls within float32 rounding of a token boundary.
func TestSampleSoftmaxMatchesNaive(t *testing.T) {
	x := vocabLogits(2022, 5)
	for i := range x {
		x[i] *= 0.2 // flatter, so draws spread over many tokens
	}
	r1, r2 := rand.New(rand.NewPCG(3, 4)), rand.New(rand.NewPCG(3, 4))
	differ := 0
	for range 20000 {
		if sampleSoftmax(x, 0.8, r1) != sampleSoftmaxNaive(x, 0.8, r2) {
			differ++
		}
	}
	if differ > 2 {
		t.Errorf("%d of 20000 draws differ", differ)
	}
}

// BenchmarkSampleSoftmax is one temperature-fallback draw over chorus-micro's vocabulary.
func BenchmarkSampleSoftmax(b *testing.B) {
	x := vocabLogits(2022, 4)
	rng := rand.New(rand.NewPCG(1, 2))
	b.Run("simd", func(b *testing.B) {
		for b.Loop() {
			sampleSoftmax(x, 0.4, rng)
		}
	})
	b.Run("naive", func(b *testing.B) {
		for b.Loop() {
			sampleSoftmaxNaive(x, 0.4, rng)
		}
	})
}
