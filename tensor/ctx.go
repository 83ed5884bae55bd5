package tensor

import "fmt"

// Ctx runs tensor ops for one forward pass. It owns the scratch memory the ops allocate (an
// arena reused across passes, so a streaming session does not churn the garbage collector)
// and, when training, the tape that records each op for the backward pass. The model code is
// written once against Ctx; inference and training differ only in whether a tape is attached.
//
// A Ctx is not safe for concurrent use: each stream (Session) and each training worker owns
// one.
type Ctx struct {
	free    map[int][][]float32 // released buffers by size class (see sizeClass)
	touched map[int]bool        // size classes handed out since the last Reset
	used    [][]float32         // buffers handed out since the last Reset
	tape    *Tape               // nil for inference; see tape.go
	maxFree int                 // the largest class in free (New looks no further up)
}

// NewCtx returns an empty context.
func NewCtx() *Ctx { return &Ctx{free: make(map[int][][]float32), touched: make(map[int]bool)} }

// New returns a tensor whose storage comes from the arena. Its contents are undefined: every
// op overwrites its whole output. The tensor is valid until the next Reset.
func (c *Ctx) New(shape ...int) *T {
	n := Numel(shape)
	cl := sizeClass(n)
	var buf []float32
	// A free buffer of n's class, or else the smallest free one of a larger class (up to
	// borrowRatio times as large, so that a small tensor does not take the buffer a large
	// one of the same pass needs): a pass shorter than the last one — the next utterance's
	// shorter window, a streaming window restarted — reuses the last pass's buffers instead
	// of having the runtime allocate and zero new ones. (Reset keeps only the classes a pass
	// touched, so the arena still holds about one pass's buffers.)
	for try := cl; try <= min(c.maxFree, borrowRatio*cl); try = nextClass(try) {
		if l := c.free[try]; len(l) > 0 {
			buf = l[len(l)-1][:n]
			c.free[try] = l[:len(l)-1]
			cl = try
			break
		}
	}
	if buf == nil {
		buf = make([]float32, n, cl)
	}
	c.touched[cl] = true
	c.used = append(c.used, buf)
	return &T{Shape: append([]int(nil), shape...), Data: buf}
}

// Zeros is New with the contents cleared.
func (c *Ctx) Zeros(shape ...int) *T {
	t := c.New(shape...)
	clear(t.Data)
	return t
}

// Reset returns every buffer handed out since the last Reset to the arena. Tensors obtained
// from the context must not be used afterwards; copy what must outlive the pass. An attached
// tape drops the backward steps it recorded but did not run (they would read the recycled
// buffers) and its activation gradients; gradients of watched tensors are kept.
func (c *Ctx) Reset() {
	if c.tape != nil {
		c.tape.discard()
	}
	// Keep only the size classes this pass used: passes of different shapes (shuffled
	// training batches) would otherwise leave the pool holding the union of all of them,
	// many times one pass's footprint. Inference passes repeat their shapes and keep all.
	for cl := range c.free {
		if !c.touched[cl] {
			delete(c.free, cl)
		}
	}
	clear(c.touched)
	c.maxFree = 0
	for cl := range c.free {
		c.maxFree = max(c.maxFree, cl)
	}
	for _, b := range c.used {
		cl := cap(b)
		c.free[cl] = append(c.free[cl], b)
		c.maxFree = max(c.maxFree, cl)
	}
	c.used = c.used[:0]
}

// sizeClass rounds a buffer length up to one of a geometric series of capacities (steps of
// 2^¼, at most 19% slack), so that passes whose shapes vary (training batches of different
// lengths, decoding windows) reuse each other's buffers. Keyed by exact length, an arena
// would keep every length it ever saw and grow without bound.
func sizeClass(n int) int {
	if n <= 256 {
		return (n + 63) &^ 63
	}
	c := 256
	for c < n {
		c = nextClass(c)
	}
	return c
}

// borrowRatio bounds how much larger than its own class a buffer New reuses may be.
const borrowRatio = 8

// nextClass is the size class after class c (c ≥ 256; below, classes step by 64).
func nextClass(c int) int {
	if c < 256 {
		return c + 64
	}
	return (c + c/4 + 63) &^ 63
}

func rows(x *T) (r, cols int) {
	cols = x.Shape[len(x.Shape)-1]
	return len(x.Data) / cols, cols
}

// Linear returns x·wᵀ + b for x [.., K], w [N, K], b [N] or nil.
func (c *Ctx) Linear(x, w, b *T) *T {
	m, k := rows(x)
	if w.Shape[1] != k {
		panic(fmt.Sprintf("tensor: linear x %v w %v", x.Shape, w.Shape))
	}
	n := w.Shape[0]
	out := c.New(outShape(x.Shape, n)...)
	var bd []float32
	if b != nil {
		bd = b.Data
	}
	Linear(out.Data, x.Data, w.Data, bd, m, k, n)
	if c.tape != nil {
		c.tape.linear(out, x, w, b, m, k, n)
	}
	return out
}

// LinearF16 is Linear with the weight [N, K] stored as IEEE half precision. It is
// inference-only: with a tape attached it panics (train on float32 weights).
func (c *Ctx) LinearF16(x *T, w []uint16, n int, b *T) *T {
	if c.tape != nil {
		inferenceOnly("LinearF16")
	}
	m, k := rows(x)
	if len(w) != n*k {
		panic(fmt.Sprintf("tensor: linear f16 x %v w %d values for %d outputs", x.Shape, len(w), n))
	}
	out := c.New(outShape(x.Shape, n)...)
	var bd []float32
	if b != nil {
		bd = b.Data
	}
	LinearF16(out.Data, x.Data, w, bd, m, k, n)
	return out
}

func outShape(in []int, last int) []int {
	s := append([]int(nil), in...)
	s[len(s)-1] = last
	return s
}

// LayerNorm normalises over the last dimension with torch's biased variance.
func (c *Ctx) LayerNorm(x, gamma, beta *T, eps float32) *T {
	r, cols := rows(x)
	out := c.New(x.Shape...)
	var g, b []float32
	if gamma != nil {
		g = gamma.Data
	}
	if beta != nil {
		b = beta.Data
	}
	LayerNorm(out.Data, x.Data, g, b, r, cols, eps)
	if c.tape != nil {
		c.tape.layerNorm(out, x, gamma, beta, r, cols, eps)
	}
	return out
}

// GELU is the exact erf GELU.
func (c *Ctx) GELU(x *T) *T {
	out := c.New(x.Shape...)
	GELU(out.Data, x.Data)
	if c.tape != nil {
		c.tape.unary(out, x, GELUBackward)
	}
	return out
}

// ReLU is max(x, 0).
func (c *Ctx) ReLU(x *T) *T {
	out := c.New(x.Shape...)
	ReLU(out.Data, x.Data)
	if c.tape != nil {
		c.tape.unary(out, x, ReLUBackward)
	}
	return out
}

// Add returns a + b (same shape).
func (c *Ctx) Add(a, b *T) *T {
	if !SameShape(a.Shape, b.Shape) {
		panic(fmt.Sprintf("tensor: add %v + %v", a.Shape, b.Shape))
	}
	out := c.New(a.Shape...)
	Add(out.Data, a.Data, b.Data)
	if c.tape != nil {
		c.tape.add(out, a, b)
	}
	return out
}

// AddRows returns x [R, C] (or [B, R, C]: each item alike) plus rows offset…offset+R-1 of
// table [*, C] (positional embeddings).
func (c *Ctx) AddRows(x, table *T, offset int) *T {
	bs, r, cols := batchDims(x)
	if table.Shape[1] != cols || offset+r > table.Shape[0] {
		panic(fmt.Sprintf("tensor: add rows %v from table %v at %d", x.Shape, table.Shape, offset))
	}
	out := c.New(x.Shape...)
	rows := table.Data[offset*cols : (offset+r)*cols]
	for i := range bs {
		Add(out.Data[i*r*cols:(i+1)*r*cols], x.Data[i*r*cols:(i+1)*r*cols], rows)
	}
	if c.tape != nil {
		c.tape.addRows(out, x, table, bs, offset, r, cols)
	}
	return out
}

// batchDims splits a 2-D [R, C] or 3-D [B, R, C] shape into (B, R, C); B is 1 for 2-D.
func batchDims(x *T) (b, r, cols int) {
	switch len(x.Shape) {
	case 2:
		return 1, x.Shape[0], x.Shape[1]
	case 3:
		return x.Shape[0], x.Shape[1], x.Shape[2]
	}
	panic(fmt.Sprintf("tensor: want [R, C] or [B, R, C], got %v", x.Shape))
}

// withBatch returns shape [rows, cols] prefixed with b when the input was batched.
func withBatch(batched bool, b, r, cols int) []int {
	if batched {
		return []int{b, r, cols}
	}
	return []int{r, cols}
}

// Embedding returns the rows of table [V, C] for ids, as [len(ids), C].
func (c *Ctx) Embedding(table *T, ids []int) *T {
	cols := table.Shape[1]
	out := c.New(len(ids), cols)
	for i, id := range ids {
		copy(out.Data[i*cols:(i+1)*cols], table.Data[id*cols:(id+1)*cols])
	}
	if c.tape != nil {
		c.tape.embedding(out, table, ids, cols)
	}
	return out
}

// EmbeddingBatch is Embedding for batch sequences of equal length laid out one after another
// in ids, returning [batch, len(ids)/batch, C].
func (c *Ctx) EmbeddingBatch(table *T, ids []int, batch int) *T {
	if batch <= 0 || len(ids)%batch != 0 {
		panic(fmt.Sprintf("tensor: %d ids in %d sequences", len(ids), batch))
	}
	out := c.Embedding(table, ids)
	out.Shape = []int{batch, len(ids) / batch, table.Shape[1]}
	return out
}

// Conv1d convolves time-major x [Tin, Cin] (or a batch [B, Tin, Cin]) with w [Cout, Cin, KW]
// and b [Cout], giving [Tout, Cout] (or [B, Tout, Cout]).
func (c *Ctx) Conv1d(x, w, b *T, stride, pad int) *T {
	bs, tin, cin := batchDims(x)
	cout, kw := w.Shape[0], w.Shape[2]
	if w.Shape[1] != cin {
		panic(fmt.Sprintf("tensor: conv1d x %v w %v", x.Shape, w.Shape))
	}
	tout := Conv1dOut(tin, kw, stride, pad)
	out := c.New(withBatch(len(x.Shape) == 3, bs, tout, cout)...)
	var bd []float32
	if b != nil {
		bd = b.Data
	}
	for i := range bs {
		Conv1d(out.Data[i*tout*cout:(i+1)*tout*cout], x.Data[i*tin*cin:(i+1)*tin*cin], w.Data, bd, tin, cin, cout, kw, stride, pad)
	}
	if c.tape != nil {
		c.tape.conv1d(out, x, w, b, bs, tin, cin, cout, kw, stride, pad)
	}
	return out
}

// Attention is multi-head attention over head-blocked q [Tq, H·D], k, v [Tk, H·D] (or batches
// [B, Tq, H·D], [B, Tk, H·D], each item attending only within itself); see AttentionNaive for
// the exact semantics (scale 1/√D, causal offset for cached decoding).
func (c *Ctx) Attention(q, k, v *T, heads int, causal bool) *T {
	bs, tq, w := batchDims(q)
	kb, tk, kw := batchDims(k)
	if kb != bs || kw != w || !SameShape(k.Shape, v.Shape) {
		panic(fmt.Sprintf("tensor: attention q %v k %v v %v", q.Shape, k.Shape, v.Shape))
	}
	out := c.New(q.Shape...)
	for i := range bs {
		qs, ks := i*tq*w, i*tk*w
		Attention(out.Data[qs:qs+tq*w], q.Data[qs:qs+tq*w], k.Data[ks:ks+tk*w], v.Data[ks:ks+tk*w], tq, tk, heads, w/heads, causal)
	}
	if c.tape != nil {
		c.tape.attention(out, q, k, v, bs, tq, tk, heads, w/heads, causal)
	}
	return out
}

// AttentionKV is Attention of q [Tq, H·D] over the keys and values in cache kv (see
// AttentionKV the kernel). It is inference-only: with a tape attached it panics.
func (c *Ctx) AttentionKV(q *T, kv *KVCache, causal bool) *T {
	if c.tape != nil {
		inferenceOnly("AttentionKV")
	}
	tq, w := rows(q)
	if len(q.Shape) != 2 || w != kv.Width() {
		panic(fmt.Sprintf("tensor: attention-kv q %v for a cache of width %d", q.Shape, kv.Width()))
	}
	out := c.New(q.Shape...)
	AttentionKV(out.Data, q.Data, kv, tq, causal)
	return out
}

// Transpose returns the [C, R] transpose of x [R, C] (or [B, C, R] of [B, R, C]).
func (c *Ctx) Transpose(x *T) *T {
	bs, r, cols := batchDims(x)
	out := c.New(withBatch(len(x.Shape) == 3, bs, cols, r)...)
	for i := range bs {
		Transpose(out.Data[i*r*cols:(i+1)*r*cols], x.Data[i*r*cols:(i+1)*r*cols], r, cols)
	}
	if c.tape != nil {
		c.tape.transpose(out, x, bs, r, cols)
	}
	return out
}

// Rows returns rows from…to-1 of x viewed as [R, C] (C the last dimension), as a [to-from, C]
// view sharing x's storage. Unlike FromData on a sub-slice it records its backward, so
// slicing inside the model (the decoder keeping its last positions) stays differentiable.
func (c *Ctx) Rows(x *T, from, to int) *T {
	r, cols := rows(x)
	if from < 0 || to > r || from > to {
		panic(fmt.Sprintf("tensor: rows %d:%d of %v", from, to, x.Shape))
	}
	out := FromData(x.Data[from*cols:to*cols], to-from, cols)
	if c.tape != nil {
		c.tape.rows(out, x, from, to, cols)
	}
	return out
}

// LogSoftmax returns x − logsumexp(x) over the last dimension (CTC's input, distillation's
// log-probabilities).
func (c *Ctx) LogSoftmax(x *T) *T {
	r, cols := rows(x)
	out := c.New(x.Shape...)
	parallelFor(r, max(1, grainElems/max(1, cols)), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			LogSoftmax(out.Data[i*cols:(i+1)*cols], x.Data[i*cols:(i+1)*cols])
		}
	})
	if c.tape != nil {
		c.tape.logSoftmax(out, x, r, cols)
	}
	return out
}

// ScaleGrad returns x unchanged in the forward pass and multiplies the gradient flowing back
// through it by s. It weights one objective of several (joint CTC/attention training:
// λ·CTC + (1−λ)·CE, or a per-token mean) without touching the forward values: the losses
// return float64s, so the weight is applied where their gradients enter the graph. Apply it
// to the loss op's own input (ctx.CrossEntropy(ctx.ScaleGrad(logits, 1−λ), …)): placed
// further up, it scales only the gradients of what lies above it, not of the weights in
// between. Without a tape it returns x itself.
func (c *Ctx) ScaleGrad(x *T, s float32) *T {
	if c.tape == nil {
		return x
	}
	out := &T{Shape: append([]int(nil), x.Shape...), Data: x.Data}
	c.tape.scaleGrad(out, x, s)
	return out
}
