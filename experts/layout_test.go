package experts

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/nn"
	"github.com/chorus-asr/chorus/tensor"
)

// testLayout is a two-layer layout: a k-means layer with a trained-shape router and an
// identity layer without one, plus the routers' weights.
func testLayout(t *testing.T) (*ExpertLayout, *MLP) {
	t.Helper()
	r := newRNG(30)
	const c, n, e, h = 12, 32, 4, 6
	perm, err := PartitionKMeans(randSlice(r, n*c, 1), n, c, e, 1)
	if err != nil {
		t.Fatal(err)
	}
	rt := NewMLPLayer(c, h, e, 4)
	rt.Scale = 0.75
	l := &ExpertLayout{Layers: []LayerLayout{
		{Name: "model.encoder.layers.0", Neurons: n, Experts: e, Method: MethodKMeans, Perm: perm,
			Router: &RouterDesc{Kind: "mlp", Hidden: h, Scale: rt.Scale, Prefix: "model.encoder.layers.0.router"}},
		{Name: "model.decoder.layers.0", Neurons: n, Experts: 8, Method: MethodIdentity},
	}}
	return l, &MLP{Layers: []*MLPLayer{rt, nil}}
}

// TestLayoutRoundTrip: the layout survives JSON inside a config.json chorus block, and its
// router weights survive the tensor map a checkpoint would hold: the loaded router predicts
// exactly what the original does.
func TestLayoutRoundTrip(t *testing.T) {
	l, m := testLayout(t)
	cfg, err := json.Marshal(map[string]any{"d_model": 12, "chorus": map[string]any{"encoder_window": "content", "experts": l}})
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		Chorus struct {
			Experts json.RawMessage `json:"experts"`
		} `json:"chorus"`
	}
	if err := json.Unmarshal(cfg, &parsed); err != nil {
		t.Fatal(err)
	}
	back, err := ParseLayout(parsed.Chorus.Experts)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, l) {
		t.Fatalf("layout changed in JSON:\n%+v\n%+v", back, l)
	}
	if strings.Contains(string(parsed.Chorus.Experts), "W1") {
		t.Error("router weights leaked into the JSON description")
	}
	ts, err := RouterTensors(l, m)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 4 || ts["model.encoder.layers.0.router.fc2.weight"] == nil {
		t.Fatalf("router tensors %v", ts)
	}
	loaded, err := LoadRouters(back, whisper.MapSource(ts), 12)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Layers[1] != nil || loaded.Experts(0) != 4 || loaded.Experts(1) != 0 {
		t.Fatalf("loaded routers %+v", loaded.Layers)
	}
	ctx := tensor.NewCtx()
	x := tensor.FromData(randSlice(newRNG(1), 5*12, 1), 5, 12)
	checkClose(t, "loaded router", loaded.Scores(ctx, 0, x).Data, m.Scores(ctx, 0, x).Data, 0, 0)
	if id := back.Layers[1].Permutation(); len(id) != 32 || id[31] != 31 {
		t.Errorf("identity permutation %v", id)
	}
}

func TestLayoutRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*ExpertLayout)
	}{
		{"experts do not divide neurons", func(l *ExpertLayout) { l.Layers[1].Experts = 5 }},
		{"zero experts", func(l *ExpertLayout) { l.Layers[1].Experts = 0 }},
		{"not a permutation", func(l *ExpertLayout) { l.Layers[0].Perm[0] = l.Layers[0].Perm[1] }},
		{"short permutation", func(l *ExpertLayout) { l.Layers[0].Perm = l.Layers[0].Perm[:3] }},
		{"unknown method", func(l *ExpertLayout) { l.Layers[0].Method = "magic" }},
		{"unknown router", func(l *ExpertLayout) { l.Layers[0].Router.Kind = "lstm" }},
		{"router without prefix", func(l *ExpertLayout) { l.Layers[0].Router.Prefix = "" }},
		{"router scale zero", func(l *ExpertLayout) { l.Layers[0].Router.Scale = 0 }},
		{"empty block with neurons", func(l *ExpertLayout) { l.Layers[1].Method = MethodEmpty }},
		{"empty block with a router", func(l *ExpertLayout) {
			l.Layers[0] = LayerLayout{Name: l.Layers[0].Name, Method: MethodEmpty, Router: l.Layers[0].Router}
		}},
		{"every block empty", func(l *ExpertLayout) {
			for i := range l.Layers {
				l.Layers[i] = LayerLayout{Name: l.Layers[i].Name, Method: MethodEmpty}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := testLayout(t)
			tc.edit(l)
			b, _ := json.Marshal(l)
			if _, err := ParseLayout(b); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := ParseLayout([]byte(`{"layers": 3}`)); err == nil {
		t.Error("malformed JSON accepted")
	}
}

// TestLayoutEmptyBlock: a block pruned to no units is a valid entry with no neurons,
// experts, permutation or router, and Split reports the first split block's method and count.
func TestLayoutEmptyBlock(t *testing.T) {
	l, _ := testLayout(t)
	l.Layers = append([]LayerLayout{{Name: "model.encoder.layers.0", Method: MethodEmpty}}, l.Layers...)
	l.Layers[1].Name = "model.encoder.layers.1"
	b, _ := json.Marshal(l)
	back, err := ParseLayout(b)
	if err != nil {
		t.Fatal(err)
	}
	if m, e := back.Split(); m != MethodKMeans || e != 4 {
		t.Errorf("Split = %q, %d; want %q, 4", m, e, MethodKMeans)
	}
}

// TestLoadRoutersErrors: a missing tensor wraps nn.ErrMissing; a mis-shaped one is named.
func TestLoadRoutersErrors(t *testing.T) {
	l, m := testLayout(t)
	ts, _ := RouterTensors(l, m)
	delete(ts, "model.encoder.layers.0.router.fc1.bias")
	if _, err := LoadRouters(l, whisper.MapSource(ts), 12); !errors.Is(err, nn.ErrMissing) {
		t.Errorf("missing bias: %v", err)
	}
	ts, _ = RouterTensors(l, m)
	if _, err := LoadRouters(l, whisper.MapSource(ts), 13); err == nil || !strings.Contains(err.Error(), "fc1.weight") {
		t.Errorf("wrong width: %v", err)
	}
	l.Layers[0].Router.Hidden = 7
	if _, err := RouterTensors(l, m); err == nil {
		t.Error("router disagreeing with its declaration was written")
	}
}
