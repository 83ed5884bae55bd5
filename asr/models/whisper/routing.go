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
