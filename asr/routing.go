package asr

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/nn"
)

// RoutingChoice is a request's choice of router for a mixture-of-experts variant: which
// router, how many experts per layer, per token or per request. The zero value is the dense
// model, which every variant honours.
type RoutingChoice struct {
	// Router is "" or "dense" (every expert), "random", "mlp" (the variant's learned
	// routers) or "oracle" (the experts with the most activation mass: an upper bound that
	// saves no compute).
	Router string
	// K is the experts each layer runs; when 0, Fraction of each layer's experts (rounded,
	// at least 1) is used.
	K        int
	Fraction float64
	// PerRequest fixes one expert subset per layer for the whole request (chosen on its
	// first call of the layer) instead of choosing per token.
	PerRequest bool
	// MinTokens, when above 1, runs every expert in calls with fewer tokens than this (a
	// decoding step's one token): there the router costs more than the experts it skips.
	MinTokens int
	// EncoderOnly routes the encoder's feed-forward blocks only; the decoder's run every
	// expert (its few tokens per call carry most of a split's accuracy loss and little of
	// its cost).
	EncoderOnly bool
	// Seed seeds the random router.
	Seed uint64
	// Pathway records which experts each token used.
	Pathway bool
	// Heads, when above 0, runs only that many attention heads in each encoder layer's
	// self-attention (attention heads as experts), chosen by HeadRouter: "random" or
	// "oracle" (the heads contributing most to the output; saves nothing per token, it is
	// the bound), per token or, with PerRequest, one subset per layer for the request —
	// the mode that saves compute. Needs a variant split into experts.
	Heads      int
	HeadRouter string
}

// Dense reports whether the choice is the dense model.
func (c RoutingChoice) Dense() bool { return c.Router == "" || c.Router == "dense" }

// ErrRouting is wrapped by errors for routing choices a variant cannot honour (a dense
// variant asked for experts, an unknown router, k out of range); servers map it to
// INVALID_ARGUMENT.
var ErrRouting = errors.New("routing")

// Experts is the expert side of a mixture-of-experts variant: its feed-forward blocks split
// into experts and its learned routers, immutable and shared by every stream. The package
// experts/moe implements it and registers its builder (RegisterExperts), which keeps asr
// below the experts package.
type Experts interface {
	// Routing returns a new routing for one stream, or an error wrapping ErrRouting when
	// the variant cannot honour c.
	Routing(c RoutingChoice) (whisper.Routing, error)
}

// ExpertsBuilder builds a variant's Experts from its config.json "experts" entry and its
// checkpoint (which holds the router weights).
type ExpertsBuilder func(v *Variant, layout json.RawMessage, src nn.Source) (Experts, error)

var (
	expertsMu      sync.Mutex
	expertsBuilder ExpertsBuilder
)

// RegisterExperts installs the builder Open uses for variants with an expert layout; the
// experts/moe package calls it from init. A second registration panics.
func RegisterExperts(b ExpertsBuilder) {
	expertsMu.Lock()
	defer expertsMu.Unlock()
	if expertsBuilder != nil {
		panic("asr: experts builder registered twice")
	}
	expertsBuilder = b
}

func registeredExperts() ExpertsBuilder {
	expertsMu.Lock()
	defer expertsMu.Unlock()
	return expertsBuilder
}

// nativeRouting is the routing an unrouted call of v runs (Transcribe, a Transcriber without
// SetRouting): nil, the model's own blocks, unless v declares a default routing
// (Chorus.Routing) or is gated, whose gate's top-k then runs sparsely — the same function
// as the model's blocks, which compute every expert.
func (v *Variant) nativeRouting() whisper.Routing {
	if v.Experts == nil || (v.Model.Dims.GatedExperts == 0 && v.Chorus.Routing == nil) {
		return nil
	}
	rt, err := v.Routing(RoutingChoice{})
	if err != nil {
		return nil // Open checked the default; the dense path is the fallback
	}
	return rt
}

// defaultChoice is c with the variant's default routing filled in when c names no router
// (Router "", no heads) and v declares one.
func (v *Variant) defaultChoice(c RoutingChoice) RoutingChoice {
	d := v.Chorus.Routing
	if d == nil || c.Router != "" || c.Heads != 0 {
		return c
	}
	c.Router, c.Fraction, c.K, c.PerRequest, c.MinTokens, c.EncoderOnly = d.Router, d.Fraction, d.K, d.PerRequest, d.MinTokens, d.EncoderOnly
	return c
}

// Routing returns a routing for one stream of v under c: nil for the dense choice on a dense
// variant (the model's own path, at no cost), an error wrapping ErrRouting for a choice v
// cannot honour. A choice naming no router takes the variant's default routing, if it
// declares one (Chorus.Routing); "dense" always runs every expert.
func (v *Variant) Routing(c RoutingChoice) (whisper.Routing, error) {
	if v.Experts == nil {
		if c.Dense() && c.Heads == 0 {
			return nil, nil // a dense model has no pathway to record
		}
		return nil, fmt.Errorf("%w: model %s is dense: router %q needs a variant split into experts (chorus moe)", ErrRouting, v.Name, c.Router)
	}
	return v.Experts.Routing(v.defaultChoice(c))
}
