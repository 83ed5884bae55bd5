package trainer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/chorus-asr/chorus/tensor"
)

// adamwReference is the naive float64 twin of tensor.AdamWUpdate, written from the paper's algorithm
// (Loshchilov & Hutter 2019, Algorithm 2, with PyTorch's placement of eps).
func adamwReference(w, g, m, v []float64, t int, lr, b1, b2, eps, wd float64) {
	for i := range w {
		m[i] = b1*m[i] + (1-b1)*g[i]
		v[i] = b2*v[i] + (1-b2)*g[i]*g[i]
		mhat := m[i] / (1 - math.Pow(b1, float64(t)))
		vhat := v[i] / (1 - math.Pow(b2, float64(t)))
		w[i] -= lr * wd * w[i]
		w[i] -= lr * mhat / (math.Sqrt(vhat) + eps)
	}
}

func randParams(r *rand.Rand, shapes map[string][]int) []Param {
	var ps []Param
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		w := tensor.New(shapes[n]...)
		for i := range w.Data {
			w.Data[i] = float32(r.NormFloat64())
		}
		ps = append(ps, Param{Name: n, W: w, Grad: tensor.New(shapes[n]...), Decay: len(shapes[n]) > 1})
	}
	return ps
}

func fillGrads(r *rand.Rand, ps []Param) {
	for _, p := range ps {
		for i := range p.Grad.Data {
			p.Grad.Data[i] = float32(r.NormFloat64() * 0.1)
		}
	}
}

func TestAdamWMatchesReference(t *testing.T) {
	tests := []struct {
		name string
		cfg  AdamWConfig
		lr   float64
	}{
		{"defaults", AdamWConfig{}, 1e-3},
		{"weight decay", AdamWConfig{WeightDecay: 0.1}, 3e-3},
		{"custom betas", AdamWConfig{Beta1: 0.8, Beta2: 0.95, Eps: 1e-6, WeightDecay: 0.01}, 1e-2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			ps := randParams(r, map[string][]int{"w": {7, 5}, "b": {5}})
			opt, err := NewAdamW(ps, tc.cfg, 1)
			if err != nil {
				t.Fatal(err)
			}
			c := opt.Config()
			type ref struct{ w, m, v []float64 }
			refs := make([]ref, len(ps))
			for i, p := range ps {
				refs[i] = ref{make([]float64, len(p.W.Data)), make([]float64, len(p.W.Data)), make([]float64, len(p.W.Data))}
				for j, x := range p.W.Data {
					refs[i].w[j] = float64(x)
				}
			}
			for step := 1; step <= 20; step++ {
				fillGrads(r, ps)
				for i, p := range ps {
					g := make([]float64, len(p.Grad.Data))
					for j, x := range p.Grad.Data {
						g[j] = float64(x)
					}
					wd := 0.0
					if p.Decay {
						wd = c.WeightDecay
					}
					adamwReference(refs[i].w, g, refs[i].m, refs[i].v, step, tc.lr, c.Beta1, c.Beta2, c.Eps, wd)
				}
				opt.Step(tc.lr, 1)
			}
			for i, p := range ps {
				for j, x := range p.W.Data {
					if d := math.Abs(float64(x) - refs[i].w[j]); d > 1e-5 {
						t.Fatalf("%s[%d] = %v, reference %v", p.Name, j, x, refs[i].w[j])
					}
				}
			}
			if opt.Steps() != 20 {
				t.Errorf("Steps() = %d, want 20", opt.Steps())
			}
		})
	}
}

// TestAdamWFirstStep checks the hand-computable first update: with bias correction,
// m̂ = g and v̂ = g², so w₁ = w₀·(1 − lr·λ) − lr·g/(|g| + eps).
func TestAdamWFirstStep(t *testing.T) {
	tests := []struct {
		name  string
		g     float32
		decay bool
		want  float64
	}{
		{"positive gradient", 0.5, false, 1 - 0.1*0.5/(0.5+1e-8)},
		{"negative gradient", -2, false, 1 + 0.1*2/(2+1e-8)},
		{"decayed", 0.5, true, 1*(1-0.1*0.2) - 0.1*0.5/(0.5+1e-8)},
		{"zero gradient", 0, false, 1},
		{"zero gradient, decayed", 0, true, 1 - 0.1*0.2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := Param{Name: "w", W: tensor.FromData([]float32{1}, 1), Grad: tensor.FromData([]float32{tc.g}, 1), Decay: tc.decay}
			opt, err := NewAdamW([]Param{p}, AdamWConfig{WeightDecay: 0.2}, 1)
			if err != nil {
				t.Fatal(err)
			}
			opt.Step(0.1, 1)
			if got := float64(p.W.Data[0]); math.Abs(got-tc.want) > 1e-7 {
				t.Errorf("w = %.9f, want %.9f", got, tc.want)
			}
			if p.Grad.Data[0] != 0 {
				t.Errorf("gradient not zeroed: %v", p.Grad.Data[0])
			}
		})
	}
}

// TestAdamWGradScale: Step(lr, s) must equal Step(lr, 1) on gradients already multiplied by s.
func TestAdamWGradScale(t *testing.T) {
	for _, s := range []float32{0.5, 0.125, 3} {
		a := randParams(rand.New(rand.NewPCG(3, 4)), map[string][]int{"w": {9}})
		b := randParams(rand.New(rand.NewPCG(3, 4)), map[string][]int{"w": {9}})
		oa, _ := NewAdamW(a, AdamWConfig{}, 1)
		ob, _ := NewAdamW(b, AdamWConfig{}, 1)
		r := rand.New(rand.NewPCG(5, 6))
		for range 3 {
			fillGrads(r, a)
			for i, g := range a[0].Grad.Data {
				b[0].Grad.Data[i] = g * s
			}
			oa.Step(0.01, s)
			ob.Step(0.01, 1)
		}
		sameBits(t, fmt.Sprintf("scale %v", s), snapshot(a), snapshot(b))
	}
}

// TestAdamWWorkers: chunked, parallel updates are bit-identical to the serial loop, for a model
// large enough to take the parallel path.
func TestAdamWWorkers(t *testing.T) {
	shapes := map[string][]int{"big": {300, 400}, "mid": {70001}, "small": {3}}
	var want [][]float32
	var wantNorm float64
	for _, workers := range []int{1, 2, 3, 8} {
		ps := randParams(rand.New(rand.NewPCG(9, 9)), shapes)
		opt, err := NewAdamW(ps, AdamWConfig{WeightDecay: 0.1}, workers)
		if err != nil {
			t.Fatal(err)
		}
		if opt.total < parallelMin {
			t.Fatalf("test model of %d elements does not reach the parallel path", opt.total)
		}
		r := rand.New(rand.NewPCG(1, 1))
		var norm float64
		for range 3 {
			fillGrads(r, ps)
			norm = opt.GradNorm()
			opt.Step(1e-3, 0.7)
		}
		if want == nil {
			want, wantNorm = snapshot(ps), norm
			continue
		}
		sameBits(t, fmt.Sprintf("%d workers", workers), snapshot(ps), want)
		if norm != wantNorm {
			t.Errorf("%d workers: norm %v, want %v", workers, norm, wantNorm)
		}
	}
}

func TestGradNorm(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	tests := []struct {
		name  string
		a, b  []float32
		want  float64
		check func(float64) bool
	}{
		{"3-4-5", []float32{3}, []float32{4}, 5, nil},
		{"zeros", []float32{0, 0}, []float32{0}, 0, nil},
		{"odd lengths", []float32{1, 1, 1, 1, 1}, []float32{1, 1, 1, 1}, 3, nil},
		{"large but finite", []float32{3e38, 3e38}, []float32{0}, math.Sqrt(2) * float64(float32(3e38)), nil},
		{"NaN", []float32{1, nan}, []float32{1}, 0, math.IsNaN},
		{"+Inf", []float32{1}, []float32{inf, 1}, 0, func(v float64) bool { return math.IsInf(v, 1) }},
		{"-Inf", []float32{-inf}, []float32{1}, 0, func(v float64) bool { return math.IsInf(v, 1) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps := []Param{
				{Name: "a", W: tensor.New(len(tc.a)), Grad: tensor.FromData(tc.a, len(tc.a))},
				{Name: "b", W: tensor.New(len(tc.b)), Grad: tensor.FromData(tc.b, len(tc.b))},
			}
			opt, err := NewAdamW(ps, AdamWConfig{}, 2)
			if err != nil {
				t.Fatal(err)
			}
			got := opt.GradNorm()
			if tc.check != nil {
				if !tc.check(got) {
					t.Errorf("norm %v", got)
				}
			} else if math.Abs(got-tc.want) > 1e-12*max(1, tc.want) {
				t.Errorf("norm %v, want %v", got, tc.want)
			}
			opt.ZeroGrad()
			if opt.GradNorm() != 0 {
				t.Error("ZeroGrad left a non-zero gradient")
			}
		})
	}
}

func TestNewAdamWRejects(t *testing.T) {
	w := func(n int) *tensor.T { return tensor.New(n) }
	shared := tensor.New(2)
	tests := []struct {
		name   string
		params []Param
		cfg    AdamWConfig
		want   string
	}{
		{"no params", nil, AdamWConfig{}, "no parameters"},
		{"empty name", []Param{{W: w(1), Grad: w(1)}}, AdamWConfig{}, "empty name"},
		{"duplicate", []Param{{Name: "a", W: w(1), Grad: w(1)}, {Name: "a", W: w(1), Grad: w(1)}}, AdamWConfig{}, "duplicate"},
		{"nil grad", []Param{{Name: "a", W: w(1)}}, AdamWConfig{}, "nil"},
		{"grad shape", []Param{{Name: "a", W: w(2), Grad: w(3)}}, AdamWConfig{}, "differs"},
		{"bad data length", []Param{{Name: "a", W: &tensor.T{Shape: []int{3}, Data: make([]float32, 2)}, Grad: w(3)}}, AdamWConfig{}, "2 values for shape"},
		{"grad aliases weight", []Param{{Name: "a", W: shared, Grad: shared}}, AdamWConfig{}, "shares"},
		{"beta2", []Param{{Name: "a", W: w(1), Grad: w(1)}}, AdamWConfig{Beta2: 1.5}, "beta2"},
		{"negative decay", []Param{{Name: "a", W: w(1), Grad: w(1)}}, AdamWConfig{WeightDecay: -1}, "weight decay"},
		{"NaN eps", []Param{{Name: "a", W: w(1), Grad: w(1)}}, AdamWConfig{Eps: math.NaN()}, "eps"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewAdamW(tc.params, tc.cfg, 1)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestAdamWMarshalRoundTrip(t *testing.T) {
	shapes := map[string][]int{"w": {4, 3}, "b": {3}}
	a := randParams(rand.New(rand.NewPCG(1, 1)), shapes)
	oa, _ := NewAdamW(a, AdamWConfig{WeightDecay: 0.1}, 1)
	r := rand.New(rand.NewPCG(2, 2))
	for range 4 {
		fillGrads(r, a)
		oa.Step(0.01, 1)
	}
	state, err := oa.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// A second optimizer over a copy of the weights, restored from the state, must continue
	// exactly as the first.
	b := randParams(rand.New(rand.NewPCG(1, 1)), shapes)
	for i := range b {
		copy(b[i].W.Data, a[i].W.Data)
	}
	ob, _ := NewAdamW(b, AdamWConfig{WeightDecay: 0.1}, 1)
	if err := ob.UnmarshalBinary(state); err != nil {
		t.Fatal(err)
	}
	if ob.Steps() != 4 {
		t.Fatalf("restored step %d, want 4", ob.Steps())
	}
	for range 3 {
		fillGrads(r, a)
		for i := range a {
			copy(b[i].Grad.Data, a[i].Grad.Data)
		}
		oa.Step(0.01, 1)
		ob.Step(0.01, 1)
	}
	sameBits(t, "continued after unmarshal", snapshot(b), snapshot(a))

	bad := []struct {
		name string
		data []byte
		opt  func() *AdamW
	}{
		{"empty", nil, nil},
		{"wrong magic", append([]byte("XXADAMW1"), state[8:]...), nil},
		{"truncated", state[:len(state)-3], nil},
		{"trailing bytes", append(slices.Clone(state), 0), nil},
		{"other model", state, func() *AdamW {
			o, _ := NewAdamW(randParams(rand.New(rand.NewPCG(1, 1)), map[string][]int{"w": {4, 3}, "c": {3}}), AdamWConfig{}, 1)
			return o
		}},
		{"other shape", state, func() *AdamW {
			o, _ := NewAdamW(randParams(rand.New(rand.NewPCG(1, 1)), map[string][]int{"w": {3, 4}, "b": {3}}), AdamWConfig{}, 1)
			return o
		}},
		{"fewer params", state, func() *AdamW {
			o, _ := NewAdamW(randParams(rand.New(rand.NewPCG(1, 1)), map[string][]int{"w": {4, 3}}), AdamWConfig{}, 1)
			return o
		}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			o := ob
			if tc.opt != nil {
				o = tc.opt()
			}
			before, _ := o.MarshalBinary()
			if err := o.UnmarshalBinary(tc.data); err == nil {
				t.Fatal("UnmarshalBinary accepted bad input")
			}
			after, _ := o.MarshalBinary()
			if !slices.Equal(before, after) {
				t.Error("a failed UnmarshalBinary changed the state")
			}
		})
	}
}

func FuzzAdamWUnmarshal(f *testing.F) {
	ps := randParams(rand.New(rand.NewPCG(1, 1)), map[string][]int{"w": {2, 3}, "b": {3}})
	opt, _ := NewAdamW(ps, AdamWConfig{}, 1)
	fillGrads(rand.New(rand.NewPCG(2, 2)), ps)
	opt.Step(0.1, 1)
	state, _ := opt.MarshalBinary()
	f.Add(state)
	f.Add(state[:20])
	f.Add([]byte(adamwMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps := randParams(rand.New(rand.NewPCG(1, 1)), map[string][]int{"w": {2, 3}, "b": {3}})
		o, _ := NewAdamW(ps, AdamWConfig{}, 1)
		if err := o.UnmarshalBinary(data); err != nil {
			return
		}
		again, err := o.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := o.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoded state rejected: %v", err)
		}
	})
}

func TestDecayFor(t *testing.T) {
	tests := []struct {
		name  string
		shape []int
		want  bool
	}{
		{"encoder.blocks.0.mlp.0.weight", []int{1536, 384}, true},
		{"encoder.conv1.weight", []int{384, 80, 3}, true},
		{"encoder.blocks.0.mlp.0.bias", []int{1536}, false},
		{"encoder.blocks.0.attn_ln.weight", []int{384}, false},
		{"decoder.token_embedding.weight", []int{51864, 384}, false},
		{"encoder.positional_embedding", []int{1500, 384}, false},
		{"model.decoder.embed_positions.weight", []int{448, 384}, false},
		{"model.decoder.embed_tokens.weight", []int{51864, 384}, false},
	}
	for _, tc := range tests {
		if got := DecayFor(tc.name, tensor.New(tc.shape...)); got != tc.want {
			t.Errorf("DecayFor(%q, %v) = %v, want %v", tc.name, tc.shape, got, tc.want)
		}
	}
	if DecayFor("x", nil) {
		t.Error("DecayFor(nil) = true")
	}
}

func BenchmarkAdamWStep(b *testing.B) {
	// 6.7 M parameters: the Whisper-shaped model of STACK.md's reference run.
	ps := randParams(rand.New(rand.NewPCG(1, 1)), map[string][]int{"a": {6700, 1000}})
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			opt, _ := NewAdamW(ps, AdamWConfig{WeightDecay: 0.01}, workers)
			b.SetBytes(int64(len(ps[0].W.Data)) * 4 * 4)
			for b.Loop() {
				opt.GradNorm()
				opt.Step(1e-4, 0.5)
			}
		})
	}
}
