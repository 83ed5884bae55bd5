package experts

// Shapes (legend in doc.go): router input x [T, C] (the FFN's input, after its layer norm),
// scores [T, E], selection [T, K] expert ids.

import (
	"fmt"
	"math"

	"github.com/chorus-asr/chorus/tensor"
)

// Selection is a router's choice for one call of one layer: the K experts (of E) each of T
// tokens runs, as ascending ids. Shared marks a per-request selection, where every token has
// the same experts; the sparse kernel then skips grouping tokens.
type Selection struct {
	E, K   int
	IDs    []int32 // [T, K]
	Shared bool
	// Weights, when set, scale each selected expert's output for its token: [T, K], in
	// IDs' order. A gated block's gate sets them (Gate.Weigh); nil means every selected
	// expert counts once, as the split experts of a MoE-fied block do.
	Weights []float32
}

// T is the number of tokens selected for.
func (s Selection) T() int {
	if s.K == 0 {
		return 0
	}
	return len(s.IDs) / s.K
}

// Token returns the experts of token i (a view).
func (s Selection) Token(i int) []int32 { return s.IDs[i*s.K : (i+1)*s.K] }

// All selects all e experts for each of t tokens (the dense block).
func All(t, e int) Selection {
	ids := make([]int32, t*e)
	for i := range ids {
		ids[i] = int32(i % e)
	}
	return Selection{E: e, K: e, IDs: ids, Shared: true}
}

// Router chooses the experts of one layer for the FFN input x [T, C] of one call. A router
// is chosen per request; implementations hold only immutable weights (Pinned, which keeps a
// request's choice, is the exception and is made per request), so one value serves every
// stream concurrently. Scratch comes from ctx; the selection's IDs do not.
type Router interface {
	// Name labels the router in metrics and A/B arms ("dense", "mlp:4").
	Name() string
	Select(ctx *tensor.Ctx, layer int, x *tensor.T) Selection
}

// Scorer rates each expert of a layer for each token; TopK turns scores into a selection.
type Scorer interface {
	// Kind names the scorer: "random", "mlp", "oracle".
	Kind() string
	// Experts is the number of experts of layer (0 for a layer the scorer does not know).
	Experts(layer int) int
	// Scores returns [T, E] for x [T, C], higher meaning more useful; from ctx.
	Scores(ctx *tensor.Ctx, layer int, x *tensor.T) *tensor.T
}

// Mode says whether each token gets its own experts or the whole call shares one subset.
type Mode int

const (
	// PerToken selects the top-k experts of each token.
	PerToken Mode = iota
	// PerRequest selects, once for all tokens, the top-k experts of the scores summed over the
	// tokens: one subset for a whole utterance (and a kernel without gather and scatter).
	PerRequest
)

func (m Mode) String() string {
	if m == PerRequest {
		return "request"
	}
	return "token"
}

// Dense selects every expert: the unmodified model, the baseline of every comparison.
type Dense struct {
	E []int // experts per layer
}

// Name is "dense".
func (Dense) Name() string { return "dense" }

// Select returns All(T, E[layer]).
func (d Dense) Select(_ *tensor.Ctx, layer int, x *tensor.T) Selection {
	return All(len(x.Data)/x.Shape[len(x.Shape)-1], d.E[layer])
}

// TopK selects the K best-scored experts per token (PerToken) or for the whole call
// (PerRequest). Ties go to the lower id; NaN scores rank last.
type TopK struct {
	Scorer Scorer
	K      int
	Mode   Mode
}

// NewTopK checks the scorer against the model's expert counts per layer, e (0 for a block
// pruned to no units, which is never routed): every other layer must be one the scorer
// scores with e[l] experts, k in 1…e[l], and at least one layer must have experts.
func NewTopK(s Scorer, k int, mode Mode, e []int) (*TopK, error) {
	routed := false
	for l, n := range e {
		if n == 0 {
			continue
		}
		if got := s.Experts(l); got != n {
			return nil, fmt.Errorf("experts: %s router scores %d experts at layer %d, the model has %d", s.Kind(), got, l, n)
		}
		if k < 1 || k > n {
			return nil, fmt.Errorf("experts: %s router: k %d out of range 1…%d at layer %d", s.Kind(), k, n, l)
		}
		routed = true
	}
	if !routed {
		return nil, fmt.Errorf("experts: %s router: none of %d layers has experts", s.Kind(), len(e))
	}
	return &TopK{Scorer: s, K: k, Mode: mode}, nil
}

// Name is the scorer's kind and k, with "/request" in per-request mode ("mlp:4/request").
func (r *TopK) Name() string {
	n := fmt.Sprintf("%s:%d", r.Scorer.Kind(), r.K)
	if r.Mode == PerRequest {
		n += "/request"
	}
	return n
}

// Select scores x and keeps the top K.
func (r *TopK) Select(ctx *tensor.Ctx, layer int, x *tensor.T) Selection {
	sc := r.Scorer.Scores(ctx, layer, x)
	return selectTopK(sc.Data, sc.Shape[0], sc.Shape[1], r.K, r.Mode)
}

// selectTopK turns scores [T, E] into a selection of k per token or per call.
func selectTopK(scores []float32, t, e, k int, mode Mode) Selection {
	sel := Selection{E: e, K: k, IDs: make([]int32, t*k), Shared: mode == PerRequest}
	if t == 0 {
		return sel
	}
	if mode == PerRequest {
		sum := make([]float32, e)
		for i := range t {
			for j, v := range scores[i*e : (i+1)*e] {
				sum[j] += v
			}
		}
		tensor.TopKSet(sel.IDs[:k], sum, k, make([]uint64, 2*e))
		for i := 1; i < t; i++ {
			copy(sel.IDs[i*k:(i+1)*k], sel.IDs[:k])
		}
		return sel
	}
	tensor.TopKSets(sel.IDs, scores, t, e, k)
	return sel
}

// Random scores experts with a hash of (seed, layer, the token's vector, expert): uniform,
// reproducible, and stateless, so the same token always takes the same experts, different
// tokens independent ones, and one value serves concurrent streams. The seed is per request
// or per arm.
type Random struct {
	Seed uint64
	E    []int // experts per layer
}

// Kind is "random".
func (Random) Kind() string { return "random" }

// Experts is E[layer].
func (r Random) Experts(layer int) int {
	if layer < 0 || layer >= len(r.E) {
		return 0
	}
	return r.E[layer]
}

// Scores returns uniform [0, 1) scores [T, E].
func (r Random) Scores(ctx *tensor.Ctx, layer int, x *tensor.T) *tensor.T {
	c := x.Shape[len(x.Shape)-1]
	t, e := len(x.Data)/c, r.E[layer]
	sc := ctx.New(t, e)
	for i := range t {
		h := splitmix(r.Seed ^ splitmix(uint64(layer)+0x9E3779B97F4A7C15))
		for _, v := range x.Data[i*c : (i+1)*c] {
			h = splitmix(h ^ uint64(math.Float32bits(v)))
		}
		for j := range e {
			sc.Data[i*e+j] = float32(splitmix(h+uint64(j+1)*0x9E3779B97F4A7C15)>>40) / (1 << 24)
		}
	}
	return sc
}

// splitmix is the splitmix64 finaliser, a cheap 64-bit mixer.
func splitmix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// Oracle scores experts by their true activation mass (ExpertMass): the best any router
// predicting mass can do, and the upper bound routers are compared against. It runs each
// layer's dense fc1, so it saves no compute; it measures.
type Oracle struct {
	FFNs []*FFN // per layer
}

// Kind is "oracle".
func (Oracle) Kind() string { return "oracle" }

// Experts is FFNs[layer].E (0 for a nil block).
func (o Oracle) Experts(layer int) int {
	if layer < 0 || layer >= len(o.FFNs) || o.FFNs[layer] == nil {
		return 0
	}
	return o.FFNs[layer].E
}

// Scores returns the experts' activation mass [T, E].
func (o Oracle) Scores(ctx *tensor.Ctx, layer int, x *tensor.T) *tensor.T {
	return o.FFNs[layer].ExpertMass(ctx, x)
}

// Pinned keeps, per layer, the first subset its router selects and returns it for every later
// call of the request: the per-request mode for a decoder, whose tokens arrive one call at a
// time. Make one per request (it is the only router with state); not safe for concurrent use.
type Pinned struct {
	R    *TopK
	sets map[int][]int32
}

// NewPinned pins r's choices, which are made per request (r's mode is forced to PerRequest).
func NewPinned(r *TopK) *Pinned {
	return &Pinned{R: &TopK{Scorer: r.Scorer, K: r.K, Mode: PerRequest}, sets: make(map[int][]int32)}
}

// Name is the wrapped router's name with "/pinned".
func (p *Pinned) Name() string { return p.R.Name() + "/pinned" }

// Select returns the layer's pinned subset for each token of x, choosing it on first use.
func (p *Pinned) Select(ctx *tensor.Ctx, layer int, x *tensor.T) Selection {
	t := len(x.Data) / x.Shape[len(x.Shape)-1]
	ids, ok := p.sets[layer]
	if !ok {
		if t == 0 {
			return Selection{E: p.R.Scorer.Experts(layer), K: p.R.K, Shared: true}
		}
		s := p.R.Select(ctx, layer, x)
		ids = append([]int32(nil), s.Token(0)...)
		p.sets[layer] = ids
	}
	sel := Selection{E: p.R.Scorer.Experts(layer), K: len(ids), IDs: make([]int32, t*len(ids)), Shared: true}
	for i := range t {
		copy(sel.IDs[i*len(ids):], ids)
	}
	return sel
}
