package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// newRNG is the deterministic generator every randomized test and fuzz target uses.
func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x63686f727573)) }

// randSlice returns n values uniform in [-scale, scale).
func randSlice(r *rand.Rand, n int, scale float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = scale * (2*r.Float32() - 1)
	}
	return s
}

func absSlice(s []float32) []float32 {
	a := make([]float32, len(s))
	for i, v := range s {
		a[i] = float32(math.Abs(float64(v)))
	}
	return a
}

// checkClose fails when |got-want| > atol[i] + rtol·|want| for some i (NaN must match NaN),
// reporting the largest difference and the first few offending pairs. atol may hold one value
// for all elements or one per element.
func checkClose(t testing.TB, label string, got, want, atol []float32, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", label, len(got), len(want))
	}
	var worst float64
	var bad []string
	nbad := 0
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		a := float64(atol[0])
		if len(atol) > 1 {
			a = float64(atol[i])
		}
		d := math.Abs(g - w)
		ok := d <= a+rtol*math.Abs(w) || g == w
		if math.IsNaN(w) || math.IsNaN(g) {
			ok = math.IsNaN(w) && math.IsNaN(g)
			d = 0
		}
		worst = math.Max(worst, d)
		if !ok {
			nbad++
			if len(bad) < 5 {
				bad = append(bad, fmt.Sprintf("[%d] got %.9g want %.9g (diff %.3g, tol %.3g)", i, g, w, d, a+rtol*math.Abs(w)))
			}
		}
	}
	if nbad > 0 {
		t.Fatalf("%s: %d of %d values off, max |diff| %.3g:\n  %s", label, nbad, len(want), worst, strings.Join(bad, "\n  "))
	}
}

// dotTol is the per-element tolerance of a float32 dot product of length k accumulated in
// vector lanes (chorus's kernels use 8 or 16 lanes, OpenBLAS 16): Higham's worst case for
// recursive summation, (n+1)·u·Σ|x·w| with u = 2⁻²⁴, over the lane length n ≈ k/8, plus a few
// ulps for the final horizontal sum, bias add and scaling. absRef holds Σ|x·w| (+|b|).
func dotTol(absRef []float32, k int) []float32 {
	f := float32(k/8+8) * 0x1p-24
	t := make([]float32, len(absRef))
	for i, a := range absRef {
		t[i] = f*a + 1e-30
	}
	return t
}

// withThreads runs f with chorus and BLAS thread counts set, restoring them afterwards.
func withThreads(t testing.TB, chorus, blas int, f func()) {
	t.Helper()
	oc, ob := Threads(), BLASThreads()
	SetThreads(chorus)
	SetBLASThreads(blas)
	defer func() {
		SetThreads(oc)
		SetBLASThreads(ob)
	}()
	f()
}

// simdLevels lists the C kernel levels this machine can run (none in the pure-Go build); tests
// run each under every level so the AVX2 variants are covered on AVX-512 machines too.
func simdLevels() []int {
	var l []int
	for i := 1; i <= simdLevel; i++ {
		l = append(l, i)
	}
	return l
}

// eachLevel runs f under every level in simdLevels (once, unchanged, when there is none).
func eachLevel(t *testing.T, f func(t *testing.T)) {
	levels := simdLevels()
	if len(levels) == 0 {
		f(t)
		return
	}
	for _, l := range levels {
		t.Run(fmt.Sprint("level", l), func(t *testing.T) {
			setSIMDLevel(l)
			defer setSIMDLevel(simdLevel)
			f(t)
		})
	}
}
