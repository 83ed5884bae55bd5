package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// The backward twins are checked against central finite differences of float64 reference
// forwards (below): each case draws float32 inputs, forms the scalar L = Σ r·out for a random
// r, and compares the twin's gradients (computed with dout = r) against
// (L(x+h) − L(x−h)) / 2h in float64 with h = 1e-6. In float64 that difference is accurate to
// ~1e-9 (truncation h²·L⁽³⁾ ≈ 1e-12, rounding 1e-16/h = 1e-10), so the tolerance is set by the
// twins' float32 arithmetic: dot products of at most a few hundred terms accumulate relative
// error ≲ 1e-6 of Σ|terms|, which is bounded by the largest gradient of the tensor. Hence
// |got − want| ≤ 2e-5·max|want| + 1e-6. Each reference forward is itself checked against the
// package's float32 kernel, so the references are the kernels' semantics, not a second guess.

// fdStep is the central-difference step for float64 references.
const fdStep = 1e-6

// to64 widens a float32 slice.
func to64(s []float32) []float64 {
	o := make([]float64, len(s))
	for i, v := range s {
		o[i] = float64(v)
	}
	return o
}

// numGrad returns dL/dx by central differences, L = loss() reading x (which it perturbs in
// place and restores).
func numGrad(x []float64, loss func() float64) []float64 {
	g := make([]float64, len(x))
	for i := range x {
		old := x[i]
		x[i] = old + fdStep
		lp := loss()
		x[i] = old - fdStep
		lm := loss()
		x[i] = old
		g[i] = (lp - lm) / (2 * fdStep)
	}
	return g
}

// dot64 is Σ r·out in float64.
func dot64(r []float32, out []float64) float64 {
	var s float64
	for i, v := range out {
		s += float64(r[i]) * v
	}
	return s
}

// checkGrad compares an analytic gradient (float32, after subtracting base, the value the
// buffer held before the twin accumulated into it) with a numeric one. tol is relative to
// the largest |want| (see the file comment); it reports the max error and the first pairs.
func checkGrad(t testing.TB, label string, got, base []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", label, len(got), len(want))
	}
	var scale float64
	for _, w := range want {
		scale = math.Max(scale, math.Abs(w))
	}
	lim := tol*scale + 1e-6
	var worst float64
	var bad []string
	for i, w := range want {
		g := float64(got[i])
		if base != nil {
			g -= float64(base[i])
		}
		d := math.Abs(g - w)
		worst = math.Max(worst, d)
		if !(d <= lim) && len(bad) < 5 {
			bad = append(bad, fmt.Sprintf("[%d] got %.9g want %.9g (diff %.3g)", i, g, w, d))
		}
	}
	if len(bad) > 0 {
		t.Fatalf("%s: max |diff| %.3g > %.3g (scale %.3g):\n  %s", label, worst, lim, scale, strings.Join(bad, "\n  "))
	}
}

// prefilled returns a gradient buffer holding random values (to check the twins accumulate)
// and a copy of them.
func prefilled(r *rand.Rand, n int) (buf, base []float32) {
	buf = randSlice(r, n, 1)
	return buf, append([]float32(nil), buf...)
}

// checkRef fails when a float64 reference disagrees with the float32 kernel's output.
func checkRef(t testing.TB, label string, ref []float64, kernel []float32) {
	t.Helper()
	for i, v := range ref {
		if math.Abs(v-float64(kernel[i])) > 1e-5*math.Max(1, math.Abs(v)) {
			t.Fatalf("%s: reference [%d] %.9g, kernel %.9g", label, i, v, kernel[i])
		}
	}
}

const gradTol = 2e-5

// ---- float64 reference forwards ----

func linear64(x, w, b []float64, m, k, n int) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += x[i*k+p] * w[j*k+p]
			}
			if b != nil {
				s += b[j]
			}
			out[i*n+j] = s
		}
	}
	return out
}

func layerNorm64(x, g, b []float64, rows, cols int, eps float64) []float64 {
	out := make([]float64, rows*cols)
	for r := 0; r < rows; r++ {
		row := x[r*cols : (r+1)*cols]
		var mean, v float64
		for _, a := range row {
			mean += a
		}
		mean /= float64(cols)
		for _, a := range row {
			v += (a - mean) * (a - mean)
		}
		inv := 1 / math.Sqrt(v/float64(cols)+eps)
		for c, a := range row {
			y := (a - mean) * inv
			if g != nil {
				y *= g[c]
			}
			if b != nil {
				y += b[c]
			}
			out[r*cols+c] = y
		}
	}
	return out
}

func gelu64(x []float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = 0.5 * v * (1 + math.Erf(v/math.Sqrt2))
	}
	return out
}

func conv64(x, w, b []float64, tin, cin, cout, kw, stride, pad int) []float64 {
	tout := Conv1dOut(tin, kw, stride, pad)
	out := make([]float64, tout*cout)
	for t := 0; t < tout; t++ {
		for o := 0; o < cout; o++ {
			var s float64
			if b != nil {
				s = b[o]
			}
			for c := 0; c < cin; c++ {
				for j := 0; j < kw; j++ {
					if ti := t*stride + j - pad; ti >= 0 && ti < tin {
						s += x[ti*cin+c] * w[(o*cin+c)*kw+j]
					}
				}
			}
			out[t*cout+o] = s
		}
	}
	return out
}

func attention64(q, k, v []float64, tq, tk, heads, d int, causal bool) []float64 {
	w := heads * d
	out := make([]float64, tq*w)
	sc := make([]float64, tk)
	for h := 0; h < heads; h++ {
		for i := 0; i < tq; i++ {
			lim := tk
			if causal {
				lim = tk - tq + i + 1
			}
			mx := math.Inf(-1)
			for j := 0; j < lim; j++ {
				var s float64
				for e := 0; e < d; e++ {
					s += q[i*w+h*d+e] * k[j*w+h*d+e]
				}
				sc[j] = s / math.Sqrt(float64(d))
				mx = math.Max(mx, sc[j])
			}
			var sum float64
			for j := 0; j < lim; j++ {
				sc[j] = math.Exp(sc[j] - mx)
				sum += sc[j]
			}
			for e := 0; e < d; e++ {
				var a float64
				for j := 0; j < lim; j++ {
					a += sc[j] * v[j*w+h*d+e]
				}
				out[i*w+h*d+e] = a / sum
			}
		}
	}
	return out
}

func logSoftmax64(x []float64, rows, cols int) []float64 {
	out := make([]float64, len(x))
	for r := 0; r < rows; r++ {
		row := x[r*cols : (r+1)*cols]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, v)
		}
		var s float64
		for _, v := range row {
			s += math.Exp(v - mx)
		}
		ls := mx + math.Log(s)
		for c, v := range row {
			out[r*cols+c] = v - ls
		}
	}
	return out
}

// ce64 is torch's F.cross_entropy(label_smoothing=eps, ignore_index=ignore), 'mean'.
func ce64(logits []float64, targets []int, rows, vocab int, eps float64, ignore int) float64 {
	lp := logSoftmax64(logits, rows, vocab)
	var sum float64
	n := 0
	for r, y := range targets {
		if y == ignore {
			continue
		}
		var mean float64
		for j := 0; j < vocab; j++ {
			mean += -lp[r*vocab+j]
		}
		sum += (1-eps)*(-lp[r*vocab+y]) + eps*mean/float64(vocab)
		n++
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// ctcBrute is −log Σ over every path π ∈ V^T that collapses (merge repeats, drop blanks) to
// labels of Π_t p[t, π_t]: the definition of CTC, by enumeration (V^T paths).
func ctcBrute(lp []float64, T, V int, labels []int, blank int) float64 {
	total := 0.0
	path := make([]int, T)
	var rec func(t int)
	rec = func(t int) {
		if t == T {
			var col []int
			prev := -1
			for _, c := range path {
				if c != prev && c != blank {
					col = append(col, c)
				}
				prev = c
			}
			if fmt.Sprint(col) != fmt.Sprint(append([]int{}, labels...)) {
				return
			}
			var s float64
			for u, c := range path {
				s += lp[u*V+c]
			}
			total += math.Exp(s)
			return
		}
		for c := 0; c < V; c++ {
			path[t] = c
			rec(t + 1)
		}
	}
	rec(0)
	return -math.Log(total)
}

// ---- twin tests ----

func TestLinearBackward(t *testing.T) {
	r := newRNG(11)
	for _, s := range []struct{ m, k, n int }{{1, 1, 1}, {3, 5, 4}, {7, 3, 9}, {2, 17, 3}, {140, 6, 5}} {
		for _, bias := range []bool{false, true} {
			t.Run(fmt.Sprintf("%dx%dx%d/bias=%v", s.m, s.k, s.n, bias), func(t *testing.T) {
				x, w, dout := randSlice(r, s.m*s.k, 1), randSlice(r, s.n*s.k, 1), randSlice(r, s.m*s.n, 1)
				var b []float32
				if bias {
					b = randSlice(r, s.n, 1)
				}
				x64, w64, b64 := to64(x), to64(w), []float64(nil)
				if bias {
					b64 = to64(b)
				}
				ref := linear64(x64, w64, b64, s.m, s.k, s.n)
				kern := make([]float32, s.m*s.n)
				Linear(kern, x, w, b, s.m, s.k, s.n)
				checkRef(t, "forward", ref, kern)
				loss := func() float64 { return dot64(dout, linear64(x64, w64, b64, s.m, s.k, s.n)) }

				dx, bx := prefilled(r, len(x))
				dw, bw := prefilled(r, len(w))
				var db, bb []float32
				if bias {
					db, bb = prefilled(r, s.n)
				}
				for _, th := range []int{1, 2} {
					for _, blas := range []int{1, 2} {
						cx, cw := append([]float32(nil), dx...), append([]float32(nil), dw...)
						var cb []float32
						if bias {
							cb = append([]float32(nil), db...)
						}
						withThreads(t, th, blas, func() { LinearBackward(cx, cw, cb, dout, x, w, s.m, s.k, s.n) })
						label := fmt.Sprintf("threads %d/%d", th, blas)
						checkGrad(t, label+" dx", cx, bx, numGrad(x64, loss), gradTol)
						checkGrad(t, label+" dw", cw, bw, numGrad(w64, loss), gradTol)
						if bias {
							checkGrad(t, label+" db", cb, bb, numGrad(b64, loss), gradTol)
						}
					}
				}
				// nil gradients skip their part and leave the others right.
				cw := append([]float32(nil), dw...)
				LinearBackward(nil, cw, nil, dout, x, w, s.m, s.k, s.n)
				checkGrad(t, "dw alone", cw, bw, numGrad(w64, loss), gradTol)
			})
		}
	}
}

func TestLayerNormBackward(t *testing.T) {
	r := newRNG(12)
	for _, s := range []struct {
		rows, cols  int
		gamma, beta bool
	}{
		{1, 1, true, true}, {2, 5, true, true}, {4, 16, false, false}, {3, 7, true, false},
		{3, 300, true, true}, {9, 4, false, true},
	} {
		t.Run(fmt.Sprintf("%dx%d/g=%v/b=%v", s.rows, s.cols, s.gamma, s.beta), func(t *testing.T) {
			const eps = 1e-5
			x := randSlice(r, s.rows*s.cols, 2)
			for i := range x {
				x[i] += 0.5 // a non-zero mean exercises the centring
			}
			dout := randSlice(r, len(x), 1)
			var g, b []float32
			var g64, b64 []float64
			if s.gamma {
				g = randSlice(r, s.cols, 1)
				g64 = to64(g)
			}
			if s.beta {
				b = randSlice(r, s.cols, 1)
				b64 = to64(b)
			}
			x64 := to64(x)
			kern := make([]float32, len(x))
			LayerNorm(kern, x, g, b, s.rows, s.cols, eps)
			checkRef(t, "forward", layerNorm64(x64, g64, b64, s.rows, s.cols, eps), kern)
			loss := func() float64 { return dot64(dout, layerNorm64(x64, g64, b64, s.rows, s.cols, eps)) }

			dx, bx := prefilled(r, len(x))
			dg, bg := prefilled(r, s.cols)
			db, bb := prefilled(r, s.cols)
			LayerNormBackward(dx, dg, db, dout, x, g, s.rows, s.cols, eps)
			checkGrad(t, "dx", dx, bx, numGrad(x64, loss), gradTol)
			if s.gamma {
				checkGrad(t, "dgamma", dg, bg, numGrad(g64, loss), gradTol)
			}
			if s.beta {
				checkGrad(t, "dbeta", db, bb, numGrad(b64, loss), gradTol)
			}
		})
	}
}

func TestGELUBackward(t *testing.T) {
	r := newRNG(13)
	x := randSlice(r, 200, 5)
	x = append(x, 0, 1e-4, -1e-4, 3.9, 4.1, -4.1, 7, -7)
	dout := randSlice(r, len(x), 1)
	x64 := to64(x)
	kern := make([]float32, len(x))
	GELU(kern, x)
	checkRef(t, "forward", gelu64(x64), kern)
	// Elementwise: the numeric derivative of each element alone.
	want := make([]float64, len(x))
	for i := range x64 {
		f := func(v float64) float64 { return gelu64([]float64{v})[0] }
		want[i] = float64(dout[i]) * (f(x64[i]+fdStep) - f(x64[i]-fdStep)) / (2 * fdStep)
	}
	dx, bx := prefilled(r, len(x))
	GELUBackward(dx, dout, x)
	checkGrad(t, "dx", dx, bx, want, gradTol)
}

// TestGELUBackwardKernels compares the SIMD kernels (AVX2 and, where the CPU has it, AVX-512)
// with the float64 Go kernel on values across erf's table segments, the tails, zero and
// non-finite inputs, and lengths that leave partial vectors.
func TestGELUBackwardKernels(t *testing.T) {
	r := newRNG(15)
	x := randSlice(r, 1000, 6)
	x = append(x, 0, -0.0, 0.49, 0.51, 3.99, 4.01, -4.01, 9, -9, 30, -30,
		float32(math.Inf(1)), float32(math.Inf(-1)))
	dout := randSlice(r, len(x), 1)
	want := make([]float32, len(x))
	geluBackwardGo(want, dout, x)
	nan := float32(math.NaN())
	for _, level := range []int{1, simdLevel} {
		if level == 0 {
			continue
		}
		setSIMDLevel(level)
		for _, n := range []int{len(x), 7, 17, 1} {
			got := make([]float32, n)
			geluBackwardKernel(got, dout[:n], x[:n])
			for i := range n {
				if got[i] != got[i] && want[i] != want[i] {
					continue // ±Inf: ∞·φ(∞) = ∞·0, NaN in both
				}
				if d := math.Abs(float64(got[i] - want[i])); !(d <= 1e-6*math.Max(1, math.Abs(float64(want[i])))) {
					t.Errorf("level %d n %d: x %v: got %v, want %v", level, n, x[i], got[i], want[i])
				}
			}
		}
		got := []float32{0}
		geluBackwardKernel(got, []float32{1}, []float32{nan})
		if got[0] == got[0] {
			t.Errorf("level %d: NaN input gave gradient %v", level, got[0])
		}
	}
	setSIMDLevel(simdLevel)
}

// TestRowReductionKernels compares the SIMD kernels of colSums and LayerNormBackward with their
// float64 Go twins (column counts with and without a partial vector, γ present or not).
func TestRowReductionKernels(t *testing.T) {
	if simdLevel == 0 {
		t.Skip("no SIMD kernels in this build")
	}
	r := newRNG(16)
	for _, s := range []struct{ rows, cols int }{{3, 256}, {5, 7}, {40, 1027}, {1, 1}} {
		x, dout := randSlice(r, s.rows*s.cols, 3), randSlice(r, s.rows*s.cols, 1)
		for i := range x {
			x[i] += float32(i%5) * 0.5 // rows with a mean away from 0
		}
		got, want := make([]float64, s.cols), make([]float64, s.cols)
		colSumsKernel(got, x, s.rows, s.cols)
		colSumsGo(want, x, s.rows, s.cols)
		for j := range got {
			if math.Abs(got[j]-want[j]) > 1e-9*math.Max(1, math.Abs(want[j])) {
				t.Fatalf("colSums %dx%d: [%d] %v, want %v", s.rows, s.cols, j, got[j], want[j])
			}
		}
		for _, gamma := range [][]float32{nil, randSlice(r, s.cols, 2)} {
			dxG, dxW := randSlice(r, s.rows*s.cols, 1), make([]float32, s.rows*s.cols)
			copy(dxW, dxG)
			gG, bG := make([]float64, s.cols), make([]float64, s.cols)
			gW, bW := make([]float64, s.cols), make([]float64, s.cols)
			layerNormBackwardKernel(dxG, gG, bG, dout, x, gamma, s.rows, s.cols, 1e-5)
			layerNormBackwardGo(dxW, gW, bW, dout, x, gamma, s.rows, s.cols, 1e-5)
			checkClose(t, fmt.Sprintf("layernorm dx %dx%d gamma %v", s.rows, s.cols, gamma != nil), dxG, dxW, []float32{1e-6}, 1e-6)
			for j := range gG {
				if math.Abs(gG[j]-gW[j]) > 1e-9*math.Max(1, math.Abs(gW[j])) || math.Abs(bG[j]-bW[j]) > 1e-9*math.Max(1, math.Abs(bW[j])) {
					t.Fatalf("layernorm sums %dx%d: [%d] %v %v, want %v %v", s.rows, s.cols, j, gG[j], bG[j], gW[j], bW[j])
				}
			}
		}
	}
}

// TestLinearBackwardSplit checks dw on shapes large enough for the two-thread split, along
// dw's rows (N ≥ K) and along its columns (K > N), against the float64 product doutᵀ·x.
func TestLinearBackwardSplit(t *testing.T) {
	r := newRNG(17)
	for _, s := range []struct{ m, k, n int }{{128, 300, 16}, {128, 16, 300}} {
		x, dout := randSlice(r, s.m*s.k, 1), randSlice(r, s.m*s.n, 1)
		want := make([]float32, s.n*s.k)
		for i := range s.n {
			for j := range s.k {
				var acc float64
				for p := range s.m {
					acc += float64(dout[p*s.n+i]) * float64(x[p*s.k+j])
				}
				want[i*s.k+j] = float32(acc)
			}
		}
		for _, th := range []int{1, 2} {
			got := make([]float32, s.n*s.k)
			withThreads(t, th, 1, func() { LinearBackward(nil, got, nil, dout, x, nil, s.m, s.k, s.n) })
			checkClose(t, fmt.Sprintf("%dx%dx%d threads %d", s.m, s.k, s.n, th), got, want, []float32{1e-4}, 1e-5)
		}
	}
}

func TestReLUBackward(t *testing.T) {
	x := []float32{-2, -0.5, 0, 0.25, 3, float32(math.NaN()), float32(math.Inf(1))}
	dout := []float32{1, 2, 3, 4, 5, 6, 7}
	dx := []float32{10, 10, 10, 10, 10, 10, 10}
	ReLUBackward(dx, dout, x)
	want := []float32{10, 10, 10, 14, 15, 10, 17}
	checkClose(t, "dx", dx, want, []float32{0}, 0)
}

func TestConv1dBackward(t *testing.T) {
	r := newRNG(14)
	for _, s := range []struct{ tin, cin, cout, kw, stride, pad int }{
		{12, 3, 4, 3, 1, 1}, {12, 3, 4, 3, 2, 1}, {7, 2, 3, 3, 2, 1}, {5, 1, 2, 1, 1, 0},
		{9, 2, 2, 5, 3, 2}, {4, 2, 3, 3, 1, 0},
	} {
		t.Run(fmt.Sprintf("%+v", s), func(t *testing.T) {
			tout := Conv1dOut(s.tin, s.kw, s.stride, s.pad)
			x, w, b := randSlice(r, s.tin*s.cin, 1), randSlice(r, s.cout*s.cin*s.kw, 1), randSlice(r, s.cout, 1)
			dout := randSlice(r, tout*s.cout, 1)
			x64, w64, b64 := to64(x), to64(w), to64(b)
			kern := make([]float32, tout*s.cout)
			Conv1d(kern, x, w, b, s.tin, s.cin, s.cout, s.kw, s.stride, s.pad)
			checkRef(t, "forward", conv64(x64, w64, b64, s.tin, s.cin, s.cout, s.kw, s.stride, s.pad), kern)
			loss := func() float64 {
				return dot64(dout, conv64(x64, w64, b64, s.tin, s.cin, s.cout, s.kw, s.stride, s.pad))
			}
			dx, bx := prefilled(r, len(x))
			dw, bw := prefilled(r, len(w))
			db, bb := prefilled(r, len(b))
			Conv1dBackward(dx, dw, db, dout, x, w, s.tin, s.cin, s.cout, s.kw, s.stride, s.pad)
			checkGrad(t, "dx", dx, bx, numGrad(x64, loss), gradTol)
			checkGrad(t, "dw", dw, bw, numGrad(w64, loss), gradTol)
			checkGrad(t, "db", db, bb, numGrad(b64, loss), gradTol)
		})
	}
}

func TestAttentionBackward(t *testing.T) {
	r := newRNG(15)
	for _, s := range []struct {
		tq, tk, heads, d int
		causal           bool
		block            int // attnBackScoreFloats override (0: default) to force row blocks
	}{
		{1, 1, 1, 1, false, 0}, {3, 3, 1, 4, false, 0}, {4, 4, 2, 3, true, 0},
		{2, 5, 2, 3, true, 0}, {5, 7, 3, 2, false, 0}, {6, 6, 2, 2, true, 12},
		{5, 8, 2, 3, true, 16}, {7, 4, 1, 3, false, 8},
	} {
		t.Run(fmt.Sprintf("%+v", s), func(t *testing.T) {
			if s.block > 0 {
				old := attnBackScoreFloats
				attnBackScoreFloats = s.block
				defer func() { attnBackScoreFloats = old }()
			}
			w := s.heads * s.d
			q, k, v := randSlice(r, s.tq*w, 1.5), randSlice(r, s.tk*w, 1.5), randSlice(r, s.tk*w, 1)
			dout := randSlice(r, s.tq*w, 1)
			q64, k64, v64 := to64(q), to64(k), to64(v)
			kern := make([]float32, s.tq*w)
			Attention(kern, q, k, v, s.tq, s.tk, s.heads, s.d, s.causal)
			checkRef(t, "forward", attention64(q64, k64, v64, s.tq, s.tk, s.heads, s.d, s.causal), kern)
			loss := func() float64 {
				return dot64(dout, attention64(q64, k64, v64, s.tq, s.tk, s.heads, s.d, s.causal))
			}
			wq, wk, wv := numGrad(q64, loss), numGrad(k64, loss), numGrad(v64, loss)
			for _, th := range []int{1, 2} {
				dq, bq := prefilled(r, len(q))
				dk, bk := prefilled(r, len(k))
				dv, bv := prefilled(r, len(v))
				withThreads(t, th, 1, func() {
					AttentionBackward(dq, dk, dv, dout, q, k, v, s.tq, s.tk, s.heads, s.d, s.causal)
				})
				checkGrad(t, fmt.Sprint("dq threads ", th), dq, bq, wq, gradTol)
				checkGrad(t, fmt.Sprint("dk threads ", th), dk, bk, wk, gradTol)
				checkGrad(t, fmt.Sprint("dv threads ", th), dv, bv, wv, gradTol)
			}
			dv, bv := prefilled(r, len(v))
			AttentionBackward(nil, nil, dv, dout, q, k, v, s.tq, s.tk, s.heads, s.d, s.causal)
			checkGrad(t, "dv alone", dv, bv, wv, gradTol)
		})
	}
}

func TestEmbeddingBackward(t *testing.T) {
	dout := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	dtable := make([]float32, 3*2)
	EmbeddingBackward(dtable, dout, []int{2, 0, 2, 1}, 2)
	checkClose(t, "dtable", dtable, []float32{3, 4, 7, 8, 1 + 5, 2 + 6}, []float32{0}, 0)
}

func TestTransposeBackward(t *testing.T) {
	r := newRNG(16)
	for _, s := range []struct{ rows, cols int }{{1, 1}, {3, 5}, {40, 33}} {
		x := randSlice(r, s.rows*s.cols, 1)
		dout := randSlice(r, len(x), 1)
		din, base := prefilled(r, len(x))
		TransposeBackward(din, dout, s.rows, s.cols)
		want := make([]float32, len(x))
		Transpose(want, dout, s.cols, s.rows) // dout is [C, R]; its transpose is [R, C]
		for i := range want {
			want[i] += base[i]
		}
		checkClose(t, fmt.Sprint(s), din, want, []float32{0}, 0)
	}
}

func TestLogSoftmaxBackward(t *testing.T) {
	r := newRNG(17)
	const rows, cols = 3, 7
	x := randSlice(r, rows*cols, 4)
	dout := randSlice(r, len(x), 1)
	y := make([]float32, len(x))
	for i := 0; i < rows; i++ {
		LogSoftmax(y[i*cols:(i+1)*cols], x[i*cols:(i+1)*cols])
	}
	x64 := to64(x)
	checkRef(t, "forward", logSoftmax64(x64, rows, cols), y)
	dx, base := prefilled(r, len(x))
	LogSoftmaxBackward(dx, dout, y, rows, cols)
	checkGrad(t, "dx", dx, base, numGrad(x64, func() float64 { return dot64(dout, logSoftmax64(x64, rows, cols)) }), gradTol)
}

func TestCrossEntropy(t *testing.T) {
	r := newRNG(18)
	const ignore = -100
	for _, s := range []struct {
		name    string
		targets []int
		vocab   int
		eps     float32
		scale   float32
	}{
		{"plain", []int{0, 3, 6, 2}, 7, 0, 3},
		{"smoothed", []int{0, 3, 6, 2}, 7, 0.1, 3},
		{"ignored rows", []int{5, ignore, 1, ignore, 4}, 6, 0.2, 3},
		{"confident", []int{1, 2}, 5, 0, 40}, // large logits: the loss must not cancel to 0
		{"one class", []int{0, 0}, 1, 0.1, 1},
		{"big vocab", []int{17, 300, 511}, 512, 0.1, 5},
		{"all ignored", []int{ignore, ignore}, 4, 0.1, 1},
	} {
		t.Run(s.name, func(t *testing.T) {
			rows := len(s.targets)
			logits := randSlice(r, rows*s.vocab, s.scale)
			l64 := to64(logits)
			want := ce64(l64, s.targets, rows, s.vocab, float64(s.eps), ignore)
			wantN := 0
			for _, y := range s.targets {
				if y != ignore {
					wantN++
				}
			}
			dl := randSlice(r, len(logits), 9) // stale contents must be overwritten
			for _, th := range []int{1, 2} {
				var got float64
				var n int
				withThreads(t, th, 1, func() {
					got, n = CrossEntropy(logits, s.targets, rows, s.vocab, s.eps, ignore, dl)
				})
				if n != wantN || math.Abs(got-want) > 1e-6*math.Max(1, math.Abs(want)) {
					t.Fatalf("threads %d: loss %.12g count %d, want %.12g count %d", th, got, n, want, wantN)
				}
				if nd, _ := CrossEntropy(logits, s.targets, rows, s.vocab, s.eps, ignore, nil); nd != got {
					t.Fatalf("loss without gradient %.12g, with %.12g", nd, got)
				}
				checkGrad(t, fmt.Sprint("dlogits threads ", th), dl, nil, numGrad(l64, func() float64 {
					return ce64(l64, s.targets, rows, s.vocab, float64(s.eps), ignore)
				}), gradTol)
			}
		})
	}
	t.Run("confident loss", func(t *testing.T) {
		// log(1 + e^-30) ≈ 9.4e-14: recovered without cancellation.
		loss, _ := CrossEntropy([]float32{30, 0}, []int{0}, 1, 2, 0, ignore, nil)
		if want := math.Log1p(math.Exp(-30)); math.Abs(loss-want) > 1e-3*want {
			t.Fatalf("loss %.6g, want %.6g", loss, want)
		}
	})
}

func TestCTCLoss(t *testing.T) {
	r := newRNG(19)
	const blank = 0
	for _, s := range []struct {
		T, V   int
		labels []int
	}{
		{1, 2, nil}, {1, 2, []int{1}}, {4, 3, []int{1, 2}}, {4, 3, []int{1, 1}}, {6, 4, []int{1, 2, 1}},
		{6, 4, []int{3, 3}}, {6, 4, nil}, {5, 4, []int{1, 2, 3}}, {5, 3, []int{2, 2, 1}},
		{3, 3, []int{1, 1}}, // exactly feasible: 1, blank, 1
	} {
		t.Run(fmt.Sprintf("T%d/V%d/%v", s.T, s.V, s.labels), func(t *testing.T) {
			logits := randSlice(r, s.T*s.V, 2)
			l64 := to64(logits)
			lp := make([]float32, len(logits))
			for i := 0; i < s.T; i++ {
				LogSoftmax(lp[i*s.V:(i+1)*s.V], logits[i*s.V:(i+1)*s.V])
			}
			want := ctcBrute(logSoftmax64(l64, s.T, s.V), s.T, s.V, s.labels, blank)
			g := randSlice(r, len(lp), 9)
			got := CTCLoss(lp, s.T, s.V, s.labels, blank, g)
			if math.Abs(got-want) > 1e-5*math.Max(1, want) {
				t.Fatalf("loss %.12g, brute force %.12g", got, want)
			}
			if nd := CTCLoss(lp, s.T, s.V, s.labels, blank, nil); nd != got {
				t.Fatalf("loss without gradient %.12g, with %.12g", nd, got)
			}
			checkGrad(t, "dlogits", g, nil, numGrad(l64, func() float64 {
				return ctcBrute(logSoftmax64(l64, s.T, s.V), s.T, s.V, s.labels, blank)
			}), gradTol)
		})
	}
	t.Run("infeasible", func(t *testing.T) {
		lp := make([]float32, 2*3)
		for i := range lp {
			lp[i] = float32(-math.Log(3))
		}
		g := randSlice(r, len(lp), 1)
		if loss := CTCLoss(lp, 2, 3, []int{1, 1}, blank, g); !math.IsInf(loss, 1) {
			t.Fatalf("loss %v, want +Inf", loss)
		}
		checkClose(t, "gradient", g, make([]float32, len(g)), []float32{0}, 0)
	})
	t.Run("long", func(t *testing.T) {
		// 200 frames: the probabilities underflow float64 outside log space.
		const T, V = 200, 6
		logits := randSlice(r, T*V, 3)
		lp := make([]float32, len(logits))
		for i := 0; i < T; i++ {
			LogSoftmax(lp[i*V:(i+1)*V], logits[i*V:(i+1)*V])
		}
		labels := make([]int, 60)
		for i := range labels {
			labels[i] = 1 + i%(V-1)
		}
		g := make([]float32, len(lp))
		loss := CTCLoss(lp, T, V, labels, blank, g)
		if math.IsInf(loss, 0) || math.IsNaN(loss) || loss <= 0 {
			t.Fatalf("loss %v", loss)
		}
		// Each row of softmax − γ sums to 0 (both are distributions over the classes).
		for i := 0; i < T; i++ {
			var s float64
			for _, v := range g[i*V : (i+1)*V] {
				s += float64(v)
			}
			if math.Abs(s) > 1e-5 {
				t.Fatalf("frame %d: gradient sums to %g", i, s)
			}
		}
	})
}
