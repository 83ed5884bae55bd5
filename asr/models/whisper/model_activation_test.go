package whisper

import (
	"testing"

	"github.com/chorus-asr/chorus/tensor"
)

// TestSetActivation: switching a GELU model to ReLU changes its encoder output (the blocks
// really use the new activation), switching back restores it exactly, and an unknown
// activation is refused.
func TestSetActivation(t *testing.T) {
	m, err := NewRandom(gradDims, 3, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mel := tensor.New(gradDims.NMels, 12)
	tensor.SeededUniform(mel.Data, 1, "act-mel", -1, 1)
	enc := func() []float32 {
		return append([]float32(nil), m.Encoder.Forward(tensor.NewCtx(), mel).Data...)
	}
	gelu := enc()
	if err := m.SetActivation("relu"); err != nil || m.Dims.Activation != "relu" {
		t.Fatalf("SetActivation(relu): %v, dims %q", err, m.Dims.Activation)
	}
	relu := enc()
	same := true
	for i := range gelu {
		same = same && gelu[i] == relu[i]
	}
	if same {
		t.Error("ReLU model gives the GELU model's output")
	}
	if err := m.SetActivation("gelu"); err != nil {
		t.Fatal(err)
	}
	for i, v := range enc() {
		if v != gelu[i] {
			t.Fatalf("back to GELU: output %d is %v, was %v", i, v, gelu[i])
		}
	}
	if err := m.SetActivation("swish"); err == nil {
		t.Error("unknown activation accepted")
	}
}

// TestEncoderAttentionReLU: the same weights with ReLU attention weights give another encoder
// output (the option is live), and an unknown weighting is refused.
func TestEncoderAttentionReLU(t *testing.T) {
	d := gradDims
	soft, err := NewRandom(d, 3, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.EncoderAttention = "relu"
	relu, err := NewRandom(d, 3, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mel := tensor.New(d.NMels, 12)
	tensor.SeededUniform(mel.Data, 1, "att-mel", -1, 1)
	a, b := soft.Encoder.Forward(tensor.NewCtx(), mel).Data, relu.Encoder.Forward(tensor.NewCtx(), mel).Data
	same := true
	for i := range a {
		same = same && a[i] == b[i]
	}
	if same {
		t.Error("ReLU attention gives the softmax encoder's output")
	}
	d.EncoderAttention = "sigmoid"
	if _, err := New(d); err == nil {
		t.Error("unknown encoder attention accepted")
	}
}
