package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
)

// selectRef is the top-k selection rule spelled out: a stable sort of the indices by
// descending value (equal values keep ascending index order), then the first k.
func selectRef(row []float32, k int) []int {
	idx := make([]int, len(row))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return row[idx[a]] > row[idx[b]] })
	return idx[:k]
}

// topKSoftmax64 is the float64 forward of TopKSoftmax for a fixed selection sel[r] per row.
func topKSoftmax64(z []float64, sel [][]int, rows, e int) []float64 {
	out := make([]float64, rows*e)
	for r := range rows {
		mx := math.Inf(-1)
		for _, i := range sel[r] {
			mx = math.Max(mx, z[r*e+i])
		}
		var s float64
		for _, i := range sel[r] {
			s += math.Exp(z[r*e+i] - mx)
		}
		for _, i := range sel[r] {
			out[r*e+i] = math.Exp(z[r*e+i]-mx) / s
		}
	}
	return out
}

// loadBalance64 is the float64 forward of LoadBalance for fixed assignment fractions frac.
func loadBalance64(z, frac []float64, rows, e int) float64 {
	if rows == 0 {
		return 0
	}
	p := make([]float64, e)
	for r := range rows {
		row := z[r*e : (r+1)*e]
		mx := slices.Max(row)
		var s float64
		for _, v := range row {
			s += math.Exp(v - mx)
		}
		for i, v := range row {
			p[i] += math.Exp(v-mx) / s / float64(rows)
		}
	}
	var loss float64
	for i := range p {
		loss += frac[i] * p[i]
	}
	return float64(e) * loss
}

// fracRef counts the top-k assignments per expert: f_i = count_i / (rows·k).
func fracRef(logits []float32, rows, e, k int) []float64 {
	f := make([]float64, e)
	for r := range rows {
		for _, i := range selectRef(logits[r*e:(r+1)*e], k) {
			f[i] += 1 / float64(rows*k)
		}
	}
	return f
}

// tiedSlice draws values from a coarse grid, so rows hold many equal values.
func tiedSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.IntN(5)) * 0.5
	}
	return s
}

// TestTopKIndices checks the selection order on hand cases: descending value, ties to the
// lower index, NaN last.
func TestTopKIndices(t *testing.T) {
	nan := float32(math.NaN())
	for _, tc := range []struct {
		name string
		row  []float32
		k    int
		want []int32
	}{
		{"one", []float32{3}, 1, []int32{0}},
		{"k=1", []float32{1, 5, 2, 5}, 1, []int32{1}},
		{"ties", []float32{1, 5, 2, 5}, 3, []int32{1, 3, 2}},
		{"all equal", []float32{0, 0, 0, 0}, 2, []int32{0, 1}},
		{"k=e", []float32{-1, 2, 0, 2}, 4, []int32{1, 3, 2, 0}},
		{"NaN last", []float32{nan, -3, nan, 1}, 3, []int32{3, 1, 0}},
		{"-Inf", []float32{float32(math.Inf(-1)), -1e30}, 2, []int32{1, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make([]int32, tc.k+1)
			got[tc.k] = -7
			TopKIndices(got, tc.row, tc.k)
			if !slices.Equal(got[:tc.k], tc.want) || got[tc.k] != -7 {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	r := newRNG(31)
	for _, e := range []int{1, 7, 33} {
		row := tiedSlice(r, e)
		for k := 1; k <= e; k++ {
			got := make([]int32, k)
			TopKIndices(got, row, k)
			for j, i := range selectRef(row, k) {
				if got[j] != int32(i) {
					t.Fatalf("e=%d k=%d row %v: got %v, want %v", e, k, row, got, selectRef(row, k))
				}
			}
		}
	}
}

// TestTopKSoftmax checks the kernel on hand cases, against the naive reference on random and
// heavily tied inputs (relative 3e-7: the kernel rounds each weight twice, the reference
// once), against Softmax for k = E, in place, and against TopKSoftmaxIDs (bit for bit).
func TestTopKSoftmax(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	for _, tc := range []struct {
		name         string
		rows, e, k   int
		logits, want []float32
	}{
		{"e=1", 2, 1, 1, []float32{-4, 9}, []float32{1, 1}},
		{"k=1 ties", 1, 4, 1, []float32{1, 2, 2, 0}, []float32{0, 1, 0, 0}},
		{"k=2 ties", 1, 4, 2, []float32{1, 2, 2, 0}, []float32{0, 0.5, 0.5, 0}},
		{"all equal", 1, 4, 3, []float32{7, 7, 7, 7}, []float32{1. / 3, 1. / 3, 1. / 3, 0}},
		{"k=e", 1, 2, 2, []float32{0, float32(math.Log(3))}, []float32{0.25, 0.75}},
		{"stable", 1, 3, 2, []float32{1000, 999, -1000}, []float32{float32(1 / (1 + math.Exp(-1))), float32(1 / (1 + math.Exp(1))), 0}},
		{"NaN row", 2, 2, 1, []float32{nan, 1, 0, 1}, []float32{nan, nan, 0, 1}},
		{"Inf row", 1, 3, 1, []float32{inf, 1, 0}, []float32{nan, nan, nan}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make([]float32, len(tc.want))
			TopKSoftmax(got, tc.logits, tc.rows, tc.e, tc.k)
			checkClose(t, "kernel", got, tc.want, []float32{1e-7}, 3e-7)
			TopKSoftmaxNaive(got, tc.logits, tc.rows, tc.e, tc.k)
			checkClose(t, "naive", got, tc.want, []float32{1e-7}, 3e-7)
		})
	}
	r := newRNG(32)
	for _, s := range [][3]int{{1, 1, 1}, {1, 5, 2}, {7, 8, 1}, {7, 8, 8}, {9, 6, 3}, {3, 40, 20}, {5000, 8, 2}} {
		rows, e, k := s[0], s[1], s[2]
		for _, tied := range []bool{false, true} {
			label := fmt.Sprintf("%v tied=%v", s, tied)
			logits := randSlice(r, rows*e, 4)
			if tied {
				logits = tiedSlice(r, rows*e)
			}
			got, want := make([]float32, rows*e), make([]float32, rows*e)
			TopKSoftmax(got, logits, rows, e, k)
			TopKSoftmaxNaive(want, logits, rows, e, k)
			checkClose(t, label, got, want, []float32{1e-30}, 3e-7)

			inPlace := append([]float32(nil), logits...)
			TopKSoftmax(inPlace, inPlace, rows, e, k)
			checkClose(t, label+" in place", inPlace, got, []float32{0}, 0)

			if k == e {
				soft := append([]float32(nil), logits...)
				Softmax(soft, rows, e)
				checkClose(t, label+" vs Softmax", got, soft, []float32{1e-30}, 6e-7)
			}

			// SoftmaxAt over the reference selection gives TopKSoftmax's nonzeros bit for bit
			// (what a sparse execution of the gate's top-k weighs its experts by).
			w := make([]float32, k)
			for row := range rows {
				sel := selectRef(logits[row*e:(row+1)*e], k)
				sort.Ints(sel)
				ids := make([]int32, k)
				for j, i := range sel {
					ids[j] = int32(i)
				}
				SoftmaxAt(w, logits[row*e:(row+1)*e], ids)
				for j, i := range sel {
					if w[j] != got[row*e+i] && !(w[j] != w[j] && got[row*e+i] != got[row*e+i]) {
						t.Fatalf("%s row %d: SoftmaxAt(%v) = %v, want the weights of %v", label, row, ids, w, got[row*e:(row+1)*e])
					}
				}
			}
		}
	}
}

// TestTopKSoftmaxBackward checks the twin against central differences of the float64
// forward with the selection held fixed, into prefilled buffers.
func TestTopKSoftmaxBackward(t *testing.T) {
	r := newRNG(33)
	for _, s := range [][3]int{{1, 1, 1}, {3, 5, 1}, {4, 6, 3}, {2, 5, 5}} {
		rows, e, k := s[0], s[1], s[2]
		logits, dout := randSlice(r, rows*e, 2), randSlice(r, rows*e, 1)
		sel := make([][]int, rows)
		for row := range rows {
			sel[row] = selectRef(logits[row*e:(row+1)*e], k)
		}
		z := to64(logits)
		out := make([]float32, rows*e)
		TopKSoftmax(out, logits, rows, e, k)
		checkRef(t, "reference", topKSoftmax64(z, sel, rows, e), out)
		loss := func() float64 { return dot64(dout, topKSoftmax64(z, sel, rows, e)) }
		dl, base := prefilled(r, rows*e)
		TopKSoftmaxBackward(dl, dout, out, rows, e)
		checkGrad(t, fmt.Sprintf("%v dlogits", s), dl, base, numGrad(z, loss), gradTol)
		TopKSoftmaxBackward(nil, dout, out, rows, e) // must not panic
	}
}

// TestRowGroupScale checks the kernel against hand-computed outputs and against the naive
// reference (bit for bit: one product each), also in place.
func TestRowGroupScale(t *testing.T) {
	x := []float32{0, 1, 2, 3, 4, 5, 6, 7}
	for _, tc := range []struct {
		name               string
		rows, cols, groups int
		g, want            []float32
	}{
		{"blocks of 2", 2, 4, 2, []float32{1, 0, 0.5, -1}, []float32{0, 1, 0, 0, 2, 2.5, -6, -7}},
		{"one group", 2, 4, 1, []float32{2, -1}, []float32{0, 2, 4, 6, -4, -5, -6, -7}},
		{"per column", 1, 8, 8, []float32{1, 1, 0, 0, 1, 1, 0, 2}, []float32{0, 1, 0, 0, 4, 5, 0, 14}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make([]float32, len(tc.want))
			RowGroupScale(got, x, tc.g, tc.rows, tc.cols, tc.groups)
			checkClose(t, "kernel", got, tc.want, []float32{0}, 0)
			RowGroupScaleNaive(got, x, tc.g, tc.rows, tc.cols, tc.groups)
			checkClose(t, "naive", got, tc.want, []float32{0}, 0)
		})
	}
	r := newRNG(34)
	for _, s := range [][3]int{{1, 1, 1}, {7, 12, 3}, {1, 6, 6}, {800, 96, 8}} {
		rows, cols, groups := s[0], s[1], s[2]
		x, g := randSlice(r, rows*cols, 1), randSlice(r, rows*groups, 1)
		got, want := make([]float32, rows*cols), make([]float32, rows*cols)
		RowGroupScale(got, x, g, rows, cols, groups)
		RowGroupScaleNaive(want, x, g, rows, cols, groups)
		checkClose(t, fmt.Sprintf("random %v", s), got, want, []float32{0}, 0)
		RowGroupScale(x, x, g, rows, cols, groups)
		checkClose(t, fmt.Sprintf("in place %v", s), x, want, []float32{0}, 0)
	}
}

// TestRowGroupScaleBackward checks the twin against central differences of a float64
// forward, into prefilled buffers, each buffer alone and none.
func TestRowGroupScaleBackward(t *testing.T) {
	r := newRNG(35)
	for _, s := range [][3]int{{3, 6, 1}, {4, 6, 3}, {2, 5, 5}, {1, 8, 2}} {
		rows, cols, groups := s[0], s[1], s[2]
		size := cols / groups
		x, g := randSlice(r, rows*cols, 1), randSlice(r, rows*groups, 1)
		dout := randSlice(r, rows*cols, 1)
		x64, g64 := to64(x), to64(g)
		fwd := func() []float64 {
			o := make([]float64, rows*cols)
			for i := range o {
				o[i] = x64[i] * g64[(i/cols)*groups+(i%cols)/size]
			}
			return o
		}
		out := make([]float32, rows*cols)
		RowGroupScale(out, x, g, rows, cols, groups)
		checkRef(t, "reference", fwd(), out)
		loss := func() float64 { return dot64(dout, fwd()) }
		label := fmt.Sprintf("%v", s)
		wantX, wantG := numGrad(x64, loss), numGrad(g64, loss)
		dx, bx := prefilled(r, len(x))
		dg, bg := prefilled(r, len(g))
		RowGroupScaleBackward(dx, dg, dout, x, g, rows, cols, groups)
		checkGrad(t, label+" dx", dx, bx, wantX, gradTol)
		checkGrad(t, label+" dg", dg, bg, wantG, gradTol)
		dx, bx = prefilled(r, len(x))
		RowGroupScaleBackward(dx, nil, dout, x, g, rows, cols, groups)
		checkGrad(t, label+" dx alone", dx, bx, wantX, gradTol)
		dg, bg = prefilled(r, len(g))
		RowGroupScaleBackward(nil, dg, dout, x, g, rows, cols, groups)
		checkGrad(t, label+" dg alone", dg, bg, wantG, gradTol)
		RowGroupScaleBackward(nil, nil, dout, x, g, rows, cols, groups) // must not panic
	}
}

// TestLoadBalance checks the loss and assignment fractions against the float64 reference
// (random and tied logits, k = 1 … E), the twin against central differences with f held
// fixed, the values of uniform and collapsed routing, and zero rows.
func TestLoadBalance(t *testing.T) {
	r := newRNG(36)
	for _, s := range [][3]int{{1, 1, 1}, {1, 4, 2}, {6, 4, 1}, {5, 3, 3}, {8, 6, 2}, {40, 8, 2}} {
		rows, e, k := s[0], s[1], s[2]
		for _, tied := range []bool{false, true} {
			label := fmt.Sprintf("%v tied=%v", s, tied)
			logits := randSlice(r, rows*e, 2)
			if tied {
				logits = tiedSlice(r, rows*e)
			}
			frac64 := fracRef(logits, rows, e, k)
			z := to64(logits)
			probs, frac := make([]float32, rows*e), make([]float32, e)
			loss := LoadBalance(probs, frac, logits, rows, e, k)
			want := loadBalance64(z, frac64, rows, e)
			if math.Abs(loss-want) > 1e-6*want {
				t.Fatalf("%s: loss %.9g, want %.9g", label, loss, want)
			}
			checkRef(t, label+" frac", frac64, frac)
			soft := append([]float32(nil), logits...)
			Softmax(soft, rows, e)
			checkClose(t, label+" probs", probs, soft, []float32{0}, 0)

			dl, base := prefilled(r, rows*e)
			LoadBalanceBackward(dl, probs, frac, rows, e, 0.7)
			num := numGrad(z, func() float64 { return 0.7 * loadBalance64(z, frac64, rows, e) })
			checkGrad(t, label+" dlogits", dl, base, num, gradTol)
			LoadBalanceBackward(nil, probs, frac, rows, e, 0.7) // must not panic
		}
	}

	value := func(logits []float32, rows, e, k int) float64 {
		return LoadBalance(make([]float32, rows*e), make([]float32, e), logits, rows, e, k)
	}
	permuted := make([]float32, 8*4) // rows 2i and 2i+1 peak at expert i
	for row := range 8 {
		permuted[row*4+row/2] = 3
	}
	collapsed := make([]float32, 6*4) // every row peaks at expert 2
	for row := range 6 {
		collapsed[row*4+2] = 20
	}
	for _, tc := range []struct {
		name       string
		logits     []float32
		rows, e, k int
		want, tol  float64
	}{
		{"equal logits k=1", make([]float32, 5*4), 5, 4, 1, 1, 1e-6},
		{"equal logits k=3", make([]float32, 5*4), 5, 4, 3, 1, 1e-6},
		{"one expert", []float32{1.5, -2}, 2, 1, 1, 1, 1e-6},
		{"permuted peaks", permuted, 8, 4, 1, 1, 1e-6},
		{"collapsed k=1", collapsed, 6, 4, 1, 4, 4 * 1e-7},
	} {
		if got := value(tc.logits, tc.rows, tc.e, tc.k); math.Abs(got-tc.want) > tc.tol {
			t.Errorf("%s: loss %.9g, want %.9g", tc.name, got, tc.want)
		}
	}

	frac := []float32{5, 5}
	if got := LoadBalance(nil, frac, nil, 0, 2, 1); got != 0 || frac[0] != 0 || frac[1] != 0 {
		t.Fatalf("zero rows: loss %v frac %v", got, frac)
	}
	LoadBalanceBackward([]float32{}, nil, frac, 0, 2, 1) // must not panic
}

// TestMoEGateParallel runs the row-parallel kernels and twins at sizes that split into
// several chunks and checks them against single-threaded runs: rows are independent, so the
// results must agree bit for bit (the finite-difference tests above run one chunk).
func TestMoEGateParallel(t *testing.T) {
	const rows, e, k, hidden = 9000, 8, 2, 8
	r := newRNG(38)
	logits, dout := randSlice(r, rows*e, 3), randSlice(r, rows*e, 1)
	x, dh := randSlice(r, rows*e*hidden, 1), randSlice(r, rows*e*hidden, 1)
	run := func() [][]float32 {
		out := make([]float32, rows*e)
		TopKSoftmax(out, logits, rows, e, k)
		dl := make([]float32, rows*e)
		TopKSoftmaxBackward(dl, dout, out, rows, e)
		h, dx, dg := make([]float32, len(x)), make([]float32, len(x)), make([]float32, rows*e)
		RowGroupScale(h, x, out, rows, e*hidden, e)
		RowGroupScaleBackward(dx, dg, dh, x, out, rows, e*hidden, e)
		probs, frac, dlb := make([]float32, rows*e), make([]float32, e), make([]float32, rows*e)
		loss := LoadBalance(probs, frac, logits, rows, e, k)
		LoadBalanceBackward(dlb, probs, frac, rows, e, 1)
		return [][]float32{out, dl, h, dx, dg, probs, frac, dlb, {float32(loss)}}
	}
	var one, many [][]float32
	withThreads(t, 1, 1, func() { one = run() })
	withThreads(t, 4, 1, func() { many = run() })
	for i := range one {
		checkClose(t, fmt.Sprintf("result %d", i), many[i], one[i], []float32{0}, 0)
	}
}

// TestTapeMoE runs a tiny dense mixture-of-experts layer on a tape — a router (Linear →
// TopKSoftmax), two experts' hidden layers side by side (Linear), RowGroupScale by the gates,
// the experts' output projection (Linear) — plus the load-balancing loss on the router logits,
// and checks every input's gradient against finite differences of the whole graph. The inputs
// are drawn until every row's k-th and (k+1)-th logits are 0.15 apart, so the finite
// difference steps cannot change the selection. It also checks zero rows record nothing.
func TestTapeMoE(t *testing.T) {
	const e, k, hidden = 3, 2, 2
	r := newRNG(37)
	var x, wr, w1, w2 *T
	for {
		x = FromData(randSlice(r, 2*2*4, 1), 2, 2, 4) // [B=2, T=2, D=4]: 4 tokens
		wr = FromData(randSlice(r, e*4, 1), e, 4)
		logits := make([]float32, 4*e)
		Linear(logits, x.Data, wr.Data, nil, 4, 4, e)
		ok := true
		for row := range 4 {
			z := slices.Clone(logits[row*e : (row+1)*e])
			slices.Sort(z)
			ok = ok && z[e-k]-z[e-k-1] > 0.15
		}
		if ok {
			break
		}
	}
	w1 = FromData(randSlice(r, e*hidden*4, 1), e*hidden, 4)
	w2 = FromData(randSlice(r, 3*e*hidden, 1), 3, e*hidden)
	seed := randSlice(r, 2*2*3, 1)
	const lbWeight = 0.3
	build := func(c *Ctx) (*T, *T) {
		logits := c.Linear(x, wr, nil)
		gates := c.TopKSoftmax(logits, k)
		h := c.RowGroupScale(c.Linear(x, w1, nil), gates)
		return c.Linear(h, w2, nil), c.LoadBalanceLoss(logits, k)
	}
	loss := func() float64 {
		y, lb := build(NewCtx())
		return dot64(seed, to64(y.Data)) + lbWeight*float64(lb.Data[0])
	}
	c := NewTrainCtx()
	tp := c.Tape()
	params := []*T{x, wr, w1, w2}
	tp.Watch(params...)
	y, lb := build(c)
	if !SameShape(y.Shape, []int{2, 2, 3}) || !SameShape(lb.Shape, []int{1}) {
		t.Fatalf("shapes: y %v, loss %v", y.Shape, lb.Shape)
	}
	tp.Seed(y, seed)
	tp.Seed(lb, []float32{lbWeight})
	tp.Backward()
	grads := make([][]float32, len(params))
	for i, p := range params {
		grads[i] = tp.Grad(p).Data
	}
	checkTapeGrads(t, "moe", params, grads, loss)

	c2 := NewTrainCtx()
	empty := FromData(nil, 0, e)
	c2.Tape().Watch(empty)
	if v := c2.LoadBalanceLoss(empty, 1); v.Data[0] != 0 || c2.Tape().Len() != 0 {
		t.Fatalf("zero rows: loss %v, %d steps recorded", v.Data, c2.Tape().Len())
	}
}

// TestMoEGatePanics checks that bad k and mismatched shapes panic with a message naming the
// op.
func TestMoEGatePanics(t *testing.T) {
	c := NewCtx()
	z := FromData(make([]float32, 6), 2, 3)
	for _, tc := range []struct {
		name, msg string
		f         func()
	}{
		{"top-k k=0", "top-k softmax keeps k = 0", func() { c.TopKSoftmax(z, 0) }},
		{"top-k k>e", "top-k softmax keeps k = 4", func() { c.TopKSoftmax(z, 4) }},
		{"indices", "top-k indices keeps k = 0", func() { TopKIndices(make([]int32, 1), z.Data, 0) }},
		{"load balance", "load balance keeps k = 5", func() { c.LoadBalanceLoss(z, 5) }},
		{"rows differ", "row group scale of [2 3] by gates [3 1]", func() {
			c.RowGroupScale(z, FromData(make([]float32, 3), 3, 1))
		}},
		{"groups do not divide", "row group scale of [2 3] by gates [2 2]", func() {
			c.RowGroupScale(z, FromData(make([]float32, 4), 2, 2))
		}},
		{"kernel groups", "row group scale of 3 columns in 2 groups", func() {
			RowGroupScale(z.Data, z.Data, make([]float32, 4), 2, 3, 2)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if e := recover(); e == nil || !strings.Contains(fmt.Sprint(e), tc.msg) {
					t.Fatalf("recovered %v, want a panic containing %q", e, tc.msg)
				}
			}()
			tc.f()
		})
	}
}

// TestTopKSet checks TopKSet against TopKIndices sorted by index: hand cases with ties, NaN,
// signed zeros and infinities, and every k on random and heavily tied rows of many lengths.
func TestTopKSet(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	negZero := float32(math.Copysign(0, -1))
	check := func(row []float32, k int) {
		t.Helper()
		want := make([]int32, k)
		TopKIndices(want, row, k)
		slices.Sort(want)
		got := make([]int32, k+1)
		got[k] = -7
		TopKSet(got, row, k, make([]uint64, 2*len(row)))
		if !slices.Equal(got[:k], want) || got[k] != -7 {
			t.Fatalf("row %v k=%d: got %v, want %v", row, k, got[:k+1], want)
		}
	}
	for _, row := range [][]float32{
		{3}, {1, 5, 2, 5}, {0, 0, 0, 0}, {nan, -3, nan, 1}, {-inf, -1e30, nan, inf},
		{negZero, 0, negZero, 0, -1, 1}, {nan, nan, nan}, {inf, inf, -inf, -inf},
	} {
		for k := 1; k <= len(row); k++ {
			check(row, k)
		}
	}
	r := newRNG(32)
	for _, e := range []int{2, 7, 16, 33, 64, 100, 256} {
		for range 20 {
			rows := [][]float32{tiedSlice(r, e), randSlice(r, e, 1)}
			rows[0][r.IntN(e)] = nan
			for _, row := range rows {
				for k := 1; k <= e; k++ {
					check(row, k)
				}
			}
		}
	}
}

// TestTopKSets: the row-parallel selection equals TopKSet row by row, on more rows than one
// thread's share.
func TestTopKSets(t *testing.T) {
	r := newRNG(34)
	const rows, e, k = 1000, 64, 16
	x := tiedSlice(r, rows*e)
	got := make([]int32, rows*k)
	TopKSets(got, x, rows, e, k)
	want := make([]int32, k)
	for i := range rows {
		TopKSet(want, x[i*e:(i+1)*e], k, make([]uint64, 2*e))
		if !slices.Equal(got[i*k:(i+1)*k], want) {
			t.Fatalf("row %d: %v, want %v", i, got[i*k:(i+1)*k], want)
		}
	}
}

func BenchmarkTopK(b *testing.B) {
	r := newRNG(33)
	const e, k, rows = 64, 16, 256
	x := randSlice(r, e*rows, 1)
	dst := make([]int32, k)
	b.Run("indices+sort", func(b *testing.B) {
		for b.Loop() {
			for i := range rows {
				TopKIndices(dst, x[i*e:(i+1)*e], k)
				slices.Sort(dst)
			}
		}
	})
	b.Run("set", func(b *testing.B) {
		scratch := make([]uint64, 2*e)
		for b.Loop() {
			for i := range rows {
				TopKSet(dst, x[i*e:(i+1)*e], k, scratch)
			}
		}
	})
}
