package whisper

import (
	"fmt"
	"testing"

	"github.com/chorus-asr/chorus/tensor"
)

// TestBatchEqualsSingles checks that a batch of two runs through the encoder and the training
// decoder gives each item exactly what it gets alone (attention and convolutions stay within
// an item).
func TestBatchEqualsSingles(t *testing.T) {
	m, err := NewRandom(gradDims, 3, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const frames = 12
	mel := tensor.New(2, gradDims.NMels, frames)
	tensor.SeededUniform(mel.Data, 5, "batch-mel", 0, 1)
	tokens := []int{1, 4, 7, 2, 3, 9, 9, 0}
	ctx := tensor.NewCtx()
	xa := m.Encoder.Forward(ctx, mel)
	logits := m.Decoder.ForwardTrain(ctx, tokens, 2, xa)
	for b := range 2 {
		one := tensor.FromData(mel.Data[b*gradDims.NMels*frames:(b+1)*gradDims.NMels*frames], gradDims.NMels, frames)
		c1 := tensor.NewCtx()
		xa1 := m.Encoder.Forward(c1, one)
		lg1 := m.Decoder.ForwardTrain(c1, tokens[b*4:(b+1)*4], 1, xa1)
		n := len(xa1.Data)
		checkTensor(t, xa.Data[b*n:(b+1)*n], xa1.Data, 1e-6, fmt.Sprintf("encoder item %d", b))
		n = len(lg1.Data)
		checkTensor(t, logits.Data[b*n:(b+1)*n], lg1.Data, 1e-6, fmt.Sprintf("logits item %d", b))
	}
}
