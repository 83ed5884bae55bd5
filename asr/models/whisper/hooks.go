package whisper

import (
	"github.com/chorus-asr/chorus/nn"
	"github.com/chorus-asr/chorus/tensor"
)

// Stack names the encoder or the decoder in a Masks lookup or a Record.
type Stack int

const (
	EncoderStack Stack = iota
	DecoderStack
)

// Gate is one of CoFi's mask points in a Whisper block (Xia et al. 2022, §3.1, eq. 3–4),
// numbered as training/prune's kinds so that a prune.Set can answer for them directly.
type Gate int

const (
	GateHeads      Gate = iota // [1, H] on the self-attention's per-head outputs, before Out
	GateAttn                   // [1, 1] on the self-attention sublayer's output, after Out
	GateCrossHeads             // [1, H] cross-attention heads (decoder)
	GateCross                  // [1, 1] whole cross-attention sublayer (decoder)
	GateUnits                  // [1, F] FFN units, after the activation
	GateFFN                    // [1, 1] whole FFN sublayer, after fc2
	GateHidden                 // [1, C] hidden dimensions of the stack's residual stream
)

// Masks supplies the gates of one masked pass (CoFi's z: sampled hard-concrete gates while
// training, deterministic ones to evaluate or materialise). Gate returns the gates of kind g
// for layer (ignored for GateHidden) of stack s, as a [1, n] tensor recorded on ctx's tape
// when they are to receive gradients, or nil where that point is unmasked. training/prune's
// Set implements it; whisper only declares it, so the model stays below training.
type Masks interface {
	Gate(ctx *tensor.Ctx, s Stack, g Gate, layer int) *tensor.T
}

// Record receives what layerwise distillation compares (CoFi §3.2; RAIL-KD): per stack and
// layer, the residual stream after the layer (Hidden), and the outputs of its attention,
// cross-attention and FFN sublayers after their gates, before they join the stream. The
// tensors live in the pass's ctx arena (on its tape when it has one). A pass appends to it;
// Reset empties it for the next.
type Record struct {
	Hidden, Attn, Cross, FFN [2][]*tensor.T
}

// Reset empties the record, keeping its storage.
func (r *Record) Reset() {
	for s := range 2 {
		r.Hidden[s], r.Attn[s], r.Cross[s], r.FFN[s] = r.Hidden[s][:0], r.Attn[s][:0], r.Cross[s][:0], r.FFN[s][:0]
	}
}

// Hooks are the optional per-call hooks of a training pass (Encoder.ForwardHooked,
// Decoder.ForwardTrainHooked): the masks of a pruning run and a record of per-layer outputs.
// A nil *Hooks, or nil fields, cost one nil check per mask point and nothing else: the plain
// Forward and ForwardTrain pass nil.
type Hooks struct {
	Masks  Masks
	Record *Record
	// BalanceWeight, when above 0, adds each gated feed-forward block's load-balancing loss
	// (tensor.Ctx.LoadBalanceLoss) times it to the pass's loss, and Balance collects the
	// unweighted values in the order the blocks ran: without it a learned gate tends to send
	// every token to the same few experts (Switch Transformer, Fedus et al., 2021).
	BalanceWeight float32
	Balance       []float64
	// Route, when set, runs every feed-forward block as a mixture-of-experts variant serves
	// it, for fine-tuning the experts under their router: it returns the per-token expert
	// weights [rows, E] for block layer (MLP.Layer) on its input x (after the block's layer
	// norm; rows are x's leading dimensions flattened) — 1 for the experts the router keeps,
	// 0 elsewhere — allocated in ctx and not on its tape, or nil to run that block dense.
	// Units outside a token's experts are zeroed after the activation, so the block computes
	// the routed function exactly and only the kept experts receive gradient. The experts
	// are contiguous, equal blocks of units (a permuted expert layout).
	Route func(ctx *tensor.Ctx, layer int, x *tensor.T) *tensor.T
}

// gate returns the gates at one point, nil when there are none.
func (h *Hooks) gate(ctx *tensor.Ctx, s Stack, g Gate, layer int) *tensor.T {
	if h == nil || h.Masks == nil {
		return nil
	}
	return h.Masks.Gate(ctx, s, g, layer)
}

// scale multiplies x by the gates g (nil: x unchanged).
func scale(ctx *tensor.Ctx, x, g *tensor.T) *tensor.T {
	if g == nil {
		return x
	}
	return ctx.GroupScale(x, g)
}

// norm is ln applied to the residual stream x under the hidden-dimension gates hid: the
// statistics run over the dimensions whose gate is not zero (removed dimensions do not exist
// in the materialised model, see tensor.LayerNormMasked) and the output is multiplied by
// the gates, so that the sublayer reads x̂ ⊙ z (training/prune's masked-computation
// contract). With every gate non-zero the statistics are the plain LayerNorm's, bit for bit.
func norm(ctx *tensor.Ctx, ln *nn.LayerNorm, x, hid *tensor.T) *tensor.T {
	if hid == nil {
		return ln.Forward(ctx, x)
	}
	var keep []int
	for j, z := range hid.Data {
		if z != 0 {
			keep = append(keep, j)
		}
	}
	if len(keep) == len(hid.Data) {
		return ctx.GroupScale(ln.Forward(ctx, x), hid)
	}
	return ctx.GroupScale(ctx.LayerNormMasked(x, ln.G, ln.B, keep, ln.Eps), hid)
}

// What a Record list holds.
type recKind int

const (
	recHidden recKind = iota
	recAttn
	recCross
	recFFN
)

// put appends x to the record's list of kind k for stack s (no record: nothing).
func (h *Hooks) put(s Stack, k recKind, x *tensor.T) {
	if h == nil || h.Record == nil {
		return
	}
	r := h.Record
	switch k {
	case recHidden:
		r.Hidden[s] = append(r.Hidden[s], x)
	case recAttn:
		r.Attn[s] = append(r.Attn[s], x)
	case recCross:
		r.Cross[s] = append(r.Cross[s], x)
	case recFFN:
		r.FFN[s] = append(r.FFN[s], x)
	}
}
