package whisper

import (
	"fmt"
	"math"
	"strings"

	"github.com/chorus-asr/chorus/tensor"
)

// TensorSpec is one checkpoint tensor: its Hugging Face name and shape.
type TensorSpec struct {
	Name  string
	Shape []int
}

// TensorSpecs lists every tensor of a Whisper checkpoint with these dimensions, in Hugging Face
// naming (WhisperForConditionalGeneration), in a fixed order, each layer sized by its own
// heads and units (Dims.EncoderSizes, DecoderSizes; a pruned layer's may be empty, [0, C]).
// The output projection is tied to model.decoder.embed_tokens.weight and is not listed.
func TensorSpecs(d Dims) []TensorSpec {
	var s []TensorSpec
	add := func(name string, shape ...int) { s = append(s, TensorSpec{name, shape}) }
	// attn lists an attention of query width c, key/value input width kv, inner width w = H·D.
	attn := func(p string, c, kv, w int) {
		add(p+".k_proj.weight", w, kv)
		add(p+".v_proj.weight", w, kv)
		add(p+".v_proj.bias", w)
		add(p+".q_proj.weight", w, c)
		add(p+".q_proj.bias", w)
		add(p+".out_proj.weight", c, w)
		add(p+".out_proj.bias", c)
	}
	ln := func(p string, width int) {
		add(p+".weight", width)
		add(p+".bias", width)
	}
	// gate lists a gated block's gate [E, C] (Dims.GatedExperts; none otherwise).
	gate := func(p string, c int) {
		if d.GatedExperts > 0 {
			add(p+".gate.weight", d.GatedExperts, c)
		}
	}
	e, t := d.NAudioState, d.NTextState
	add("model.encoder.conv1.weight", e, d.NMels, 3)
	add("model.encoder.conv1.bias", e)
	add("model.encoder.conv2.weight", e, e, 3)
	add("model.encoder.conv2.bias", e)
	add("model.encoder.embed_positions.weight", d.NAudioCtx, e)
	for i := 0; i < d.NAudioLayer; i++ {
		p := fmt.Sprintf("model.encoder.layers.%d", i)
		f := d.EncoderUnits(i)
		attn(p+".self_attn", e, e, d.EncoderHeads(i)*d.AudioHD())
		ln(p+".self_attn_layer_norm", e)
		add(p+".fc1.weight", f, e)
		add(p+".fc1.bias", f)
		add(p+".fc2.weight", e, f)
		add(p+".fc2.bias", e)
		gate(p, e)
		ln(p+".final_layer_norm", e)
	}
	ln("model.encoder.layer_norm", e)
	add("model.decoder.embed_tokens.weight", d.NVocab, t)
	add("model.decoder.embed_positions.weight", d.NTextCtx, t)
	for i := 0; i < d.NTextLayer; i++ {
		p := fmt.Sprintf("model.decoder.layers.%d", i)
		f := d.DecoderUnits(i)
		attn(p+".self_attn", t, t, d.DecoderSelfHeads(i)*d.TextHD())
		ln(p+".self_attn_layer_norm", t)
		attn(p+".encoder_attn", t, e, d.DecoderCrossHeads(i)*d.TextHD())
		ln(p+".encoder_attn_layer_norm", t)
		add(p+".fc1.weight", f, t)
		add(p+".fc1.bias", f)
		add(p+".fc2.weight", t, f)
		add(p+".fc2.bias", t)
		gate(p, t)
		ln(p+".final_layer_norm", t)
	}
	ln("model.decoder.layer_norm", t)
	return s
}

// InitRange is the (center, scale) of the seeded uniform init for a tensor; the NumPy twin in
// tools/ref/whisper_ref.py must apply the same rule.
func InitRange(name string, shape []int) (center, scale float64) {
	switch {
	case strings.HasSuffix(name, "layer_norm.weight"):
		return 1, 0.2
	case strings.HasSuffix(name, ".bias"):
		return 0, 0.1
	case strings.Contains(name, "embed_positions"), strings.Contains(name, "embed_tokens"):
		return 0, 0.5
	}
	if tensor.Numel(shape) == 0 {
		return 0, 0 // a pruned layer's empty projection: nothing to draw
	}
	fanIn := tensor.Numel(shape) / shape[0]
	return 0, math.Sqrt(3 / float64(fanIn))
}

// RandomCheckpoint builds a checkpoint with seeded weights (see tensor.SeededUniform), keyed by
// Hugging Face name. It is what `chorus bench --dims` and the reference tests run on.
func RandomCheckpoint(d Dims, seed uint64) map[string]*tensor.T {
	out := make(map[string]*tensor.T)
	for _, s := range TensorSpecs(d) {
		t := tensor.New(s.Shape...)
		c, sc := InitRange(s.Name, s.Shape)
		tensor.SeededUniform(t.Data, seed, s.Name, c, sc)
		out[s.Name] = t
	}
	return out
}
