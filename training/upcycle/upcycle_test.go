package upcycle

import (
	"encoding/json"
	"math"
	"path/filepath"
	"testing"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	_ "github.com/chorus-asr/chorus/experts/moe" // serves the upcycled variant
	"github.com/chorus-asr/chorus/tensor"
)

func tinyDims(act string) whisper.Dims {
	return whisper.Dims{NMels: 80, NAudioCtx: 1500, NAudioState: 32, NAudioHead: 2, NAudioLayer: 2,
		NVocab: 100, NTextCtx: 16, NTextState: 32, NTextHead: 2, NTextLayer: 1, Activation: act, EncoderFFN: 64, DecoderFFN: 64}
}

func mel(seed uint64, frames int) *tensor.T {
	x := tensor.New(80, frames)
	tensor.SeededUniform(x.Data, seed, "mel", 0, 1)
	return x
}

// outputs runs m's encoder on a fixed window and its decoder on fixed tokens over it.
func outputs(m *whisper.Model) (enc, logits []float32) {
	ctx := tensor.NewCtx()
	xa := m.Encoder.Forward(ctx, mel(3, 40))
	lg := m.Decoder.ForwardTrain(ctx, []int{1, 5, 9, 2}, 1, tensor.FromData(xa.Data, 1, xa.Shape[0], xa.Shape[1]))
	return append([]float32(nil), xa.Data...), append([]float32(nil), lg.Data...)
}

func maxDiff(t *testing.T, label string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", label, len(got), len(want))
	}
	worst := 0.0
	for i := range got {
		worst = max(worst, math.Abs(float64(got[i]-want[i])))
	}
	if worst > tol {
		t.Errorf("%s: max |diff| %g > %g", label, worst, tol)
	}
}

// TestModelKeepsFunction: equal expert copies whose top-k weights sum to one compute the
// parent's block, so the upcycled model starts from its parent's outputs, with uniform and
// with per-layer (pruned) sizes, for every top-k.
func TestModelKeepsFunction(t *testing.T) {
	pruned := tinyDims("relu")
	pruned.EncoderSizes = []whisper.EncoderLayerSize{{Heads: 2, FFN: 48}, {Heads: 1, FFN: 16}}
	for _, tc := range []struct {
		name string
		d    whisper.Dims
		e, k int
	}{
		{"uniform E4 top2", tinyDims("relu"), 4, 2},
		{"uniform E2 top1", tinyDims("relu"), 2, 1},
		{"uniform E4 top4", tinyDims("relu"), 4, 4},
		{"per-layer sizes E4 top1", pruned, 4, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := whisper.NewRandom(tc.d, 7, whisper.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			u, err := Model(m, Options{Experts: tc.e, TopK: tc.k, Seed: 1, GateScale: 1})
			if err != nil {
				t.Fatal(err)
			}
			if u.Dims.GatedExperts != tc.e || u.Encoder.Layers[0].MLP.Gate == nil || u.Encoder.Layers[0].MLP.FC1.Out != tc.e*m.Encoder.Layers[0].MLP.FC1.Out {
				t.Fatalf("upcycled dims %+v, layer 0 units %d", u.Dims, u.Encoder.Layers[0].MLP.FC1.Out)
			}
			we, wl := outputs(m)
			ge, gl := outputs(u)
			maxDiff(t, "encoder", ge, we, 1e-4)
			maxDiff(t, "logits", gl, wl, 1e-4)
		})
	}
}

func TestModelRefuses(t *testing.T) {
	relu, err := whisper.NewRandom(tinyDims("relu"), 1, whisper.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gelu, err := whisper.NewRandom(tinyDims("gelu"), 1, whisper.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gated, err := Model(relu, Options{Experts: 2, TopK: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		m    *whisper.Model
		o    Options
	}{
		{"one expert", relu, Options{Experts: 1, TopK: 1}},
		{"top-k above experts", relu, Options{Experts: 4, TopK: 5}},
		{"top-k zero", relu, Options{Experts: 4}},
		{"negative gate scale", relu, Options{Experts: 4, TopK: 1, GateScale: -1}},
		{"gelu", gelu, Options{Experts: 4, TopK: 1}},
		{"already gated", gated, Options{Experts: 2, TopK: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Model(tc.m, tc.o); err == nil {
				t.Error("no error")
			}
		})
	}
	if _, err := Layout(relu); err == nil {
		t.Error("Layout of a dense model: no error")
	}
}

// TestServedSparse saves an upcycled model whose experts and gates differ (as after
// training), opens it as a variant and checks that the routed, sparse execution of its
// own routing (the gate's top-k, per token) equals the model's dense gated blocks, and that
// other routers run through the gate's weights too.
func TestServedSparse(t *testing.T) {
	m, err := whisper.NewRandom(tinyDims("relu"), 2, whisper.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := Model(m, Options{Experts: 4, TopK: 2, Seed: 3, GateScale: 3})
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := u.Tensors()
	for name, w := range ts { // make the experts differ, as training does
		noise := tensor.New(w.Shape...)
		tensor.SeededUniform(noise.Data, 9, name, 0, 0.05)
		tensor.AddInPlace(w.Data, noise.Data)
	}
	cfg := asr.ConfigFromDims(u.Dims)
	ch := asr.DimsChorus(u.Dims)
	if ch.Experts, err = LayoutJSON(u); err != nil {
		t.Fatal(err)
	}
	if cfg.Chorus, err = json.Marshal(ch); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "upcycled")
	if err := asr.Save(dir, u, cfg, nil, asr.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	v, err := asr.Open(dir, asr.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v.Experts == nil || v.Model.Dims.GatedExperts != 4 || v.Model.Dims.GateTopK != 2 {
		t.Fatalf("opened variant: experts %v, dims %+v", v.Experts, v.Model.Dims)
	}
	x := mel(5, 60)
	want := v.Model.Encoder.Forward(tensor.NewCtx(), x)
	for _, tc := range []struct {
		name   string
		choice asr.RoutingChoice
		same   bool // equals the model's own blocks
	}{
		{"own routing", asr.RoutingChoice{}, true},
		{"gate top-2", asr.RoutingChoice{Router: "gate", K: 2}, true},
		{"gate top-4", asr.RoutingChoice{Router: "gate", K: 4}, false},
		{"random 1", asr.RoutingChoice{Router: "random", K: 1, Seed: 1}, false},
		{"gate per request", asr.RoutingChoice{Router: "gate", K: 2, PerRequest: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, err := v.Routing(tc.choice)
			if err != nil {
				t.Fatal(err)
			}
			got := v.Model.Encoder.ForwardRouted(tensor.NewCtx(), x, rt)
			diff := 0.0
			for i := range got.Data {
				diff = max(diff, math.Abs(float64(got.Data[i]-want.Data[i])))
			}
			if tc.same && diff > 1e-4 {
				t.Errorf("routed differs from the model's gated blocks by %g", diff)
			}
			if !tc.same && diff < 1e-4 {
				t.Errorf("router %q computes the same as the own routing (diff %g): the choice had no effect", tc.choice.Router, diff)
			}
		})
	}
	for _, bad := range []asr.RoutingChoice{{Router: "gate", K: 5}, {Router: "mlp", K: 1}, {PerRequest: true}} {
		if _, err := v.Routing(bad); err == nil {
			t.Errorf("routing %+v: no error", bad)
		}
	}
}
