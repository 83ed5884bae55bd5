package moe

import (
	"errors"
	"math/bits"
	"strings"
	"testing"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/tensor"
)

// TestMinTokens: with MinTokens 2 a one-token call (a decoding step) runs the dense block —
// the same output, every expert in the pathway — while a call of several tokens is routed to k
// experts per token; the name says so; a negative MinTokens is refused.
func TestMinTokens(t *testing.T) {
	v, s := identitySet(t)
	mlps := MLPs(v.Model)
	m := mlps[len(mlps)-1] // the last decoder block
	c := v.Model.Dims.NTextState
	rt, err := s.Routing(asr.RoutingChoice{Router: "random", K: 4, MinTokens: 2, Pathway: true, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	r := rt.(*Routing)
	if got := r.Name(); got != "random:4/min2" {
		t.Errorf("name %q, want random:4/min2", got)
	}
	ctx := tensor.NewCtx()
	one := tensor.New(1, c)
	three := tensor.New(3, c)
	for i := range one.Data {
		one.Data[i] = float32(i%7) - 3
	}
	for i := range three.Data {
		three.Data[i] = float32(i%5) - 2
	}
	if d := maxAbs(r.FFN(ctx, m, one).Data, m.Forward(ctx, one).Data); d != 0 {
		t.Errorf("one-token call differs from the dense block by %g", d)
	}
	r.FFN(ctx, m, three)
	lp := r.Pathway().Layers[m.Layer()]
	if lp.Tokens != 4 {
		t.Fatalf("pathway holds %d tokens, want 4", lp.Tokens)
	}
	w := (lp.E + 63) / 64
	for tok := range lp.Tokens {
		n := 0
		for _, word := range lp.Masks[tok*w : (tok+1)*w] {
			n += bits.OnesCount64(word)
		}
		want := 4
		if tok == 0 {
			want = lp.E
		}
		if n != want {
			t.Errorf("token %d used %d experts, want %d", tok, n, want)
		}
	}
	if _, err := s.Routing(asr.RoutingChoice{Router: "random", K: 4, MinTokens: -1}); !errors.Is(err, asr.ErrRouting) {
		t.Errorf("MinTokens -1: err %v, want ErrRouting", err)
	}
}

// TestEncoderOnly: with EncoderOnly the decoder's blocks run every expert (equal to the dense
// block) while the encoder's are routed, and the routing's name says so.
func TestEncoderOnly(t *testing.T) {
	v, s := identitySet(t)
	mlps := MLPs(v.Model)
	rt, err := s.Routing(asr.RoutingChoice{Router: "random", K: 4, EncoderOnly: true, Pathway: true, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	r := rt.(*Routing)
	if got := r.Name(); got != "random:4/enc" {
		t.Errorf("name %q, want random:4/enc", got)
	}
	ctx := tensor.NewCtx()
	for _, m := range mlps {
		name := s.Layout.Layers[m.Layer()].Name
		x := tensor.New(3, m.FC1.W.Shape[1])
		for i := range x.Data {
			x.Data[i] = float32(i%5) - 2
		}
		encBefore, allBefore := r.EncoderFFNTime(), r.FFNTime()
		r.FFN(ctx, m, x)
		// The encoder's share of the FFN time grows with the encoder's blocks only.
		encGrew, allGrew := r.EncoderFFNTime() > encBefore, r.FFNTime() > allBefore
		if !allGrew || encGrew != strings.HasPrefix(name, "model.encoder.") || r.EncoderFFNTime() > r.FFNTime() {
			t.Errorf("%s: FFN time %v → %v, encoder FFN time %v → %v", name, allBefore, r.FFNTime(), encBefore, r.EncoderFFNTime())
		}
		lp := r.Pathway().Layers[m.Layer()]
		w := (lp.E + 63) / 64
		want := 4
		if strings.HasPrefix(name, "model.decoder.") {
			want = lp.E
		}
		for tok := range lp.Tokens {
			n := 0
			for _, word := range lp.Masks[tok*w : (tok+1)*w] {
				n += bits.OnesCount64(word)
			}
			if n != want {
				t.Errorf("%s token %d used %d experts, want %d", name, tok, n, want)
			}
		}
	}
}
