// Package whisper is the Whisper encoder–decoder (Radford et al., 2022) as OpenAI's
// whisper/model.py computes it, on chorus's tensor kernels.
//
// Shape legend: T audio frames after the conv stem (1500 for 30 s), S text tokens, C model
// width, H heads, D = C/H head width, F feed-forward width, V vocabulary, M mel bins.
package whisper

// Dims are a Whisper model's hyperparameters (OpenAI's ModelDimensions plus chorus's
// extensions: feed-forward width and activation).
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
