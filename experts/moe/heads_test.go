package moe

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/asr/defaultmodel"
	"github.com/chorus-asr/chorus/asr/mel"
	"github.com/chorus-asr/chorus/experts"
	"github.com/chorus-asr/chorus/tensor"
)

// identitySet splits the default model's blocks into 16 experts in their stored order.
func identitySet(t *testing.T) (*asr.Variant, *Set) {
	t.Helper()
	v, err := defaultmodel.Open(asr.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := &experts.ExpertLayout{}
	for i, m := range MLPs(v.Model) {
		l.Layers = append(l.Layers, experts.LayerLayout{Name: LayerName(i, len(v.Model.Encoder.Layers)), Neurons: m.FC1.Out, Experts: 16, Method: experts.MethodIdentity})
	}
	s, err := New(v.Model, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	return v, s
}

func encoderInput(t *testing.T, v *asr.Variant) *tensor.T {
	t.Helper()
	x, err := audio.Load16kMono(filepath.Join("..", "..", "testdata", "audio", "ref.wav"))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := mel.LogMel(x[:2*16000], v.Model.Dims.NMels, 0)
	if err != nil {
		t.Fatal(err)
	}
	return tensor.FromData(spec.Data, spec.NMels, spec.NFrames)
}

func maxAbs(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// TestHeadRouting: a per-request head subset computed on sliced weights equals the full
// attention with the other heads' outputs zeroed (the slicing is exact); every head kept is
// the dense encoder; a per-token selection keeps exactly k heads per token in the pathway
// and changes the output; bad head choices are refused.
func TestHeadRouting(t *testing.T) {
	v, s := identitySet(t)
	m := v.Model
	mel := encoderInput(t, v)
	ctx := tensor.NewCtx()
	dense := append([]float32(nil), m.Encoder.Forward(ctx, mel).Data...)
	heads := m.Dims.NAudioHead

	// Sliced per-request attention against the masked full computation, one layer.
	a := &m.Encoder.Layers[0].Attn
	x := tensor.New(40, m.Dims.NAudioState)
	tensor.SeededUniform(x.Data, 3, "heads-x", -1, 1)
	rt, err := s.Routing(asr.RoutingChoice{Heads: 2, HeadRouter: "random", PerRequest: true, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	r := rt.(*Routing)
	got := append([]float32(nil), r.EncoderSelfAttention(ctx, a, x, heads, 0).Data...)
	sel := r.sliced[0].heads
	o := ctx.Attention(a.Q.Forward(ctx, x), a.K.Forward(ctx, x), a.V.Forward(ctx, x), heads, false)
	d := o.Shape[1] / heads
	for tok := range 40 {
		for h := range heads {
			if h != sel[0] && h != sel[1] {
				clear(o.Data[tok*o.Shape[1]+h*d : tok*o.Shape[1]+(h+1)*d])
			}
		}
	}
	want := a.Out.Forward(ctx, o).Data
	if diff := maxAbs(got, want); diff > 1e-5 {
		t.Errorf("sliced heads %v differ from masked full attention by %.3g", sel, diff)
	}

	for _, c := range []asr.RoutingChoice{
		{Heads: heads, HeadRouter: "random", PerRequest: true},
		{Heads: heads, HeadRouter: "oracle"},
	} {
		rt, err := s.Routing(c)
		if err != nil {
			t.Fatal(err)
		}
		if diff := maxAbs(m.Encoder.ForwardRouted(tensor.NewCtx(), mel, rt).Data, dense); diff > 1e-5 {
			t.Errorf("%+v: all heads kept, encoder differs from dense by %.3g", c, diff)
		}
	}
	for _, c := range []asr.RoutingChoice{
		{Heads: 2, HeadRouter: "oracle", Pathway: true},
		{Heads: 1, HeadRouter: "random", PerRequest: true, Pathway: true},
	} {
		rt, err := s.Routing(c)
		if err != nil {
			t.Fatal(err)
		}
		out := m.Encoder.ForwardRouted(tensor.NewCtx(), mel, rt).Data
		if diff := maxAbs(out, dense); diff < 1e-4 {
			t.Errorf("%+v: output equals dense (diff %.3g)", c, diff)
		}
		r := rt.(*Routing)
		p := r.pathway
		n := len(s.FFNs) + len(m.Encoder.Layers)
		if len(p.Layers) != n {
			t.Fatalf("%+v: pathway has %d layers, want %d (FFNs then encoder attention)", c, len(p.Layers), n)
		}
		for l := len(s.FFNs); l < n; l++ {
			lp := &p.Layers[l]
			if lp.E != heads || lp.Tokens == 0 {
				t.Fatalf("%+v: head layer %s: %d heads, %d tokens", c, lp.Name, lp.E, lp.Tokens)
			}
			for tok := range lp.Tokens {
				if k := len(lp.Experts(tok)); k != c.Heads {
					t.Fatalf("%+v: %s token %d kept %d heads", c, lp.Name, tok, k)
				}
			}
		}
		if used, all := r.HeadWork(); used*int64(heads) != all*int64(c.Heads) {
			t.Errorf("%+v: head work %d of %d", c, used, all)
		}
	}
	for _, c := range []asr.RoutingChoice{
		{Heads: heads + 1, HeadRouter: "random"},
		{Heads: -1, HeadRouter: "random"},
		{Heads: 2, HeadRouter: "mlp"},
		{Heads: 2},
		{HeadRouter: "oracle"},
	} {
		if _, err := s.Routing(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// BenchmarkHeadRouting: the default model's encoder on 5 s of audio with every head, and
// with 2 of 4 heads per request (sliced weights: the mode that saves compute).
func BenchmarkHeadRouting(b *testing.B) {
	t := &testing.T{}
	v, s := identitySet(t)
	mel := encoderInput(t, v)
	for _, c := range []struct {
		name   string
		choice asr.RoutingChoice
	}{{"dense", asr.RoutingChoice{}}, {"heads2of4-request", asr.RoutingChoice{Heads: 2, HeadRouter: "random", PerRequest: true}}} {
		b.Run(c.name, func(b *testing.B) {
			rt, err := s.Routing(c.choice)
			if err != nil {
				b.Fatal(err)
			}
			ctx := tensor.NewCtx()
			for b.Loop() {
				v.Model.Encoder.ForwardRouted(ctx, mel, rt)
				ctx.Reset()
			}
		})
	}
}
