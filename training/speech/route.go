package speech

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/formats"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/experts/moe"
	"github.com/chorus-asr/chorus/tensor"
)

// Route fine-tunes a mixture-of-experts variant under one of its routers (a recipe's
// "route", e.g. "mlp:0.25"): every feed-forward block of the training pass keeps, per token,
// only the experts the router selects (whisper.Hooks.Route), so the experts learn to work
// with the share of their units the served variant runs. The routers stay as they are; the
// trained variant keeps the From variant's layout and routers and serves the route as its
// default routing.
type Route struct {
	Choice asr.RoutingChoice // parsed
	Set    *moe.Set          // the From variant's experts (layout and routers)
	mask   func(ctx *tensor.Ctx, layer int, x *tensor.T) *tensor.T
}

// NewRoute prepares training v under spec (asr.ParseRoutingChoice's syntax). v must be a
// permuted mixture-of-experts variant (`chorus moe --out`) and the router one a training pass
// can follow (moe.Set.TrainingRoute).
func NewRoute(v *asr.Variant, spec string) (*Route, error) {
	c, err := asr.ParseRoutingChoice(spec)
	if err != nil {
		return nil, fmt.Errorf("route: %w", err)
	}
	set, ok := v.Experts.(*moe.Set)
	if !ok {
		return nil, fmt.Errorf("route %q: %s is not a mixture-of-experts variant (make one with chorus moe --out)", spec, v.Name)
	}
	mask, err := set.TrainingRoute(c)
	if err != nil {
		return nil, fmt.Errorf("route %q: %w", spec, err)
	}
	return &Route{Choice: c, Set: set, mask: mask}, nil
}

// routingDefault is the trained variant's default routing: the route it was trained under.
func (r *Route) routingDefault() *asr.RoutingDefault {
	c := r.Choice
	return &asr.RoutingDefault{Router: c.Router, Fraction: c.Fraction, K: c.K, EncoderOnly: c.EncoderOnly}
}

// writeRouters stores the routers beside the trained weights (asr.ExpertsFile), where Open
// finds them.
func (r *Route) writeRouters(dir string) error {
	ts, err := r.Set.RouterTensors()
	if err != nil {
		return fmt.Errorf("route: %w", err)
	}
	ck, err := formats.CheckpointFromTensors(ts, slices.Sorted(maps.Keys(ts)))
	if err != nil {
		return fmt.Errorf("route: %w", err)
	}
	return formats.WriteSafetensorsFile(filepath.Join(dir, asr.ExpertsFile), ck, false)
}

// KD is logit distillation from a frozen teacher while training (a recipe's "kd" block):
// the loss is (1−Logit)·speech + Logit·distill.LogitKD at Temperature.
type KD struct {
	Teacher     *whisper.Model
	Source      string // the recipe's teacher, "" for the From variant
	Logit       float64
	Temperature float64
	ctx         *tensor.Ctx // the teacher's arena, off the tape
}
