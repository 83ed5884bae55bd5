//go:build cgo && !noblas

package tensor

import (
	"fmt"
	"math"
	"testing"
)

// roundBF16 is the reference rounding to bfloat16 (nearest even), NaN kept.
func roundBF16(x float32) float32 {
	u := math.Float32bits(x)
	if u&0x7fffffff > 0x7f800000 {
		return x
	}
	u += 0x7fff + (u>>16)&1
	return math.Float32frombits(u &^ 0xffff)
}

func bf16Slice(x []float32) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = roundBF16(v)
	}
	return out
}

func withBF16(t testing.TB) {
	t.Helper()
	if !bf16Supported {
		t.Skip("no AVX512-BF16 on this CPU")
	}
	if err := SetMatmulBF16(true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { SetMatmulBF16(false) })
}

// bf16Engines runs f once for each bfloat16 engine this CPU has (AVX512-BF16, and AMX where
// there is one), with bfloat16 products on and that engine selected.
func bf16Engines(t *testing.T, f func(t *testing.T)) {
	withBF16(t)
	engines := []bool{false}
	if amxAvailable() {
		engines = append(engines, true)
	} else {
		t.Log("no AMX on this CPU: the tile kernel is not tested here")
	}
	defer useAMX.Store(amxAvailable())
	for _, amx := range engines {
		useAMX.Store(amx)
		t.Run(MatmulEngine(), f)
	}
}

// TestSgemmBF16 checks the bfloat16 GEMM against SgemmNaive on operands rounded to bfloat16
// first: the products of bfloat16 values are exact in float32, so the two differ only by
// float32 accumulation order — a few ulp of Σ|a·b|. Shapes cover every transpose, partial
// register tiles (m, n not multiples of 8 and 32), odd k and k beyond one KC block, leading
// dimensions wider than the matrices, and alpha/beta.
func TestSgemmBF16(t *testing.T) { bf16Engines(t, testSgemmBF16) }

func testSgemmBF16(t *testing.T) {
	r := newRNG(201)
	for _, s := range []struct{ m, n, k int }{
		{16, 16, 16}, {17, 33, 19}, {64, 96, 256}, {130, 40, 257}, {9, 1100, 31}, {200, 70, 600}, {33, 17, 1},
		{40, 50, 1100}, {160, 36, 47},
	} {
		for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
			for _, ab := range [][2]float32{{1, 0}, {0.5, 1}, {-2, 0.25}} {
				name := fmt.Sprintf("%dx%dx%d/ta%v/tb%v/alpha%g/beta%g", s.m, s.n, s.k, tr[0], tr[1], ab[0], ab[1])
				t.Run(name, func(t *testing.T) {
					lda, ldb, ldc := s.k+3, s.n+5, s.n+2
					if tr[0] {
						lda = s.m + 3
					}
					if tr[1] {
						ldb = s.k + 5
					}
					arows, brows := s.m, s.k
					if tr[0] {
						arows = s.k
					}
					if tr[1] {
						brows = s.n
					}
					a, b := randSlice(r, arows*lda, 1), randSlice(r, brows*ldb, 1)
					c := randSlice(r, s.m*ldc, 1)
					if ab[1] == 0 { // beta 0 must not read C: NaN there must not leak out
						for i := 0; i < s.m; i++ {
							for j := 0; j < s.n; j++ {
								c[i*ldc+j] = float32(math.NaN())
							}
						}
					}
					want := append([]float32(nil), c...)
					SgemmNaive(tr[0], tr[1], s.m, s.n, s.k, ab[0], bf16Slice(a), lda, bf16Slice(b), ldb, ab[1], want, ldc)
					got := append([]float32(nil), c...)
					sgemmBF16(tr[0], tr[1], s.m, s.n, s.k, ab[0], a, lda, b, ldb, ab[1], got, ldc, nil)
					for i := 0; i < s.m; i++ {
						for j := 0; j < ldc; j++ {
							g, w := got[i*ldc+j], want[i*ldc+j]
							if j >= s.n {
								if g != c[i*ldc+j] {
									t.Fatalf("C[%d][%d] beyond n changed: %v", i, j, g)
								}
								continue
							}
							// |a|,|b| < 1: Σ|a·b| < k; float32 accumulation error ~ k·2⁻²⁴ of it.
							if tol := 4e-7*float64(s.k) + 1e-6; math.Abs(float64(g-w)) > tol {
								t.Fatalf("C[%d][%d] = %v, want %v (|Δ| %.2g > %.2g)", i, j, g, w, math.Abs(float64(g-w)), tol)
							}
						}
					}
				})
			}
		}
	}
}

// TestLinearBF16Bias: Linear with bfloat16 products adds its bias as the product is stored
// (linearBF16) and equals the float64 product of the rounded operands plus the bias, on shapes
// with partial register tiles and on one large enough for the row split.
func TestLinearBF16Bias(t *testing.T) { bf16Engines(t, testLinearBF16Bias) }

func testLinearBF16Bias(t *testing.T) {
	r := newRNG(204)
	for _, s := range []struct{ m, k, n int }{{17, 20, 33}, {300, 64, 200}} {
		x, w, b := randSlice(r, s.m*s.k, 1), randSlice(r, s.n*s.k, 1), randSlice(r, s.n, 1)
		want := make([]float32, s.m*s.n)
		for i := range s.m {
			copy(want[i*s.n:], b)
		}
		SgemmNaive(false, true, s.m, s.n, s.k, 1, bf16Slice(x), s.k, bf16Slice(w), s.k, 1, want, s.n)
		got := make([]float32, s.m*s.n)
		for i := range got {
			got[i] = float32(math.NaN()) // Linear must not read out
		}
		for _, th := range []int{1, 2} {
			withThreads(t, th, 1, func() { Linear(got, x, w, b, s.m, s.k, s.n) })
			checkClose(t, fmt.Sprintf("%dx%dx%d threads %d", s.m, s.k, s.n, th), got, want, []float32{1e-5}, 1e-5)
		}
	}
}

// TestSgemmBF16Routing: with bfloat16 on, Sgemm sends products whose every side is at least
// bf16MinDim to the bfloat16 GEMM and keeps smaller ones in float32.
func TestSgemmBF16Routing(t *testing.T) {
	withBF16(t)
	r := newRNG(203)
	for _, s := range []struct {
		m, n, k int
		bf      bool
	}{{bf16MinDim, bf16MinDim, bf16MinDim, true}, {bf16MinDim - 1, 64, 64, false}, {64, 64, bf16MinDim - 1, false}} {
		a, b := randSlice(r, s.m*s.k, 1), randSlice(r, s.k*s.n, 1)
		if !s.bf {
			a, b = bf16Slice(a), bf16Slice(b) // so only float32 would reproduce the naive result
			for i := range a {
				a[i] += 1.0 / 4096
			}
		}
		want := make([]float32, s.m*s.n)
		if s.bf {
			SgemmNaive(false, false, s.m, s.n, s.k, 1, bf16Slice(a), s.k, bf16Slice(b), s.n, 0, want, s.n)
		} else {
			SgemmNaive(false, false, s.m, s.n, s.k, 1, a, s.k, b, s.n, 0, want, s.n)
		}
		got := make([]float32, s.m*s.n)
		Sgemm(false, false, s.m, s.n, s.k, 1, a, s.k, b, s.n, 0, got, s.n)
		for i := range got {
			if math.Abs(float64(got[i]-want[i])) > 1e-5 {
				t.Fatalf("%dx%dx%d (bf16 %v): C[%d] = %v, want %v", s.m, s.n, s.k, s.bf, i, got[i], want[i])
			}
		}
	}
}

// TestSgemmBF16Rounding: rounding is to nearest even, as VCVTNEPS2BF16, and only operands are
// rounded — C keeps float32 (1 + 2⁻⁹ rounds to 1 in bfloat16; beta·C is exact).
func TestSgemmBF16Rounding(t *testing.T) { bf16Engines(t, testSgemmBF16Rounding) }

func testSgemmBF16Rounding(t *testing.T) {
	n := 16
	a := make([]float32, n*n)
	b := make([]float32, n*n)
	for i := range n {
		a[i*n+i] = 1 + 1.0/512 // between 1 and the next bfloat16 (1 + 2⁻⁷): rounds to 1
		b[i*n+i] = 1 + 3.0/256 // 1 + 1.5·2⁻⁷: a tie, rounds to even 1 + 2⁻⁶
	}
	c := make([]float32, n*n)
	for i := range c {
		c[i] = 1.0 / 3
	}
	Sgemm(false, false, n, n, n, 1, a, n, b, n, 1, c, n)
	for i := range n {
		if got, want := c[i*n+i], float32(1+1.0/64)+float32(1.0/3); got != want {
			t.Fatalf("diagonal %d = %v, want %v", i, got, want)
		}
		if got := c[i*n+(i+1)%n]; got != float32(1.0/3) {
			t.Fatalf("off-diagonal = %v, want 1/3", got)
		}
	}
}

// BenchmarkSgemmBF16 compares the bfloat16 GEMMs (AVX512-BF16, and AMX where the CPU has it)
// with OpenBLAS's SGEMM on one training step's shapes (batch rows 2000 per thread, width 256, FFN 1024): forward (NT), input gradient (NN)
// and weight gradient (TN).
func BenchmarkSgemmBF16(b *testing.B) {
	if !bf16Supported {
		b.Skip("no AVX512-BF16 on this CPU")
	}
	r := newRNG(202)
	for _, s := range []struct {
		name    string
		ta, tb  bool
		m, n, k int
	}{
		{"fwd-NT-2000x1024x256", false, true, 2000, 1024, 256},
		{"dx-NN-2000x256x1024", false, false, 2000, 256, 1024},
		{"dw-TN-1024x256x2000", true, false, 1024, 256, 2000},
	} {
		lda, ldb := s.k, s.n
		if s.ta {
			lda = s.m
		}
		if s.tb {
			ldb = s.k
		}
		a, bb := randSlice(r, s.m*s.k, 1), randSlice(r, s.k*s.n, 1)
		c := make([]float32, s.m*s.n)
		engines := []string{"f32", "avx512-bf16"}
		if amxAvailable() {
			engines = append(engines, "amx-bf16")
		}
		for _, e := range engines {
			b.Run(s.name+"/"+e, func(b *testing.B) {
				SetMatmulBF16(e != "f32")
				useAMX.Store(e == "amx-bf16")
				defer SetMatmulBF16(false)
				for b.Loop() {
					Sgemm(s.ta, s.tb, s.m, s.n, s.k, 1, a, lda, bb, ldb, 0, c, s.n)
				}
				report(b, 2*float64(s.m*s.n*s.k), 0)
			})
		}
	}
}
