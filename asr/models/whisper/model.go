package whisper

// ref: openai/whisper whisper/model.py (AudioEncoder, TextDecoder, ResidualAttentionBlock,
// MultiHeadAttention). Shapes follow the legend in dims.go.

import (
	"fmt"
	"sync"

	"github.com/chorus-asr/chorus/nn"
	"github.com/chorus-asr/chorus/tensor"
)

// Model is a loaded Whisper model. It is immutable after loading and shared by every stream;
// per-stream state (KV caches, scratch memory) lives in a Session.
type Model struct {
	Dims    Dims
	Encoder Encoder `ckpt:"model.encoder"`
	Decoder Decoder `ckpt:"model.decoder"`

	huge sync.Once // hugePages, run by the first NewState
}

// Encoder is the conv stem, the encoder blocks and the final layer norm.
type Encoder struct {
	Conv1  nn.Conv1d      `ckpt:"conv1"`                  // [C, M, 3], stride 1
	Conv2  nn.Conv1d      `ckpt:"conv2"`                  // [C, C, 3], stride 2
	Pos    *tensor.T      `ckpt:"embed_positions.weight"` // [1500, C], loaded, not recomputed
	Layers []EncoderLayer `ckpt:"layers"`
	LN     nn.LayerNorm   `ckpt:"layer_norm"`
}

// EncoderLayer is a pre-norm residual block: self-attention, then the feed-forward MLP.
type EncoderLayer struct {
	Attn   Attention    `ckpt:"self_attn"`
	AttnLN nn.LayerNorm `ckpt:"self_attn_layer_norm"`
	MLP    MLP          `ckpt:""`
	MLPLN  nn.LayerNorm `ckpt:"final_layer_norm"`
}

// Decoder is the token and position embeddings, the decoder blocks, the final layer norm and
// the output projection tied to the token embedding.
type Decoder struct {
	Tok    nn.Linear      `ckpt:"embed_tokens"`           // W [V, C]: embedding and tied output projection
	Pos    *tensor.T      `ckpt:"embed_positions.weight"` // [448, C]
	Layers []DecoderLayer `ckpt:"layers"`
	LN     nn.LayerNorm   `ckpt:"layer_norm"`
}

// DecoderLayer is a pre-norm residual block: causal self-attention, cross-attention over the
// audio features, then the MLP.
type DecoderLayer struct {
	Attn    Attention    `ckpt:"self_attn"`
	AttnLN  nn.LayerNorm `ckpt:"self_attn_layer_norm"`
	Cross   Attention    `ckpt:"encoder_attn"`
	CrossLN nn.LayerNorm `ckpt:"encoder_attn_layer_norm"`
	MLP     MLP          `ckpt:""`
	MLPLN   nn.LayerNorm `ckpt:"final_layer_norm"`
}

// Attention is multi-head attention; heads are contiguous column blocks of the projections,
// and the key projection has no bias, as in Whisper. A pruned layer may have no head left
// (H = 0): the sublayer's output is then its output bias on every row (see Heads).
type Attention struct {
	Q   nn.Linear `ckpt:"q_proj"`   // [H·D, C] + [H·D] (H·D = C in Whisper)
	K   nn.Linear `ckpt:"k_proj"`   // [H·D, C], no bias
	V   nn.Linear `ckpt:"v_proj"`   // [H·D, C] + [H·D]
	Out nn.Linear `ckpt:"out_proj"` // [C, H·D] + [C]

	heads int  // H of this layer (Dims.EncoderHeads, DecoderSelfHeads, DecoderCrossHeads)
	relu  bool // ReLU attention weights (Dims.EncoderAttention "relu"); encoder self-attention only
}

// Heads is the sublayer's head count H, which differs between the layers of a pruned variant
// (Dims.EncoderSizes, DecoderSizes); 0 when pruning removed every head.
func (a *Attention) Heads() int { return a.heads }

// outBias is the output of a sublayer with nothing left between its input and its output
// projection (no head, or no feed-forward unit): the projection's bias on every row of x
// [.., C] (zeros without a bias), recorded on the tape so a pruned model still trains. The
// kernels have no zero-width matrices, so the empty product is written out here.
func outBias(ctx *tensor.Ctx, x *tensor.T, out *nn.Linear) *tensor.T {
	shape := append([]int(nil), x.Shape...)
	shape[len(shape)-1] = out.Out
	if out.B == nil {
		return ctx.Zeros(shape...)
	}
	y := ctx.New(shape...)
	for r := 0; r < len(y.Data); r += out.Out {
		copy(y.Data[r:r+out.Out], out.B.Data)
	}
	ctx.Custom(y, []*tensor.T{out.B}, func(dy []float32, d [][]float32) {
		if db := d[0]; db != nil {
			for r := 0; r < len(dy); r += out.Out {
				for j, g := range dy[r : r+out.Out] {
					db[j] += g
				}
			}
		}
	})
	return y
}

// Attend is the attention of q over k, v [T, H·D] (or batched) without a cache, with this
// block's weighting: softmax, or relu(s)/T for a ReLU-attention encoder.
func (a *Attention) Attend(ctx *tensor.Ctx, q, k, v *tensor.T, heads int, causal bool) *tensor.T {
	if a.relu {
		return ctx.AttentionReLU(q, k, v, heads)
	}
	return ctx.Attention(q, k, v, heads, causal)
}

// MLP is fc1 → activation → fc2.
type MLP struct {
	FC1 nn.Linear `ckpt:"fc1"` // [F, C]
	FC2 nn.Linear `ckpt:"fc2"` // [C, F]
	// Gate scores the experts of a gated block (Dims.GatedExperts; nil otherwise): [E, C],
	// no bias. The block runs its TopK best-scored experts per token, weighted by their
	// softmax.
	Gate  *nn.Linear `ckpt:"gate"`
	TopK  int
	relu  bool
	layer int // index among the model's MLPs: encoder blocks first, then decoder blocks
}

// New declares a model of the given dimensions, each layer with its own head count and
// feed-forward width (Dims.EncoderHeads and the other per-layer accessors); Load fills its
// weights.
func New(d Dims) (*Model, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	relu := d.Activation == "relu"
	// attn declares an attention of h heads of width hd reading queries of width c and keys
	// and values of width kv: inner width H·D (C in Whisper; less in a pruned variant).
	attn := func(c, kv, h, hd int) Attention {
		w := h * hd
		return Attention{Q: nn.NewLinear(c, w, true), K: nn.NewLinear(kv, w, false), V: nn.NewLinear(kv, w, true), Out: nn.NewLinear(w, c, true), heads: h}
	}
	layer := 0
	mlp := func(c, f int) MLP {
		layer++
		m := MLP{FC1: nn.NewLinear(c, f, true), FC2: nn.NewLinear(f, c, true), relu: relu, layer: layer - 1}
		if d.GatedExperts > 0 {
			g := nn.NewLinear(c, d.GatedExperts, false)
			m.Gate, m.TopK = &g, d.GateTopK
		}
		return m
	}
	e, t := d.NAudioState, d.NTextState
	m := &Model{Dims: d}
	m.Encoder = Encoder{
		Conv1: nn.NewConv1d(d.NMels, e, 3, 1, 1),
		Conv2: nn.NewConv1d(e, e, 3, 2, 1),
		Pos:   &tensor.T{Shape: []int{d.NAudioCtx, e}},
		LN:    nn.NewLayerNorm(e),
	}
	for i := range d.NAudioLayer {
		sa := attn(e, e, d.EncoderHeads(i), d.AudioHD())
		sa.relu = d.EncoderAttention == "relu"
		m.Encoder.Layers = append(m.Encoder.Layers, EncoderLayer{Attn: sa, AttnLN: nn.NewLayerNorm(e), MLP: mlp(e, d.EncoderUnits(i)), MLPLN: nn.NewLayerNorm(e)})
	}
	m.Decoder = Decoder{
		Tok: nn.NewLinear(t, d.NVocab, false),
		Pos: &tensor.T{Shape: []int{d.NTextCtx, t}},
		LN:  nn.NewLayerNorm(t),
	}
	for i := range d.NTextLayer {
		m.Decoder.Layers = append(m.Decoder.Layers, DecoderLayer{
			Attn: attn(t, t, d.DecoderSelfHeads(i), d.TextHD()), AttnLN: nn.NewLayerNorm(t),
			Cross: attn(t, e, d.DecoderCrossHeads(i), d.TextHD()), CrossLN: nn.NewLayerNorm(t),
			MLP: mlp(t, d.DecoderUnits(i)), MLPLN: nn.NewLayerNorm(t),
		})
	}
	return m, nil
}

// Validate reports dimensions the model cannot run with.
func (d Dims) Validate() error {
	switch {
	case d.NMels <= 0, d.NAudioCtx <= 0, d.NAudioState <= 0, d.NAudioLayer < 0, d.NVocab <= 0, d.NTextCtx <= 0, d.NTextState <= 0, d.NTextLayer < 0:
		return fmt.Errorf("whisper: invalid dimensions %+v", d)
	case d.AudioHeadDim < 0 || d.TextHeadDim < 0:
		return fmt.Errorf("whisper: negative head width in %+v", d)
	case d.NAudioHead <= 0 || (d.AudioHeadDim == 0 && d.NAudioState%d.NAudioHead != 0):
		return fmt.Errorf("whisper: encoder width %d not divisible by %d heads", d.NAudioState, d.NAudioHead)
	case d.NTextHead <= 0 || (d.TextHeadDim == 0 && d.NTextState%d.NTextHead != 0):
		return fmt.Errorf("whisper: decoder width %d not divisible by %d heads", d.NTextState, d.NTextHead)
	case d.Activation != "" && d.Activation != "gelu" && d.Activation != "relu":
		return fmt.Errorf("whisper: unsupported activation %q", d.Activation)
	case d.EncoderAttention != "" && d.EncoderAttention != "softmax" && d.EncoderAttention != "relu":
		return fmt.Errorf("whisper: unsupported encoder attention %q", d.EncoderAttention)
	}
	return d.validateSizes()
}

// Forward encodes a log-mel window mel [M, 2·T] (OpenAI's layout) into audio features [T, C].
func (e *Encoder) Forward(ctx *tensor.Ctx, mel *tensor.T) *tensor.T {
	return e.ForwardRouted(ctx, mel, nil)
}

// ForwardRouted is Forward with a stream's expert routing (nil: every block dense).
func (e *Encoder) ForwardRouted(ctx *tensor.Ctx, mel *tensor.T, rt Routing) *tensor.T {
	return e.forward(ctx, mel, rt, nil)
}

// ForwardHooked is Forward with a training pass's hooks (masks, recorded outputs; nil: none).
func (e *Encoder) ForwardHooked(ctx *tensor.Ctx, mel *tensor.T, h *Hooks) *tensor.T {
	return e.forward(ctx, mel, nil, h)
}

// forward is the encoder. Under masks the hidden-dimension gates z multiply the stem's
// channels (the conv1 output that conv2 reads, and the stream it starts: CoFi masks the
// embedding output the same way) and every sublayer's output before the residual add, so
// the removed dimensions of the stream stay exactly zero.
func (e *Encoder) forward(ctx *tensor.Ctx, mel *tensor.T, rt Routing, h *Hooks) *tensor.T {
	hid := h.gate(ctx, EncoderStack, GateHidden, 0)
	x := ctx.Transpose(mel) // [2T, M]: the conv runs time-major
	x = scale(ctx, ctx.GELU(e.Conv1.Forward(ctx, x)), hid)
	x = ctx.GELU(e.Conv2.Forward(ctx, x)) // [T, C]
	if x.Shape[len(x.Shape)-2] > e.Pos.Shape[0] {
		panic(fmt.Sprintf("whisper: %d audio frames exceed the %d positions", x.Shape[len(x.Shape)-2], e.Pos.Shape[0]))
	}
	x = scale(ctx, ctx.AddRows(x, e.Pos, 0), hid)
	for i := range e.Layers {
		x = e.Layers[i].forward(ctx, x, rt, h, i)
	}
	return norm(ctx, &e.LN, x, hid)
}

// Forward runs one encoder block on x [T, C]; rt routes its MLP (nil: dense). heads must be
// the block's own head count, l.Attn.Heads() (the argument predates per-layer sizes, when
// every block had the stack's; a mismatch is a caller's bug and panics).
func (l *EncoderLayer) Forward(ctx *tensor.Ctx, x *tensor.T, heads int, rt Routing) *tensor.T {
	if heads != l.Attn.heads {
		panic(fmt.Sprintf("whisper: encoder block of %d heads run with %d", l.Attn.heads, heads))
	}
	return l.forward(ctx, x, rt, nil, 0)
}

// forward is block i under hooks h: CoFi's gates at their points (eq. 3–4: heads before the
// output projection, the whole sublayer after it, units after the activation, the whole FFN
// after fc2, hidden dimensions on each sublayer's output and in its layer norm).
func (l *EncoderLayer) forward(ctx *tensor.Ctx, x *tensor.T, rt Routing, h *Hooks, i int) *tensor.T {
	const s = EncoderStack
	heads := l.Attn.heads
	hid := h.gate(ctx, s, GateHidden, i)
	var a *tensor.T
	if hr, ok := rt.(HeadRouting); ok && h == nil { // attention heads as experts (inference)
		a = hr.EncoderSelfAttention(ctx, &l.Attn, norm(ctx, &l.AttnLN, x, nil), heads, i)
	} else {
		a = l.Attn.self(ctx, norm(ctx, &l.AttnLN, x, hid), heads, false, nil, h.gate(ctx, s, GateHeads, i))
	}
	a = scale(ctx, scale(ctx, a, h.gate(ctx, s, GateAttn, i)), hid)
	h.put(s, recAttn, a)
	x = ctx.Add(x, a)
	f := l.MLP.forward(ctx, norm(ctx, &l.MLPLN, x, hid), rt, h, h.gate(ctx, s, GateUnits, i))
	f = scale(ctx, scale(ctx, f, h.gate(ctx, s, GateFFN, i)), hid)
	h.put(s, recFFN, f)
	x = ctx.Add(x, f)
	h.put(s, recHidden, x)
	return x
}

// ForwardRouted is the block as a stream runs it: with a routing, the routing computes it
// (the expert path of a MoE variant, or the dense block, timed); without one, Forward.
func (m *MLP) ForwardRouted(ctx *tensor.Ctx, x *tensor.T, rt Routing) *tensor.T {
	if rt != nil {
		return rt.FFN(ctx, m, x)
	}
	return m.Forward(ctx, x)
}

// Layer is the block's index among the model's MLPs: encoder blocks 0…L−1, then decoder
// blocks. Expert layouts, routers and pathways number layers this way.
func (m *MLP) Layer() int { return m.layer }

// SetActivation switches every feed-forward block to a ("gelu" or "relu") and records it in
// the dimensions: ReLU-fication (issue: experts) replaces GELU with ReLU and fine-tunes, so
// the FFN activations become exactly sparse. The weights are untouched; outputs change.
func (m *Model) SetActivation(a string) error {
	if a != "gelu" && a != "relu" {
		return fmt.Errorf("whisper: unsupported activation %q", a)
	}
	m.Dims.Activation = a
	for i := range m.Encoder.Layers {
		m.Encoder.Layers[i].MLP.relu = a == "relu"
	}
	for i := range m.Decoder.Layers {
		m.Decoder.Layers[i].MLP.relu = a == "relu"
	}
	return nil
}

// Forward is the dense block, fc2(act(fc1(x))); a gated block (Gate set) computes every
// expert and weights each token's top-k by their gate softmax, the exact function its
// routed, sparse execution (experts/moe) computes faster.
func (m *MLP) Forward(ctx *tensor.Ctx, x *tensor.T) *tensor.T {
	return m.masked(ctx, x, nil, nil)
}

// forward is the block under a training pass's hooks (CoFi's unit gates z_int after the
// activation; the load-balancing losses of a gated block) when there are any, else as
// routed.
func (m *MLP) forward(ctx *tensor.Ctx, x *tensor.T, rt Routing, h *Hooks, units *tensor.T) *tensor.T {
	if units == nil && (h == nil || ((h.BalanceWeight == 0 || m.Gate == nil) && h.Route == nil)) {
		return m.ForwardRouted(ctx, x, rt)
	}
	return m.masked(ctx, x, units, h)
}

// masked is fc2(act(fc1(x)) ⊙ g ⊙ r ⊙ units): g the per-token expert weights of a gated
// block (each expert's block of units scaled by its weight, zero outside the token's top-k),
// r the routing mask of Hooks.Route, units nil for the unmasked block. A block pruned to no
// unit is fc2's bias alone. Under hooks h with a balance weight, a gated block adds its
// load-balancing loss.
func (m *MLP) masked(ctx *tensor.Ctx, x, units *tensor.T, h *Hooks) *tensor.T {
	if m.FC1.Out == 0 {
		return outBias(ctx, x, &m.FC2)
	}
	a := m.FC1.Forward(ctx, x)
	if m.relu {
		a = ctx.ReLU(a)
	} else {
		a = ctx.GELU(a)
	}
	if m.Gate != nil {
		logits := m.Gate.Forward(ctx, x) // [.., E]
		a = ctx.RowGroupScale(a, ctx.TopKSoftmax(logits, m.TopK))
		if h != nil && h.BalanceWeight > 0 {
			lb := ctx.LoadBalanceLoss(logits, m.TopK)
			if tp := ctx.Tape(); tp != nil {
				tp.Seed(lb, []float32{h.BalanceWeight}) // a loss term: its gradient is its weight
			}
			h.Balance = append(h.Balance, float64(lb.Data[0]))
		}
	}
	if h != nil && h.Route != nil {
		if g := h.Route(ctx, m.layer, x); g != nil {
			a = ctx.RowGroupScale(a, g)
		}
	}
	return m.FC2.Forward(ctx, scale(ctx, a, units))
}

// Self is self-attention on x [S, C] (or [B, S, C]). With a cache, the new keys and values
// are appended to it and the queries attend to everything cached (causal when asked); with
// cache nil (training) they attend within x.
func (a *Attention) Self(ctx *tensor.Ctx, x *tensor.T, heads int, causal bool, cache *KV) *tensor.T {
	return a.self(ctx, x, heads, causal, cache, nil)
}

// self is Self with head gates hg [1, H] on the heads' outputs before the output projection
// (nil: none; training passes only, without a cache).
func (a *Attention) self(ctx *tensor.Ctx, x *tensor.T, heads int, causal bool, cache *KV, hg *tensor.T) *tensor.T {
	if heads == 0 {
		if cache != nil {
			cache.advance(x.Shape[len(x.Shape)-2]) // the positions still count (Caches.Len)
		}
		return outBias(ctx, x, &a.Out)
	}
	q := a.Q.Forward(ctx, x)
	k := a.K.Forward(ctx, x)
	v := a.V.Forward(ctx, x)
	if cache != nil {
		cache.Append(k, v)
		return a.Out.Forward(ctx, cache.Attend(ctx, q, causal))
	}
	return a.Out.Forward(ctx, scale(ctx, a.Attend(ctx, q, k, v, heads, causal), hg))
}

// Cross is attention from x [S, C] to the audio: the keys and values in cache (inference) or,
// with cache nil (training), k, v [T, C] (batched alike). Whisper multiplies q and k each by
// D^-¼ before their product; the kernels apply the equivalent 1/√D to the scores once.
func (a *Attention) Cross(ctx *tensor.Ctx, x *tensor.T, cache *KV, k, v *tensor.T, heads int) *tensor.T {
	return a.cross(ctx, x, cache, k, v, heads, nil)
}

// cross is Cross with head gates hg (nil: none; training passes only).
func (a *Attention) cross(ctx *tensor.Ctx, x *tensor.T, cache *KV, k, v *tensor.T, heads int, hg *tensor.T) *tensor.T {
	if heads == 0 {
		return outBias(ctx, x, &a.Out)
	}
	q := a.Q.Forward(ctx, x)
	if cache != nil {
		return a.Out.Forward(ctx, cache.Attend(ctx, q, false))
	}
	return a.Out.Forward(ctx, scale(ctx, ctx.Attention(q, k, v, heads, false), hg))
}

// Forward runs one decoder block on x [S, C] (or [B, S, C]) with its own self- and
// cross-attention heads. With caches (inference), self receives the new keys and values and
// cross holds the audio's; with both nil (training) the block attends within x and to the
// audio keys and values k, v [T, C] (nil when the block has no cross-attention head). rt
// routes its MLP (nil: dense).
func (l *DecoderLayer) Forward(ctx *tensor.Ctx, x *tensor.T, self, cross *KV, k, v *tensor.T, rt Routing) *tensor.T {
	return l.forward(ctx, x, self, cross, k, v, rt, nil, 0)
}

// forward is block i under hooks h (see EncoderLayer.forward; masks need the cache-less
// training form).
func (l *DecoderLayer) forward(ctx *tensor.Ctx, x *tensor.T, self, cross *KV, k, v *tensor.T, rt Routing, h *Hooks, i int) *tensor.T {
	const s = DecoderStack
	hid := h.gate(ctx, s, GateHidden, i)
	a := l.Attn.self(ctx, norm(ctx, &l.AttnLN, x, hid), l.Attn.heads, true, self, h.gate(ctx, s, GateHeads, i))
	a = scale(ctx, scale(ctx, a, h.gate(ctx, s, GateAttn, i)), hid)
	h.put(s, recAttn, a)
	x = ctx.Add(x, a)
	c := l.Cross.cross(ctx, norm(ctx, &l.CrossLN, x, hid), cross, k, v, l.Cross.heads, h.gate(ctx, s, GateCrossHeads, i))
	c = scale(ctx, scale(ctx, c, h.gate(ctx, s, GateCross, i)), hid)
	h.put(s, recCross, c)
	x = ctx.Add(x, c)
	f := l.MLP.forward(ctx, norm(ctx, &l.MLPLN, x, hid), rt, h, h.gate(ctx, s, GateUnits, i))
	f = scale(ctx, scale(ctx, f, h.gate(ctx, s, GateFFN, i)), hid)
	h.put(s, recFFN, f)
	x = ctx.Add(x, f)
	h.put(s, recHidden, x)
	return x
}

// Forward runs the decoder on tokens (one sequence) whose first position is offset (the
// number of tokens already in the self-attention caches) and returns logits [S, V] for the
// last `keep` positions (keep ≤ 0: all). c holds one self- and one cross-attention cache per
// layer; the cross caches must have been filled by CrossCaches.
func (d *Decoder) Forward(ctx *tensor.Ctx, tokens []int, c *Caches, keep int) *tensor.T {
	return d.ForwardRouted(ctx, tokens, c, keep, nil)
}

// ForwardRouted is Forward with a stream's expert routing (nil: every block dense).
func (d *Decoder) ForwardRouted(ctx *tensor.Ctx, tokens []int, c *Caches, keep int, rt Routing) *tensor.T {
	offset := c.Len()
	if offset+len(tokens) > d.Pos.Shape[0] {
		panic(fmt.Sprintf("whisper: %d tokens exceed the %d text positions", offset+len(tokens), d.Pos.Shape[0]))
	}
	x := ctx.AddRows(d.tokenEmbedding(ctx, tokens, 1), d.Pos, offset)
	for i := range d.Layers {
		x = d.Layers[i].Forward(ctx, x, c.Self[i], c.Cross[i], nil, nil, rt)
	}
	if keep > 0 && keep < len(tokens) {
		x = ctx.Rows(x, len(tokens)-keep, len(tokens))
	}
	return d.Tok.Forward(ctx, d.LN.Forward(ctx, x)) // logits = x·Eᵀ, the tied projection
}

// ForwardTrain runs the decoder on batch sequences of equal length (tokens laid out one after
// another, padded by the caller) against audio features xa [B, T, C], without caches, and
// returns logits [B, S, V]. Everything it computes is recorded when ctx has a tape.
func (d *Decoder) ForwardTrain(ctx *tensor.Ctx, tokens []int, batch int, xa *tensor.T) *tensor.T {
	return d.ForwardTrainHooked(ctx, tokens, batch, xa, nil)
}

// ForwardTrainHooked is ForwardTrain with a training pass's hooks (nil: none). Under masks
// the hidden-dimension gates multiply the embedded tokens (CoFi's masked embedding output)
// and every sublayer's output, and the final layer norm and the tied projection read the
// kept dimensions only.
func (d *Decoder) ForwardTrainHooked(ctx *tensor.Ctx, tokens []int, batch int, xa *tensor.T, h *Hooks) *tensor.T {
	if len(tokens)/batch > d.Pos.Shape[0] {
		panic(fmt.Sprintf("whisper: %d tokens exceed the %d text positions", len(tokens)/batch, d.Pos.Shape[0]))
	}
	hid := h.gate(ctx, DecoderStack, GateHidden, 0)
	x := scale(ctx, ctx.AddRows(d.tokenEmbedding(ctx, tokens, batch), d.Pos, 0), hid)
	for i := range d.Layers {
		l := &d.Layers[i]
		var k, v *tensor.T
		if l.Cross.heads > 0 {
			k, v = l.Cross.K.Forward(ctx, xa), l.Cross.V.Forward(ctx, xa)
		}
		x = l.forward(ctx, x, nil, nil, k, v, nil, h, i)
	}
	return d.Tok.Forward(ctx, norm(ctx, &d.LN, x, hid))
}

// tokenEmbedding returns [S, C] (batch 1) or [B, S/B, C] embeddings of tokens.
func (d *Decoder) tokenEmbedding(ctx *tensor.Ctx, tokens []int, batch int) *tensor.T {
	if d.Tok.W16 == nil {
		if batch > 1 {
			return ctx.EmbeddingBatch(d.Tok.W, tokens, batch)
		}
		return ctx.Embedding(d.Tok.W, tokens)
	}
	c := d.Tok.In
	out := ctx.New(len(tokens), c)
	for i, id := range tokens {
		tensor.F16ToF32Slice(out.Data[i*c:(i+1)*c], d.Tok.W16[id*c:(id+1)*c])
	}
	if batch > 1 {
		out.Shape = []int{batch, len(tokens) / batch, c}
	}
	return out
}

// CrossCaches projects the audio features xa [T, C] into each decoder layer's cross-attention
// keys and values, once per audio window (nothing for a layer without cross-attention heads).
func (d *Decoder) CrossCaches(ctx *tensor.Ctx, xa *tensor.T, c *Caches) {
	for i := range d.Layers {
		if l := &d.Layers[i]; l.Cross.heads > 0 {
			c.Cross[i].Set(l.Cross.K.Forward(ctx, xa), l.Cross.V.Forward(ctx, xa))
		}
	}
}

// hugePages asks the OS to back the weights a decoding step streams (the decoder's
// projections and the tied embedding: 56 MB for tiny in half precision) with huge pages; see
// tensor.AdviseHugePages. It runs once per model, from its first NewState (~3 ms per MiB),
// and changes no value, only how the memory is mapped, so it is safe while other states
// decode.
func (m *Model) hugePages() {
	advise := func(l *nn.Linear) {
		if l.W16 != nil {
			tensor.AdviseHugePages(l.W16, true)
		} else if l.W != nil {
			tensor.AdviseHugePages(l.W.Data, true)
		}
	}
	for i := range m.Decoder.Layers {
		l := &m.Decoder.Layers[i]
		for _, a := range []*Attention{&l.Attn, &l.Cross} {
			advise(&a.Q)
			advise(&a.K)
			advise(&a.V)
			advise(&a.Out)
		}
		advise(&l.MLP.FC1)
		advise(&l.MLP.FC2)
	}
	advise(&m.Decoder.Tok)
}
