package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// Tape tests run real Ctx graphs, so the loss they differentiate is computed by the float32
// kernels. The finite differences therefore use a larger step, h = 1e-2 (the actual step is
// re-measured after rounding the perturbed float32), with L = Σ r·out summed in float64:
// truncation h²·L⁽³⁾/6 ≈ 2e-5 for these smooth functions, and the float32 rounding of the
// outputs (~1e-7 relative each, ~1e-6 on L) divided by 2h adds ≈ 5e-5. Gradients here are
// O(0.1–1), so |got − want| ≤ 2e-3·max|want| + 1e-6 leaves a 10× margin while any wiring
// mistake (a wrong operand, offset or transpose) is off by O(1). Kinks (ReLU) are kept at
// least 0.1 away from the inputs.

const (
	tapeStep = 1e-2
	tapeTol  = 2e-3
)

// checkTapeGrads compares tape gradients of params with central differences of loss.
func checkTapeGrads(t testing.TB, label string, params []*T, grads [][]float32, loss func() float64) {
	t.Helper()
	for pi, p := range params {
		want := make([]float64, len(p.Data))
		for i := range p.Data {
			old := p.Data[i]
			p.Data[i] = old + tapeStep
			hp := float64(p.Data[i]) - float64(old)
			lp := loss()
			p.Data[i] = old - tapeStep
			hm := float64(old) - float64(p.Data[i])
			lm := loss()
			p.Data[i] = old
			want[i] = (lp - lm) / (hp + hm)
		}
		checkGrad(t, fmt.Sprintf("%s param %d %v", label, pi, p.Shape), grads[pi], nil, want, tapeTol)
	}
}

// tapeCase is one graph: build runs ops on inputs and returns an output to seed with r (or
// nil) plus the value of any loss ops it ran.
type tapeCase struct {
	name   string
	shapes [][]int
	build  func(c *Ctx, in []*T) (*T, float64)
}

func tapeCases() []tapeCase {
	return []tapeCase{
		{"linear", [][]int{{3, 4}, {5, 4}, {5}}, func(c *Ctx, in []*T) (*T, float64) {
			return c.Linear(in[0], in[1], in[2]), 0
		}},
		{"linear 3-d input, no bias", [][]int{{2, 3, 4}, {2, 4}}, func(c *Ctx, in []*T) (*T, float64) {
			return c.Linear(in[0], in[1], nil), 0
		}},
		{"layernorm", [][]int{{3, 6}, {6}, {6}}, func(c *Ctx, in []*T) (*T, float64) {
			return c.LayerNorm(in[0], in[1], in[2], 1e-5), 0
		}},
		{"gelu", [][]int{{4, 5}}, func(c *Ctx, in []*T) (*T, float64) { return c.GELU(in[0]), 0 }},
		{"relu", [][]int{{4, 5}}, func(c *Ctx, in []*T) (*T, float64) { return c.ReLU(in[0]), 0 }},
		{"add, same tensor twice", [][]int{{3, 2}, {3, 2}}, func(c *Ctx, in []*T) (*T, float64) {
			return c.Add(c.Add(in[0], in[1]), in[0]), 0
		}},
		{"add rows at offset", [][]int{{3, 4}, {6, 4}}, func(c *Ctx, in []*T) (*T, float64) {
			return c.AddRows(in[0], in[1], 2), 0
		}},
		{"embedding, repeated ids", [][]int{{5, 3}}, func(c *Ctx, in []*T) (*T, float64) {
			return c.Embedding(in[0], []int{4, 1, 4, 0}), 0
		}},
		{"conv1d stride 2 pad 1", [][]int{{7, 3}, {4, 3, 3}, {4}}, func(c *Ctx, in []*T) (*T, float64) {
			return c.Conv1d(in[0], in[1], in[2], 2, 1), 0
		}},
		{"attention causal tq<tk", [][]int{{2, 6}, {4, 6}, {4, 6}}, func(c *Ctx, in []*T) (*T, float64) {
			return c.Attention(in[0], in[1], in[2], 2, true), 0
		}},
		{"attention", [][]int{{3, 4}, {5, 4}, {5, 4}}, func(c *Ctx, in []*T) (*T, float64) {
			return c.Attention(in[0], in[1], in[2], 2, false), 0
		}},
		{"transpose", [][]int{{3, 5}}, func(c *Ctx, in []*T) (*T, float64) { return c.Transpose(in[0]), 0 }},
		{"rows", [][]int{{5, 3}, {2, 3}}, func(c *Ctx, in []*T) (*T, float64) {
			return c.Linear(c.Rows(in[0], 1, 4), in[1], nil), 0
		}},
		{"log-softmax", [][]int{{3, 5}}, func(c *Ctx, in []*T) (*T, float64) { return c.LogSoftmax(in[0]), 0 }},
		{"scale grad", [][]int{{2, 3}, {4, 3}}, func(c *Ctx, in []*T) (*T, float64) {
			return nil, 0.25 * c.CrossEntropy(c.ScaleGrad(c.Linear(in[0], in[1], nil), 0.25), []int{3, 1}, 0, -1)
		}},
		{"cross-entropy", [][]int{{4, 3}, {6, 3}}, func(c *Ctx, in []*T) (*T, float64) {
			logits := c.Linear(in[0], in[1], nil)
			return nil, c.CrossEntropy(logits, []int{2, -1, 0, 5}, 0.1, -1)
		}},
		{"ctc after log-softmax", [][]int{{6, 4}}, func(c *Ctx, in []*T) (*T, float64) {
			return nil, c.CTCLoss(c.LogSoftmax(in[0]), []int{1, 2, 2}, 0)
		}},
		{"weighted losses", [][]int{{6, 4}}, func(c *Ctx, in []*T) (*T, float64) {
			ctc := c.CTCLoss(c.LogSoftmax(c.ScaleGrad(in[0], 0.3)), []int{3, 1}, 0)
			ce := c.CrossEntropy(c.ScaleGrad(in[0], 0.7), []int{1, 0, 3, 3, 2, 1}, 0, -100)
			return nil, 0.3*ctc + 0.7*ce
		}},
	}
}

// keepFromKinks moves values within 0.1 of zero away from it (ReLU's kink).
func keepFromKinks(s []float32) {
	for i, v := range s {
		if math.Abs(float64(v)) < 0.1 {
			s[i] = v + float32(math.Copysign(0.2, float64(v)))
		}
	}
}

func TestTapeOps(t *testing.T) {
	r := newRNG(21)
	for _, tc := range tapeCases() {
		t.Run(tc.name, func(t *testing.T) {
			in := make([]*T, len(tc.shapes))
			for i, s := range tc.shapes {
				in[i] = FromData(randSlice(r, Numel(s), 1), s...)
				keepFromKinks(in[i].Data)
			}
			// The seed r for the output; its shape is known after one forward.
			probe, _ := tc.build(NewCtx(), in)
			var seed []float32
			if probe != nil {
				seed = randSlice(r, probe.Len(), 1)
			}
			loss := func() float64 {
				c := NewCtx()
				out, l := tc.build(c, in)
				if out != nil {
					l += dot64(seed, to64(out.Data))
				}
				return l
			}

			c := NewTrainCtx()
			tp := c.Tape()
			tp.Watch(in...)
			out, _ := tc.build(c, in)
			if out != nil {
				tp.Seed(out, seed)
			}
			tp.Backward()
			if tp.Len() != 0 || len(tp.live) != 0 {
				t.Fatalf("after Backward: %d steps, %d activation gradients left", tp.Len(), len(tp.live))
			}
			grads := make([][]float32, len(in))
			for i, x := range in {
				grads[i] = tp.Grad(x).Data
			}
			checkTapeGrads(t, tc.name, in, grads, loss)
		})
	}
}

// mlp is the tiny model of TestTapeMLP: a residual block with a weight used twice, a layer
// norm and a label-smoothed cross entropy.
type mlp struct {
	w1, b1, w2, g, beta, w3, b3 *T
}

func newMLP(r *rand.Rand) *mlp {
	p := func(scale float32, s ...int) *T { return FromData(randSlice(r, Numel(s), scale), s...) }
	return &mlp{w1: p(0.6, 8, 5), b1: p(0.1, 8), w2: p(0.4, 8, 8), g: p(0.3, 8), beta: p(0.1, 8), w3: p(0.5, 4, 8), b3: p(0.1, 4)}
}

func (m *mlp) params() []*T { return []*T{m.w1, m.b1, m.w2, m.g, m.beta, m.w3, m.b3} }

func (m *mlp) loss(c *Ctx, x *T, targets []int) float64 {
	h := c.GELU(c.Linear(x, m.w1, m.b1))
	h = c.Add(h, c.Linear(c.GELU(c.Linear(h, m.w2, nil)), m.w2, nil)) // w2 twice
	h = c.LayerNorm(h, m.g, m.beta, 1e-5)
	return c.CrossEntropy(c.Linear(h, m.w3, m.b3), targets, 0.1, -1)
}

func TestTapeMLP(t *testing.T) {
	r := newRNG(22)
	m := newMLP(r)
	for i := range m.g.Data {
		m.g.Data[i] += 1
	}
	x := FromData(randSlice(r, 6*5, 1), 6, 5) // input: not watched, needs no gradient
	targets := []int{0, 3, -1, 2, 1, 3}

	c := NewTrainCtx()
	tp := c.Tape()
	tp.Watch(m.params()...)
	step := func() [][]float32 {
		m.loss(c, x, targets)
		tp.Backward()
		c.Reset()
		out := make([][]float32, 0, 7)
		for _, p := range m.params() {
			out = append(out, append([]float32(nil), tp.Grad(p).Data...))
		}
		return out
	}
	g1 := step()
	if tp.existing(x) != nil {
		t.Fatal("the unwatched input got a gradient buffer")
	}
	checkTapeGrads(t, "mlp", m.params(), g1, func() float64 { return m.loss(NewCtx(), x, targets) })

	// Reset zeroes the gradients and keeps the buffers; the next step reproduces the first
	// bit for bit (recycled activation gradients must come back zeroed).
	buf := &tp.Grad(m.w2).Data[0]
	tp.Reset()
	for _, p := range m.params() {
		for _, v := range tp.Grad(p).Data {
			if v != 0 {
				t.Fatal("Reset left a non-zero gradient")
			}
		}
	}
	g2 := step()
	if &tp.Grad(m.w2).Data[0] != buf {
		t.Error("Reset reallocated a weight's gradient buffer")
	}
	// Without Reset, a second step accumulates (gradient accumulation over micro-batches).
	g3 := step()
	for i := range g1 {
		for j := range g1[i] {
			if g2[i][j] != g1[i][j] {
				t.Fatalf("param %d [%d]: second step %g, first %g", i, j, g2[i][j], g1[i][j])
			}
			if d := math.Abs(float64(g3[i][j] - 2*g1[i][j])); d > 1e-6*math.Abs(float64(g1[i][j]))+1e-9 {
				t.Fatalf("param %d [%d]: accumulated %g, want %g", i, j, g3[i][j], 2*g1[i][j])
			}
		}
	}

	// Frozen weights: an unwatched tensor gets no gradient, the others are unchanged.
	c2 := NewTrainCtx()
	tp2 := c2.Tape()
	tp2.Watch(m.w2, m.g, m.beta, m.w3, m.b3) // w1, b1 frozen
	m.loss(c2, x, targets)
	tp2.Backward()
	if tp2.existing(m.w1) != nil || tp2.existing(m.b1) != nil {
		t.Error("frozen weights got gradients")
	}
	checkClose(t, "w3 with w1 frozen", tp2.Grad(m.w3).Data, g1[5], []float32{0}, 0)
}

func TestTapeLifecycle(t *testing.T) {
	r := newRNG(23)
	w := FromData(randSlice(r, 6, 1), 2, 3)
	x := FromData(randSlice(r, 3, 1), 1, 3)

	t.Run("no tape records nothing", func(t *testing.T) {
		c := NewCtx()
		if c.Tape() != nil || c.ScaleGrad(x, 2) != x {
			t.Fatal("a plain Ctx has a tape")
		}
	})
	t.Run("nothing watched records nothing", func(t *testing.T) {
		c := NewTrainCtx()
		c.GELU(c.Linear(x, w, nil))
		if n := c.Tape().Len(); n != 0 {
			t.Fatalf("%d steps recorded for constant inputs", n)
		}
	})
	t.Run("ctx reset drops pending steps", func(t *testing.T) {
		c := NewTrainCtx()
		c.Tape().Watch(w)
		c.Linear(x, w, nil)
		c.Reset()
		if n := c.Tape().Len(); n != 0 {
			t.Fatalf("%d steps survive Ctx.Reset", n)
		}
	})
	t.Run("an unused output stops the gradient", func(t *testing.T) {
		c := NewTrainCtx()
		c.Tape().Watch(w)
		c.Linear(x, w, nil) // never seeded
		c.Tape().Backward()
		if c.Tape().existing(w) != nil {
			t.Fatal("gradient allocated for a weight no loss depends on")
		}
	})
	t.Run("linear f16 panics", func(t *testing.T) {
		defer func() {
			if e := recover(); e == nil || !strings.Contains(fmt.Sprint(e), "inference-only") {
				t.Fatalf("recovered %v", e)
			}
		}()
		NewTrainCtx().LinearF16(x, make([]uint16, 6), 2, nil)
	})
}

// TestBackwardParallel checks the threaded paths (row-split Sgemms, multi-worker attention,
// chunked cross entropy) against single-threaded runs of the same twins, which the finite
// difference tests cover at small sizes.
func TestBackwardParallel(t *testing.T) {
	r := newRNG(24)
	run := func(threads, blas int, f func()) { withThreads(t, threads, blas, f) }
	t.Run("linear", func(t *testing.T) {
		const m, k, n = 300, 40, 140
		x, w, dout := randSlice(r, m*k, 1), randSlice(r, n*k, 1), randSlice(r, m*n, 1)
		want := [3][]float32{make([]float32, m*k), make([]float32, n*k), make([]float32, n)}
		got := [3][]float32{make([]float32, m*k), make([]float32, n*k), make([]float32, n)}
		run(1, 1, func() { LinearBackward(want[0], want[1], want[2], dout, x, w, m, k, n) })
		run(2, 1, func() { LinearBackward(got[0], got[1], got[2], dout, x, w, m, k, n) })
		for i := range want {
			checkClose(t, fmt.Sprint("grad ", i), got[i], want[i], []float32{1e-5}, 1e-5)
		}
	})
	t.Run("attention", func(t *testing.T) {
		const tq, tk, heads, d = 40, 60, 4, 16
		w := heads * d
		q, k, v, dout := randSlice(r, tq*w, 1), randSlice(r, tk*w, 1), randSlice(r, tk*w, 1), randSlice(r, tq*w, 1)
		var want, got [3][]float32
		for i, n := range []int{tq * w, tk * w, tk * w} {
			want[i], got[i] = make([]float32, n), make([]float32, n)
		}
		run(1, 1, func() { AttentionBackward(want[0], want[1], want[2], dout, q, k, v, tq, tk, heads, d, true) })
		run(2, 1, func() { AttentionBackward(got[0], got[1], got[2], dout, q, k, v, tq, tk, heads, d, true) })
		for i := range want {
			checkClose(t, fmt.Sprint("grad ", i), got[i], want[i], []float32{1e-6}, 1e-6)
		}
	})
	t.Run("cross-entropy", func(t *testing.T) {
		const rows, vocab = 300, 512
		logits := randSlice(r, rows*vocab, 4)
		targets := make([]int, rows)
		for i := range targets {
			targets[i] = r.IntN(vocab)
		}
		want := ce64(to64(logits), targets, rows, vocab, 0.1, -1)
		for _, th := range []int{1, 2} {
			var got float64
			run(th, 1, func() { got, _ = CrossEntropy(logits, targets, rows, vocab, 0.1, -1, nil) })
			if math.Abs(got-want) > 1e-6*want {
				t.Fatalf("threads %d: loss %.12g, want %.12g", th, got, want)
			}
		}
	})
}
