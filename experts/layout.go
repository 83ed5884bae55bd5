package experts

// Shapes (legend in doc.go): per layer a permutation [N]; router tensors
// <prefix>.fc1.weight [H, C], <prefix>.fc1.bias [H], <prefix>.fc2.weight [E, H],
// <prefix>.fc2.bias [E].

import (
	"encoding/json"
	"fmt"

	"github.com/chorus-asr/chorus/nn"
	"github.com/chorus-asr/chorus/tensor"
)

// ExpertLayout describes how a MoE variant splits its feed-forward blocks: per layer, the
// number of experts, the neuron permutation that makes each expert contiguous, and which
// router weights it has. It is the "experts" entry of config.json's "chorus" block, e.g.
//
//	"chorus": {"experts": {"layers": [{"name": "model.encoder.layers.0", "neurons": 1024,
//	  "experts": 16, "method": "kmeans", "perm": [17, 402, …],
//	  "router": {"kind": "mlp", "hidden": 64, "scale": 0.83, "prefix": "model.encoder.layers.0.router"}}, …]}}
//
// The JSON only declares: router weights live in model.safetensors under the declared prefix
// (RouterTensors writes them, LoadRouters reads them), and a checkpoint's fc1/fc2 are stored
// already permuted, so Perm records provenance and lets the original order be restored.
type ExpertLayout struct {
	Layers []LayerLayout `json:"layers"`
	// Unpermuted says the variant's stored weights are in the base model's neuron order and
	// the permutation is applied when the experts are built: an overlay over unchanged base
	// weights (the embedded chorus-micro-moe), which then needs only the layout and the
	// routers. The dense model's outputs do not depend on the order either way.
	Unpermuted bool `json:"unpermuted,omitempty"`
	// Heads are the learned head routers of the encoder's self-attention layers (attention
	// heads as experts), one entry per encoder layer: Name "model.encoder.layers.i.self_attn",
	// Neurons = Experts = the layer's heads, Method "heads", and the router predicting each
	// head's contribution to the layer's output.
	Heads []LayerLayout `json:"heads,omitempty"`
}

// LayerLayout is one feed-forward block's entry.
type LayerLayout struct {
	Name    string      `json:"name"`    // the block's checkpoint prefix, e.g. "model.encoder.layers.0"
	Neurons int         `json:"neurons"` // N (0 for an empty block)
	Experts int         `json:"experts"` // E; N/E neurons each (0 for an empty block)
	Method  string      `json:"method"`  // MethodKMeans, MethodCoActivation, MethodIdentity, MethodUpcycled or MethodEmpty
	Perm    []int       `json:"perm,omitempty"`
	Router  *RouterDesc `json:"router,omitempty"`
}

// RouterDesc declares a layer's learned router; its tensors are <Prefix>.fc1.weight,
// .fc1.bias, .fc2.weight and .fc2.bias.
type RouterDesc struct {
	Kind   string  `json:"kind"` // "mlp"
	Hidden int     `json:"hidden"`
	Scale  float32 `json:"scale"`
	Prefix string  `json:"prefix"`
}

// ParseLayout decodes and validates a layout.
func ParseLayout(b []byte) (*ExpertLayout, error) {
	var l ExpertLayout
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("expert layout: %w", err)
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return &l, nil
}

// Validate reports entries a model cannot run with: expert counts that do not divide the
// neurons, permutations that are not permutations, unknown methods or routers.
func (l *ExpertLayout) Validate() error {
	for i, ly := range l.Heads {
		if ly.Method != MethodHeads || ly.Neurons != ly.Experts || ly.Experts <= 0 || ly.Router == nil {
			return fmt.Errorf("expert layout: head router %d (%s): want method heads, neurons = experts > 0 and a router", i, ly.Name)
		}
		if r := ly.Router; r.Kind != "mlp" || r.Hidden <= 0 || r.Prefix == "" || !(r.Scale > 0) {
			return fmt.Errorf("expert layout: head router %d (%s): router %+v: want kind mlp, hidden > 0, scale > 0 and a prefix", i, ly.Name, *r)
		}
	}
	split := false
	for i, ly := range l.Layers {
		if ly.Method == MethodEmpty {
			if ly.Neurons != 0 || ly.Experts != 0 || ly.Perm != nil || ly.Router != nil {
				return fmt.Errorf("expert layout: layer %d (%s): an empty block has no neurons, experts, permutation or router", i, ly.Name)
			}
			continue
		}
		split = true
		if err := checkSplit(ly.Neurons, ly.Experts); err != nil {
			return fmt.Errorf("expert layout: layer %d (%s): %w", i, ly.Name, err)
		}
		switch ly.Method {
		case MethodKMeans, MethodCoActivation, MethodIdentity, MethodUpcycled:
		default:
			return fmt.Errorf("expert layout: layer %d (%s): unknown method %q", i, ly.Name, ly.Method)
		}
		if ly.Perm != nil {
			if err := checkPerm(ly.Perm, ly.Neurons); err != nil {
				return fmt.Errorf("expert layout: layer %d (%s): %w", i, ly.Name, err)
			}
		}
		if r := ly.Router; r != nil && (r.Kind != "mlp" || r.Hidden <= 0 || r.Prefix == "" || !(r.Scale > 0)) {
			return fmt.Errorf("expert layout: layer %d (%s): router %+v: want kind mlp, hidden > 0, scale > 0 and a prefix", i, ly.Name, *r)
		}
	}
	if len(l.Layers) > 0 && !split {
		return fmt.Errorf("expert layout: every block is empty; there are no experts to route")
	}
	return nil
}

// Split is the method and expert count of the layout's first block that has experts (the
// split a MoE-fying run chose; empty blocks — pruned to no units — have neither).
func (l *ExpertLayout) Split() (method string, experts int) {
	for _, ly := range l.Layers {
		if ly.Method != MethodEmpty {
			return ly.Method, ly.Experts
		}
	}
	return "", 0
}

// Permutation returns the layer's permutation, the identity when none is stored.
func (ly *LayerLayout) Permutation() []int {
	if ly.Perm != nil {
		return ly.Perm
	}
	p := make([]int, ly.Neurons)
	for i := range p {
		p[i] = i
	}
	return p
}

// routerNames lists a router's tensor names in the order W1, B1, W2, B2.
func routerNames(prefix string) [4]string {
	return [4]string{prefix + ".fc1.weight", prefix + ".fc1.bias", prefix + ".fc2.weight", prefix + ".fc2.bias"}
}

// RouterTensors returns the named tensors of m's layers as the layout declares them, for
// writing into a checkpoint. Layers without a router in the layout are skipped; a declared
// router whose weights disagree with the declaration is an error.
func RouterTensors(l *ExpertLayout, m *MLP) (map[string]*tensor.T, error) {
	out := make(map[string]*tensor.T)
	for i, ly := range l.Layers {
		if ly.Router == nil {
			continue
		}
		if i >= len(m.Layers) || m.Layers[i] == nil {
			return nil, fmt.Errorf("expert layout: layer %d (%s) declares a router, none given", i, ly.Name)
		}
		r := m.Layers[i]
		if r.H != ly.Router.Hidden || r.E != ly.Experts {
			return nil, fmt.Errorf("expert layout: layer %d (%s): router %d hidden, %d experts; declared %d, %d", i, ly.Name, r.H, r.E, ly.Router.Hidden, ly.Experts)
		}
		n := routerNames(ly.Router.Prefix)
		out[n[0]] = tensor.FromData(r.W1, r.H, r.C)
		out[n[1]] = tensor.FromData(r.B1, r.H)
		out[n[2]] = tensor.FromData(r.W2, r.E, r.H)
		out[n[3]] = tensor.FromData(r.B2, r.E)
	}
	return out, nil
}

// AllRouterTensors is RouterTensors of the feed-forward blocks' routers m and, when heads is
// not nil, of the encoder's head routers declared in l.Heads: everything a variant folder
// stores for its layout.
func AllRouterTensors(l *ExpertLayout, m, heads *MLP) (map[string]*tensor.T, error) {
	out, err := RouterTensors(l, m)
	if err != nil || heads == nil {
		return out, err
	}
	hts, err := RouterTensors(&ExpertLayout{Layers: l.Heads}, heads)
	if err != nil {
		return nil, err
	}
	for n, t := range hts {
		out[n] = t
	}
	return out, nil
}

// LoadRouters builds the MLP routers the layout declares from src (a checkpoint), for
// inputs of width c. Layers without a declared router get nil. Missing or mis-shaped tensors
// are errors wrapping nn.ErrMissing or naming the shape.
func LoadRouters(l *ExpertLayout, src nn.Source, c int) (*MLP, error) {
	m := &MLP{Layers: make([]*MLPLayer, len(l.Layers))}
	for i, ly := range l.Layers {
		rd := ly.Router
		if rd == nil {
			continue
		}
		h, e := rd.Hidden, ly.Experts
		shapes := [4][]int{{h, c}, {h}, {e, h}, {e}}
		var data [4][]float32
		for j, name := range routerNames(rd.Prefix) {
			shape, f32, f16, ok := src.Lookup(name)
			if !ok {
				return nil, fmt.Errorf("expert layout: %s: %w", name, nn.ErrMissing)
			}
			if !tensor.SameShape(shape, shapes[j]) {
				return nil, fmt.Errorf("expert layout: %s has shape %v, want %v", name, shape, shapes[j])
			}
			if f32 == nil {
				f32 = make([]float32, len(f16))
				tensor.F16ToF32Slice(f32, f16)
			}
			if len(f32) != tensor.Numel(shapes[j]) {
				return nil, fmt.Errorf("expert layout: %s has %d values for shape %v", name, len(f32), shapes[j])
			}
			data[j] = f32
		}
		m.Layers[i] = &MLPLayer{C: c, H: h, E: e, W1: data[0], B1: data[1], W2: data[2], B2: data[3], Scale: rd.Scale}
	}
	return m, nil
}
