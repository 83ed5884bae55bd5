package tensor

import (
	"fmt"
	"testing"
)

// TestGroupScale checks the kernel against hand-computed outputs on Arange inputs and against
// the naive reference on random ones (the two must agree bit for bit: one product each).
func TestGroupScale(t *testing.T) {
	arange := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(i)
		}
		return s
	}
	for _, tc := range []struct {
		name              string
		rows, cols, group int
		g                 []float32
		want              []float32
	}{
		{"columns", 2, 3, 1, []float32{1, 0, 2}, []float32{0, 0, 4, 3, 0, 10}},
		{"head blocks", 2, 4, 2, []float32{0.5, 0}, []float32{0, 0.5, 0, 0, 2, 2.5, 0, 0}},
		{"whole layer", 1, 4, 4, []float32{-1}, []float32{0, -1, -2, -3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make([]float32, len(tc.want))
			GroupScale(got, arange(len(tc.want)), tc.g, tc.rows, tc.cols, tc.group)
			checkClose(t, "kernel", got, tc.want, []float32{0}, 0)
			GroupScaleNaive(got, arange(len(tc.want)), tc.g, tc.rows, tc.cols, tc.group)
			checkClose(t, "naive", got, tc.want, []float32{0}, 0)
		})
	}
	r := newRNG(5)
	for _, s := range [][3]int{{1, 1, 1}, {7, 12, 3}, {300, 64, 16}} {
		rows, cols, group := s[0], s[1], s[2]
		x, g := randSlice(r, rows*cols, 1), randSlice(r, cols/group, 1)
		got, want := make([]float32, rows*cols), make([]float32, rows*cols)
		GroupScale(got, x, g, rows, cols, group)
		GroupScaleNaive(want, x, g, rows, cols, group)
		checkClose(t, fmt.Sprintf("random %v", s), got, want, []float32{0}, 0)
	}
}

// TestGroupScaleBackward checks the twin against central differences of a float64 forward,
// into prefilled buffers (it must accumulate), and that nil buffers are skipped.
func TestGroupScaleBackward(t *testing.T) {
	r := newRNG(6)
	for _, s := range [][3]int{{3, 6, 1}, {4, 6, 3}, {2, 5, 5}} {
		rows, cols, group := s[0], s[1], s[2]
		x, g := randSlice(r, rows*cols, 1), randSlice(r, cols/group, 1)
		dout := randSlice(r, rows*cols, 1)
		x64, g64 := to64(x), to64(g)
		fwd := func() []float64 {
			o := make([]float64, rows*cols)
			for i := range o {
				o[i] = x64[i] * g64[(i%cols)/group]
			}
			return o
		}
		out := make([]float32, rows*cols)
		GroupScale(out, x, g, rows, cols, group)
		checkRef(t, "reference", fwd(), out)
		loss := func() float64 { return dot64(dout, fwd()) }
		dx, bx := prefilled(r, len(x))
		dg, bg := prefilled(r, len(g))
		GroupScaleBackward(dx, dg, dout, x, g, rows, cols, group)
		label := fmt.Sprintf("%v", s)
		checkGrad(t, label+" dx", dx, bx, numGrad(x64, loss), gradTol)
		checkGrad(t, label+" dg", dg, bg, numGrad(g64, loss), gradTol)
		GroupScaleBackward(nil, nil, dout, x, g, rows, cols, group) // must not panic
	}
}

// TestTapeGroupScaleCustom runs GroupScale and a Custom op (y = x², twin 2x·dout) inside a
// taped graph and checks every input's gradient against finite differences of the whole
// graph; a Custom op whose input needs no gradient records nothing.
func TestTapeGroupScaleCustom(t *testing.T) {
	r := newRNG(7)
	x := FromData(randSlice(r, 3*6, 1), 3, 6)
	w := FromData(randSlice(r, 4*6, 1), 4, 6)
	gate := FromData(randSlice(r, 2, 1), 2)      // two head blocks of 3 columns, squared first
	layers := FromData(randSlice(r, 2, 1), 2, 1) // per-layer gates; row 1 scales everything
	seed := randSlice(r, 3*4, 1)
	square := func(c *Ctx, v *T) *T {
		out := c.New(v.Shape...)
		for i, a := range v.Data {
			out.Data[i] = a * a
		}
		c.Custom(out, []*T{v}, func(dout []float32, d [][]float32) {
			for i, a := range v.Data {
				d[0][i] += 2 * a * dout[i]
			}
		})
		return out
	}
	build := func(c *Ctx) *T {
		h := c.GroupScale(x, square(c, gate))
		return c.Linear(c.GroupScale(h, c.Rows(layers, 1, 2)), w, nil)
	}
	loss := func() float64 { return dot64(seed, to64(build(NewCtx()).Data)) }
	c := NewTrainCtx()
	tp := c.Tape()
	params := []*T{x, w, gate, layers}
	tp.Watch(params...)
	tp.Seed(build(c), seed)
	tp.Backward()
	grads := make([][]float32, len(params))
	for i, p := range params {
		grads[i] = tp.Grad(p).Data
	}
	checkTapeGrads(t, "group scale + custom", params, grads, loss)

	c2 := NewTrainCtx()
	square(c2, FromData([]float32{1, 2}, 2))
	if n := c2.Tape().Len(); n != 0 {
		t.Fatalf("custom op on a frozen input recorded %d steps", n)
	}
}
