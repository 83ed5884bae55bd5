package whisper

import "github.com/chorus-asr/chorus/tensor"

// Routing is one stream's choice of which experts run in the feed-forward blocks of a
// mixture-of-experts variant (DESIGN, Experts): a State carries it and every block's MLP
// hands its input to it instead of running the dense block. It is per-stream state (its
// router may pin a subset per request, and it records the pathway), so it lives on the
// State, never on the shared Model.
//
// The package experts/moe implements it from a variant's expert layout; whisper only
// declares it, so the model stays below the experts package (DESIGN: experts → asr).
// The unrouted equivalent of FFN is m.Forward(ctx, x).
type Routing interface {
	// FFN computes block m (m.Layer() numbers it) on its input x [T, C] (after the block's
	// layer norm) and returns [T, C] from ctx: the selected experts only, or the dense
	// block m.Forward for layers or routers that select every expert.
	FFN(ctx *tensor.Ctx, m *MLP, x *tensor.T) *tensor.T
}

// HeadRouting is implemented by routings that also choose which attention heads of the
// encoder run (attention heads as experts). EncoderSelfAttention computes encoder block
// layer's self-attention sublayer on x [T, C] (after its layer norm, before the residual
// add) with the heads it selects; the unrouted equivalent is a.Self(ctx, x, heads, false,
// nil).
type HeadRouting interface {
	Routing
	EncoderSelfAttention(ctx *tensor.Ctx, a *Attention, x *tensor.T, heads, layer int) *tensor.T
}
