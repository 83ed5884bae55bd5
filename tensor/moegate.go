package tensor

import (
	"fmt"
	"math"
)

// This file holds the three pieces a sparsely-gated mixture-of-experts feed-forward layer
// needs from the tape (sparse upcycling, Komatsuzaki et al. 2022: each FFN of a trained dense
// model is copied into E experts and a router is added in front of them):
//
//   - TopKSoftmax, the router: each token keeps its k highest-scoring experts and weighs them
//     by a softmax over the kept scores (the others get weight 0, so their FFNs need not run);
//   - RowGroupScale, the combine step of the dense training formulation: the E experts' hidden
//     activations of a token sit side by side in one row, one contiguous block per expert,
//     and each block is multiplied by that token's gate for that expert;
//   - LoadBalanceLoss, the Switch Transformer auxiliary loss (Fedus et al. 2021, eq. 4-6),
//     which keeps the router from sending every token to the same few experts.
//
// The selection rule is the same everywhere: the k largest logits, ties broken by the lower
// index (so a row of equal logits deterministically picks experts 0…k−1), NaN ranking below
// every number. The selection is piecewise constant in the logits, so the backward steps
// treat it as a constant, as every top-k router does.

// TopKIndices writes to dst[:k] the indices of the k largest values of row, in descending
// order of value; equal values are ordered by index, and NaN ranks below every number. It costs
// O(len(row)·k) (insertion into a running top k, as TopKSoftmax selects); routers, which want
// the set in index order, use TopKSet, which is tested against it.
func TopKIndices(dst []int32, row []float32, k int) {
	topKCheck("top-k indices", k, len(row))
	if len(dst) < k {
		panic(fmt.Sprintf("tensor: top-k indices has room for %d of %d indices", len(dst), k))
	}
	topKSelect(dst[:k], row)
}

// topKSelect fills sel (k = len(sel) ≤ len(row)) with the indices of row's k largest values
// in descending order by insertion into the running top k. An index is inserted only above
// strictly smaller values: the earlier (lower) index of two equal values stays first.
func topKSelect(sel []int32, row []float32) {
	k, n := len(sel), 0
	for i, v := range row {
		p := n
		if n < k {
			n++
		} else if ranksAbove(v, row[sel[k-1]]) {
			p = k - 1
		} else {
			continue
		}
		for p > 0 && ranksAbove(v, row[sel[p-1]]) {
			sel[p] = sel[p-1]
			p--
		}
		sel[p] = int32(i)
	}
}

// TopKSet writes to dst[:k] the same indices as TopKIndices (the k largest values of row,
// ties to the lower index, NaN below every number) but in ascending index order, which is
// what a router's selection wants, and in expected O(len(row)) rather than O(len(row)·k):
// with 64 experts and k = 16 the insertion into a running top k shifted most of the kept
// ids for every candidate, as much time as the router's own MLP (chorus ab, session 8).
// scratch needs room for 2·len(row) keys; it is overwritten.
//
// Each value becomes a 64-bit key that orders as ranksAbove does and breaks ties by the lower
// index — the float's bits made monotone (−0 as +0, every NaN below −Inf) above the index's
// complement — so all keys differ, a quickselect finds the k-th largest, and one pass in
// index order keeps the keys at or above it.
func TopKSet(dst []int32, row []float32, k int, scratch []uint64) {
	topKCheck("top-k set", k, len(row))
	if len(dst) < k || len(scratch) < 2*len(row) {
		panic(fmt.Sprintf("tensor: top-k set has room for %d of %d indices and %d of %d keys", len(dst), k, len(scratch), 2*len(row)))
	}
	n := len(row)
	if k == n {
		for i := range k {
			dst[i] = int32(i)
		}
		return
	}
	keys, sel := scratch[:n], scratch[n:2*n]
	for i, v := range row {
		keys[i] = topKKey(v, i)
	}
	copy(sel, keys)
	kth := quickselectDesc(sel, k-1)
	j := 0
	for i, key := range keys {
		dst[j] = int32(i)
		if key >= kth { // branch-free: the slot is overwritten unless kept
			j++
		}
		if j == k {
			return
		}
	}
}

// TopKSets runs TopKSet on each of the t rows of scores [t, e], writing row i's k ids to
// ids[i·k:(i+1)·k]: a router's per-token selection, its rows split over the kernel threads
// (the selection of an encoder window's tokens is as long as the router's own GEMMs).
func TopKSets(ids []int32, scores []float32, t, e, k int) {
	topKCheck("top-k sets", k, e)
	if len(ids) < t*k || len(scores) < t*e {
		panic(fmt.Sprintf("tensor: top-k sets of %d rows of %d: %d scores, room for %d ids", t, e, len(scores), len(ids)))
	}
	parallelFor(t, 128, func(lo, hi int) {
		scratch := make([]uint64, 2*e)
		for i := lo; i < hi; i++ {
			TopKSet(ids[i*k:(i+1)*k], scores[i*e:(i+1)*e], k, scratch)
		}
	})
}

// topKKey is value v at index i as a key that is larger exactly when v ranks above (ranksAbove),
// or ranks level and i is lower.
func topKKey(v float32, i int) uint64 {
	var b uint32
	switch {
	case v != v:
		b = 0 // every NaN below −Inf (whose key is 0x007fffff)
	case v == 0:
		b = 1 << 31 // −0 and +0 are level
	default:
		b = math.Float32bits(v)
		if b>>31 == 1 {
			b = ^b
		} else {
			b |= 1 << 31
		}
	}
	return uint64(b)<<32 | uint64(^uint32(i))
}

// quickselectDesc reorders a so that a[j] is the value a descending sort would put there and
// returns it (Hoare-style partitioning around a median of three; the keys are distinct).
func quickselectDesc(a []uint64, j int) uint64 {
	lo, hi := 0, len(a)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		// median of three, descending: a[lo] ≥ a[mid] ≥ a[hi]
		if a[mid] > a[lo] {
			a[mid], a[lo] = a[lo], a[mid]
		}
		if a[hi] > a[lo] {
			a[hi], a[lo] = a[lo], a[hi]
		}
		if a[hi] > a[mid] {
			a[hi], a[mid] = a[mid], a[hi]
		}
		pivot := a[mid]
		i, k := lo, hi
		for i <= k {
			for a[i] > pivot {
				i++
			}
			for a[k] < pivot {
				k--
			}
			if i <= k {
				a[i], a[k] = a[k], a[i]
				i++
				k--
			}
		}
		// now a[lo..k] ≥ pivot ≥ a[i..hi], and k < i
		switch {
		case j <= k:
			hi = k
		case j >= i:
			lo = i
		default:
			return a[j]
		}
	}
	return a[j]
}

// ranksAbove orders values for the top-k selection: a above b when a > b, and any number
// above NaN (which compares false with everything and would otherwise stick wherever it
// landed).
func ranksAbove(a, b float32) bool { return a > b || (b != b && a == a) }

func topKCheck(name string, k, e int) {
	if k < 1 || k > e {
		panic(fmt.Sprintf("tensor: %s keeps k = %d of %d values; need 1 <= k <= %d", name, k, e, e))
	}
}

// topKRow writes to sel (k = len(sel)) the ids of row's top k in ASCENDING id order and to w
// their softmax (SoftmaxAt).
func topKRow(sel []int32, w, row []float32) {
	if len(sel) == len(row) {
		for i := range sel {
			sel[i] = int32(i)
		}
	} else {
		topKSelect(sel, row)
		for i := 1; i < len(sel); i++ { // insertion sort: k is a handful
			v, j := sel[i], i
			for ; j > 0 && sel[j-1] > v; j-- {
				sel[j] = sel[j-1]
			}
			sel[j] = v
		}
	}
	SoftmaxAt(w, row, sel)
}

// SoftmaxAt writes to w [len(ids)] the softmax of row's values at ids: the weights a gated
// mixture of experts gives the experts ids of one token, whichever router picked them
// (experts.Gate.Weigh), and the one place TopKSoftmax computes its weights, so a sparse
// execution of the gate's own top-k weighs exactly as the dense one. It subtracts the row
// max (the largest logit of the row, which bounds the selected ones), takes float64
// exponentials and sum, and rounds each weight twice (the exponential, then the quotient):
// ≲ 1.2e-7 relative error. A row holding a NaN, or whose max is ±Inf, gets NaN weights, as
// Softmax gives.
func SoftmaxAt(w, row []float32, ids []int32) {
	if _, bad := rowMax(row); bad {
		for j := range w[:len(ids)] {
			w[j] = float32(math.NaN())
		}
		return
	}
	mx := float32(math.Inf(-1))
	for _, i := range ids {
		mx = max(mx, row[i])
	}
	var s float64
	for j, i := range ids {
		e := math.Exp(float64(row[i]) - float64(mx))
		w[j] = float32(e)
		s += e
	}
	for j := range w[:len(ids)] {
		w[j] = float32(float64(w[j]) / s)
	}
}

// maxStackK is the largest k whose selection buffers the kernels keep on the stack (a router
// runs once per token and layer while decoding; k is a handful of experts).
const maxStackK = 16

// TopKSoftmax is the router of a top-k mixture of experts: for each row of logits [R, E] it
// keeps the k largest logits (ties to the lower index) and writes to out [R, E]
//
//	out[r, i] = exp(z_ri) / Σ_{j in top_k(r)} exp(z_rj)   for i in top_k(r),   0 otherwise
//
// so each row's gates sum to 1 over its k experts (the renormalised top-k of Mixtral and
// V-MoE; k = 1 gives gate 1 for the chosen expert and k = E the plain softmax). The zeros let
// the dense training formulation (RowGroupScale) multiply every expert's activations by its
// gate, and tell a sparse implementation which experts it may skip. out may alias logits.
// A row holding a NaN, or whose max is ±Inf, becomes all NaN. k outside 1..E panics.
func TopKSoftmax(out, logits []float32, rows, e, k int) {
	dims("top-k softmax", rows, e)
	topKCheck("top-k softmax", k, e)
	need("top-k softmax logits", logits, rows*e)
	need("top-k softmax out", out, rows*e)
	parallelFor(rows, max(1, grainElems/(e*k)), func(lo, hi int) {
		var sb [maxStackK]int32
		var wb [maxStackK]float32
		sel, w := sb[:], wb[:]
		if k > maxStackK {
			sel, w = make([]int32, k), make([]float32, k)
		}
		sel, w = sel[:k], w[:k]
		for r := lo; r < hi; r++ {
			row, o := logits[r*e:(r+1)*e], out[r*e:(r+1)*e]
			topKRow(sel, w, row) // reads row before o, which may alias it, is written
			if w[0] != w[0] {
				for i := range o {
					o[i] = w[0]
				}
				continue
			}
			clear(o)
			for j, i := range sel {
				o[i] = w[j]
			}
		}
	})
}

// TopKSoftmaxNaive is the reference for TopKSoftmax: a stable sort of the indices by
// descending logit, then a float64 softmax over the first k.
func TopKSoftmaxNaive(out, logits []float32, rows, e, k int) {
	topKCheck("top-k softmax", k, e)
	idx := make([]int, e)
	for r := range rows {
		row, o := logits[r*e:(r+1)*e], out[r*e:(r+1)*e]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		if math.IsNaN(mx) || math.IsInf(mx, 0) {
			for i := range o {
				o[i] = float32(math.NaN())
			}
			continue
		}
		for i := range idx {
			idx[i] = i
		}
		// insertion sort, stable: equal logits keep ascending index order
		for i := 1; i < e; i++ {
			for j := i; j > 0 && row[idx[j]] > row[idx[j-1]]; j-- {
				idx[j], idx[j-1] = idx[j-1], idx[j]
			}
		}
		var s float64
		for _, i := range idx[:k] {
			s += math.Exp(float64(row[i]) - mx)
		}
		vals := make([]float32, e)
		for _, i := range idx[:k] {
			vals[i] = float32(math.Exp(float64(row[i])-mx) / s)
		}
		copy(o, vals)
	}
}

// TopKSoftmaxBackward is the twin of TopKSoftmax; it accumulates
//
//	dlogits[r, i] += out[r, i] · (dout[r, i] − Σ_j out[r, j] · dout[r, j])
//
// the softmax Jacobian restricted to the selected logits: the unselected ones have out = 0,
// so they get nothing, and the selection itself is treated as constant. It needs only the
// forward output out [R, E], not the logits. dlogits may be nil (not needed).
func TopKSoftmaxBackward(dlogits, dout, out []float32, rows, e int) {
	if dlogits == nil {
		return
	}
	dims("top-k softmax backward", rows, e)
	need("top-k softmax backward dlogits", dlogits, rows*e)
	need("top-k softmax backward dout", dout, rows*e)
	need("top-k softmax backward out", out, rows*e)
	parallelFor(rows, max(1, grainElems/max(1, e)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			o, d, dl := out[r*e:(r+1)*e], dout[r*e:(r+1)*e], dlogits[r*e:(r+1)*e]
			var s float64
			for i, p := range o {
				s += float64(p) * float64(d[i])
			}
			for i, p := range o {
				dl[i] += float32(float64(p) * (float64(d[i]) - s))
			}
		}
	})
}

// TopKSoftmax returns the top-k router gates of logits [.., E] (same shape); see the
// TopKSoftmax kernel. With a tape attached the gradient reaches the selected logits.
func (c *Ctx) TopKSoftmax(logits *T, k int) *T {
	topKCheck("top-k softmax", k, logits.Shape[len(logits.Shape)-1])
	r, e := rows(logits)
	out := c.New(logits.Shape...)
	TopKSoftmax(out.Data, logits.Data, r, e, k)
	if c.tape != nil {
		c.Custom(out, []*T{logits}, func(dout []float32, d [][]float32) {
			TopKSoftmaxBackward(d[0], dout, out.Data, r, e)
		})
	}
	return out
}

// RowGroupScale multiplies x [R, C] by per-row gates g [R, G], one gate per row and per block
// of C/G consecutive columns:
//
//	out[r, j] = x[r, j] · g[r, j / (C/G)]
//
// It is GroupScale with a gate vector per row instead of one for the whole batch: x holds the
// hidden activations of G experts for each token, expert k in columns k·C/G…(k+1)·C/G−1, and
// g the token's router gates (TopKSoftmax), so the experts' second projection, a Linear of the
// result against the experts' output weights laid side by side, sums the experts' outputs
// weighted by their gates. out may alias x.
func RowGroupScale(out, x, g []float32, rows, cols, groups int) {
	size := rowGroupDims("row group scale", rows, cols, groups)
	need("row group scale x", x, rows*cols)
	need("row group scale g", g, rows*groups)
	need("row group scale out", out, rows*cols)
	parallelFor(rows, max(1, grainElems/max(1, cols)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, or := x[r*cols:(r+1)*cols], out[r*cols:(r+1)*cols]
			for k, s := range g[r*groups : (r+1)*groups] {
				for j := k * size; j < (k+1)*size; j++ {
					or[j] = xr[j] * s
				}
			}
		}
	})
}

// RowGroupScaleNaive is the reference for RowGroupScale: one index computation per element.
func RowGroupScaleNaive(out, x, g []float32, rows, cols, groups int) {
	size := cols / groups
	for r := range rows {
		for j := range cols {
			out[r*cols+j] = x[r*cols+j] * g[r*groups+j/size]
		}
	}
}

// RowGroupScaleBackward is the twin of RowGroupScale; it accumulates
//
//	dx[r, j] += dout[r, j] · g[r, j / (C/G)]
//	dg[r, k] += Σ_{j in block k} dout[r, j] · x[r, j]
//
// dx or dg may be nil (not needed). Each dg sum (C/G terms, an expert's hidden width) is
// taken in float64; rows run in parallel, each writing only its own row.
func RowGroupScaleBackward(dx, dg, dout, x, g []float32, rows, cols, groups int) {
	size := rowGroupDims("row group scale backward", rows, cols, groups)
	need("row group scale backward dout", dout, rows*cols)
	if dx != nil {
		need("row group scale backward dx", dx, rows*cols)
		need("row group scale backward g", g, rows*groups)
	}
	if dg != nil {
		need("row group scale backward dg", dg, rows*groups)
		need("row group scale backward x", x, rows*cols)
	}
	if dx == nil && dg == nil {
		return
	}
	parallelFor(rows, max(1, grainElems/max(1, cols)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			dr := dout[r*cols : (r+1)*cols]
			if dx != nil {
				xr := dx[r*cols : (r+1)*cols]
				for k, s := range g[r*groups : (r+1)*groups] {
					for j := k * size; j < (k+1)*size; j++ {
						xr[j] += dr[j] * s
					}
				}
			}
			if dg != nil {
				xr, gr := x[r*cols:(r+1)*cols], dg[r*groups:(r+1)*groups]
				for k := range gr {
					var a float64
					for j := k * size; j < (k+1)*size; j++ {
						a += float64(dr[j]) * float64(xr[j])
					}
					gr[k] += float32(a)
				}
			}
		}
	})
}

// rowGroupDims returns the block width C/G, panicking unless G ≥ 1 divides C.
func rowGroupDims(name string, rows, cols, groups int) int {
	dims(name, rows, cols, groups)
	if groups < 1 || cols%groups != 0 {
		panic(fmt.Sprintf("tensor: %s of %d columns in %d groups", name, cols, groups))
	}
	return cols / groups
}

// RowGroupScale returns x [.., C] with each row's block k of C/G consecutive columns
// multiplied by that row's gate g[r, k], for g [.., G] with as many rows as x; see the
// RowGroupScale kernel. With a tape attached the gradients reach both x and g.
func (c *Ctx) RowGroupScale(x, g *T) *T {
	cols, groups := x.Shape[len(x.Shape)-1], g.Shape[len(g.Shape)-1]
	r := Numel(x.Shape[:len(x.Shape)-1])
	if groups < 1 || cols%groups != 0 || Numel(g.Shape[:len(g.Shape)-1]) != r {
		panic(fmt.Sprintf("tensor: row group scale of %v by gates %v", x.Shape, g.Shape))
	}
	out := c.New(x.Shape...)
	RowGroupScale(out.Data, x.Data, g.Data, r, cols, groups)
	if c.tape != nil {
		c.Custom(out, []*T{x, g}, func(dout []float32, d [][]float32) {
			RowGroupScaleBackward(d[0], d[1], dout, x.Data, g.Data, r, cols, groups)
		})
	}
	return out
}

// LoadBalance computes the Switch Transformer load-balancing loss of router logits [R, E]
// for a router keeping k experts per row (Fedus et al. 2021, eq. 4-6, with top-k counting as
// in GShard and Mixtral's implementations):
//
//	p[r, i] = softmax(logits[r])_i               (written to probs [R, E])
//	P_i     = (1/R) Σ_r p[r, i]                  the router's mean probability for expert i
//	f_i     = |{r : i in top_k(r)}| / (R·k)      the fraction of assignments expert i gets
//	                                             (written to frac [E])
//	loss    = E · Σ_i f_i · P_i
//
// Σ f_i = Σ P_i = 1, and the loss is smallest, 1, when both are uniform (1/E each): it is
// minimised by spreading tokens evenly, and grows to E when every row goes to one expert
// with certainty. top_k is TopKSoftmax's selection. f is a count, with no useful derivative,
// and is held constant; the gradient reaches the logits through P (LoadBalanceBackward). p
// comes from the Softmax kernel, the sums are float64. With R = 0 the loss is 0 and frac is
// zeroed. A NaN logit makes the loss NaN.
func LoadBalance(probs, frac, logits []float32, rows, e, k int) float64 {
	dims("load balance", rows, e)
	topKCheck("load balance", k, e)
	need("load balance logits", logits, rows*e)
	need("load balance probs", probs, rows*e)
	need("load balance frac", frac, e)
	frac = frac[:e]
	clear(frac)
	if rows == 0 {
		return 0
	}
	copy(probs[:rows*e], logits[:rows*e])
	Softmax(probs, rows, e)
	acc := getF64(2 * e)
	defer putF64(acc)
	mean, count := (*acc)[:e], (*acc)[e:]
	clear(*acc)
	var sb [maxStackK]int32
	sel := sb[:]
	if k > maxStackK {
		sel = make([]int32, k)
	}
	sel = sel[:k]
	for r := range rows {
		topKSelect(sel, logits[r*e:(r+1)*e])
		for _, i := range sel {
			count[i]++
		}
		for i, p := range probs[r*e : (r+1)*e] {
			mean[i] += float64(p)
		}
	}
	var loss float64
	for i := range frac {
		f := count[i] / float64(rows*k)
		frac[i] = float32(f)
		loss += f * mean[i] / float64(rows)
	}
	return float64(e) * loss
}

// LoadBalanceBackward is the twin of LoadBalance: with probs and frac as LoadBalance wrote
// them and dloss = dLoss_total/dloss, it accumulates the gradient through P,
//
//	dlogits[r, i] += dloss · p[r, i] · (c_i − Σ_j p[r, j] · c_j),   c_i = E · f_i / R
//
// (c is dloss/dp[r, i]; the rest is the softmax Jacobian). dlogits may be nil; R = 0 adds
// nothing.
func LoadBalanceBackward(dlogits, probs, frac []float32, rows, e int, dloss float32) {
	if dlogits == nil || rows == 0 {
		return
	}
	dims("load balance backward", rows, e)
	need("load balance backward dlogits", dlogits, rows*e)
	need("load balance backward probs", probs, rows*e)
	need("load balance backward frac", frac, e)
	scale := float64(dloss) * float64(e) / float64(rows)
	parallelFor(rows, max(1, grainElems/max(1, e)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			p, dl := probs[r*e:(r+1)*e], dlogits[r*e:(r+1)*e]
			var s float64
			for i, v := range p {
				s += float64(v) * float64(frac[i])
			}
			for i, v := range p {
				dl[i] += float32(scale * float64(v) * (float64(frac[i]) - s))
			}
		}
	})
}

// LoadBalanceLoss returns the Switch load-balancing loss of router logits [.., E] for top-k
// routing as a one-element tensor; see the LoadBalance kernel. Add it to the training
// objective with a small weight (Switch uses 0.01) by seeding its gradient with that weight;
// with a tape attached the gradient reaches the logits through the mean router probabilities.
// Zero rows give 0 and record nothing.
func (c *Ctx) LoadBalanceLoss(logits *T, k int) *T {
	e := logits.Shape[len(logits.Shape)-1]
	topKCheck("load balance", k, e)
	r, _ := rows(logits)
	out := c.New(1)
	if r == 0 {
		out.Data[0] = 0
		return out
	}
	probs, frac := c.New(r, e), c.New(e)
	out.Data[0] = float32(LoadBalance(probs.Data, frac.Data, logits.Data, r, e, k))
	if c.tape != nil {
		c.Custom(out, []*T{logits}, func(dout []float32, d [][]float32) {
			LoadBalanceBackward(d[0], probs.Data, frac.Data, r, e, dout[0])
		})
	}
	return out
}
