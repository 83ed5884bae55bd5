package trainer

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/chorus-asr/chorus/tensor"
)

// toyTask is a tiny MLP regression (4 → 16 tanh → 2) on synthetic data from a fixed teacher
// network, with analytic gradients in plain float32 — enough model for the trainer's loop,
// resume and accumulation tests without the tape.
//
//	h = tanh(W1·x + b1)   W1 [H, I], b1 [H]
//	p = W2·h + b2         W2 [O, H], b2 [O]
//	loss = mean over the batch of ½‖p − y‖²
//
// Each example's input gets N(0, noise²) jitter drawn from the trainer's rng, so exact resume
// also checks that the RNG state is carried over.
type toyTask struct {
	params []Param
	xs, ys [][]float32
	order  *Order
	batch  int
	noise  float32

	// hook, if set, runs at the start of every Step; a non-nil error is returned from Step.
	hook func(ctx context.Context, b Batch) error
	// poison maps a 0-based step to a value written into W1's gradient after backward.
	poison map[int]float32
	// seen records every batch Step was called with.
	seen []Batch
}

const (
	toyIn, toyHidden, toyOut = 4, 16, 2
)

// newToyTask builds a task over n examples (fixed by dataSeed) with weights drawn from
// initSeed.
func newToyTask(n, batch int, dataSeed, initSeed uint64) *toyTask {
	t := &toyTask{batch: batch, noise: 0.01}
	t.order, _ = NewOrder(dataSeed, n)
	teacher := newMLP(rand.New(rand.NewPCG(dataSeed, 1)), 1.5)
	dr := rand.New(rand.NewPCG(dataSeed, 2))
	for range n {
		x := make([]float32, toyIn)
		for i := range x {
			x[i] = float32(dr.NormFloat64())
		}
		y := make([]float32, toyOut)
		teacher.forward(x, make([]float32, toyHidden), y)
		t.xs, t.ys = append(t.xs, x), append(t.ys, y)
	}
	student := newMLP(rand.New(rand.NewPCG(initSeed, 3)), 0.5)
	for _, p := range []struct {
		name string
		w    *tensor.T
	}{{"l1.weight", student.w1}, {"l1.bias", student.b1}, {"l2.weight", student.w2}, {"l2.bias", student.b2}} {
		t.params = append(t.params, Param{Name: p.name, W: p.w, Grad: tensor.New(p.w.Shape...), Decay: DecayFor(p.name, p.w)})
	}
	return t
}

type mlp struct{ w1, b1, w2, b2 *tensor.T }

func newMLP(r *rand.Rand, scale float64) mlp {
	m := mlp{tensor.New(toyHidden, toyIn), tensor.New(toyHidden), tensor.New(toyOut, toyHidden), tensor.New(toyOut)}
	for _, w := range []*tensor.T{m.w1, m.b1, m.w2, m.b2} {
		for i := range w.Data {
			w.Data[i] = float32(r.NormFloat64() * scale / math.Sqrt(float64(toyHidden)))
		}
	}
	return m
}

// forward writes the hidden activations into h and the prediction into p.
func (m mlp) forward(x, h, p []float32) {
	for j := range toyHidden {
		s := m.b1.Data[j]
		for i := range toyIn {
			s += m.w1.Data[j*toyIn+i] * x[i]
		}
		h[j] = float32(math.Tanh(float64(s)))
	}
	for k := range toyOut {
		s := m.b2.Data[k]
		for j := range toyHidden {
			s += m.w2.Data[k*toyHidden+j] * h[j]
		}
		p[k] = s
	}
}

func (t *toyTask) model() mlp {
	return mlp{t.params[0].W, t.params[1].W, t.params[2].W, t.params[3].W}
}

func (t *toyTask) Params() []Param { return t.params }

func (t *toyTask) Step(ctx context.Context, b Batch, rng *rand.Rand) (StepResult, error) {
	t.seen = append(t.seen, b)
	if t.hook != nil {
		if err := t.hook(ctx, b); err != nil {
			return StepResult{}, err
		}
	}
	m := t.model()
	g1, gb1, g2, gb2 := t.params[0].Grad.Data, t.params[1].Grad.Data, t.params[2].Grad.Data, t.params[3].Grad.Data
	x := make([]float32, toyIn)
	h := make([]float32, toyHidden)
	p := make([]float32, toyOut)
	dh := make([]float32, toyHidden)
	inv := 1 / float32(t.batch)
	var loss float64
	for e := range t.batch {
		_, idx := t.order.At(b.Index*int64(t.batch) + int64(e))
		for i := range x {
			x[i] = t.xs[idx][i] + t.noise*float32(rng.NormFloat64())
		}
		m.forward(x, h, p)
		clear(dh)
		for k := range toyOut {
			d := p[k] - t.ys[idx][k]
			loss += 0.5 * float64(d*d)
			d *= inv
			gb2[k] += d
			for j := range toyHidden {
				g2[k*toyHidden+j] += d * h[j]
				dh[j] += d * m.w2.Data[k*toyHidden+j]
			}
		}
		for j := range toyHidden {
			dz := dh[j] * (1 - h[j]*h[j])
			gb1[j] += dz
			for i := range toyIn {
				g1[j*toyIn+i] += dz * x[i]
			}
		}
	}
	if v, ok := t.poison[b.Step]; ok {
		g1[0] = v
	}
	return StepResult{Loss: loss / float64(t.batch), Items: t.batch, Counters: map[string]float64{"audio_s": 2.5 * float64(t.batch)}}, nil
}

// fullLoss is the mean loss over the whole dataset, without input jitter.
func (t *toyTask) fullLoss() float64 {
	m := t.model()
	h := make([]float32, toyHidden)
	p := make([]float32, toyOut)
	var loss float64
	for i, x := range t.xs {
		m.forward(x, h, p)
		for k := range p {
			d := float64(p[k] - t.ys[i][k])
			loss += 0.5 * d * d
		}
	}
	return loss / float64(len(t.xs))
}

// toyEvalTask adds the Evaluator capability.
type toyEvalTask struct{ *toyTask }

func (t toyEvalTask) Eval(context.Context) (map[string]float64, error) {
	return map[string]float64{"mse": t.fullLoss()}, nil
}

// TestToyGradient checks the toy task's analytic gradient against central differences, so the
// trainer tests below rest on a correct objective.
func TestToyGradient(t *testing.T) {
	task := newToyTask(32, 8, 1, 2)
	task.noise = 0
	if _, err := task.Step(context.Background(), Batch{}, rand.New(rand.NewPCG(0, 0))); err != nil {
		t.Fatal(err)
	}
	loss := func() float64 {
		var l float64
		m := task.model()
		h := make([]float32, toyHidden)
		p := make([]float32, toyOut)
		for e := range task.batch {
			_, idx := task.order.At(int64(e))
			m.forward(task.xs[idx], h, p)
			for k := range p {
				d := float64(p[k] - task.ys[idx][k])
				l += 0.5 * d * d
			}
		}
		return l / float64(task.batch)
	}
	for _, p := range task.params {
		for i := range p.W.Data {
			const eps = 1e-2
			w := p.W.Data[i]
			p.W.Data[i] = w + eps
			up := loss()
			p.W.Data[i] = w - eps
			down := loss()
			p.W.Data[i] = w
			num := (up - down) / (2 * eps)
			if got := float64(p.Grad.Data[i]); math.Abs(got-num) > 2e-3*max(1, math.Abs(num)) {
				t.Errorf("%s[%d]: analytic %g, numeric %g", p.Name, i, got, num)
			}
		}
	}
}
