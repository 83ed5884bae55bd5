package speech

import (
	"math"
	"strings"

	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/tensor"
)

// NewScratch builds a model initialised for training from scratch: weight matrices uniform
// with variance 1/fan_in (the seeded generator's default), the residual branches' output
// projections scaled by 1/√(2·layers) (GPT-2's rule, so the residual stream does not grow with
// depth), biases and LayerNorm shifts zero, gains one, small token and decoder position
// embeddings (the output projection is tied to the token embedding, so large ones would start
// with confident, wrong logits), and the encoder's fixed sinusoidal positions as Whisper uses.
func NewScratch(d whisper.Dims, seed uint64) (*whisper.Model, error) {
	m, err := whisper.NewRandom(d, seed, whisper.LoadOptions{})
	if err != nil {
		return nil, err
	}
	ts, _ := m.Tensors()
	for name, w := range ts {
		switch {
		case strings.HasSuffix(name, "layer_norm.weight"):
			fill(w.Data, 1)
		case strings.HasSuffix(name, ".bias"):
			fill(w.Data, 0)
		case name == "model.encoder.embed_positions.weight":
			sinusoids(w.Data, w.Shape[0], w.Shape[1])
		case name == "model.decoder.embed_positions.weight":
			tensor.SeededUniform(w.Data, seed, name, 0, 0.02)
		case name == "model.decoder.embed_tokens.weight":
			tensor.SeededUniform(w.Data, seed, name, 0, 0.05)
		case strings.HasSuffix(name, "out_proj.weight"), strings.HasSuffix(name, "fc2.weight"):
			layers := d.NAudioLayer
			if strings.Contains(name, "decoder") {
				layers = d.NTextLayer
			}
			s := float32(1 / math.Sqrt(float64(2*max(1, layers))))
			for i := range w.Data {
				w.Data[i] *= s
			}
		}
	}
	return m, nil
}

func fill(x []float32, v float32) {
	for i := range x {
		x[i] = v
	}
}

// sinusoids is Whisper's encoder position table: sin over the first half of the channels,
// cos over the second, timescales log-spaced up to 10000.
// ref: openai/whisper whisper/model.py sinusoids()
func sinusoids(dst []float32, length, channels int) {
	half := channels / 2
	inc := math.Log(10000) / float64(half-1)
	for t := range length {
		for i := range half {
			a := float64(t) * math.Exp(-inc*float64(i))
			dst[t*channels+i] = float32(math.Sin(a))
			dst[t*channels+half+i] = float32(math.Cos(a))
		}
	}
}
