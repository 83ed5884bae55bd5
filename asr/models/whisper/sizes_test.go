package whisper

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chorus-asr/chorus/tensor"
)

// sizedDims is gradDims with two layers a side of their own sizes, every empty case among
// them: an encoder layer with neither heads nor units (it adds its two output biases), a
// decoder layer without cross-attention heads and one without self-attention heads.
func sizedDims() Dims {
	d := gradDims
	d.NAudioLayer, d.NTextLayer = 2, 2
	d.EncoderSizes = []EncoderLayerSize{{Heads: 1, FFN: 5}, {Heads: 0, FFN: 0}}
	d.DecoderSizes = []DecoderLayerSize{{SelfHeads: 2, CrossHeads: 0, FFN: 3}, {SelfHeads: 0, CrossHeads: 1, FFN: 32}}
	return d
}

// TestLayerSizes pins the per-layer accessors (and their fallback to the stack's values),
// the shapes New and TensorSpecs give each layer, and what Validate refuses.
func TestLayerSizes(t *testing.T) {
	u := gradDims
	if !u.Uniform() || u.EncoderHeads(0) != 2 || u.EncoderUnits(0) != 32 || u.DecoderSelfHeads(0) != 2 || u.DecoderCrossHeads(0) != 2 || u.DecoderUnits(0) != 32 {
		t.Fatalf("uniform accessors: %d %d %d %d %d", u.EncoderHeads(0), u.EncoderUnits(0), u.DecoderSelfHeads(0), u.DecoderCrossHeads(0), u.DecoderUnits(0))
	}
	d := sizedDims()
	m, err := NewRandom(d, 1, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	shapes := map[string][]int{}
	for _, s := range TensorSpecs(d) {
		shapes[s.Name] = s.Shape
	}
	for name, want := range map[string][]int{
		"model.encoder.layers.0.self_attn.q_proj.weight":    {4, 8}, // 1 head of width 4
		"model.encoder.layers.1.self_attn.out_proj.weight":  {8, 0},
		"model.encoder.layers.1.fc1.weight":                 {0, 8},
		"model.decoder.layers.0.encoder_attn.k_proj.weight": {0, 8},
		"model.decoder.layers.1.encoder_attn.v_proj.weight": {4, 8},
		"model.decoder.layers.0.fc2.weight":                 {8, 3},
	} {
		if got := shapes[name]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: spec %v, want %v", name, got, want)
		}
	}
	if h := m.Decoder.Layers[1].Cross.Heads(); h != 1 || m.Encoder.Layers[0].MLP.FC1.Out != 5 {
		t.Errorf("built decoder layer 1 with %d cross heads, encoder layer 0 with %d units", h, m.Encoder.Layers[0].MLP.FC1.Out)
	}
	for _, c := range []struct {
		edit func(*Dims)
		want string
	}{
		{func(d *Dims) { d.EncoderSizes = d.EncoderSizes[:1] }, "1 encoder layer sizes for 2 layers"},
		{func(d *Dims) { d.EncoderSizes[0].Heads = 3 }, "encoder layer 0"},
		{func(d *Dims) { d.DecoderSizes[1].FFN = 33 }, "decoder layer 1"},
		{func(d *Dims) { d.DecoderSizes[0].CrossHeads = -1 }, "decoder layer 0"},
	} {
		d := sizedDims()
		c.edit(&d)
		if err := d.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate = %v, want an error containing %q", err, c.want)
		}
	}
	if got := DefaultAlignmentHeads(d); fmt.Sprint(got) != "[[1 0]]" {
		t.Errorf("default alignment heads %v: want layer 1's only head", got)
	}
	if err := d.CheckAlignmentHeads([][2]int{{0, 0}}); err == nil {
		t.Error("an alignment head in a layer without cross-attention heads was accepted")
	}
}

// newSizedSetup is the gradient setup on sizedDims, with the tensors of its empty sublayers
// marked inert.
func newSizedSetup(t *testing.T) *gradSetup {
	s := newGradSetupDims(t, sizedDims())
	s.inert = map[string]bool{}
	ts, _ := s.m.Tensors()
	for name, w := range ts {
		if len(w.Data) == 0 {
			s.inert[name] = true
		}
		for sub, ln := range map[string]string{".self_attn.out_proj.weight": ".self_attn_layer_norm", ".encoder_attn.out_proj.weight": ".encoder_attn_layer_norm", ".fc2.weight": ".final_layer_norm"} {
			if p, ok := strings.CutSuffix(name, sub); ok && w.Shape[1] == 0 {
				s.inert[p+ln+".weight"], s.inert[p+ln+".bias"] = true, true
			}
		}
	}
	return s
}

// TestLayerSizesTrainMatchesInference: a model whose layers have their own sizes gives the
// same logits through ForwardTrain as through the cached decoding path fed one token at a
// time (the self-attention cache of a headless layer still counts positions).
func TestLayerSizesTrainMatchesInference(t *testing.T) {
	s := newSizedSetup(t)
	ctx := tensor.NewCtx()
	xa := s.m.Encoder.Forward(ctx, s.mel)
	want := s.m.Decoder.ForwardTrain(ctx, s.tokens, 1, xa).Clone()
	c := s.m.NewCaches()
	s.m.Decoder.CrossCaches(ctx, xa, c)
	for i, id := range s.tokens {
		got := s.m.Decoder.Forward(ctx, []int{id}, c, 0)
		checkTensor(t, got.Data, want.Row(i), 1e-6, fmt.Sprintf("token %d", i))
	}
	if c.Len() != len(s.tokens) {
		t.Fatalf("caches hold %d tokens after %d", c.Len(), len(s.tokens))
	}
}

// TestLayerSizesGradients is TestWhisperGradients on the per-layer model: the backward of
// every layer at its own sizes, and of the empty sublayers that reduce to their output bias
// (that bias gets the finite difference's gradient; the tensors they no longer read get 0).
func TestLayerSizesGradients(t *testing.T) {
	s := newSizedSetup(t)
	if len(s.inert) < 10 {
		t.Fatalf("only %d inert tensors: the empty sublayers are not there", len(s.inert))
	}
	checkWhisperGradients(t, s)
}

// BenchmarkLayerSizes runs the encoder and 20 decoding steps of a whisper-tiny-wide model
// (width 384, 6 heads of 64, FFN 1536, 2+2 layers, 10 s of audio) at full size and pruned to
// per-layer sizes that keep about 40% of the layers' heads and units, so the time can be read
// against the kept sizes.
func BenchmarkLayerSizes(b *testing.B) {
	full := Dims{NMels: 80, NAudioCtx: 1500, NAudioState: 384, NAudioHead: 6, NAudioLayer: 2, NVocab: 2000,
		NTextCtx: 64, NTextState: 384, NTextHead: 6, NTextLayer: 2}
	pruned := full
	pruned.EncoderSizes = []EncoderLayerSize{{Heads: 3, FFN: 768}, {Heads: 2, FFN: 480}}
	pruned.DecoderSizes = []DecoderLayerSize{{SelfHeads: 2, CrossHeads: 3, FFN: 600}, {SelfHeads: 3, CrossHeads: 2, FFN: 640}}
	mel := tensor.New(full.NMels, 1000)
	tensor.SeededUniform(mel.Data, 1, "mel", 0, 1)
	for _, c := range []struct {
		name string
		d    Dims
	}{{"full", full}, {"pruned", pruned}} {
		m, err := NewRandom(c.d, 1, LoadOptions{})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, s := range TensorSpecs(c.d) {
			if strings.Contains(s.Name, ".layers.") {
				n += tensor.Numel(s.Shape)
			}
		}
		st := m.NewState(1)
		b.Run(c.name, func(b *testing.B) {
			var enc time.Duration
			for b.Loop() {
				t0 := time.Now()
				st.EncodeInPlace(mel)
				enc += time.Since(t0)
				for i := range 20 {
					st.Logits(0, []int{i + 1})
				}
			}
			b.ReportMetric(float64(n), "layer-params")
			b.ReportMetric(float64(enc.Milliseconds())/float64(b.N), "encode-ms/op")
		})
	}
}
