// Package whisper is the Whisper encoder–decoder (Radford et al., 2022) as OpenAI's
// whisper/model.py computes it, on chorus's tensor kernels.
//
// Shape legend: T audio frames after the conv stem (1500 for 30 s), S text tokens, C model
// width, H heads, D = C/H head width, F feed-forward width, V vocabulary, M mel bins.
package whisper

import "fmt"

// Dims are a Whisper model's hyperparameters (OpenAI's ModelDimensions plus chorus's
// extensions: feed-forward width, activation, head width and per-layer sizes).
type Dims struct {
	NMels       int `json:"n_mels"`
	NAudioCtx   int `json:"n_audio_ctx"`
	NAudioState int `json:"n_audio_state"`
	NAudioHead  int `json:"n_audio_head"`
	NAudioLayer int `json:"n_audio_layer"`
	NVocab      int `json:"n_vocab"`
	NTextCtx    int `json:"n_text_ctx"`
	NTextState  int `json:"n_text_state"`
	NTextHead   int `json:"n_text_head"`
	NTextLayer  int `json:"n_text_layer"`
	// EncoderFFN and DecoderFFN are the feed-forward widths; 0 means Whisper's 4·width.
	EncoderFFN int `json:"encoder_ffn,omitempty"`
	DecoderFFN int `json:"decoder_ffn,omitempty"`
	// Activation of the feed-forward layers: "gelu" (Whisper) or "relu" (chorus variants).
	Activation string `json:"activation,omitempty"`
	// AudioHeadDim and TextHeadDim are the attention head widths D; 0 means Whisper's
	// width/heads. A pruned variant sets them: removing heads leaves fewer heads of the same
	// width (the 1/√D scale unchanged), so H·D no longer equals the model width.
	AudioHeadDim int `json:"audio_head_dim,omitempty"`
	TextHeadDim  int `json:"text_head_dim,omitempty"`
	// EncoderAttention is "" or "softmax" (Whisper) or "relu": the encoder's self-attention
	// weights are relu(q·kᵀ/√D)/T (tensor.AttentionReLU), a training option for models
	// whose attention heads become experts.
	EncoderAttention string `json:"encoder_attention,omitempty"`
	// EncoderSizes and DecoderSizes, when set, give every layer of a stack its own head and
	// feed-forward counts (one entry per layer; nil: every layer has the uniform NAudioHead /
	// EncoderFFN or NTextHead / DecoderFFN). A pruned variant keeps a different number of heads
	// and units in each layer, and storing that exactly is what makes it smaller and faster:
	// padding every layer to the largest would keep most of the cost. The head width stays
	// AudioHD()/TextHD() in every layer. Read them through the accessors (EncoderHeads,
	// EncoderUnits, DecoderSelfHeads, DecoderCrossHeads, DecoderUnits), which fall back to
	// the uniform values.
	EncoderSizes []EncoderLayerSize `json:"encoder_sizes,omitempty"`
	DecoderSizes []DecoderLayerSize `json:"decoder_sizes,omitempty"`
	// GatedExperts, when above 0, makes every feed-forward block a sparsely-gated mixture of
	// that many experts, as sparse upcycling (Komatsuzaki et al., 2022) produces: the block's
	// units are GatedExperts equal contiguous blocks (each a copy of the parent's FFN at
	// first), a learned gate (MLP.Gate, [E, C], no bias) scores them for each token, the
	// GateTopK best run, and their outputs are summed weighted by the softmax of their
	// scores (tensor.TopKSoftmax); fc2's bias is shared and added once. 0: the plain block.
	// Unlike a MoE-fied variant's experts (which split one FFN and sum unweighted), these
	// change the function: a gated block must always run through its gate.
	GatedExperts int `json:"gated_experts,omitempty"`
	GateTopK     int `json:"gate_top_k,omitempty"`
}

// EncoderLayerSize is one encoder layer's own sizes. Unlike the stack's uniform EncoderFFN, 0
// means none: a layer may keep no head (its attention adds only its output bias) or no unit.
type EncoderLayerSize struct {
	Heads int `json:"heads"`
	FFN   int `json:"ffn"`
}

// DecoderLayerSize is one decoder layer's own sizes (0: none, as EncoderLayerSize).
type DecoderLayerSize struct {
	SelfHeads  int `json:"self_heads"`
	CrossHeads int `json:"cross_heads"`
	FFN        int `json:"ffn"`
}

// EncoderHeads is the number of self-attention heads of encoder layer i.
func (d Dims) EncoderHeads(i int) int {
	if d.EncoderSizes != nil {
		return d.EncoderSizes[i].Heads
	}
	return d.NAudioHead
}

// EncoderUnits is the feed-forward width of encoder layer i.
func (d Dims) EncoderUnits(i int) int {
	if d.EncoderSizes != nil {
		return d.EncoderSizes[i].FFN
	}
	return d.encoderFFN()
}

// DecoderSelfHeads is the number of self-attention heads of decoder layer i.
func (d Dims) DecoderSelfHeads(i int) int {
	if d.DecoderSizes != nil {
		return d.DecoderSizes[i].SelfHeads
	}
	return d.NTextHead
}

// DecoderCrossHeads is the number of cross-attention heads of decoder layer i.
func (d Dims) DecoderCrossHeads(i int) int {
	if d.DecoderSizes != nil {
		return d.DecoderSizes[i].CrossHeads
	}
	return d.NTextHead
}

// DecoderUnits is the feed-forward width of decoder layer i.
func (d Dims) DecoderUnits(i int) int {
	if d.DecoderSizes != nil {
		return d.DecoderSizes[i].FFN
	}
	return d.decoderFFN()
}

// Uniform reports whether every layer of each stack has the stack's head count and
// feed-forward width, as in Whisper (no per-layer sizes).
func (d Dims) Uniform() bool { return d.EncoderSizes == nil && d.DecoderSizes == nil }

// validateSizes checks the per-layer sizes: one entry per layer, none negative, none above
// the stack's uniform values (those are the widest layer's, so a config's Hugging Face
// fields stay an upper bound a reader can size buffers by).
func (d Dims) validateSizes() error {
	if d.EncoderSizes != nil {
		if len(d.EncoderSizes) != d.NAudioLayer {
			return fmt.Errorf("whisper: %d encoder layer sizes for %d layers", len(d.EncoderSizes), d.NAudioLayer)
		}
		for i, s := range d.EncoderSizes {
			if s.Heads < 0 || s.Heads > d.NAudioHead || s.FFN < 0 || s.FFN > d.encoderFFN() {
				return fmt.Errorf("whisper: encoder layer %d sizes %+v outside [0, %d] heads, [0, %d] units", i, s, d.NAudioHead, d.encoderFFN())
			}
		}
	}
	if e := d.GatedExperts; e != 0 {
		if e < 0 || d.GateTopK < 1 || d.GateTopK > e {
			return fmt.Errorf("whisper: gated feed-forward blocks of %d experts with top-%d (want top-k in 1…experts)", e, d.GateTopK)
		}
		for i := range d.NAudioLayer {
			if u := d.EncoderUnits(i); u%e != 0 {
				return fmt.Errorf("whisper: encoder layer %d's %d feed-forward units do not split into %d experts", i, u, e)
			}
		}
		for i := range d.NTextLayer {
			if u := d.DecoderUnits(i); u%e != 0 {
				return fmt.Errorf("whisper: decoder layer %d's %d feed-forward units do not split into %d experts", i, u, e)
			}
		}
	} else if d.GateTopK != 0 {
		return fmt.Errorf("whisper: gate top-k %d without gated experts", d.GateTopK)
	}
	if d.DecoderSizes != nil {
		if len(d.DecoderSizes) != d.NTextLayer {
			return fmt.Errorf("whisper: %d decoder layer sizes for %d layers", len(d.DecoderSizes), d.NTextLayer)
		}
		for i, s := range d.DecoderSizes {
			if s.SelfHeads < 0 || s.SelfHeads > d.NTextHead || s.CrossHeads < 0 || s.CrossHeads > d.NTextHead || s.FFN < 0 || s.FFN > d.decoderFFN() {
				return fmt.Errorf("whisper: decoder layer %d sizes %+v outside [0, %d] heads, [0, %d] units", i, s, d.NTextHead, d.decoderFFN())
			}
		}
	}
	return nil
}

// AudioHD is the encoder's head width D.
func (d Dims) AudioHD() int {
	if d.AudioHeadDim > 0 {
		return d.AudioHeadDim
	}
	return d.NAudioState / d.NAudioHead
}

// TextHD is the decoder's head width D.
func (d Dims) TextHD() int {
	if d.TextHeadDim > 0 {
		return d.TextHeadDim
	}
	return d.NTextState / d.NTextHead
}

func (d Dims) encoderFFN() int {
	if d.EncoderFFN > 0 {
		return d.EncoderFFN
	}
	return 4 * d.NAudioState
}

func (d Dims) decoderFFN() int {
	if d.DecoderFFN > 0 {
		return d.DecoderFFN
	}
	return 4 * d.NTextState
}

// Named dimension sets from OpenAI's released checkpoints (whisper/__init__.py _MODELS).
var (
	Tiny  = Dims{NMels: 80, NAudioCtx: 1500, NAudioState: 384, NAudioHead: 6, NAudioLayer: 4, NVocab: 51865, NTextCtx: 448, NTextState: 384, NTextHead: 6, NTextLayer: 4}
	Base  = Dims{NMels: 80, NAudioCtx: 1500, NAudioState: 512, NAudioHead: 8, NAudioLayer: 6, NVocab: 51865, NTextCtx: 448, NTextState: 512, NTextHead: 8, NTextLayer: 6}
	Small = Dims{NMels: 80, NAudioCtx: 1500, NAudioState: 768, NAudioHead: 12, NAudioLayer: 12, NVocab: 51865, NTextCtx: 448, NTextState: 768, NTextHead: 12, NTextLayer: 12}
)

// NamedDims returns the dimensions of a released Whisper size by name.
func NamedDims(name string) (Dims, bool) {
	switch name {
	case "tiny":
		return Tiny, true
	case "base":
		return Base, true
	case "small":
		return Small, true
	}
	return Dims{}, false
}
