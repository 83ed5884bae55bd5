package tensor

import "fmt"

// LayerNormMasked normalises each row of x [R, C] over the columns listed in keep only
// (ascending, distinct) and writes zeros to the other columns:
//
//	out[r, j] = (x[r, j] − μ_r) / √(σ²_r + eps) · γ_j + β_j   for j in keep,   0 otherwise
//
// with μ_r and σ²_r the mean and biased variance of x[r, keep]. It is the layer norm of a
// model whose hidden dimensions outside keep have been pruned (CoFi §3.1, Xia et al. 2022,
// which masks BERT's LayerNorm the same way): the statistics must not count the removed
// dimensions, or the pruned model's normalisation would differ from the dense model it is
// materialised into, where those dimensions no longer exist. Built on LayerNorm: the kept
// columns are gathered, normalised and scattered back, so it agrees with the materialised
// model's LayerNorm bit for bit. gamma and beta may be nil (γ = 1, β = 0).
func LayerNormMasked(out, x, gamma, beta []float32, keep []int, rows, cols int, eps float32) {
	need("masked layernorm x", x, rows*cols)
	need("masked layernorm out", out, rows*cols)
	k := len(keep)
	xs, os := make([]float32, rows*k), make([]float32, rows*k)
	gather(xs, x, keep, rows, cols)
	LayerNorm(os, xs, pick(gamma, keep), pick(beta, keep), rows, k, eps)
	clear(out[:rows*cols])
	scatterAdd(out, os, keep, rows, cols)
}

// LayerNormMaskedBackward is the twin of LayerNormMasked: it accumulates dx, dgamma, dbeta
// (any may be nil) on the kept columns only; the removed columns' outputs were constant
// zeros, so they pass no gradient.
func LayerNormMaskedBackward(dx, dgamma, dbeta, dout, x, gamma []float32, keep []int, rows, cols int, eps float32) {
	k := len(keep)
	xs, ds := make([]float32, rows*k), make([]float32, rows*k)
	gather(xs, x, keep, rows, cols)
	gather(ds, dout, keep, rows, cols)
	var dxs, dg, db []float32
	if dx != nil {
		dxs = make([]float32, rows*k)
	}
	if dgamma != nil {
		dg = make([]float32, k)
	}
	if dbeta != nil {
		db = make([]float32, k)
	}
	LayerNormBackward(dxs, dg, db, ds, xs, pick(gamma, keep), rows, k, eps)
	if dx != nil {
		scatterAdd(dx, dxs, keep, rows, cols)
	}
	if dgamma != nil {
		scatterAdd(dgamma, dg, keep, 1, len(dgamma))
	}
	if dbeta != nil {
		scatterAdd(dbeta, db, keep, 1, len(dbeta))
	}
}

// gather copies columns keep of x [rows, cols] into dst [rows, len(keep)].
func gather(dst, x []float32, keep []int, rows, cols int) {
	k := len(keep)
	for r := range rows {
		for i, j := range keep {
			dst[r*k+i] = x[r*cols+j]
		}
	}
}

// scatterAdd adds src [rows, len(keep)] into columns keep of dst [rows, cols].
func scatterAdd(dst, src []float32, keep []int, rows, cols int) {
	k := len(keep)
	for r := range rows {
		for i, j := range keep {
			dst[r*cols+j] += src[r*k+i]
		}
	}
}

func pick(v []float32, keep []int) []float32 {
	if v == nil {
		return nil
	}
	out := make([]float32, len(keep))
	for i, j := range keep {
		out[i] = v[j]
	}
	return out
}

// LayerNormMasked is LayerNorm over the columns in keep (see the LayerNormMasked kernel);
// the other columns of the result are zero. With a tape the gradients reach x, gamma, beta.
func (c *Ctx) LayerNormMasked(x, gamma, beta *T, keep []int, eps float32) *T {
	r, cols := rows(x)
	for i, j := range keep {
		if j < 0 || j >= cols || (i > 0 && j <= keep[i-1]) {
			panic(fmt.Sprintf("tensor: masked layernorm keep %v of %d columns", keep, cols))
		}
	}
	var g, b []float32
	if gamma != nil {
		g = gamma.Data
	}
	if beta != nil {
		b = beta.Data
	}
	out := c.New(x.Shape...)
	LayerNormMasked(out.Data, x.Data, g, b, keep, r, cols, eps)
	ins := []*T{x}
	if gamma != nil {
		ins = append(ins, gamma)
	}
	if beta != nil {
		ins = append(ins, beta)
	}
	c.Custom(out, ins, func(dout []float32, d [][]float32) {
		var dg, db []float32
		i := 1
		if gamma != nil {
			dg = d[i]
			i++
		}
		if beta != nil {
			db = d[i]
		}
		LayerNormMaskedBackward(d[0], dg, db, dout, x.Data, g, keep, r, cols, eps)
	})
	return out
}
