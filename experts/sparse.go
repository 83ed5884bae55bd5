package experts

// Shapes (legend in doc.go): x [T, C], selection [T, K] expert ids, out [T, C]; per selected
// expert e with n_e tokens: xe [n_e, C], he [n_e, S], ye [n_e, C].

import (
	"fmt"
	"slices"
	"sync"

	"github.com/chorus-asr/chorus/tensor"
)

// Forward runs the block on x [T, C] computing only the experts sel chooses for each token:
// out[t] = B2 + Σ_{e ∈ sel[t]} w[t, e]·W2[:, e]·relu(W1[e]·x[t] + B1[e]) (blocks of S neurons;
// w the selection's weights, 1 without them), which is ForwardNaive's result. Tokens are grouped by expert and each selected expert runs one
// fc1 GEMM, a ReLU and one fc2 GEMM over its tokens, accumulated into out; a shared selection
// (one subset for the whole request) skips the gather and scatter. A selection of every
// expert runs the dense block. When rec is non-nil the selection is appended to it under
// f.Layer. The result has x's shape and comes from ctx.
//
// It is inference-only and panics when ctx has a tape: its gathers and per-expert GEMMs have
// no backward twins, so router or expert training runs the dense block (with masks) instead.
//
// This is the entry point a MoE model's MLP calls:
//
//	sel := router.Select(ctx, layer, h)
//	y := ffn.Forward(ctx, h, sel, session.Pathway)
func (f *FFN) Forward(ctx *tensor.Ctx, x *tensor.T, sel Selection, rec *Pathway) *tensor.T {
	if ctx.Tape() != nil {
		panic("experts: FFN.Forward is inference-only; train through the dense block")
	}
	t := f.tokens(x)
	if err := sel.check(t, f.E); err != nil {
		panic(err.Error())
	}
	if rec != nil {
		rec.Record(f.Layer, sel)
	}
	if sel.K == f.E && sel.Weights == nil {
		return f.Dense(ctx, x)
	}
	out := ctx.New(x.Shape...)
	fillRows(out.Data, f.B2, t, f.C)
	if t == 0 || sel.K == 0 {
		return out
	}
	if sel.Shared {
		f.forwardShared(ctx, x.Data, sel, t, out.Data)
		return out
	}
	f.forwardGrouped(ctx, x.Data, sel, t, out.Data)
	return out
}

// forwardShared runs the shared selection's experts on all t tokens: no gather or scatter,
// each expert's output is added to out directly (scaled per token by its weight, if any).
func (f *FFN) forwardShared(ctx *tensor.Ctx, x []float32, sel Selection, t int, out []float32) {
	c, s := f.C, f.S()
	h := ctx.New(t, s).Data
	y := ctx.New(t, c).Data
	for j, e := range sel.Token(0) {
		f.expert(h, y, x, int(e), t, true)
		if sel.Weights == nil {
			tensor.AddInPlace(out, y)
			continue
		}
		for i := range t {
			axpy(out[i*c:(i+1)*c], y[i*c:(i+1)*c], sel.Weights[i*sel.K+j])
		}
	}
}

// axpy adds a·x to y.
func axpy(y, x []float32, a float32) {
	for i, v := range x {
		y[i] += a * v
	}
}

// forwardGrouped gathers, for each expert, the tokens that selected it (a counting sort of the
// selection), runs the expert on them and scatters the result back. With several kernel
// threads and enough work it splits the work between workers, because one expert's group
// (a few dozen rows for a 5-s clip) is too small for the GEMM itself to be split, which is how
// the dense block uses the threads:
//   - long inputs (at least splitTokens tokens per worker: a 30-s window) are cut into token
//     ranges, each grouped and run by one worker into its own rows of out;
//   - shorter ones keep whole groups and deal the experts to workers (most tokens first, each
//     to the least-loaded worker), each accumulating into its own output, summed at the end.
//
// Cutting the tokens halves the groups, which costs GEMM efficiency on short inputs and wins
// on long ones by skipping the extra outputs and their sum (`go test ./experts -bench
// SparseRatio`, 1500 tokens, 2 threads, k/E = 1/4, speed-up over dense: 2.80 → 3.10× at 16
// experts, 2.45 → 2.80× at 32, 2.15 → 2.31× at 64).
func (f *FFN) forwardGrouped(ctx *tensor.Ctx, x []float32, sel Selection, t int, out []float32) {
	c, s, e := f.C, f.S(), f.E
	workers := 1
	if macs := len(sel.IDs) * s * c * 2; macs >= parallelMACs {
		workers = min(tensor.Threads(), e)
	}
	every := make([]int, e)
	for i := range every {
		every[i] = i
	}
	if n := min(workers, t/splitTokens); n > 1 {
		per := (t + n - 1) / n
		type part struct {
			g       grouping
			scratch [3][]float32
		}
		parts := make([]part, 0, n)
		for lo := 0; lo < t; lo += per {
			hi := min(t, lo+per)
			pg := groupByExpert(sel, e, lo, hi)
			most := pg.largest(every)
			parts = append(parts, part{pg, [3][]float32{ctx.New(most, c).Data, ctx.New(most, s).Data, ctx.New(most, c).Data}})
		}
		var wg sync.WaitGroup
		for i := 1; i < len(parts); i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.runGroups(parts[i].g, every, x, out, parts[i].scratch, false)
			}()
		}
		f.runGroups(parts[0].g, every, x, out, parts[0].scratch, false)
		wg.Wait()
		return
	}
	g := groupByExpert(sel, e, 0, t)
	if workers == 1 {
		most := g.largest(every)
		f.runGroups(g, every, x, out, [3][]float32{ctx.New(most, c).Data, ctx.New(most, s).Data, ctx.New(most, c).Data}, true)
		return
	}
	// deal experts to workers by decreasing group size, each to the least-loaded worker
	ids := every
	slices.SortStableFunc(ids, func(a, b int) int { return g.size(b) - g.size(a) })
	load := make([]int, workers)
	mine := make([][]int, workers)
	for _, ex := range ids {
		if g.size(ex) == 0 {
			break
		}
		w := 0
		for i := range load {
			if load[i] < load[w] {
				w = i
			}
		}
		load[w] += g.size(ex)
		mine[w] = append(mine[w], ex)
	}
	outs := make([][]float32, workers)
	outs[0] = out
	scratch := make([][3][]float32, workers)
	for w := range workers {
		most := g.largest(mine[w])
		scratch[w] = [3][]float32{ctx.New(most, c).Data, ctx.New(most, s).Data, ctx.New(most, c).Data}
		if w > 0 {
			outs[w] = ctx.Zeros(t, c).Data
		}
	}
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.runGroups(g, mine[w], x, outs[w], scratch[w], false)
		}()
	}
	f.runGroups(g, mine[0], x, out, scratch[0], false)
	wg.Wait()
	for w := 1; w < workers; w++ {
		tensor.AddInPlace(out, outs[w])
	}
}

// grouping is a selection's token-expert pairs sorted by expert (a counting sort): expert
// ex's tokens, ascending, are order[start[ex]:start[ex+1]], and wt (weighted selections only)
// holds each pair's weight in the same order.
type grouping struct {
	start []int
	order []int32
	wt    []float32
}

func (g grouping) size(ex int) int { return g.start[ex+1] - g.start[ex] }

// largest is the most tokens any of the experts has: the scratch rows runGroups needs.
func (g grouping) largest(experts []int) int {
	most := 0
	for _, ex := range experts {
		most = max(most, g.size(ex))
	}
	return most
}

// groupByExpert groups the pairs of tokens lo…hi−1 of sel (e experts) by expert.
func groupByExpert(sel Selection, e, lo, hi int) grouping {
	k := sel.K
	ids := sel.IDs[lo*k : hi*k]
	g := grouping{start: make([]int, e+1), order: make([]int32, len(ids))}
	for _, id := range ids {
		g.start[id+1]++
	}
	for ex := range e {
		g.start[ex+1] += g.start[ex]
	}
	if sel.Weights != nil {
		g.wt = make([]float32, len(ids))
	}
	fill := append([]int(nil), g.start[:e]...)
	for i := lo; i < hi; i++ {
		for j, id := range sel.Token(i) {
			g.order[fill[id]] = int32(i)
			if g.wt != nil {
				g.wt[fill[id]] = sel.Weights[i*k+j]
			}
			fill[id]++
		}
	}
	return g
}

// runGroups runs the listed experts of g on the calling goroutine,
// gathering each group's rows of x into scratch (xe, he, ye: room for the largest group) and
// adding the results to their rows of out. split lets each GEMM use the kernel threads.
func (f *FFN) runGroups(g grouping, experts []int, x, out []float32, scratch [3][]float32, split bool) {
	c := f.C
	xe, he, ye := scratch[0], scratch[1], scratch[2]
	one := func(ex int) {
		toks := g.order[g.start[ex]:g.start[ex+1]]
		if len(toks) == 0 {
			return
		}
		var w []float32
		if g.wt != nil {
			w = g.wt[g.start[ex]:g.start[ex+1]]
		}
		if f.fused(out, x, toks, w, ex, he) {
			return
		}
		for j, tok := range toks {
			copy(xe[j*c:(j+1)*c], x[int(tok)*c:(int(tok)+1)*c])
		}
		f.expert(he, ye, xe, ex, len(toks), split)
		tensor.AddRowsIndexed(out, ye[:len(toks)*c], toks, w, c)
	}
	for _, ex := range experts {
		one(ex)
	}
}

// fused adds expert e's output for tokens toks (weighted by w, or 1) into their rows of out
// with tensor.ExpertFFN, h being scratch (4·S floats are used); it reports false when the CPU
// has no kernel for it, and the caller takes the GEMM path.
func (f *FFN) fused(out, x []float32, toks []int32, w []float32, e int, h []float32) bool {
	if gemmOnly {
		return false
	}
	c, s := f.C, f.S()
	var b1 []float32
	if f.B1 != nil {
		b1 = f.B1[e*s : (e+1)*s]
	}
	if len(h) < 4*s {
		h = make([]float32, 4*s) // a group smaller than four tokens left less scratch
	}
	return tensor.ExpertFFN(out, x, toks, w, c, s, f.w1t[e*c*s:(e+1)*c*s], b1, f.w2r[e*s*c:(e+1)*s*c], h[:4*s])
}

// gemmOnly turns the fused kernel off (benchmarks compare the two paths in one run).
var gemmOnly bool

// splitTokens is the fewest tokens per worker for which forwardGrouped cuts the tokens rather
// than dealing the experts (a 250-token input ran 20% slower cut in two).
const splitTokens = 256

// parallelMACs is the least multiply-add count (over all selected experts) for which
// forwardGrouped deals experts to several workers: below it (a decoding step: 131 k for one
// token at k/E = 1/4 on chorus-micro) starting and waking a goroutine costs as much as the
// work it takes over.
const parallelMACs = 1 << 20

// expert computes y [n, C] = W2[:, e]·relu(W1[e]·x + B1[e]) for n rows of x [n, C], using h
// [n, S] as scratch. split lets tensor.Linear spread each GEMM over the kernel threads;
// without it (a worker of forwardGrouped) GEMMs of more than SmallM rows go to one
// single-threaded Sgemm, so workers do not compete with nested splits for the cores.
func (f *FFN) expert(h, y, x []float32, e, n int, split bool) {
	c, s := f.C, f.S()
	var b1 []float32
	if f.B1 != nil {
		b1 = f.B1[e*s : (e+1)*s]
	}
	w1, w2 := f.W1[e*s*c:(e+1)*s*c], f.w2e[e*c*s:(e+1)*c*s]
	if split || n <= tensor.SmallM {
		tensor.Linear(h[:n*s], x[:n*c], w1, b1, n, c, s)
		tensor.ReLU(h[:n*s], h[:n*s])
		tensor.Linear(y[:n*c], h[:n*s], w2, nil, n, s, c)
		return
	}
	beta := float32(0)
	if b1 != nil {
		fillRows(h, b1, n, s)
		beta = 1
	}
	tensor.Sgemm(false, true, n, s, c, 1, x, c, w1, c, beta, h, s)
	relu(h[:n*s])
	tensor.Sgemm(false, true, n, c, s, 1, h, s, w2, s, 0, y, c)
}

// relu is max(x, 0) in place on the calling goroutine (tensor.ReLU may split the slice over
// the kernel threads, which a worker must not).
func relu(x []float32) {
	for i, v := range x {
		x[i] = max(v, 0) // branchless (see tensor.ReLU)
	}
}

// fillRows sets each of the t rows of out [T, C] to b, or to zero when b is nil.
func fillRows(out, b []float32, t, c int) {
	for i := range t {
		if b == nil {
			clear(out[i*c : (i+1)*c])
		} else {
			copy(out[i*c:(i+1)*c], b)
		}
	}
}

// ForwardNaive is the reference for Forward: the dense block with the neurons of every expert
// a token did not select zeroed and the others scaled by their weight, accumulated in float64, one token and one neuron at a time.
func (f *FFN) ForwardNaive(x *tensor.T, sel Selection) *tensor.T {
	t := f.tokens(x)
	if err := sel.check(t, f.E); err != nil {
		panic(err.Error())
	}
	c, n, s := f.C, f.N, f.S()
	out := tensor.New(x.Shape...)
	acc := make([]float64, c)
	for i := range t {
		xr := x.Data[i*c : (i+1)*c]
		for j := range acc {
			acc[j] = 0
			if f.B2 != nil {
				acc[j] = float64(f.B2[j])
			}
		}
		w := make([]float64, f.E) // each expert's weight for this token; 0: not selected
		for j, e := range sel.Token(i) {
			w[e] = 1
			if sel.Weights != nil {
				w[e] = float64(sel.Weights[i*sel.K+j])
			}
		}
		for nr := range n {
			if w[nr/s] == 0 {
				continue // a neuron of an unselected expert contributes zero
			}
			var z float64
			if f.B1 != nil {
				z = float64(f.B1[nr])
			}
			for j, v := range xr {
				z += float64(v) * float64(f.W1[nr*c+j])
			}
			if z <= 0 {
				continue
			}
			z *= w[nr/s]
			for j := range acc {
				acc[j] += z * float64(f.W2[j*n+nr])
			}
		}
		for j, v := range acc {
			out.Data[i*c+j] = float32(v)
		}
	}
	return out
}

// check reports a selection that does not fit t tokens of a block of e experts.
func (s Selection) check(t, e int) error {
	switch {
	case s.E != e:
		return fmt.Errorf("experts: selection over %d experts for a block of %d", s.E, e)
	case s.K < 0 || s.K > e:
		return fmt.Errorf("experts: selection of %d of %d experts", s.K, e)
	case len(s.IDs) != t*s.K:
		return fmt.Errorf("experts: selection of %d ids for %d tokens × %d experts", len(s.IDs), t, s.K)
	case s.Weights != nil && len(s.Weights) != len(s.IDs):
		return fmt.Errorf("experts: selection of %d ids with %d weights", len(s.IDs), len(s.Weights))
	}
	for i := range t {
		row := s.Token(i)
		for j, id := range row {
			if id < 0 || int(id) >= e || (j > 0 && id <= row[j-1]) {
				return fmt.Errorf("experts: token %d selects %v: want distinct ascending ids below %d", i, row, e)
			}
			if s.Shared && id != s.IDs[j] {
				return fmt.Errorf("experts: shared selection differs at token %d: %v against %v", i, row, s.Token(0))
			}
		}
	}
	return nil
}
