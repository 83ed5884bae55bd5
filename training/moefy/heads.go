package moefy

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/mel"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/experts"
	"github.com/chorus-asr/chorus/experts/moe"
	"github.com/chorus-asr/chorus/tensor"
)

// headRecorder is a whisper.HeadRouting that runs every block densely and records, per
// encoder layer, each token's self-attention input and every head's contribution to the
// layer's output (moe.HeadScores): the data head routers learn from.
type headRecorder struct {
	x, y [][]float32 // per encoder layer: [T, C] inputs, [T, H] head scores
	t    []int
	max  int
}

func (r *headRecorder) FFN(ctx *tensor.Ctx, m *whisper.MLP, x *tensor.T) *tensor.T {
	return m.Forward(ctx, x)
}

func (r *headRecorder) EncoderSelfAttention(ctx *tensor.Ctx, a *whisper.Attention, x *tensor.T, heads, layer int) *tensor.T {
	if t := x.Shape[0]; r.t[layer] < r.max {
		n := min(t, r.max-r.t[layer])
		c := len(x.Data) / t
		sc := moe.HeadScores(ctx, a, x, heads)
		r.x[layer] = append(r.x[layer], x.Data[:n*c]...)
		r.y[layer] = append(r.y[layer], sc[:n*heads]...)
		r.t[layer] += n
	}
	return a.Self(ctx, x, heads, false, nil)
}

// ErrFewHeads is returned by BuildHeads for a model with an encoder layer of fewer than two
// heads, where there is nothing to choose between: the variant is served without head
// routers (its feed-forward experts are unaffected).
var ErrFewHeads = errors.New("moefy: no head routers")

// HeadReport is a head router's quality on held-out tokens: how often its top-k heads are
// the oracle's, against random heads.
type HeadReport struct {
	Name                 string
	Tokens, HeldOut, K   int
	Recall, RandomRecall float64
}

// BuildHeads trains a head router per encoder layer of v (an MLP predicting each head's
// contribution from the token, as the FFN routers predict experts' mass) on the clips'
// encoder passes, holding out the last tenth for the recall report, and adds them to res
// (res.Layout.Heads, res.HeadRouters). k is the heads the report ranks.
func BuildHeads(ctx context.Context, v *asr.Variant, clips []Clip, res *Result, hidden, epochs, maxTokens, k int, seed uint64) ([]HeadReport, error) {
	m := v.Model
	enc := len(m.Encoder.Layers)
	for l := range enc {
		if h := m.Encoder.Layers[l].Attn.Heads(); h < 2 {
			return nil, fmt.Errorf("%w: encoder layer %d has %d heads (a pruned variant); routing heads needs at least 2 in every layer", ErrFewHeads, l, h)
		}
	}
	if maxTokens <= 0 {
		maxTokens = 20000
	}
	rec := &headRecorder{x: make([][]float32, enc), y: make([][]float32, enc), t: make([]int, enc), max: maxTokens}
	st := m.NewState(1)
	st.SetRouting(rec)
	content := v.Chorus.EncoderWindow == asr.WindowContent
	for _, c := range clips {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		st.Encode(Window(c.Samples[:min(len(c.Samples), mel.NSamples)], m.Dims.NMels, content))
	}
	c := m.Dims.NAudioState
	res.HeadRouters = &experts.MLP{}
	var reps []HeadReport
	tc := tensor.NewCtx()
	for l := range enc {
		h := m.Encoder.Layers[l].Attn.Heads()
		t := rec.t[l]
		held := max(1, t/10)
		train := t - held
		if train < 1 {
			return nil, fmt.Errorf("moefy: head routers: %d tokens recorded for encoder layer %d", t, l)
		}
		r := experts.NewMLPLayer(c, hidden, h, seed+uint64(100+l))
		if _, err := r.Train(rec.x[l][:train*c], rec.y[l][:train*h], train, experts.TrainOptions{Epochs: epochs, Seed: seed + uint64(100+l)}); err != nil {
			return nil, fmt.Errorf("moefy: head router %d: %w", l, err)
		}
		name := moe.LayerName(l, enc) + ".self_attn"
		res.HeadRouters.Layers = append(res.HeadRouters.Layers, r)
		res.Layout.Heads = append(res.Layout.Heads, experts.LayerLayout{Name: name, Neurons: h, Experts: h, Method: experts.MethodHeads,
			Router: &experts.RouterDesc{Kind: "mlp", Hidden: hidden, Scale: r.Scale, Prefix: moe.LayerName(l, enc) + ".head_router"}})
		// Held-out recall of the top-k heads against the oracle, and random's.
		kk := min(k, h)
		pred := r.Predict(tc, tensor.FromData(rec.x[l][train*c:t*c], held, c)).Data
		var hit, rhit int
		for tok := range held {
			want := moe.TopHeads(rec.y[l][(train+tok)*h:(train+tok+1)*h], kk)
			got := moe.TopHeads(pred[tok*h:(tok+1)*h], kk)
			rnd := moe.RandomHeads(seed, l, tok, h, kk)
			for _, g := range got {
				if slices.Contains(want, g) {
					hit++
				}
			}
			for _, g := range rnd {
				if slices.Contains(want, g) {
					rhit++
				}
			}
		}
		reps = append(reps, HeadReport{Name: name, Tokens: t, HeldOut: held, K: kk,
			Recall: float64(hit) / float64(held*kk), RandomRecall: float64(rhit) / float64(held*kk)})
		tc.Reset()
	}
	return reps, nil
}
