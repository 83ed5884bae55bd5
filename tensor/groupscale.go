package tensor

import "fmt"

// This file holds the two pieces CoFi pruning (training/prune) needs from the tape and nothing
// else in the package provides: a kernel that multiplies activations by per-group gates (the
// mask hooks: one gate per attention head, per FFN unit, per hidden dimension, or one for a
// whole layer), and Ctx.Custom, through which an op computed outside this package (the
// hard-concrete gate sampler) records its backward step on the tape.

// GroupScale multiplies x [R, C] by gates g [C/group], one gate per run of group consecutive
// columns:
//
//	out[r, j] = x[r, j] · g[j / group]
//
// group = 1 scales columns (FFN units, hidden dimensions), group = D scales head blocks of a
// head-blocked [R, H·D] activation, group = C scales everything by one gate (a whole layer).
// out may alias x.
func GroupScale(out, x, g []float32, rows, cols, group int) {
	groupDims("group scale", cols, group, len(g))
	need("group scale x", x, rows*cols)
	need("group scale out", out, rows*cols)
	parallelFor(rows, max(1, grainElems/max(1, cols)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, or := x[r*cols:(r+1)*cols], out[r*cols:(r+1)*cols]
			for k, s := range g {
				for j := k * group; j < (k+1)*group; j++ {
					or[j] = xr[j] * s
				}
			}
		}
	})
}

// GroupScaleNaive is the reference for GroupScale: one index computation per element.
func GroupScaleNaive(out, x, g []float32, rows, cols, group int) {
	for r := range rows {
		for j := range cols {
			out[r*cols+j] = x[r*cols+j] * g[j/group]
		}
	}
}

// GroupScaleBackward is the twin of GroupScale; it accumulates
//
//	dx[r, j] += dout[r, j] · g[j / group]
//	dg[k]    += Σ_r Σ_{j in group k} dout[r, j] · x[r, j]
//
// dx or dg may be nil (not needed). dg is summed in float64 over all rows: a gate sees every
// token of the batch, so its sum has R·group terms.
func GroupScaleBackward(dx, dg, dout, x, g []float32, rows, cols, group int) {
	groupDims("group scale backward", cols, group, len(g))
	need("group scale backward dout", dout, rows*cols)
	if dx != nil {
		need("group scale backward dx", dx, rows*cols)
		parallelFor(rows, max(1, grainElems/max(1, cols)), func(lo, hi int) {
			for r := lo; r < hi; r++ {
				dr, xr := dout[r*cols:(r+1)*cols], dx[r*cols:(r+1)*cols]
				for k, s := range g {
					for j := k * group; j < (k+1)*group; j++ {
						xr[j] += dr[j] * s
					}
				}
			}
		})
	}
	if dg != nil {
		need("group scale backward dg", dg, len(g))
		need("group scale backward x", x, rows*cols)
		acc := getF64(len(g))
		defer putF64(acc)
		a := *acc
		clear(a)
		for r := range rows {
			dr, xr := dout[r*cols:(r+1)*cols], x[r*cols:(r+1)*cols]
			for j := range cols {
				a[j/group] += float64(dr[j]) * float64(xr[j])
			}
		}
		for k, v := range a {
			dg[k] += float32(v)
		}
	}
}

func groupDims(name string, cols, group, gates int) {
	if group <= 0 || gates*group != cols {
		panic(fmt.Sprintf("tensor: %s of %d columns by %d gates of %d columns", name, cols, gates, group))
	}
}

// GroupScale returns x [.., C] with each run of C/len(g) consecutive columns multiplied by
// its gate g [G] (any shape of G elements: a [1, H] row of a per-layer mask tensor taken with
// Rows works as well as a [H] vector); see the GroupScale kernel. With a tape attached the
// gradients reach both x and g.
func (c *Ctx) GroupScale(x, g *T) *T {
	r, cols := rows(x)
	if len(g.Data) == 0 || cols%len(g.Data) != 0 {
		panic(fmt.Sprintf("tensor: group scale of %v by %v gates", x.Shape, g.Shape))
	}
	group := cols / len(g.Data)
	out := c.New(x.Shape...)
	GroupScale(out.Data, x.Data, g.Data, r, cols, group)
	if c.tape != nil {
		c.Custom(out, []*T{x, g}, func(dout []float32, d [][]float32) {
			GroupScaleBackward(d[0], d[1], dout, x.Data, g.Data, r, cols, group)
		})
	}
	return out
}

// Custom records the backward step of an op computed outside this package: out was computed
// by the caller from ins (out should come from c.New, so that it lives until Reset like any
// op's output). back receives dLoss/dout and, per input, the gradient buffer it must
// ACCUMULATE into, or nil where that input needs no gradient — the twins' convention. Nothing
// is recorded without a tape or when no input needs a gradient (then out needs none either).
//
// It is how training/prune's hard-concrete gates (z = f(log α, u)) join the graph: the model
// multiplies activations by z through GroupScale, and the gradient reaching z flows on to
// the watched log α.
func (c *Ctx) Custom(out *T, ins []*T, back func(dout []float32, dins [][]float32)) {
	t := c.tape
	if t == nil {
		return
	}
	want := make([]bool, len(ins))
	some := false
	for i, x := range ins {
		want[i] = t.needs(x)
		some = some || want[i]
	}
	if !some {
		return
	}
	t.record(out, func(dout []float32) {
		d := make([][]float32, len(ins))
		for i, x := range ins {
			d[i] = t.gradIf(want[i], x)
		}
		back(dout, d)
	})
}
