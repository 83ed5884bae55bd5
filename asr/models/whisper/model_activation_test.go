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
