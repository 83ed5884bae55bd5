package experts

// Shapes (legend in doc.go): gate weight W [E, C] per layer, x [T, C], logits [T, E],
// selection weights [T, K].

import (
	"fmt"

	"github.com/chorus-asr/chorus/tensor"
)

// Gate is the learned softmax gate of gated blocks (an upcycled variant: each expert a whole
// FFN, outputs weighted by the gate; whisper.Dims.GatedExperts) as a Scorer: a token's scores
// are the gate's logits W·x, its top K experts run, and Weigh weights their outputs by the
// softmax of their logits — what the model's own block computes (tensor.TopKSoftmax) when K
// is the variant's top-k. Other routers (random, oracle) may pick the experts instead; the
// gate still weights the ones they pick.
type Gate struct {
	C int
	W [][]float32 // per layer [E, C]; nil for a layer without a gate
}

// Kind is "gate".
func (Gate) Kind() string { return "gate" }

// Experts is the number of experts of layer's gate (0 without one).
func (g Gate) Experts(layer int) int {
	if layer < 0 || layer >= len(g.W) || g.W[layer] == nil {
		return 0
	}
	return len(g.W[layer]) / g.C
}

// Scores returns the gate's logits [T, E] for x [T, C].
func (g Gate) Scores(ctx *tensor.Ctx, layer int, x *tensor.T) *tensor.T {
	e := g.Experts(layer)
	if e == 0 {
		panic(fmt.Sprintf("experts: no gate for layer %d", layer))
	}
	t := len(x.Data) / g.C
	out := ctx.New(t, e)
	tensor.Linear(out.Data, x.Data, g.W[layer], nil, t, g.C, e)
	return out
}

// Weigh sets sel.Weights to each token's softmax of the gate's logits over the experts it
// selected (x [T, C] is the block's input the selection was made for).
func (g Gate) Weigh(ctx *tensor.Ctx, layer int, x *tensor.T, sel *Selection) {
	logits := g.Scores(ctx, layer, x)
	e := logits.Shape[1]
	t := sel.T()
	if len(sel.Weights) != len(sel.IDs) {
		sel.Weights = make([]float32, len(sel.IDs))
	}
	for i := range t {
		tensor.SoftmaxAt(sel.Weights[i*sel.K:(i+1)*sel.K], logits.Data[i*e:(i+1)*e], sel.Token(i))
	}
}
