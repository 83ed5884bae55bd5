package stream

import (
	"errors"
	"testing"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/experts"
	"github.com/chorus-asr/chorus/experts/moe"
)

// moeModel is the test model with its blocks split, unpermuted, into 16 experts each (no
// learned routers), the same weights served as a MoE variant.
func moeModel(t *testing.T) *asr.Variant {
	t.Helper()
	v := *testModel(t)
	l := &experts.ExpertLayout{}
	for i, m := range moe.MLPs(v.Model) {
		l.Layers = append(l.Layers, experts.LayerLayout{Name: moe.LayerName(i, len(v.Model.Encoder.Layers)), Neurons: m.FC1.Out, Experts: 16, Method: experts.MethodIdentity})
	}
	set, err := moe.New(v.Model, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	v.Experts = set
	return &v
}

func finalsText(ev []Event) string {
	var s string
	for _, e := range kind(ev, Final) {
		s += e.Text + "|"
	}
	return s
}

// TestRoutingThroughSession: Config.Routing reaches the model through the session. The
// oracle selecting all 16 experts gives the dense session's finals exactly (float32
// weights widened from the same half-precision ones); a random 4 of 16 runs a quarter of
// the expert work and records a pathway with tokens in every layer; choices the variant
// cannot honour fail New with asr.ErrRouting.
func TestRoutingThroughSession(t *testing.T) {
	x := concat(testSpeech(t), zeros(0.5))
	want := finalsText(run(t, newSession(t, Config{}), x, 1600))
	v := moeModel(t)
	all, err := New(v, Config{Routing: asr.RoutingChoice{Router: "oracle", K: 16}})
	if err != nil {
		t.Fatal(err)
	}
	if got := finalsText(run(t, all, x, 1600)); got != want {
		t.Errorf("oracle 16/16 finals %q, dense %q", got, want)
	}

	s, err := New(v, Config{Routing: asr.RoutingChoice{Router: "random", K: 4, Seed: 2, Pathway: true}})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s, x, 1600)
	rt, ok := s.Routing().(*moe.Routing)
	if !ok {
		t.Fatalf("session routing %T, want *moe.Routing", s.Routing())
	}
	used, possible := rt.Work()
	if possible == 0 || used*4 != possible {
		t.Errorf("random 4/16 ran %d of %d expert-tokens, want a quarter", used, possible)
	}
	if rt.FFNTime() <= 0 {
		t.Error("no FFN time measured")
	}
	for _, lp := range rt.Pathway().Layers {
		if lp.Tokens == 0 || lp.E != 16 {
			t.Errorf("pathway layer %s: %d tokens of %d experts", lp.Name, lp.Tokens, lp.E)
		}
	}

	for _, c := range []asr.RoutingChoice{{Router: "mlp", K: 4}, {Router: "oracle", K: 0}, {Router: "random", K: 32}, {Router: "nope", K: 1}} {
		if _, err := New(v, Config{Routing: c}); !errors.Is(err, asr.ErrRouting) {
			t.Errorf("MoE variant, %+v: %v", c, err)
		}
	}
	if _, err := New(testModel(t), Config{Routing: asr.RoutingChoice{Router: "random", K: 4}}); !errors.Is(err, asr.ErrRouting) {
		t.Errorf("dense model, random router: %v", err)
	}
}
