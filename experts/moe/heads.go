package moe

// Attention heads as experts (issue: experts, "attention heads as experts"): an encoder
// layer's self-attention runs only k of its H heads. Per request, one subset per layer is
// fixed on the layer's first call and the layer runs on weights sliced to those heads —
// Q, K, V rows and output-projection columns — so the work is k/H of the projections and
// the attention. Per token, every head is computed and each token keeps its k heads' outputs
// (a study mode: it shows what a per-token head router could keep, at no saving).
//
// Shapes: x [T, C], H heads of width D = C/H, k heads kept, o [T, H·D] the heads' outputs
// before the output projection.

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/experts"
	"github.com/chorus-asr/chorus/nn"
	"github.com/chorus-asr/chorus/tensor"
)

// headChoice is a routing's head selection: k heads per encoder layer by router.
type headChoice struct {
	k          int
	router     string // "random" or "oracle"
	perRequest bool
	seed       uint64
}

// checkHeads validates c's head fields against the model.
func (s *Set) checkHeads(c asr.RoutingChoice, m *whisper.Model) (headChoice, error) {
	if c.Heads == 0 {
		if c.HeadRouter != "" {
			return headChoice{}, fmt.Errorf("%w: head router %q without a head count", asr.ErrRouting, c.HeadRouter)
		}
		return headChoice{}, nil
	}
	h := m.Dims.NAudioHead
	switch {
	case c.Heads < 0 || c.Heads > h:
		return headChoice{}, fmt.Errorf("%w: %d attention heads of %d", asr.ErrRouting, c.Heads, h)
	case c.HeadRouter == "mlp" && s.HeadMLP == nil:
		return headChoice{}, fmt.Errorf("%w: head router mlp: this variant has no learned head routers (chorus moe --head-router-hidden)", asr.ErrRouting)
	case c.HeadRouter != "random" && c.HeadRouter != "oracle" && c.HeadRouter != "mlp":
		return headChoice{}, fmt.Errorf("%w: head router %q: want random, oracle or mlp", asr.ErrRouting, c.HeadRouter)
	}
	return headChoice{k: c.Heads, router: c.HeadRouter, perRequest: c.PerRequest, seed: c.Seed}, nil
}

// slicedAttn is one encoder layer's attention weights cut to a head subset.
type slicedAttn struct {
	heads   []int
	q, k, v nn.Linear
	out     nn.Linear
}

// sliceRows keeps the output rows of the heads (each d wide).
func sliceRows(l *nn.Linear, heads []int, d int) nn.Linear {
	w := l.Weight()
	out := nn.Linear{In: l.In, Out: len(heads) * d}
	wd := make([]float32, 0, out.Out*l.In)
	var bd []float32
	for _, h := range heads {
		wd = append(wd, w[h*d*l.In:(h+1)*d*l.In]...)
		if l.B != nil {
			bd = append(bd, l.B.Data[h*d:(h+1)*d]...)
		}
	}
	out.W = tensor.FromData(wd, out.Out, l.In)
	if l.B != nil {
		out.B = tensor.FromData(bd, out.Out)
	}
	return out
}

// sliceCols keeps the input columns of the heads (the output projection reads [T, H·D]).
func sliceCols(l *nn.Linear, heads []int, d int) nn.Linear {
	w := l.Weight()
	out := nn.Linear{In: len(heads) * d, Out: l.Out, B: l.B}
	wd := make([]float32, 0, l.Out*out.In)
	for r := range l.Out {
		for _, h := range heads {
			wd = append(wd, w[r*l.In+h*d:r*l.In+(h+1)*d]...)
		}
	}
	out.W = tensor.FromData(wd, l.Out, out.In)
	return out
}

// headScores are each head's contribution to the layer's output, [T, H]: the norm of
// o_h·W_out,hᵀ per token.
func headScores(ctx *tensor.Ctx, a *whisper.Attention, o *tensor.T, heads int) []float32 {
	t := o.Shape[0]
	d := o.Shape[1] / heads
	w := a.Out.Weight()
	sc := make([]float32, t*heads)
	for h := range heads {
		for tok := range t {
			var n2 float64
			oh := o.Data[tok*o.Shape[1]+h*d : tok*o.Shape[1]+(h+1)*d]
			for r := range a.Out.Out {
				var y float32
				row := w[r*a.Out.In+h*d : r*a.Out.In+(h+1)*d]
				for j, v := range oh {
					y += v * row[j]
				}
				n2 += float64(y) * float64(y)
			}
			sc[tok*heads+h] = float32(math.Sqrt(n2))
		}
	}
	return sc
}

// TopHeads returns the k highest-scoring of scores' heads, ascending.
func TopHeads(scores []float32, k int) []int {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	out := slices.Clone(idx[:k])
	slices.Sort(out)
	return out
}

// RandomHeads draws k of h heads from (seed, layer, token), ascending.
func RandomHeads(seed uint64, layer, token, h, k int) []int {
	f := fnv.New64a()
	fmt.Fprintf(f, "%d/%d/%d", seed, layer, token)
	rng := rand.New(rand.NewPCG(f.Sum64(), seed))
	out := rng.Perm(h)[:k]
	slices.Sort(out)
	return out
}

// EncoderSelfAttention implements whisper.HeadRouting.
func (r *Routing) EncoderSelfAttention(ctx *tensor.Ctx, a *whisper.Attention, x *tensor.T, heads, layer int) *tensor.T {
	hc := r.heads
	if hc.k == 0 || hc.k >= heads {
		return a.Self(ctx, x, heads, false, nil)
	}
	start := time.Now()
	defer func() { r.attnNanos.Add(int64(time.Since(start))) }()
	t := len(x.Data) / a.Q.In
	d := a.Q.Out / heads
	if hc.perRequest {
		sa := r.sliced[layer]
		if sa == nil {
			var sel []int
			if hc.router == "random" {
				sel = RandomHeads(hc.seed, layer, -1, heads, hc.k)
			} else { // oracle or mlp: the heads that matter most over this first window
				var sc []float32
				if hc.router == "mlp" {
					sc = r.set.HeadMLP.Layers[layer].Predict(ctx, x).Data
				} else {
					o := a.Attend(ctx, a.Q.Forward(ctx, x), a.K.Forward(ctx, x), a.V.Forward(ctx, x), heads, false)
					sc = headScores(ctx, a, o, heads)
				}
				sum := make([]float32, heads)
				for tok := range t {
					for h := range heads {
						sum[h] += sc[tok*heads+h]
					}
				}
				sel = TopHeads(sum, hc.k)
			}
			sa = &slicedAttn{heads: sel, q: sliceRows(&a.Q, sel, d), k: sliceRows(&a.K, sel, d), v: sliceRows(&a.V, sel, d), out: sliceCols(&a.Out, sel, d)}
			r.sliced[layer] = sa
		}
		r.recordHeads(layer, heads, t, func(int) []int { return sa.heads })
		r.headsUsed.Add(int64(t * hc.k))
		r.headsPossible.Add(int64(t * heads))
		o := a.Attend(ctx, sa.q.Forward(ctx, x), sa.k.Forward(ctx, x), sa.v.Forward(ctx, x), hc.k, false)
		return sa.out.Forward(ctx, o)
	}
	// Per token: all heads, then each token keeps its k.
	o := a.Attend(ctx, a.Q.Forward(ctx, x), a.K.Forward(ctx, x), a.V.Forward(ctx, x), heads, false)
	var sc []float32
	switch hc.router {
	case "oracle":
		sc = headScores(ctx, a, o, heads)
	case "mlp":
		sc = r.set.HeadMLP.Layers[layer].Predict(ctx, x).Data
	}
	keep := func(tok int) []int {
		if sc != nil {
			return TopHeads(sc[tok*heads:(tok+1)*heads], hc.k)
		}
		return RandomHeads(hc.seed, layer, tok, heads, hc.k)
	}
	c := o.Shape[1]
	for tok := range t {
		row := o.Data[tok*c : (tok+1)*c]
		kept := keep(tok)
		for h := range heads {
			if _, ok := slices.BinarySearch(kept, h); !ok {
				clear(row[h*d : (h+1)*d])
			}
		}
	}
	r.recordHeads(layer, heads, t, keep)
	r.headsUsed.Add(int64(t * hc.k))
	r.headsPossible.Add(int64(t * heads))
	return a.Out.Forward(ctx, o)
}

// recordHeads adds the layer's head selections to the pathway (after the FFN layers).
func (r *Routing) recordHeads(layer, heads, t int, keep func(tok int) []int) {
	if r.pathway == nil {
		return
	}
	i := len(r.set.FFNs) + layer
	for len(r.pathway.Layers) <= i {
		r.pathway.Layers = append(r.pathway.Layers, experts.LayerPath{})
	}
	if r.pathway.Layers[i].Name == "" {
		r.pathway.Layers[i].Name = LayerName(layer, 1<<30) + ".self_attn"
	}
	sel := experts.Selection{E: heads, K: r.heads.k, IDs: make([]int32, 0, t*r.heads.k)}
	for tok := range t {
		for _, h := range keep(tok) {
			sel.IDs = append(sel.IDs, int32(h))
		}
	}
	r.pathway.Record(i, sel)
}

// HeadWork is the head-token pairs run so far and those all heads would have run.
func (r *Routing) HeadWork() (used, possible int64) {
	return r.headsUsed.Load(), r.headsPossible.Load()
}

// AttentionTime is the wall time inside head-routed self-attention so far.
func (r *Routing) AttentionTime() time.Duration { return time.Duration(r.attnNanos.Load()) }

// HeadScores are each head's contribution to encoder attention a's output on x [T, C]
// (the norm of the head's output through its slice of the output projection), [T, H]: what
// the oracle ranks heads by and what learned head routers are trained to predict.
func HeadScores(ctx *tensor.Ctx, a *whisper.Attention, x *tensor.T, heads int) []float32 {
	o := a.Attend(ctx, a.Q.Forward(ctx, x), a.K.Forward(ctx, x), a.V.Forward(ctx, x), heads, false)
	return headScores(ctx, a, o, heads)
}
