package tensor

import "fmt"

// Tape records the ops a Ctx runs so that Backward can run their gradient twins in reverse.
// It is what turns the inference model code into training code: attach a tape to the Ctx
// (SetTape, or NewTrainCtx) and every op that reads a tensor needing a gradient appends one
// backward step; with no tape attached an op pays one nil check.
//
// Which tensors need gradients. A tensor needs one when it is watched (Watch: the model's
// trainable weights, W/B/Pos/LayerNorm tensors, usually registered once) or when it is the
// output of a recorded op. An op none of whose inputs needs a gradient records nothing — the
// transpose of the input mel, a frozen conv stem — so inputs (the mel, token ids) and frozen
// weights cost nothing in the backward pass.
//
// Tensors are identified by their *T pointer. A view made outside a Ctx op (FromData on a
// sub-slice, Reshape, a KV cache's K()/V()) is a different, unknown tensor: no gradient flows
// through it, silently. Use the Ctx ops that record their backward instead (Rows for a row
// range); a KV cache is an inference device and training runs without one.
//
// Gradient buffers. Gradients of watched tensors live until Reset (which zeroes them and
// keeps the buffers); they accumulate over every Backward since, so gradient accumulation over
// micro-batches is forward/Backward/Ctx.Reset repeated. Gradients of activations are pooled
// by length and recycled during Backward itself: an activation's gradient is complete once
// the op that produced it runs its backward step, and is returned to the pool right after,
// so peak gradient memory is about one layer's activations, and the same shapes every step
// allocate nothing after the first.
//
// A Tape, like its Ctx, is not safe for concurrent use.
type Tape struct {
	ops     []tapeOp
	params  map[*T]*T // watched tensors → gradient (nil until first needed)
	live    map[*T]*T // outputs of recorded ops in this pass → gradient (nil until needed)
	free    map[int][][]float32
	touched map[int]bool // size classes allocated since the last trim (see Backward)
}

// tapeOp is one recorded backward step: back receives the gradient of out (nil out: a loss,
// which seeds itself). scratch, if set, is returned to the pool when the step is done or
// discarded.
type tapeOp struct {
	out     *T
	back    func(dout []float32)
	scratch []float32
}

// NewTape returns an empty tape.
func NewTape() *Tape {
	return &Tape{params: map[*T]*T{}, live: map[*T]*T{}, free: map[int][][]float32{}, touched: map[int]bool{}}
}

// NewTrainCtx returns a context with a fresh tape attached.
func NewTrainCtx() *Ctx {
	c := NewCtx()
	c.SetTape(NewTape())
	return c
}

// SetTape attaches t to the context (nil detaches it: an evaluation pass on a training
// context). Pending ops of a previously attached tape stay on that tape.
func (c *Ctx) SetTape(t *Tape) { c.tape = t }

// Tape returns the attached tape, or nil.
func (c *Ctx) Tape() *Tape { return c.tape }

// Watch marks tensors as needing gradients (trainable weights); nil entries are ignored, so
// optional biases can be passed as they are. Unwatched weights are frozen: no gradient is
// computed for them.
func (t *Tape) Watch(ts ...*T) {
	for _, x := range ts {
		if x != nil {
			if _, ok := t.params[x]; !ok {
				t.params[x] = nil
			}
		}
	}
}

// Watched reports whether x was passed to Watch.
func (t *Tape) Watched(x *T) bool {
	_, ok := t.params[x]
	return ok
}

// Grad returns the gradient buffer of x, shaped like x, allocating it zeroed on first use.
// After Backward it holds dLoss/dx for watched tensors; gradients of activations are recycled
// during Backward, so read them (or Seed them) before.
func (t *Tape) Grad(x *T) *T {
	if g, ok := t.params[x]; ok {
		if g == nil {
			g = t.newGrad(x)
			t.params[x] = g
		}
		return g
	}
	g := t.live[x]
	if g == nil {
		g = t.newGrad(x)
		t.live[x] = g
	}
	return g
}

// Seed adds dout to the gradient of x: the gradient of an objective computed outside the tape
// (knowledge distillation against a teacher, a test's Σ r·out) with respect to x.
func (t *Tape) Seed(x *T, dout []float32) {
	g := t.Grad(x)
	need("tape seed", dout, len(g.Data))
	AddInPlace(g.Data, dout[:len(g.Data)])
}

// Backward runs the recorded backward steps in reverse order, then forgets them. Loss ops
// (Ctx.CrossEntropy, Ctx.CTCLoss) seed themselves; other roots are seeded with Seed first.
// Gradients of watched tensors accumulate; see the Tape doc for buffer lifetimes.
func (t *Tape) Backward() {
	for i := len(t.ops) - 1; i >= 0; i-- {
		op := t.ops[i]
		t.ops[i] = tapeOp{}
		if op.out == nil {
			op.back(nil)
		} else if g := t.existing(op.out); g != nil {
			op.back(g.Data)
			if _, param := t.params[op.out]; !param {
				delete(t.live, op.out)
				t.put(g.Data)
			}
		}
		if op.scratch != nil {
			t.put(op.scratch)
		}
	}
	t.ops = t.ops[:0]
	t.dropLive()
	// As the Ctx arena: keep pooled buffers only of the size classes this pass used.
	for cl := range t.free {
		if !t.touched[cl] {
			delete(t.free, cl)
		}
	}
	clear(t.touched)
}

// Reset prepares the tape for the next step: it drops recorded steps that were not run and
// the activations' gradients, and zeroes the gradients of watched tensors (keeping their
// buffers and the watch list).
func (t *Tape) Reset() {
	t.discard()
	for _, g := range t.params {
		if g != nil {
			clear(g.Data)
		}
	}
}

// Len is the number of recorded backward steps waiting for Backward.
func (t *Tape) Len() int { return len(t.ops) }

// discard drops pending steps and activation gradients (Ctx.Reset recycles the activations
// the steps would read).
func (t *Tape) discard() {
	for i, op := range t.ops {
		if op.scratch != nil {
			t.put(op.scratch)
		}
		t.ops[i] = tapeOp{}
	}
	t.ops = t.ops[:0]
	t.dropLive()
}

func (t *Tape) dropLive() {
	for x, g := range t.live {
		if g != nil {
			t.put(g.Data)
		}
		delete(t.live, x)
	}
}

// needs reports whether x needs a gradient: watched, or produced by a recorded op.
func (t *Tape) needs(x *T) bool {
	if x == nil {
		return false
	}
	if _, ok := t.params[x]; ok {
		return true
	}
	_, ok := t.live[x]
	return ok
}

// existing returns x's gradient if one was allocated, without allocating.
func (t *Tape) existing(x *T) *T {
	if g, ok := t.params[x]; ok {
		return g
	}
	return t.live[x]
}

// gradIf returns x's gradient data when want is set, else nil (the twins' "skip" value).
func (t *Tape) gradIf(want bool, x *T) []float32 {
	if !want {
		return nil
	}
	return t.Grad(x).Data
}

// record appends a backward step producing out's inputs' gradients from out's gradient.
func (t *Tape) record(out *T, back func(dout []float32)) {
	t.live[out] = nil
	t.ops = append(t.ops, tapeOp{out: out, back: back})
}

// recordLoss appends a self-seeding step; scratch (the precomputed gradient) is recycled
// after it runs.
func (t *Tape) recordLoss(scratch []float32, back func()) {
	t.ops = append(t.ops, tapeOp{back: func([]float32) { back() }, scratch: scratch})
}

func (t *Tape) newGrad(x *T) *T {
	return &T{Shape: append([]int(nil), x.Shape...), Data: t.alloc(len(x.Data))}
}

// alloc returns a zeroed buffer of n floats from the pool (keyed by size class, as the Ctx
// arena, so varying batch shapes reuse buffers instead of piling up new ones).
func (t *Tape) alloc(n int) []float32 {
	cl := sizeClass(n)
	t.touched[cl] = true
	if l := t.free[cl]; len(l) > 0 {
		b := l[len(l)-1][:n]
		t.free[cl] = l[:len(l)-1]
		clear(b)
		return b
	}
	return make([]float32, n, cl)
}

func (t *Tape) put(b []float32) { t.free[cap(b)] = append(t.free[cap(b)], b) }

// The record methods below are called by the Ctx ops (ctx.go) after the forward kernel ran,
// only when a tape is attached. Each captures the forward's inputs (valid until Ctx.Reset) and
// which of them need gradients.

func (t *Tape) linear(out, x, w, b *T, m, k, n int) {
	nx, nw, nb := t.needs(x), t.needs(w), t.needs(b)
	if !nx && !nw && !nb {
		return
	}
	t.record(out, func(dout []float32) {
		LinearBackward(t.gradIf(nx, x), t.gradIf(nw, w), t.gradIf(nb, b), dout, x.Data, w.Data, m, k, n)
	})
}

func (t *Tape) layerNorm(out, x, gamma, beta *T, r, cols int, eps float32) {
	nx, ng, nb := t.needs(x), t.needs(gamma), t.needs(beta)
	if !nx && !ng && !nb {
		return
	}
	var g []float32
	if gamma != nil {
		g = gamma.Data
	}
	t.record(out, func(dout []float32) {
		LayerNormBackward(t.gradIf(nx, x), t.gradIf(ng, gamma), t.gradIf(nb, beta), dout, x.Data, g, r, cols, eps)
	})
}

// unary records an elementwise op whose twin is back(dx, dout, x).
func (t *Tape) unary(out, x *T, back func(dx, dout, x []float32)) {
	if !t.needs(x) {
		return
	}
	t.record(out, func(dout []float32) { back(t.Grad(x).Data, dout, x.Data) })
}

func (t *Tape) add(out, a, b *T) {
	na, nb := t.needs(a), t.needs(b)
	if !na && !nb {
		return
	}
	t.record(out, func(dout []float32) {
		if na {
			AddInPlace(t.Grad(a).Data, dout)
		}
		if nb {
			AddInPlace(t.Grad(b).Data, dout)
		}
	})
}

func (t *Tape) addRows(out, x, table *T, bs, offset, r, cols int) {
	nx, nt := t.needs(x), t.needs(table)
	if !nx && !nt {
		return
	}
	t.record(out, func(dout []float32) {
		if nx {
			AddInPlace(t.Grad(x).Data, dout)
		}
		if nt {
			g := t.Grad(table).Data[offset*cols : (offset+r)*cols]
			for i := range bs {
				AddInPlace(g, dout[i*r*cols:(i+1)*r*cols])
			}
		}
	})
}

func (t *Tape) rows(out, x *T, from, to, cols int) {
	if !t.needs(x) {
		return
	}
	t.record(out, func(dout []float32) {
		AddInPlace(t.Grad(x).Data[from*cols:to*cols], dout)
	})
}

func (t *Tape) scaleGrad(out, x *T, s float32) {
	if !t.needs(x) {
		return
	}
	t.record(out, func(dout []float32) {
		d := t.Grad(x).Data
		parallelFor(len(d), grainElems, func(lo, hi int) {
			for i, v := range dout[lo:hi] {
				d[lo+i] += s * v
			}
		})
	})
}

func (t *Tape) embedding(out, table *T, ids []int, cols int) {
	if !t.needs(table) {
		return
	}
	ids = append([]int(nil), ids...) // the caller may reuse its token slice before Backward
	t.record(out, func(dout []float32) { EmbeddingBackward(t.Grad(table).Data, dout, ids, cols) })
}

func (t *Tape) conv1d(out, x, w, b *T, bs, tin, cin, cout, kw, stride, pad int) {
	nx, nw, nb := t.needs(x), t.needs(w), t.needs(b)
	if !nx && !nw && !nb {
		return
	}
	tout := Conv1dOut(tin, kw, stride, pad)
	t.record(out, func(dout []float32) {
		dx, dw, db := t.gradIf(nx, x), t.gradIf(nw, w), t.gradIf(nb, b)
		for i := range bs {
			var dxi []float32
			if dx != nil {
				dxi = dx[i*tin*cin : (i+1)*tin*cin]
			}
			Conv1dBackward(dxi, dw, db, dout[i*tout*cout:(i+1)*tout*cout], x.Data[i*tin*cin:(i+1)*tin*cin], w.Data, tin, cin, cout, kw, stride, pad)
		}
	})
}

func (t *Tape) attention(out, q, k, v *T, bs, tq, tk, heads, d int, causal bool) {
	nq, nk, nv := t.needs(q), t.needs(k), t.needs(v)
	if !nq && !nk && !nv {
		return
	}
	w := heads * d
	t.record(out, func(dout []float32) {
		dq, dk, dv := t.gradIf(nq, q), t.gradIf(nk, k), t.gradIf(nv, v)
		part := func(g []float32, off, n int) []float32 {
			if g == nil {
				return nil
			}
			return g[off : off+n]
		}
		for i := range bs {
			qs, ks := i*tq*w, i*tk*w
			AttentionBackward(part(dq, qs, tq*w), part(dk, ks, tk*w), part(dv, ks, tk*w), dout[qs:qs+tq*w],
				q.Data[qs:qs+tq*w], k.Data[ks:ks+tk*w], v.Data[ks:ks+tk*w], tq, tk, heads, d, causal)
		}
	})
}

func (t *Tape) transpose(out, x *T, bs, r, cols int) {
	if !t.needs(x) {
		return
	}
	t.record(out, func(dout []float32) {
		dx := t.Grad(x).Data
		for i := range bs {
			TransposeBackward(dx[i*r*cols:(i+1)*r*cols], dout[i*r*cols:(i+1)*r*cols], r, cols)
		}
	})
}

func (t *Tape) logSoftmax(out, x *T, r, cols int) {
	if !t.needs(x) {
		return
	}
	t.record(out, func(dout []float32) { LogSoftmaxBackward(t.Grad(x).Data, dout, out.Data, r, cols) })
}

// inferenceOnly panics for ops that have no backward (half-precision weights).
func inferenceOnly(op string) {
	panic(fmt.Sprintf("tensor: %s is inference-only and cannot run with a tape attached; train on float32 weights", op))
}
