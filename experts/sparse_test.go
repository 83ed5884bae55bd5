package experts

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/chorus-asr/chorus/tensor"
)

// TestForwardHandComputed pins the sparse kernel and its reference on a block small enough to
// work out by hand: C 2, N 4, E 2, x = [2, 1] → h = [2, 1, 3, 0]; expert 0 contributes
// [4, 0], expert 1 [9, 3], and B2 = [0.5, 0].
func TestForwardHandComputed(t *testing.T) {
	w1 := []float32{1, 0, 0, 1, 1, 1, -1, 0}
	w2 := []float32{1, 2, 3, 4, 0, 0, 1, 1}
	f, err := NewFFN(w1, nil, w2, []float32{0.5, 0}, 2, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	x := tensor.FromData([]float32{2, 1, 2, 1}, 2, 2) // the same token twice
	for _, tc := range []struct {
		name string
		sel  Selection
		want []float32
	}{
		{"expert 0 per token", Selection{E: 2, K: 1, IDs: []int32{0, 0}}, []float32{4.5, 0, 4.5, 0}},
		{"expert 1 shared", Selection{E: 2, K: 1, IDs: []int32{1, 1}, Shared: true}, []float32{9.5, 3, 9.5, 3}},
		{"different experts per token", Selection{E: 2, K: 1, IDs: []int32{1, 0}}, []float32{9.5, 3, 4.5, 0}},
		{"all experts", All(2, 2), []float32{13.5, 3, 13.5, 3}},
		// gated: 0.25·[4, 0] + 0.75·[9, 3] + B2, then expert 1 alone at weight 0.5
		{"weighted", Selection{E: 2, K: 2, IDs: []int32{0, 1, 0, 1}, Weights: []float32{0.25, 0.75, 0.25, 0.75}}, []float32{8.25, 2.25, 8.25, 2.25}},
		{"weighted shared", Selection{E: 2, K: 1, IDs: []int32{1, 1}, Shared: true, Weights: []float32{0.5, 1}}, []float32{5, 1.5, 9.5, 3}},
		{"none", Selection{E: 2, K: 0}, []float32{0.5, 0, 0.5, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.sel.K == 0 {
				tc.sel.IDs = []int32{}
			}
			naive := f.ForwardNaive(x, tc.sel)
			checkClose(t, "naive", naive.Data, tc.want, 0, 0)
			got := f.Forward(tensor.NewCtx(), x, tc.sel, nil)
			checkClose(t, "sparse", got.Data, tc.want, 0, 0)
		})
	}
}

// sparseTol is the error bound of the float32 kernel against the float64 reference: each
// output sums S·K products through two GEMMs, so |err| ≲ 1e-6 · Σ|terms|; with the
// ±1/√fan_in weights used here Σ|terms| stays below ~N, hence the width-scaled tolerance.
func sparseTol(n int) float64 { return 2e-6 * float64(n) }

// randSelection draws k distinct experts per token (shared: one subset for all).
func randSelection(r *rand.Rand, t, e, k int, shared bool) Selection {
	sel := Selection{E: e, K: k, IDs: make([]int32, t*k), Shared: shared}
	pick := func(dst []int32) {
		p := r.Perm(e)[:k]
		for i, v := range p {
			dst[i] = int32(v)
		}
		slices.Sort(dst)
	}
	for i := range t {
		if shared && i > 0 {
			copy(sel.Token(i), sel.Token(0))
			continue
		}
		pick(sel.Token(i))
	}
	return sel
}

// TestForwardMatchesNaive runs the kernel against the reference on the shapes that take its
// different paths: one token (decoding, small-m GEMMs), many tokens (the BLAS path, row
// split, experts dealt to workers), shared selections (no gather), every expert (dense path),
// experts nobody picks; with one kernel thread and with three.
func TestForwardMatchesNaive(t *testing.T) {
	for _, tc := range []struct {
		t, c, n, e, k          int
		shared, bias, weighted bool
	}{
		{1, 32, 64, 8, 2, false, true, false},
		{1, 32, 64, 8, 2, true, false, false},
		{7, 16, 48, 6, 1, false, true, false},
		{300, 64, 256, 16, 4, false, true, false},
		{300, 64, 256, 16, 4, true, true, false},
		{200, 64, 256, 32, 31, false, false, false},
		{50, 24, 96, 4, 4, false, true, false},
		{3, 8, 8, 8, 8, true, true, false},
		// gated experts (upcycled): per-token weights on the grouped, shared and all-experts paths
		{1, 32, 64, 4, 2, false, true, true},
		{300, 64, 256, 4, 2, false, true, true},
		{300, 64, 256, 4, 1, true, true, true},
		{50, 24, 96, 4, 4, false, true, true},
		// long inputs: token ranges split between workers (3 threads: 3 ranges, the last short)
		{1000, 64, 256, 64, 16, false, true, false},
		{1000, 64, 256, 16, 4, false, true, true},
	} {
		name := fmt.Sprintf("T%d_C%d_N%d_E%d_K%d_shared%v_bias%v_weighted%v", tc.t, tc.c, tc.n, tc.e, tc.k, tc.shared, tc.bias, tc.weighted)
		t.Run(name, func(t *testing.T) {
			r := newRNG(uint64(tc.t*1000 + tc.k))
			f := randFFN(t, r, tc.c, tc.n, tc.e, tc.bias)
			x := tensor.FromData(randSlice(r, tc.t*tc.c, 2), tc.t, tc.c)
			sel := randSelection(r, tc.t, tc.e, tc.k, tc.shared)
			if tc.weighted {
				sel.Weights = randSlice(r, len(sel.IDs), 1)
			}
			want := f.ForwardNaive(x, sel)
			for _, th := range []int{1, 3} { // 3: experts dealt to workers, or token ranges split, when the work is large
				withThreads(th, func() {
					got := f.Forward(tensor.NewCtx(), x, sel, nil)
					checkClose(t, fmt.Sprintf("sparse, %d threads", th), got.Data, want.Data, sparseTol(tc.n), 1e-5)
				})
			}
		})
	}
}

// TestForwardRejectsBadSelections: a selection that does not fit the block is a wiring error
// and must panic rather than read out of range or silently compute something else; so is
// calling the inference-only kernel while training.
func TestForwardRejectsBadSelections(t *testing.T) {
	r := newRNG(1)
	f := randFFN(t, r, 8, 16, 4, true)
	x := tensor.FromData(randSlice(r, 2*8, 1), 2, 8)
	for _, tc := range []struct {
		name string
		sel  Selection
	}{
		{"wrong E", Selection{E: 8, K: 1, IDs: []int32{0, 1}}},
		{"id out of range", Selection{E: 4, K: 1, IDs: []int32{0, 4}}},
		{"negative id", Selection{E: 4, K: 1, IDs: []int32{-1, 0}}},
		{"repeated id", Selection{E: 4, K: 2, IDs: []int32{1, 1, 0, 2}}},
		{"unsorted ids", Selection{E: 4, K: 2, IDs: []int32{2, 1, 0, 2}}},
		{"too few ids", Selection{E: 4, K: 2, IDs: []int32{0, 1}}},
		{"shared but differing", Selection{E: 4, K: 1, IDs: []int32{0, 1}, Shared: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			f.Forward(tensor.NewCtx(), x, tc.sel, nil)
		})
	}
	t.Run("with a tape", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic: the sparse kernel has no backward")
			}
		}()
		ctx := tensor.NewCtx()
		ctx.SetTape(tensor.NewTape())
		f.Forward(ctx, x, All(2, 4), nil)
	})
}

// TestForwardRecords: Forward appends its selection to the pathway under the block's layer.
func TestForwardRecords(t *testing.T) {
	r := newRNG(2)
	f := randFFN(t, r, 8, 16, 4, true)
	f.Layer = 2
	x := tensor.FromData(randSlice(r, 3*8, 1), 3, 8)
	sel := Selection{E: 4, K: 2, IDs: []int32{0, 3, 1, 2, 0, 1}}
	var p Pathway
	f.Forward(tensor.NewCtx(), x, sel, &p)
	f.Forward(tensor.NewCtx(), x, All(3, 4), &p)
	lp := p.Layers[2]
	if len(p.Layers) != 3 || p.Layers[0].E != 0 || lp.Tokens != 6 || lp.E != 4 {
		t.Fatalf("pathway %+v", p)
	}
	want := [][]int{{0, 3}, {1, 2}, {0, 1}, {0, 1, 2, 3}, {0, 1, 2, 3}, {0, 1, 2, 3}}
	for i, w := range want {
		if got := lp.Experts(i); !slices.Equal(got, w) {
			t.Errorf("token %d used %v, want %v", i, got, w)
		}
	}
}

// FuzzForward checks the kernel against the reference on random shapes, selections and
// thread counts.
func FuzzForward(f *testing.F) {
	for _, s := range []uint64{0, 1, 2, 3, 42} {
		f.Add(s, uint16(1), uint8(16), uint8(2), uint8(4), uint8(1), false)
		f.Add(s, uint16(90), uint8(40), uint8(3), uint8(8), uint8(3), true)
		f.Add(s, uint16(200), uint8(33), uint8(5), uint8(12), uint8(6), false)
	}
	f.Fuzz(func(t *testing.T, seed uint64, tt uint16, c, s, e, k uint8, shared bool) {
		T, C, S, E := 1+int(tt%260), 1+int(c%80), 1+int(s%24), 1+int(e%24)
		K := 1 + int(k)%E
		r := newRNG(seed)
		fn := randFFN(t, r, C, S*E, E, seed%2 == 0)
		x := tensor.FromData(randSlice(r, T*C, 2), T, C)
		sel := randSelection(r, T, E, K, shared)
		want := fn.ForwardNaive(x, sel)
		withThreads(1+int(seed%3), func() {
			got := fn.Forward(tensor.NewCtx(), x, sel, nil)
			checkClose(t, "sparse", got.Data, want.Data, sparseTol(S*E)+1e-5, 1e-5)
		})
	})
}

// Benchmarks: the dense block against the sparse kernel on chorus-micro's shapes (C 256,
// N 1024): the encoder on a 5-s clip (250 content frames) and on a full 30-s window (1500),
// and a decoding step (1 token) and a beam of 5. Selections are random and uniform, which
// spreads tokens evenly over experts (a trained router's skew changes the group sizes, not
// the total work). Each iteration takes the next of 64 selections: repeating one would keep
// the chosen experts' weights in the core's cache, which a decoding step, with the other
// layers' weights in between, would not find there. Each runs with one kernel thread (the work each path does) and with
// tensor.Threads() (what a lone stream gets: the dense GEMMs split their rows, the sparse
// kernel's per-expert GEMMs mostly do not). Compare dense and sparse of the same shape and
// thread count from the same run.
func BenchmarkSparse(b *testing.B) {
	for _, th := range []int{1, tensor.Threads()} {
		b.Run(fmt.Sprintf("threads%d", th), func(b *testing.B) {
			old := tensor.Threads()
			tensor.SetThreads(th)
			defer tensor.SetThreads(old)
			benchSparse(b)
		})
	}
}

func benchSparse(b *testing.B) {
	const c, n = 256, 1024
	for _, t := range []int{250, 1500, 1, 5} {
		r := newRNG(uint64(t))
		x := tensor.FromData(randSlice(r, t*c, 1), t, c)
		w1, b1 := randSlice(r, n*c, 0.06), randSlice(r, n, 0.1)
		w2, b2 := randSlice(r, c*n, 0.03), randSlice(r, c, 0.1)
		b.Run(fmt.Sprintf("T%d/dense", t), func(b *testing.B) {
			f, _ := NewFFN(w1, b1, w2, b2, c, n, 1)
			ctx := tensor.NewCtx()
			for b.Loop() {
				f.Dense(ctx, x)
				ctx.Reset()
			}
		})
		for _, e := range []int{16, 32} {
			f, _ := NewFFN(w1, b1, w2, b2, c, n, e)
			for _, frac := range []int{8, 4, 2} {
				if e == 32 && frac != 4 {
					continue
				}
				k := e / frac
				for _, shared := range []bool{false, true} {
					mode := "token"
					if shared {
						mode = "request"
					}
					var sels [64]Selection
					for i := range sels {
						sels[i] = randSelection(r, t, e, k, shared)
					}
					b.Run(fmt.Sprintf("T%d/E%d_k%d_%s", t, e, k, mode), func(b *testing.B) {
						ctx := tensor.NewCtx()
						i := 0
						for b.Loop() {
							f.Forward(ctx, x, sels[i%len(sels)], nil)
							ctx.Reset()
							i++
						}
					})
				}
			}
		}
	}
}

// BenchmarkSparseRatio measures the speed-up the way a noisy shared host allows: every
// iteration runs the dense block and then the sparse kernel on the same input, timing each
// call, so load from other processes hits both alike; it reports the medians of the per-call
// times (dense-ns, sparse-ns) and of the per-iteration ratio dense/sparse (speedup). Shapes
// and selections as BenchmarkSparse: per-token mode at k/E 1/8, 1/4, 1/2 with E 16, 1/4 with
// E 32 and 64, and per-request mode at 1/4 with E 16; each with the fused expert kernel
// (tensor.ExpertFFN) and with the per-expert GEMMs it replaces.
func BenchmarkSparseRatio(b *testing.B) {
	const c, n = 256, 1024
	for _, th := range []int{1, tensor.Threads()} {
		for _, t := range []int{250, 1500, 1, 5} {
			r := newRNG(uint64(t))
			x := tensor.FromData(randSlice(r, t*c, 1), t, c)
			w1, b1 := randSlice(r, n*c, 0.06), randSlice(r, n, 0.1)
			w2, b2 := randSlice(r, c*n, 0.03), randSlice(r, c, 0.1)
			dense, _ := NewFFN(w1, b1, w2, b2, c, n, 1)
			for _, cfg := range []struct {
				e, k   int
				shared bool
			}{{16, 2, false}, {16, 4, false}, {16, 8, false}, {32, 8, false}, {64, 16, false}, {16, 4, true}} {
				f, _ := NewFFN(w1, b1, w2, b2, c, n, cfg.e)
				var sels [64]Selection
				for i := range sels {
					sels[i] = randSelection(r, t, cfg.e, cfg.k, cfg.shared)
				}
				mode := "token"
				if cfg.shared {
					mode = "request"
				}
				for _, path := range []string{"fused", "gemm"} {
					b.Run(fmt.Sprintf("threads%d/T%d/E%d_k%d_%s/%s", th, t, cfg.e, cfg.k, mode, path), func(b *testing.B) {
						old := tensor.Threads()
						tensor.SetThreads(th)
						defer tensor.SetThreads(old)
						gemmOnly = path == "gemm"
						defer func() { gemmOnly = false }()
						ctx := tensor.NewCtx()
						var dt, st, ratio []float64
						i := 0
						for b.Loop() {
							t0 := time.Now()
							dense.Dense(ctx, x)
							t1 := time.Now()
							f.Forward(ctx, x, sels[i%len(sels)], nil)
							t2 := time.Now()
							ctx.Reset()
							d, s := float64(t1.Sub(t0)), float64(t2.Sub(t1))
							dt, st, ratio = append(dt, d), append(st, s), append(ratio, d/s)
							i++
						}
						b.ReportMetric(median(dt), "dense-ns")
						b.ReportMetric(median(st), "sparse-ns")
						b.ReportMetric(median(ratio), "speedup")
					})
				}
			}
		}
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// withThreads runs fn with n kernel threads and restores the setting.
func withThreads(n int, fn func()) {
	old := tensor.Threads()
	tensor.SetThreads(n)
	defer tensor.SetThreads(old)
	fn()
}
