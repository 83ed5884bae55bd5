// Package moe runs Whisper variants whose feed-forward blocks are split into experts
// (MoEfication): it builds a variant's expert side from the "experts" layout of its
// config.json (asr.Experts, registered with asr so that asr.Open loads such variants) and
// makes per-stream routings (whisper.Routing) that run only the experts a router picks, time
// the blocks and record the activation pathway.
//
// It sits between the experts package, which knows nothing of Whisper, and the model, which
// knows only the whisper.Routing interface (DESIGN: experts → asr). Programs that open MoE
// variants import it (blank import is enough).
package moe

// Shapes: x [T, C] a block's input, E experts per layer, K selected per token.

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/experts"
	"github.com/chorus-asr/chorus/nn"
)

func init() { asr.RegisterExperts(build) }

func build(v *asr.Variant, raw json.RawMessage, src nn.Source) (asr.Experts, error) {
	l, err := experts.ParseLayout(raw)
	if err != nil {
		return nil, err
	}
	return New(v.Model, l, src)
}

// Set is a model's feed-forward blocks as experts plus its learned routers: immutable and
// shared by every stream, like the model.
type Set struct {
	Layout *experts.ExpertLayout
	FFNs   []*experts.FFN // per block, indexed by whisper.MLP.Layer: the model's weights split; nil for an empty block
	MLP    *experts.MLP   // learned routers; nil entries for layers without one
	E      []int          // experts per layer (0 for an empty block)
	model  *whisper.Model // the model the blocks belong to (for its attention heads)
	// HeadMLP are the learned head routers, one per encoder layer (nil: none).
	HeadMLP *experts.MLP
	// Gate is the learned gate of a gated (upcycled) variant's blocks, nil otherwise: its
	// weights scale the selected experts' outputs whichever router picks them, and its
	// top-k (the model's GateTopK) is the variant's own, "dense", routing.
	Gate *experts.Gate
}

// MLPs lists m's feed-forward blocks in layer order (whisper.MLP.Layer): encoder, then
// decoder.
func MLPs(m *whisper.Model) []*whisper.MLP {
	var out []*whisper.MLP
	for i := range m.Encoder.Layers {
		out = append(out, &m.Encoder.Layers[i].MLP)
	}
	for i := range m.Decoder.Layers {
		out = append(out, &m.Decoder.Layers[i].MLP)
	}
	return out
}

// LayerName is the checkpoint prefix of block layer of a model with enc encoder layers, the
// name an expert layout gives it.
func LayerName(layer, enc int) string {
	if layer < enc {
		return fmt.Sprintf("model.encoder.layers.%d", layer)
	}
	return fmt.Sprintf("model.decoder.layers.%d", layer-enc)
}

// New splits m's blocks as l declares (the stored weights are already permuted, so the
// blocks are taken as they are, unless l.Unpermuted says to permute them here) and loads the declared routers from src (nil: none). The
// layout must list every block in layer order; the model must use ReLU, which the sparse
// kernel assumes.
func New(m *whisper.Model, l *experts.ExpertLayout, src nn.Source) (*Set, error) {
	if a := m.Dims.Activation; a != "relu" {
		return nil, fmt.Errorf("experts need a ReLU model, this one uses %q (ReLU-fy it first)", a)
	}
	mlps := MLPs(m)
	if len(l.Layers) != len(mlps) {
		return nil, fmt.Errorf("layout has %d layers, the model %d feed-forward blocks", len(l.Layers), len(mlps))
	}
	s := &Set{Layout: l, FFNs: make([]*experts.FFN, len(mlps)), E: make([]int, len(mlps)), model: m}
	enc := len(m.Encoder.Layers)
	routers := false
	for i, mlp := range mlps {
		ly := &l.Layers[i]
		if want := LayerName(i, enc); ly.Name != want {
			return nil, fmt.Errorf("layout layer %d is %q, want %q", i, ly.Name, want)
		}
		if ly.Neurons != mlp.FC1.Out {
			return nil, fmt.Errorf("layout layer %s has %d neurons, the model %d", ly.Name, ly.Neurons, mlp.FC1.Out)
		}
		if ly.Method == experts.MethodEmpty {
			// A block pruned to no units: no experts; Routing.FFN runs it as it is (fc2's bias).
			if mlp.Gate != nil {
				return nil, fmt.Errorf("layer %s: layout says empty, the model's block has a gate", ly.Name)
			}
			continue
		}
		f, err := experts.FromLinear(&mlp.FC1, &mlp.FC2, ly.Experts)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", ly.Name, err)
		}
		if l.Unpermuted { // an overlay: the stored weights are in the base order
			if f, err = f.Permute(ly.Permutation(), ly.Experts); err != nil {
				return nil, fmt.Errorf("layer %s: %w", ly.Name, err)
			}
		}
		f.Layer = i
		s.FFNs[i], s.E[i] = f, ly.Experts
		routers = routers || ly.Router != nil
		if mlp.Gate != nil {
			if ly.Experts != mlp.Gate.Out || ly.Method != experts.MethodUpcycled {
				return nil, fmt.Errorf("layer %s: layout has %d experts (method %q), the model's gate %d (method %q)", ly.Name, ly.Experts, ly.Method, mlp.Gate.Out, experts.MethodUpcycled)
			}
			if s.Gate == nil {
				s.Gate = &experts.Gate{C: mlp.Gate.In, W: make([][]float32, len(mlps))}
			}
			s.Gate.W[i] = mlp.Gate.Weight()
		} else if ly.Method == experts.MethodUpcycled {
			return nil, fmt.Errorf("layer %s: layout says upcycled, the model's block has no gate", ly.Name)
		}
	}
	s.MLP = &experts.MLP{Layers: make([]*experts.MLPLayer, len(mlps))}
	if routers && src != nil {
		if m.Dims.NAudioState != m.Dims.NTextState {
			return nil, fmt.Errorf("routers need one width, encoder %d and decoder %d differ", m.Dims.NAudioState, m.Dims.NTextState)
		}
		r, err := experts.LoadRouters(l, src, m.Dims.NAudioState)
		if err != nil {
			return nil, err
		}
		s.MLP = r
	}
	if len(l.Heads) > 0 && src != nil {
		if len(l.Heads) != len(m.Encoder.Layers) {
			return nil, fmt.Errorf("layout has %d head routers, the encoder %d layers", len(l.Heads), len(m.Encoder.Layers))
		}
		hr, err := experts.LoadRouters(&experts.ExpertLayout{Layers: l.Heads}, src, m.Dims.NAudioState)
		if err != nil {
			return nil, err
		}
		s.HeadMLP = hr
	}
	return s, nil
}

// Routers are the router names a choice may use ("gate": a gated variant's learned gate at
// a chosen k).
var Routers = []string{"dense", "random", "mlp", "oracle", "gate"}

// K is the experts per layer a choice runs: c.K, or c.Fraction of e rounded (at least 1).
// The result is not range-checked (Router does that).
func K(c asr.RoutingChoice, e int) int {
	if c.K != 0 || c.Fraction == 0 {
		return c.K
	}
	return max(1, int(math.Round(c.Fraction*float64(e))))
}

// Router builds the router c names: dense for "" and "dense"; otherwise top-k of a random,
// MLP or oracle scorer, pinned per request in per-request mode (a fresh value each call, as
// the pinned router holds a request's subsets). Errors wrap asr.ErrRouting.
func (s *Set) Router(c asr.RoutingChoice) (experts.Router, error) {
	if c.Dense() {
		if s.Gate != nil {
			// A gated variant's own function is its gate's top-k, run sparsely.
			k := s.model.Dims.GateTopK
			if c.PerRequest {
				return nil, fmt.Errorf("%w: a gated variant's own routing is per token; name a router (gate, random, …) for a per-request subset", asr.ErrRouting)
			}
			tk, err := experts.NewTopK(*s.Gate, k, experts.PerToken, s.E)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", asr.ErrRouting, err)
			}
			return tk, nil
		}
		return experts.Dense{E: s.E}, nil
	}
	_, e0 := s.Layout.Split()
	for _, e := range s.E {
		if e != 0 && e != e0 {
			return nil, fmt.Errorf("%w: router %q needs the same expert count in every layer (%v)", asr.ErrRouting, c.Router, s.E)
		}
	}
	if c.Fraction < 0 || c.Fraction > 1 || math.IsNaN(c.Fraction) {
		return nil, fmt.Errorf("%w: fraction %g outside (0, 1]", asr.ErrRouting, c.Fraction)
	}
	var sc experts.Scorer
	switch c.Router {
	case "random":
		sc = experts.Random{Seed: c.Seed, E: s.E}
	case "mlp":
		for i, r := range s.MLP.Layers {
			if r == nil && s.E[i] > 0 {
				return nil, fmt.Errorf("%w: router \"mlp\": the variant has no learned router for %s", asr.ErrRouting, s.Layout.Layers[i].Name)
			}
		}
		sc = s.MLP
	case "oracle":
		sc = experts.Oracle{FFNs: s.FFNs}
	case "gate":
		if s.Gate == nil {
			return nil, fmt.Errorf("%w: router \"gate\" needs a gated (upcycled) variant; this one's experts are split from one FFN", asr.ErrRouting)
		}
		sc = *s.Gate
	default:
		return nil, fmt.Errorf("%w: unknown router %q (want one of %s)", asr.ErrRouting, c.Router, strings.Join(Routers, ", "))
	}
	k := K(c, e0)
	if k == 0 {
		return nil, fmt.Errorf("%w: router %q needs a fraction in (0, 1] or an expert count in 1…%d", asr.ErrRouting, c.Router, e0)
	}
	mode := experts.PerToken
	if c.PerRequest {
		mode = experts.PerRequest
	}
	tk, err := experts.NewTopK(sc, k, mode, s.E)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", asr.ErrRouting, err)
	}
	if c.PerRequest {
		return experts.NewPinned(tk), nil
	}
	return tk, nil
}

// Routing implements asr.Experts: a new per-stream routing for c.
func (s *Set) Routing(c asr.RoutingChoice) (whisper.Routing, error) {
	r, err := s.Router(c)
	if err != nil {
		return nil, err
	}
	hc, err := s.checkHeads(c, s.model)
	if err != nil {
		return nil, err
	}
	if c.MinTokens < 0 {
		return nil, fmt.Errorf("%w: min_tokens %d is negative", asr.ErrRouting, c.MinTokens)
	}
	rt := s.NewRouting(r, c.Pathway)
	rt.heads, rt.sliced, rt.minTokens = hc, map[int]*slicedAttn{}, c.MinTokens
	if c.EncoderOnly {
		// Blocks are in MLPs order: the encoder's first, then the decoder's.
		rt.denseLayer = make([]bool, len(s.FFNs))
		for i := len(s.model.Encoder.Layers); i < len(rt.denseLayer); i++ {
			rt.denseLayer[i] = true
		}
	}
	return rt, nil
}
