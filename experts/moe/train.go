package moe

import (
	"fmt"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/experts"
	"github.com/chorus-asr/chorus/tensor"
)

// TrainingRoute returns the routing mask of a training pass (whisper.Hooks.Route) under
// choice c: for each feed-forward block, the experts c's router selects for each token of
// the block's input, as 0/1 weights [rows, E], so that fine-tuning trains the model as it
// will be served under that router (MoEfication's routers are fit to the dense model; the
// experts then learn to live with the quarter of their units a token keeps). The routers
// stay fixed. Only per-token routers whose choice does not depend on the weights being
// trained qualify — mlp (the variant's learned routers) and random; the decoder runs dense
// under /enc. The layout must be permuted (experts are contiguous blocks of units): the
// full variant `chorus moe --out` writes, not an overlay.
func (s *Set) TrainingRoute(c asr.RoutingChoice) (func(ctx *tensor.Ctx, layer int, x *tensor.T) *tensor.T, error) {
	switch {
	case c.Router != "mlp" && c.Router != "random":
		return nil, fmt.Errorf("%w: training under router %q: want mlp or random (the oracle and gate depend on the weights being trained; dense needs no routing)", asr.ErrRouting, c.Router)
	case c.PerRequest || c.MinTokens > 0 || c.Heads > 0:
		return nil, fmt.Errorf("%w: training routes per token through the feed-forward blocks only (no /request, /minN or head routing)", asr.ErrRouting)
	case s.Gate != nil:
		return nil, fmt.Errorf("%w: a gated (upcycled) variant trains through its own gate", asr.ErrRouting)
	case s.Layout.Unpermuted:
		return nil, fmt.Errorf("%w: the variant is an overlay over unpermuted weights; train from the full variant chorus moe --out writes", asr.ErrRouting)
	}
	r, err := s.Router(c)
	if err != nil {
		return nil, err
	}
	enc := len(s.model.Encoder.Layers)
	scratch := tensor.NewCtx() // the routers' own arena, off the training tape
	return func(ctx *tensor.Ctx, layer int, x *tensor.T) *tensor.T {
		if layer < 0 || layer >= len(s.E) || s.E[layer] == 0 || (c.EncoderOnly && layer >= enc) {
			return nil
		}
		cols := x.Shape[len(x.Shape)-1]
		rows := tensor.Numel(x.Shape[:len(x.Shape)-1])
		sel := r.Select(scratch, layer, tensor.FromData(x.Data[:rows*cols], rows, cols))
		scratch.Reset()
		e := s.E[layer]
		g := ctx.New(rows, e)
		clear(g.Data)
		for i := range rows {
			for _, id := range sel.Token(i) {
				g.Data[i*e+int(id)] = 1
			}
		}
		return g
	}, nil
}

// Over returns a Set over m's current weights with s's layout and routers. A Set copies
// the blocks' weights when built, so a model trained under TrainingRoute is evaluated and
// served through a Set rebuilt over it. m must have s's shape; s must not be an overlay or
// gated (TrainingRoute refuses both).
func (s *Set) Over(m *whisper.Model) (*Set, error) {
	if s.Layout.Unpermuted || s.Gate != nil {
		return nil, fmt.Errorf("moe: only a permuted, ungated set can be rebuilt over new weights")
	}
	mlps := MLPs(m)
	if len(mlps) != len(s.FFNs) {
		return nil, fmt.Errorf("moe: the model has %d feed-forward blocks, the set %d", len(mlps), len(s.FFNs))
	}
	ns := *s
	ns.model = m
	ns.FFNs = make([]*experts.FFN, len(mlps))
	for i, mlp := range mlps {
		if s.E[i] == 0 { // an empty block stays nil
			continue
		}
		f, err := experts.FromLinear(&mlp.FC1, &mlp.FC2, s.E[i])
		if err != nil {
			return nil, fmt.Errorf("moe: layer %s: %w", s.Layout.Layers[i].Name, err)
		}
		f.Layer = i
		ns.FFNs[i] = f
	}
	return &ns, nil
}

// RouterTensors are the tensors of every learned router of s (feed-forward blocks, then
// the encoder's head routers), under the names its layout gives them: what a variant
// folder stores beside its weights (asr.ExpertsFile) for Open to load them again.
func (s *Set) RouterTensors() (map[string]*tensor.T, error) {
	return experts.AllRouterTensors(s.Layout, s.MLP, s.HeadMLP)
}
