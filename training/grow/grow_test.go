package grow

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/tensor"
)

func tinyDims() whisper.Dims {
	return whisper.Dims{NMels: 80, NAudioCtx: 1500, NAudioState: 32, NAudioHead: 2, NAudioLayer: 2,
		NVocab: 100, NTextCtx: 16, NTextState: 32, NTextHead: 2, NTextLayer: 1, Activation: "relu", EncoderFFN: 64, DecoderFFN: 64}
}

// outputs runs m's encoder on a fixed window and its decoder on fixed tokens over it.
func outputs(m *whisper.Model) (enc, logits []float32) {
	ctx := tensor.NewCtx()
	x := tensor.New(80, 40)
	tensor.SeededUniform(x.Data, 3, "mel", 0, 1)
	xa := m.Encoder.Forward(ctx, x)
	lg := m.Decoder.ForwardTrain(ctx, []int{1, 5, 9, 2}, 1, tensor.FromData(xa.Data, 1, xa.Shape[0], xa.Shape[1]))
	return slices.Clone(xa.Data), slices.Clone(lg.Data)
}

func maxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	worst := 0.0
	for i := range a {
		worst = max(worst, math.Abs(float64(a[i]-b[i])))
	}
	return worst
}

func TestPlacement(t *testing.T) {
	cases := []struct {
		old, n int
		src    []int
		fresh  []bool
	}{
		{2, 2, []int{0, 1}, []bool{false, false}},
		{2, 4, []int{0, 0, 1, 1}, []bool{false, true, false, true}},
		{4, 6, []int{0, 1, 1, 2, 3, 3}, []bool{false, false, true, false, false, true}},
		{4, 5, []int{0, 1, 2, 3, 3}, []bool{false, false, false, false, true}},
		{2, 7, []int{0, 0, 0, 1, 1, 1, 1}, []bool{false, true, true, false, true, true, true}},
		{1, 3, []int{0, 0, 0}, []bool{false, true, true}},
	}
	for _, c := range cases {
		src, fresh := Placement(c.old, c.n)
		if !slices.Equal(src, c.src) || !slices.Equal(fresh, c.fresh) {
			t.Errorf("Placement(%d, %d) = %v %v, want %v %v", c.old, c.n, src, fresh, c.src, c.fresh)
		}
	}
}

// TestGrownKeepsFunction: a model grown in both stacks (uniform, and pruned to per-layer
// sizes) computes its parent's encoder output and logits exactly, its new layers' output
// projections are zero and their other weights copies, and the parent is left alone.
func TestGrownKeepsFunction(t *testing.T) {
	pruned := tinyDims()
	pruned.EncoderSizes = []whisper.EncoderLayerSize{{Heads: 2, FFN: 48}, {Heads: 1, FFN: 16}}
	pruned.DecoderSizes = []whisper.DecoderLayerSize{{SelfHeads: 1, CrossHeads: 2, FFN: 32}}
	for name, d := range map[string]whisper.Dims{"uniform": tinyDims(), "per-layer sizes": pruned} {
		t.Run(name, func(t *testing.T) {
			m, err := whisper.NewRandom(d, 7, whisper.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// Non-zero biases everywhere, so a copied or zeroed bias shows in the outputs.
			ts, _ := m.Tensors()
			for n, w := range ts {
				if strings.HasSuffix(n, ".bias") {
					tensor.SeededUniform(w.Data, 11, n, -0.1, 0.1)
				}
			}
			enc0, lg0 := outputs(m)
			g, err := Model(m, Options{EncoderLayers: 3, DecoderLayers: 3})
			if err != nil {
				t.Fatal(err)
			}
			if g.Dims.NAudioLayer != 3 || g.Dims.NTextLayer != 3 || len(g.Encoder.Layers) != 3 || len(g.Decoder.Layers) != 3 {
				t.Fatalf("grown dims %+v", g.Dims)
			}
			if d.EncoderSizes != nil && (g.Dims.EncoderUnits(2) != 16 || g.Dims.DecoderSelfHeads(2) != 1) {
				t.Errorf("copied sizes: encoder layer 2 has %d units, decoder layer 2 %d self heads", g.Dims.EncoderUnits(2), g.Dims.DecoderSelfHeads(2))
			}
			enc, lg := outputs(g)
			if e, l := maxDiff(enc, enc0), maxDiff(lg, lg0); e > 1e-6 || l > 1e-5 {
				t.Errorf("grown model's outputs differ from the parent's: encoder %g, logits %g", e, l)
			}
			// Layer 2 of the encoder is a copy of layer 1 (Placement(2, 3)).
			gs, _ := g.Tensors()
			for _, f := range []string{"self_attn.q_proj.weight", "fc1.weight", "final_layer_norm.weight"} {
				if maxDiff(gs["model.encoder.layers.2."+f].Data, ts["model.encoder.layers.1."+f].Data) != 0 {
					t.Errorf("encoder layer 2's %s is not layer 1's", f)
				}
			}
			for _, f := range []string{"self_attn.out_proj.weight", "fc2.bias", "encoder_attn.out_proj.weight"} {
				name := "model.decoder.layers.1." + f
				if slices.ContainsFunc(gs[name].Data, func(v float32) bool { return v != 0 }) {
					t.Errorf("%s of the new decoder layer is not zero", name)
				}
			}
			if len(m.Encoder.Layers) != 2 || len(m.Decoder.Layers) != 1 {
				t.Error("the parent changed")
			}
			// The grown model trains: a new layer's zero projection gets a gradient.
			ctx := tensor.NewTrainCtx()
			tp := ctx.Tape()
			fc2 := g.Decoder.Layers[1].MLP.FC2.W
			tp.Watch(fc2)
			lg2 := g.Decoder.ForwardTrain(ctx, []int{1, 5, 9, 2}, 1, tensor.FromData(enc, 1, len(enc)/32, 32))
			seed := make([]float32, len(lg2.Data))
			tensor.SeededUniform(seed, 5, "dlogits", -1, 1)
			tp.Seed(lg2, seed)
			tp.Backward()
			if !slices.ContainsFunc(tp.Grad(fc2).Data, func(v float32) bool { return v != 0 }) {
				t.Error("the new decoder layer's fc2 gets no gradient")
			}
		})
	}
}

func TestGrowErrors(t *testing.T) {
	m, err := whisper.NewRandom(tinyDims(), 7, whisper.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{}, "no stack to grow"},
		{Options{EncoderLayers: 1}, "fewer than the model's 2"},
		{Options{DecoderLayers: 100}, "at most 64"},
	} {
		if _, err := Model(m, c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.o, err, c.want)
		}
	}
}
