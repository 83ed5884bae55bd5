package moe

import (
	"errors"
	"testing"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/experts"
	"github.com/chorus-asr/chorus/tensor"
)

// TestTrainingRoute: a training pass under TrainingRoute computes what the served, sparse
// routing computes (the encoder of the default model split into 16 experts, random top-4
// per token, the same seed: the same experts), within float32 rounding and far from the
// dense encoder; /enc leaves the decoder's blocks dense; choices a training pass cannot
// follow are refused with ErrRouting.
func TestTrainingRoute(t *testing.T) {
	v, s := identitySet(t)
	mel := encoderInput(t, v)
	s.MLP = &experts.MLP{Layers: make([]*experts.MLPLayer, len(s.E))}
	for i := range s.E {
		s.MLP.Layers[i] = experts.NewMLPLayer(v.Model.Dims.NAudioState, 32, s.E[i], uint64(i))
	}
	c := asr.RoutingChoice{Router: "mlp", K: 4}
	route, err := s.TrainingRoute(c)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := s.Routing(c)
	if err != nil {
		t.Fatal(err)
	}
	ictx := tensor.NewCtx()
	served := v.Model.Encoder.ForwardRouted(ictx, mel, rt)
	dense := v.Model.Encoder.Forward(ictx, mel)
	tctx := tensor.NewTrainCtx()
	trained := v.Model.Encoder.ForwardHooked(tctx, mel, &whisper.Hooks{Route: route})
	if d := maxAbs(trained.Data, served.Data); d > 2e-4 {
		t.Errorf("training pass differs from the served routing by %g", d)
	}
	if d := maxAbs(dense.Data, served.Data); d < 1e-2 {
		t.Errorf("routed encoder within %g of the dense one: the routing did nothing", d)
	}
	x := tensor.New(5, v.Model.Dims.NAudioState)
	for i := range x.Data {
		x.Data[i] = float32(i%9) - 4
	}
	random, err := s.TrainingRoute(asr.RoutingChoice{Router: "random", K: 4, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	g := random(tctx, 0, x)
	if g == nil || g.Shape[0] != 5 || g.Shape[1] != 16 {
		t.Fatalf("mask of layer 0: %v", g)
	}
	for i := range 5 {
		n := 0
		for _, w := range g.Data[i*16 : (i+1)*16] {
			if w != 0 && w != 1 {
				t.Fatalf("mask weight %g, want 0 or 1", w)
			}
			n += int(w)
		}
		if n != 4 {
			t.Errorf("token %d keeps %d experts, want 4", i, n)
		}
	}

	enc := len(v.Model.Encoder.Layers)
	encOnly, err := s.TrainingRoute(asr.RoutingChoice{Router: "random", K: 4, EncoderOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if encOnly(tctx, enc-1, x) == nil || encOnly(tctx, enc, x) != nil {
		t.Error("/enc: want the last encoder block routed and the first decoder block dense")
	}
	tctx.Reset()

	for _, bad := range []asr.RoutingChoice{
		{Router: "oracle", K: 4},
		{Router: "dense"},
		{Router: "random", K: 4, PerRequest: true},
		{Router: "random", K: 4, MinTokens: 2},
		{Router: "random", K: 40},
	} {
		if _, err := s.TrainingRoute(bad); !errors.Is(err, asr.ErrRouting) {
			t.Errorf("%+v: err %v, want ErrRouting", bad, err)
		}
	}
	s.MLP = &experts.MLP{Layers: make([]*experts.MLPLayer, len(s.E))}
	if _, err := s.TrainingRoute(c); !errors.Is(err, asr.ErrRouting) {
		t.Errorf("mlp without learned routers: err %v, want ErrRouting", err)
	}
	s.Layout.Unpermuted = true
	defer func() { s.Layout.Unpermuted = false }()
	if _, err := s.TrainingRoute(c); !errors.Is(err, asr.ErrRouting) {
		t.Errorf("overlay: err %v, want ErrRouting", err)
	}
}
