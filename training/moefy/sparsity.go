package moefy

import (
	"fmt"
	"math"
	"slices"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/experts/moe"
	"github.com/chorus-asr/chorus/tensor"
)

// LayerSparsity is how sparse one feed-forward block's activations are on recorded speech:
// what MoEfication relies on (Zhang et al. 2022 §3: ReLU FFNs activate few neurons per
// token) and what ReLU-fication is meant to bring to a GELU model.
type LayerSparsity struct {
	Name   string
	Tokens int
	// Zero is the fraction of activations exactly 0 (ReLU's inactive neurons); NonPositive
	// the fraction ≤ 0 (GELU's inactive side, which is small negative rather than 0); Small
	// the fraction with |a| < 0.01·(the layer's RMS activation).
	Zero, NonPositive, Small float64
	// Mass90 is the mean over tokens of the share of neurons that hold 90% of the token's
	// positive activation mass (lower is more concentrated: easier to route to few experts).
	Mass90 float64
}

// Sparsity measures each block of v on the recorded block inputs rec (Record's output):
// a = act(fc1·x + b) with the model's own activation.
func Sparsity(v *asr.Variant, rec *Recording) ([]LayerSparsity, error) {
	mlps := moe.MLPs(v.Model)
	if len(rec.X) != len(mlps) {
		return nil, fmt.Errorf("sparsity: recording has %d layers, the model %d blocks", len(rec.X), len(mlps))
	}
	relu := v.Model.Dims.Activation == "relu"
	enc := len(v.Model.Encoder.Layers)
	out := make([]LayerSparsity, len(mlps))
	ctx := tensor.NewCtx()
	for l, m := range mlps {
		t := rec.Tokens[l]
		s := LayerSparsity{Name: moe.LayerName(l, enc), Tokens: t}
		if t == 0 || m.FC1.Out == 0 { // nothing recorded, or a block pruned to no units
			out[l] = s
			continue
		}
		h := m.FC1.Forward(ctx, tensor.FromData(rec.X[l], t, rec.C))
		if relu {
			h = ctx.ReLU(h)
		} else {
			h = ctx.GELU(h)
		}
		n := len(h.Data) / t
		var sq float64
		for _, a := range h.Data {
			sq += float64(a) * float64(a)
		}
		rms := math.Sqrt(sq / float64(len(h.Data)))
		pos := make([]float64, 0, n)
		for tok := range t {
			row := h.Data[tok*n : (tok+1)*n]
			pos = pos[:0]
			var mass float64
			for _, a := range row {
				switch {
				case a == 0:
					s.Zero++
					s.NonPositive++
				case a < 0:
					s.NonPositive++
				default:
					pos = append(pos, float64(a))
					mass += float64(a)
				}
				if math.Abs(float64(a)) < 0.01*rms {
					s.Small++
				}
			}
			if mass > 0 {
				slices.SortFunc(pos, func(a, b float64) int { return cmpDesc(a, b) })
				var acc float64
				k := 0
				for k < len(pos) && acc < 0.9*mass {
					acc += pos[k]
					k++
				}
				s.Mass90 += float64(k) / float64(n)
			}
		}
		all := float64(t * n)
		s.Zero /= all
		s.NonPositive /= all
		s.Small /= all
		s.Mass90 /= float64(t)
		out[l] = s
		ctx.Reset()
	}
	return out, nil
}

func cmpDesc(a, b float64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}
