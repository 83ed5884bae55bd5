package experts

// Shapes (legend in doc.go): router input x [T, C], hidden z [T, H], prediction p [T, E];
// weights W1 [H, C], B1 [H], W2 [E, H], B2 [E]; training targets y [T, E] (activation mass).

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/chorus-asr/chorus/tensor"
)

// MLPLayer is MoEfication's router for one layer: a two-layer MLP on the FFN's input token
// that predicts each expert's activation mass (the sum of its neurons' positive activations),
// p = Scale·(W2·relu(W1·x + B1) + B2). Ranking experts by predicted mass approximates the
// oracle without computing fc1. Immutable once trained.
type MLPLayer struct {
	C, H, E int
	W1      []float32 // [H, C]
	B1      []float32 // [H]
	W2      []float32 // [E, H]
	B2      []float32 // [E]
	// Scale is the unit the network's outputs are in: the mean expert mass of the training
	// tokens, so that the regression targets are of order one whatever the layer's scale.
	Scale float32
}

// NewMLPLayer returns an untrained router for inputs of width c, h hidden units and e
// experts, initialised as torch.nn.Linear does (uniform ±1/√fan_in), from seed.
func NewMLPLayer(c, h, e int, seed uint64) *MLPLayer {
	rng := rand.New(rand.NewPCG(seed, 0x726f75746572))
	uni := func(n, fanIn int) []float32 {
		s := float32(1 / math.Sqrt(float64(fanIn)))
		v := make([]float32, n)
		for i := range v {
			v[i] = s * (2*rng.Float32() - 1)
		}
		return v
	}
	return &MLPLayer{C: c, H: h, E: e, W1: uni(h*c, c), B1: uni(h, c), W2: uni(e*h, h), B2: uni(e, h), Scale: 1}
}

// Predict returns the predicted mass [T, E] for x [T, C], from ctx.
func (l *MLPLayer) Predict(ctx *tensor.Ctx, x *tensor.T) *tensor.T {
	t := len(x.Data) / l.C
	z := ctx.New(t, l.H)
	tensor.Linear(z.Data, x.Data, l.W1, l.B1, t, l.C, l.H)
	tensor.ReLU(z.Data, z.Data)
	p := ctx.New(t, l.E)
	tensor.Linear(p.Data, z.Data, l.W2, l.B2, t, l.H, l.E)
	if l.Scale != 1 {
		tensor.Scale(p.Data, l.Scale)
	}
	return p
}

// MLP is the per-layer MLP router set of a model, a Scorer for TopK.
type MLP struct {
	Layers []*MLPLayer
}

// Kind is "mlp".
func (*MLP) Kind() string { return "mlp" }

// Experts is the layer's expert count (0 for a layer without a router).
func (m *MLP) Experts(layer int) int {
	if layer < 0 || layer >= len(m.Layers) || m.Layers[layer] == nil {
		return 0
	}
	return m.Layers[layer].E
}

// Scores returns the layer router's predicted mass [T, E].
func (m *MLP) Scores(ctx *tensor.Ctx, layer int, x *tensor.T) *tensor.T {
	l := m.Layers[layer]
	if c := x.Shape[len(x.Shape)-1]; c != l.C {
		panic(fmt.Sprintf("experts: router input %v, want width %d", x.Shape, l.C))
	}
	return l.Predict(ctx, x)
}

// TrainOptions tune MLPLayer.Train. Zero values take the defaults in brackets.
type TrainOptions struct {
	Epochs int     // passes over the tokens [40]
	Batch  int     // tokens per step [64]
	LR     float64 // Adam learning rate [1e-3]
	Seed   uint64  // shuffling
}

// Train fits the router to recorded tokens x [T, C] and their experts' activation mass
// y [T, E] (FFN.ExpertMass) by minimising the mean squared error of the prediction, in units
// of Scale (set here from y), with Adam on shuffled minibatches. It returns the mean loss of
// each epoch. Everything is float32 with float64 loss sums; the result depends only on the
// data and options.
func (l *MLPLayer) Train(x, y []float32, t int, o TrainOptions) ([]float64, error) {
	if len(x) != t*l.C || len(y) != t*l.E || t == 0 {
		return nil, fmt.Errorf("experts: router training on %d inputs and %d targets for %d tokens (C %d, E %d)", len(x), len(y), t, l.C, l.E)
	}
	if o.Epochs <= 0 {
		o.Epochs = 40
	}
	if o.Batch <= 0 {
		o.Batch = 64
	}
	if o.LR <= 0 {
		o.LR = 1e-3
	}
	var mean float64
	for _, v := range y {
		mean += float64(v)
	}
	mean /= float64(len(y))
	l.Scale = 1
	if mean > 0 {
		l.Scale = float32(mean)
	}
	inv := 1 / l.Scale
	params := [][]float32{l.W1, l.B1, l.W2, l.B2}
	g := newMLPGrads(l)
	adam := newAdam(params)
	rng := rand.New(rand.NewPCG(o.Seed, 0x747261696e))
	order := make([]int, t)
	for i := range order {
		order[i] = i
	}
	bx := make([]float32, o.Batch*l.C)
	by := make([]float32, o.Batch*l.E)
	var losses []float64
	for range o.Epochs {
		rng.Shuffle(t, func(i, j int) { order[i], order[j] = order[j], order[i] })
		var sum float64
		for lo := 0; lo < t; lo += o.Batch {
			hi := min(lo+o.Batch, t)
			b := hi - lo
			for j, tok := range order[lo:hi] {
				copy(bx[j*l.C:(j+1)*l.C], x[tok*l.C:(tok+1)*l.C])
				for e := range l.E {
					by[j*l.E+e] = y[tok*l.E+e] * inv
				}
			}
			sum += l.grads(bx[:b*l.C], by[:b*l.E], b, g) * float64(b)
			adam.step(params, g.all(), o.LR)
		}
		losses = append(losses, sum/float64(t))
	}
	return losses, nil
}

// mlpGrads holds one step's gradients and forward scratch.
type mlpGrads struct {
	w1, b1, w2, b2 []float32
	z, p, dz       []float32 // [B, H], [B, E], [B, H]
}

func newMLPGrads(l *MLPLayer) *mlpGrads {
	return &mlpGrads{w1: make([]float32, len(l.W1)), b1: make([]float32, l.H), w2: make([]float32, len(l.W2)), b2: make([]float32, l.E)}
}

func (g *mlpGrads) all() [][]float32 { return [][]float32{g.w1, g.b1, g.w2, g.b2} }

// grads computes the loss mean((p − y)²) over the b×E outputs (p in Scale units, without the
// Scale factor) for inputs x [B, C] and targets y [B, E], and its gradients into g:
//
//	dp = 2(p − y)/(B·E);  dW2 = dpᵀ·z;  dB2 = Σ dp;  dz = (dp·W2) ⊙ [z > 0];  dW1 = dzᵀ·x;  dB1 = Σ dz
func (l *MLPLayer) grads(x, y []float32, b int, g *mlpGrads) float64 {
	c, h, e := l.C, l.H, l.E
	g.z = grow(g.z, b*h)
	g.p = grow(g.p, b*e)
	g.dz = grow(g.dz, b*h)
	tensor.Linear(g.z, x, l.W1, l.B1, b, c, h)
	tensor.ReLU(g.z, g.z)
	tensor.Linear(g.p, g.z, l.W2, l.B2, b, h, e)
	var loss float64
	scale := float32(2 / float64(b*e))
	clear(g.b2)
	for i := range b {
		for j := range e {
			d := g.p[i*e+j] - y[i*e+j]
			loss += float64(d) * float64(d)
			g.p[i*e+j] = d * scale // p becomes dp
			g.b2[j] += g.p[i*e+j]
		}
	}
	tensor.Sgemm(true, false, e, h, b, 1, g.p, e, g.z, h, 0, g.w2, h)   // dW2 = dpᵀ·z
	tensor.Sgemm(false, false, b, h, e, 1, g.p, e, l.W2, h, 0, g.dz, h) // dz = dp·W2
	clear(g.b1)
	for i := range b {
		for j := range h {
			if g.z[i*h+j] <= 0 {
				g.dz[i*h+j] = 0
			}
			g.b1[j] += g.dz[i*h+j]
		}
	}
	tensor.Sgemm(true, false, h, c, b, 1, g.dz, h, x, c, 0, g.w1, c) // dW1 = dzᵀ·x
	return loss / float64(b*e)
}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// adam is Adam (Kingma & Ba) without weight decay: the router is small and trained briefly.
type adam struct {
	m, v [][]float32
	t    int
}

func newAdam(params [][]float32) *adam {
	a := &adam{}
	for _, p := range params {
		a.m = append(a.m, make([]float32, len(p)))
		a.v = append(a.v, make([]float32, len(p)))
	}
	return a
}

func (a *adam) step(params, grads [][]float32, lr float64) {
	const b1, b2, eps = 0.9, 0.999, 1e-8
	a.t++
	c1 := 1 - math.Pow(b1, float64(a.t))
	c2 := 1 - math.Pow(b2, float64(a.t))
	for i, p := range params {
		m, v, g := a.m[i], a.v[i], grads[i]
		for j := range p {
			m[j] = b1*m[j] + (1-b1)*g[j]
			v[j] = b2*v[j] + (1-b2)*g[j]*g[j]
			mh := float64(m[j]) / c1
			vh := float64(v[j]) / c2
			p[j] -= float32(lr * mh / (math.Sqrt(vh) + eps))
		}
	}
}
