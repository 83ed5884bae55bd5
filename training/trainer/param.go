package trainer

import (
	"fmt"
	"math"
	"strings"

	"github.com/chorus-asr/chorus/tensor"
)

// Param is one trainable tensor and its gradient buffer. The task owns both tensors; the
// trainer reads Grad, updates W in place, and zeroes Grad after each optimizer step so that the
// task's backward passes can accumulate into it (+=) across micro-batches.
type Param struct {
	// Name identifies the tensor in checkpoints; it must be unique and stable across runs
	// (use the checkpoint name, e.g. "decoder.blocks.0.mlp.0.weight").
	Name string
	// W is the weight, updated in place. Shape [any].
	W *tensor.T
	// Grad has W's shape and holds dLoss/dW summed over the micro-batches of the current step.
	Grad *tensor.T
	// Decay selects decoupled weight decay for this tensor. Biases, LayerNorm gains and shifts
	// and embedding tables usually go without it; see DecayFor.
	Decay bool
	// LR, when positive, is this tensor's own constant learning rate in place of the schedule's:
	// a second AdamW parameter group, as CoFi trains its gates' log α and the Lagrange
	// multipliers with their own rates (reg_learning_rate, trainer/trainer.py#L150-L170)
	// while the model follows the warm-up/decay schedule. It is folded into the config hash.
	LR float64
}

// DecayFor is the usual rule for which tensors get weight decay: weight matrices and
// convolution kernels do; biases and LayerNorm gains and shifts (1-D tensors) and embedding
// tables (token and positional, recognised by "embed" in the name) do not. Decaying those
// pulls LayerNorm gains towards zero and shrinks rare tokens' embeddings, which hurts.
func DecayFor(name string, w *tensor.T) bool {
	if w == nil || len(w.Shape) < 2 {
		return false
	}
	return !strings.Contains(strings.ToLower(name), "embed")
}

// checkParams reports the first reason params cannot be trained: an empty list, a missing or
// mis-shaped tensor, or a duplicate name. Params must be non-empty so that a miswired task
// fails at once rather than "training" nothing for hours.
func checkParams(params []Param) error {
	if len(params) == 0 {
		return fmt.Errorf("no parameters to train")
	}
	seen := make(map[string]bool, len(params))
	for i, p := range params {
		switch {
		case p.Name == "":
			return fmt.Errorf("param %d: empty name", i)
		case seen[p.Name]:
			return fmt.Errorf("param %q: duplicate name", p.Name)
		case p.W == nil || p.Grad == nil:
			return fmt.Errorf("param %q: nil weight or gradient", p.Name)
		case len(p.W.Data) != tensor.Numel(p.W.Shape):
			return fmt.Errorf("param %q: %d values for shape %v", p.Name, len(p.W.Data), p.W.Shape)
		case !tensor.SameShape(p.W.Shape, p.Grad.Shape) || len(p.Grad.Data) != len(p.W.Data):
			return fmt.Errorf("param %q: gradient shape %v (%d values) differs from weight shape %v",
				p.Name, p.Grad.Shape, len(p.Grad.Data), p.W.Shape)
		case !(p.LR >= 0) || math.IsInf(p.LR, 0):
			return fmt.Errorf("param %q: learning rate %v", p.Name, p.LR)
		case len(p.W.Data) > 0 && &p.W.Data[0] == &p.Grad.Data[0]:
			return fmt.Errorf("param %q: gradient shares the weight's storage", p.Name)
		}
		seen[p.Name] = true
	}
	return nil
}
