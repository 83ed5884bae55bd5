package tensor

import (
	"fmt"
	"math"
	"testing"
)

// attnTol: scores carry Linear's error (k = D) scaled by 1/√D, the softmax its ~2e-6 relative
// error, and the ·V product Linear's error over Tk terms. With inputs in [-1, 1] and D <= 64
// the scores stay within ±8, so 2e-5 absolute (outputs are weighted means of values <= 1) has
// a factor of a few over what the float32 arithmetic can produce.
const attnAtol = 2e-5

var attnShapes = []struct {
	tq, tk, heads, d int
	causal           bool
}{
	{1, 1, 1, 1, false}, {1, 1, 1, 1, true}, {1, 7, 2, 3, true}, {1, 7, 2, 3, false},
	{3, 3, 1, 8, true}, {5, 9, 3, 5, true}, {4, 1, 2, 16, false}, {8, 8, 2, 64, true},
	{9, 20, 2, 17, true}, {9, 20, 2, 17, false}, {17, 17, 6, 64, true}, {40, 60, 3, 33, false},
	{2, 448, 6, 64, true}, {1, 1500, 6, 64, false}, {64, 64, 4, 64, true}, {100, 100, 1, 1, true},
}

func TestAttention(t *testing.T) {
	r := newRNG(20)
	for _, s := range attnShapes {
		t.Run(fmt.Sprintf("%+v", s), func(t *testing.T) {
			w := s.heads * s.d
			q, k, v := randSlice(r, s.tq*w, 1), randSlice(r, s.tk*w, 1), randSlice(r, s.tk*w, 1)
			want := make([]float32, s.tq*w)
			AttentionNaive(want, q, k, v, s.tq, s.tk, s.heads, s.d, s.causal)
			for _, c := range []struct {
				name         string
				chorus, blas int
				scoreFloats  int
			}{
				{"serial", 1, 1, 1 << 16},
				{"parallel", 2, 1, 1 << 16},
				{"blas2", 2, 2, 1 << 16},
				{"small-blocks", 2, 1, 3 * s.tk}, // several row blocks per head
				{"row-at-a-time", 2, 1, s.tk},
				{"avx2", 2, 1, 1 << 16}, // the AVX2 tiles even where AVX-512 is available
			} {
				got := randSlice(r, s.tq*w, 5)
				old := attnScoreFloats
				attnScoreFloats = c.scoreFloats
				if c.name == "avx2" {
					setSIMDLevel(1)
				}
				withThreads(t, c.chorus, c.blas, func() {
					Attention(got, q, k, v, s.tq, s.tk, s.heads, s.d, s.causal)
				})
				setSIMDLevel(simdLevel)
				attnScoreFloats = old
				checkClose(t, c.name, got, want, []float32{attnAtol}, 0)
			}
			// The Sgemm path, which the pure-Go build takes for every shape.
			got := randSlice(r, s.tq*w, 5)
			a := attnArgs{out: got, q: q, k: k, v: v, tq: s.tq, tk: s.tk, heads: s.heads, d: s.d, w: w,
				causal: s.causal, scale: float32(1 / math.Sqrt(float64(s.d)))}
			withThreads(t, 2, 1, a.gemm)
			checkClose(t, "gemm path", got, want, []float32{attnAtol}, 0)
		})
	}
}

func TestAttentionLargeScores(t *testing.T) {
	// Large logits: the softmax must subtract the row max (a naive exp overflows).
	r := newRNG(21)
	tq, tk, h, d := 3, 50, 2, 8
	q, k, v := randSlice(r, tq*h*d, 30), randSlice(r, tk*h*d, 30), randSlice(r, tk*h*d, 1)
	want, got := make([]float32, tq*h*d), make([]float32, tq*h*d)
	AttentionNaive(want, q, k, v, tq, tk, h, d, false)
	Attention(got, q, k, v, tq, tk, h, d, false)
	for i := range got {
		if math.IsNaN(float64(got[i])) {
			t.Fatalf("NaN at %d", i)
		}
	}
	// Scores up to ~2500 carry float32 rounding of ~1e-4 absolute into the exp.
	checkClose(t, "large", got, want, []float32{1e-3}, 0)
}

func TestAttentionPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"causal tq > tk": func() {
			Attention(make([]float32, 8), make([]float32, 8), make([]float32, 4), make([]float32, 4), 2, 1, 1, 4, true)
		},
		"no keys": func() {
			Attention(make([]float32, 4), make([]float32, 4), nil, nil, 1, 0, 1, 4, false)
		},
		"short q": func() {
			Attention(make([]float32, 8), make([]float32, 7), make([]float32, 8), make([]float32, 8), 2, 2, 1, 4, false)
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}
