package tensor

import (
	"fmt"
	"math"
	"testing"
)

// linearShapes covers the small-m kernel (m <= SmallM) and the Sgemm path, k and n that are
// not multiples of the 8/16-wide vectors or the 4-column blocks, and degenerate sizes.
var linearShapes = []struct{ m, k, n int }{
	{1, 1, 1}, {1, 7, 3}, {1, 8, 4}, {1, 17, 5}, {1, 384, 1536}, {2, 33, 9}, {3, 64, 130},
	{5, 100, 7}, {8, 385, 17}, {9, 31, 33}, {16, 64, 64}, {33, 129, 65}, {1, 0, 4}, {0, 4, 4},
	{4, 5, 0}, {300, 64, 100}, {257, 100, 130},
}

func TestLinear(t *testing.T) { eachLevel(t, testLinear) }

func testLinear(t *testing.T) {
	r := newRNG(1)
	for _, s := range linearShapes {
		for _, bias := range []bool{false, true} {
			t.Run(fmt.Sprintf("%dx%dx%d/bias=%v", s.m, s.k, s.n, bias), func(t *testing.T) {
				x, w := randSlice(r, s.m*s.k, 1), randSlice(r, s.n*s.k, 1)
				var b []float32
				if bias {
					b = randSlice(r, s.n, 1)
				}
				want := make([]float32, s.m*s.n)
				LinearNaive(want, x, w, b, s.m, s.k, s.n)
				abs := make([]float32, s.m*s.n)
				var ab []float32
				if b != nil {
					ab = absSlice(b)
				}
				LinearNaive(abs, absSlice(x), absSlice(w), ab, s.m, s.k, s.n)
				for _, th := range threadCases {
					got := randSlice(r, s.m*s.n, 9) // stale contents must not leak through
					withThreads(t, th.chorus, th.blas, func() { Linear(got, x, w, b, s.m, s.k, s.n) })
					checkClose(t, fmt.Sprint("threads ", th), got, want, dotTol(abs, s.k), 0)
				}
			})
		}
	}
}

// TestLinearKernelStrides drives the small-m kernel directly with leading dimensions larger
// than the rows (as Attention uses it) and alpha != 1.
func TestLinearKernelStrides(t *testing.T) {
	if simdLevel == 0 {
		t.Skip("no SIMD kernels in this build")
	}
	eachLevel(t, testLinearKernelStrides)
}

func testLinearKernelStrides(t *testing.T) {
	r := newRNG(2)
	for _, s := range []struct{ m, n, k, ldx, ldw, ldo int }{
		{1, 5, 3, 7, 9, 6}, {3, 13, 64, 384, 384, 20}, {8, 17, 9, 9, 11, 17}, {2, 1, 1, 1, 1, 1},
		{5, 9, 17, 17, 17, 9}, {7, 33, 40, 50, 40, 33}, {1, 9, 16, 16, 16, 9}, {4, 4, 31, 31, 31, 4},
	} {
		x := randSlice(r, (s.m-1)*s.ldx+s.k, 1)
		w := randSlice(r, (s.n-1)*s.ldw+s.k, 1)
		got := randSlice(r, (s.m-1)*s.ldo+s.n, 1)
		want := append([]float32(nil), got...)
		gemmNTKernel(s.m, s.n, s.k, 0.125, x, s.ldx, w, s.ldw, nil, got, s.ldo)
		SgemmNaive(false, true, s.m, s.n, s.k, 0.125, x, s.ldx, w, s.ldw, 0, want, s.ldo)
		checkClose(t, fmt.Sprint(s), got, want, []float32{1e-6}, 1e-6)

		// c = a·b for the ·V product of attention.
		a := randSlice(r, (s.m-1)*s.ldx+s.k, 1)
		b := randSlice(r, (s.k-1)*s.ldw+s.n, 1)
		got = randSlice(r, (s.m-1)*s.ldo+s.n, 1)
		want = append([]float32(nil), got...)
		if s.ldw < s.n {
			continue
		}
		gemmNNKernel(s.m, s.n, s.k, a, s.ldx, b, s.ldw, got, s.ldo)
		SgemmNaive(false, false, s.m, s.n, s.k, 1, a, s.ldx, b, s.ldw, 0, want, s.ldo)
		checkClose(t, fmt.Sprint("nn ", s), got, want, []float32{1e-5}, 1e-6)
	}
	// Panel widths around the 32-wide column blocks and their masks.
	for _, n := range []int{1, 7, 8, 9, 31, 32, 33, 64, 65, 100} {
		a, b := randSlice(r, 3*10, 1), randSlice(r, 10*n, 1)
		got, want := make([]float32, 3*n), make([]float32, 3*n)
		gemmNNKernel(3, n, 10, a, 10, b, n, got, n)
		SgemmNaive(false, false, 3, n, 10, 1, a, 10, b, n, 0, want, n)
		checkClose(t, fmt.Sprint("nn n=", n), got, want, []float32{1e-5}, 1e-6)
	}
}

func TestLayerNorm(t *testing.T) {
	r := newRNG(3)
	for _, s := range []struct {
		rows, cols  int
		mean, scale float32
		affine      bool
	}{
		{1, 1, 0, 1, true}, {1, 7, 0, 1, true}, {3, 8, 0, 1, false}, {2, 9, 5, 1, true},
		{4, 384, 0, 3, true}, {5, 383, 100, 0.5, true}, {300, 512, -3, 10, true},
		{2, 64, 1000, 1, true}, // |mean| >> std: x-mean must keep its precision
		{3, 16, 7, 0, true},    // constant rows: variance 0, output beta
	} {
		t.Run(fmt.Sprintf("%dx%d/mean=%g", s.rows, s.cols, s.mean), func(t *testing.T) {
			x := randSlice(r, s.rows*s.cols, s.scale)
			for i := range x {
				x[i] += s.mean
			}
			var g, b []float32
			if s.affine {
				g, b = randSlice(r, s.cols, 2), randSlice(r, s.cols, 1)
			}
			want := make([]float32, len(x))
			LayerNormNaive(want, x, g, b, s.rows, s.cols, 1e-5)
			got := make([]float32, len(x))
			// A few float32 ulps relative to the terms (x-mean)/std·gamma and beta.
			LayerNorm(got, x, g, b, s.rows, s.cols, 1e-5)
			checkClose(t, "fast", got, want, []float32{2e-6}, 1e-6)
			clear(got)
			layerNormGo(got, x, g, b, s.rows, s.cols, 1e-5)
			checkClose(t, "go", got, want, []float32{2e-6}, 1e-6)
		})
	}
}

// softmaxTol: the float32 exp is within ~2 ulp, the normaliser one more rounding, and x-max is
// rounded to float32 before the exp, which costs |x-max|·2⁻²⁴ relative (inputs here span ±16).
const softmaxRtol = 2e-6

func TestSoftmax(t *testing.T) { eachLevel(t, testSoftmax) }

func testSoftmax(t *testing.T) {
	r := newRNG(4)
	for _, s := range []struct{ rows, cols int }{{1, 1}, {1, 7}, {2, 8}, {3, 9}, {4, 100}, {30, 1500}, {1, 51865}} {
		x := randSlice(r, s.rows*s.cols, 16)
		want := append([]float32(nil), x...)
		SoftmaxNaive(want, s.rows, s.cols)
		got := append([]float32(nil), x...)
		Softmax(got, s.rows, s.cols)
		checkClose(t, fmt.Sprint(s), got, want, []float32{1e-9}, softmaxRtol)
		got = append(got[:0], x...)
		softmaxRowsGo(got, s.rows, s.cols, s.cols, -1)
		checkClose(t, fmt.Sprint("go ", s), got, want, []float32{1e-9}, softmaxRtol)
	}
	// Rows with -Inf entries (masked logits), huge spreads, NaN and ±Inf.
	inf := float32(math.Inf(1))
	nan := float32(math.NaN())
	for _, row := range [][]float32{
		{-inf, 0, 1}, {0, -200, -80, 3}, {1e30, -1e30, 0}, {nan, 0, 1}, {inf, 0}, {-inf, -inf},
		{-87, 0, -88, -100, 1, 2, 3, 4, 5},
	} {
		want := append([]float32(nil), row...)
		SoftmaxNaive(want, 1, len(row))
		got := append([]float32(nil), row...)
		Softmax(got, 1, len(row))
		checkClose(t, fmt.Sprint(row), got, want, []float32{1e-9}, softmaxRtol)
		got = append(got[:0], row...)
		softmaxRowsGo(got, 1, len(row), len(row), -1)
		checkClose(t, fmt.Sprint("go ", row), got, want, []float32{1e-9}, softmaxRtol)
	}
}

func TestLogSoftmax(t *testing.T) { eachLevel(t, testLogSoftmax) }

func testLogSoftmax(t *testing.T) {
	r := newRNG(5)
	for _, n := range []int{1, 2, 7, 8, 9, 51865} {
		x := randSlice(r, n, 20)
		want := make([]float32, n)
		LogSoftmaxNaive(want, x)
		got := make([]float32, n)
		LogSoftmax(got, x)
		// Absolute: the result is (x-max) - log(sum), each rounded once in float32.
		checkClose(t, fmt.Sprint(n), got, want, []float32{2e-6}, 2e-7)
		logSoftmaxGo(got, x)
		checkClose(t, fmt.Sprint("go ", n), got, want, []float32{2e-6}, 2e-7)
	}
}

// TestErf32 sweeps [-10, 10] densely (every 2⁻¹⁴, plus every float32 in [0.49, 0.51] and around
// the interval edges) against math.Erf: the tables promise ~1 ulp, 6.4e-8 absolute.
func TestErf32(t *testing.T) {
	var worstUlp, worstAbs float64
	check := func(x float32) {
		got := float64(erf32(x))
		want := math.Erf(float64(x))
		d := math.Abs(got - want)
		ulp := float64(math.Nextafter32(float32(math.Abs(want)), 2)) - math.Abs(float64(float32(want)))
		if ulp == 0 {
			ulp = 0x1p-149
		}
		worstAbs = math.Max(worstAbs, d)
		worstUlp = math.Max(worstUlp, d/ulp)
		if d > 1.5*ulp && d > 1e-45 {
			t.Fatalf("erf32(%v) = %v, want %v (%.2f ulp)", x, got, want, d/ulp)
		}
	}
	for i := -10 << 14; i <= 10<<14; i++ {
		check(float32(i) / (1 << 14))
	}
	for _, edge := range []float32{0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4} {
		x := edge
		for i := 0; i < 20000; i++ {
			x = math.Nextafter32(x, 0)
		}
		for i := 0; i < 40000; i++ {
			check(x)
			check(-x)
			x = math.Nextafter32(x, 10)
		}
	}
	for _, x := range []float32{0, 1e-45, 1e-38, 1e-20, 1e-8, 3.9192, 1e10, float32(math.Inf(1))} {
		check(x)
		check(-x)
	}
	if v := erf32(float32(math.NaN())); v == v {
		t.Fatalf("erf32(NaN) = %v", v)
	}
	if v := erf32(float32(math.Copysign(0, -1))); v != 0 || !math.Signbit(float64(v)) {
		t.Fatalf("erf32(-0) = %v", v)
	}
	t.Logf("erf32 max error %.3g absolute, %.3f ulp", worstAbs, worstUlp)
}

// geluTol: erf is within ~1.1 ulp of 1 (6.6e-8) and GELU multiplies it by x/2; the C kernel
// evaluates in float32 (a few roundings of ~6e-8 relative each).
func geluTol(x []float32) []float32 {
	t := make([]float32, len(x))
	for i, v := range x {
		t[i] = 1.2e-7 * float32(math.Max(1, math.Abs(float64(v))))
	}
	return t
}

func TestGELU(t *testing.T) { eachLevel(t, testGELU) }

func testGELU(t *testing.T) {
	var x []float32
	for i := -10 << 12; i <= 10<<12; i++ {
		x = append(x, float32(i)/(1<<12))
	}
	inf := float32(math.Inf(1))
	x = append(x, 0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 40, -40, 1e30, -1e30, inf, -inf, float32(math.NaN()))
	r := newRNG(6)
	x = append(x, randSlice(r, 1001, 6)...) // odd length: vector tails
	want := make([]float32, len(x))
	GELUNaive(want, x)
	got := make([]float32, len(x))
	GELU(got, x)
	checkClose(t, "fast", got, want, geluTol(x), 0)
	geluGo(got, x)
	checkClose(t, "go", got, want, geluTol(x), 0)
	var worst1, worst10, worstUlp float64
	GELU(got, x)
	for i := range x {
		a := math.Abs(float64(x[i]))
		d := math.Abs(float64(got[i] - want[i]))
		if a <= 1 {
			worst1 = math.Max(worst1, d)
		}
		if a <= 10 {
			worst10 = math.Max(worst10, d)
			if x[i] > 0 {
				ulp := float64(math.Nextafter32(want[i], 1e9) - want[i])
				worstUlp = math.Max(worstUlp, d/ulp)
			}
		}
	}
	t.Logf("GELU max |error| %.3g on [-1,1], %.3g on [-10,10] (%.2f ulp of the result for x > 0)", worst1, worst10, worstUlp)
	// Short slices exercise every tail length.
	for n := 0; n < 40; n++ {
		xs := randSlice(r, n, 4)
		want, got := make([]float32, n), make([]float32, n)
		GELUNaive(want, xs)
		GELU(got, xs)
		checkClose(t, fmt.Sprint("n=", n), got, want, geluTol(xs), 0)
	}
}

func TestElementwise(t *testing.T) {
	r := newRNG(7)
	nan := float32(math.NaN())
	for _, n := range []int{0, 1, 7, 100, 1 << 17} {
		a, b := randSlice(r, n, 3), randSlice(r, n, 3)
		if n > 1 {
			a[1] = nan
		}
		got, want := make([]float32, n), make([]float32, n)
		ReLU(got, a)
		ReLUNaive(want, a)
		checkClose(t, "relu", got, want, []float32{0}, 0)

		Add(got, a, b)
		for i := range want {
			want[i] = a[i] + b[i]
		}
		checkClose(t, "add", got, want, []float32{0}, 0)

		copy(got, a)
		AddInPlace(got, b)
		checkClose(t, "add in place", got, want, []float32{0}, 0)

		copy(got, a)
		Scale(got, 0.3)
		for i := range want {
			want[i] = a[i] * 0.3
		}
		checkClose(t, "scale", got, want, []float32{0}, 0)
	}
}

func TestTranspose(t *testing.T) {
	r := newRNG(8)
	for _, s := range [][2]int{{1, 1}, {1, 5}, {5, 1}, {31, 33}, {64, 64}, {100, 3}, {3, 1500}} {
		in := randSlice(r, s[0]*s[1], 1)
		got, want := make([]float32, len(in)), make([]float32, len(in))
		for i := 0; i < s[0]; i++ {
			for j := 0; j < s[1]; j++ {
				want[j*s[0]+i] = in[i*s[1]+j]
			}
		}
		Transpose(got, in, s[0], s[1])
		checkClose(t, fmt.Sprint(s), got, want, []float32{0}, 0)
	}
}

func TestArgMax(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	for _, c := range []struct {
		x    []float32
		want int
	}{
		{nil, -1}, {[]float32{nan}, -1}, {[]float32{3}, 0}, {[]float32{1, 3, 3, 2}, 1},
		{[]float32{nan, 1, nan, 2}, 3}, {[]float32{-inf, -inf}, 0}, {[]float32{1, inf, 2}, 1},
		{[]float32{-5, -1, -3}, 1},
	} {
		if got := ArgMax(c.x); got != c.want {
			t.Errorf("ArgMax(%v) = %d, want %d", c.x, got, c.want)
		}
	}
}

func TestConv1d(t *testing.T) {
	r := newRNG(9)
	for _, s := range []struct{ tin, cin, cout, kw, stride, pad int }{
		{1, 1, 1, 1, 1, 0}, {5, 3, 4, 3, 1, 1}, {6, 3, 4, 3, 2, 1}, {7, 2, 5, 3, 2, 1},
		{10, 4, 3, 5, 3, 2}, {3, 2, 2, 3, 1, 0}, {2, 2, 2, 3, 1, 2}, {40, 80, 24, 3, 1, 1},
		{40, 24, 24, 3, 2, 1}, {8, 5, 7, 1, 1, 0}, {4, 3, 2, 7, 1, 3}, {3, 0, 2, 3, 1, 1},
	} {
		for _, bias := range []bool{false, true} {
			t.Run(fmt.Sprintf("%+v/bias=%v", s, bias), func(t *testing.T) {
				x := randSlice(r, s.tin*s.cin, 1)
				w := randSlice(r, s.cout*s.cin*s.kw, 1)
				var b, ab []float32
				if bias {
					b = randSlice(r, s.cout, 1)
					ab = absSlice(b)
				}
				tout := Conv1dOut(s.tin, s.kw, s.stride, s.pad)
				want := make([]float32, tout*s.cout)
				Conv1dNaive(want, x, w, b, s.tin, s.cin, s.cout, s.kw, s.stride, s.pad)
				abs := make([]float32, tout*s.cout)
				Conv1dNaive(abs, absSlice(x), absSlice(w), ab, s.tin, s.cin, s.cout, s.kw, s.stride, s.pad)
				got := randSlice(r, tout*s.cout, 5)
				Conv1d(got, x, w, b, s.tin, s.cin, s.cout, s.kw, s.stride, s.pad)
				checkClose(t, "conv", got, want, dotTol(abs, s.cin*s.kw), 0)
			})
		}
	}
}

func TestParallelHelpers(t *testing.T) {
	withThreads(t, 3, 1, func() {
		for _, n := range []int{0, 1, 2, 5, 100} {
			seen := make([]int, n)
			parallelFor(n, 1, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					seen[i]++
				}
			})
			parallelItems(n, 3, func(w, i int) {
				if w < 0 || w >= 3 {
					t.Errorf("worker %d", w)
				}
				seen[i]++
			})
			for i, c := range seen {
				if c != 2 {
					t.Fatalf("n=%d: item %d ran %d times", n, i, c)
				}
			}
		}
	})
	SetThreads(0)
	if Threads() < 1 {
		t.Fatalf("Threads() = %d after SetThreads(0)", Threads())
	}
	p := getScratch(100)
	if len(*p) != 100 || cap(*p) != 128 {
		t.Fatalf("scratch len %d cap %d", len(*p), cap(*p))
	}
	putScratch(p)
}

// TestShapePanics: bad shapes are programming errors and must panic before any C kernel reads
// out of bounds.
func TestShapePanics(t *testing.T) {
	f := make([]float32, 64)
	h := make([]uint16, 64)
	for name, fn := range map[string]func(){
		"linear negative":   func() { Linear(f, f, f, nil, -1, 2, 2) },
		"linear short w":    func() { Linear(f, f, f[:5], nil, 2, 3, 2) },
		"linear short bias": func() { Linear(f, f, f, f[:1], 2, 3, 2) },
		"linear-f16 short":  func() { LinearF16(f, f, h[:5], nil, 2, 3, 2) },
		"layernorm short":   func() { LayerNorm(f[:10], f, nil, nil, 2, 6, 1e-5) },
		"softmax short":     func() { Softmax(f[:10], 2, 6) },
		"gelu short out":    func() { GELU(f[:3], f[:4]) },
		"conv1d stride 0":   func() { Conv1d(f, f, f, nil, 4, 2, 2, 3, 0, 1) },
		"conv1d short x":    func() { Conv1d(f, f[:7], f, nil, 4, 2, 2, 3, 1, 1) },
		"transpose short":   func() { Transpose(f[:5], f, 2, 3) },
		"f16 dst short":     func() { F16ToF32Slice(f[:3], h[:4]) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn()
		}()
	}
}
