package formats

import (
	"strconv"
	"strings"
)

// Tensor names: Hugging Face's WhisperForConditionalGeneration state dict versus OpenAI's
// whisper/model.py state dict, whose names whisper.cpp's ggml files keep.
//
// ref: ggml-org/whisper.cpp models/convert-h5-to-ggml.py conv_map (lines 30-51) and the
// layer-renaming loop (lines 157-174); src/whisper-arch.h ASR_TENSOR_NAMES;
// openai/whisper whisper/model.py (AudioEncoder, TextDecoder, ResidualAttentionBlock).
//
// HF's proj_out.weight is tied to model.decoder.embed_tokens.weight and has no OpenAI name
// (OpenAI computes logits against token_embedding directly); convert-h5-to-ggml.py skips it.

// hfGlobal pairs the names outside the layer stacks, HF first.
var hfGlobal = [][2]string{
	{"model.encoder.conv1.weight", "encoder.conv1.weight"},
	{"model.encoder.conv1.bias", "encoder.conv1.bias"},
	{"model.encoder.conv2.weight", "encoder.conv2.weight"},
	{"model.encoder.conv2.bias", "encoder.conv2.bias"},
	{"model.encoder.embed_positions.weight", "encoder.positional_embedding"},
	{"model.encoder.layer_norm.weight", "encoder.ln_post.weight"},
	{"model.encoder.layer_norm.bias", "encoder.ln_post.bias"},
	{"model.decoder.embed_tokens.weight", "decoder.token_embedding.weight"},
	{"model.decoder.embed_positions.weight", "decoder.positional_embedding"},
	{"model.decoder.layer_norm.weight", "decoder.ln.weight"},
	{"model.decoder.layer_norm.bias", "decoder.ln.bias"},
}

// hfLayerPart pairs the module paths inside one layer (before ".weight"/".bias"), HF first.
// crossOnly parts exist in decoder layers only.
var hfLayerPart = []struct {
	hf, openai string
	crossOnly  bool
}{
	{"self_attn.q_proj", "attn.query", false},
	{"self_attn.k_proj", "attn.key", false},
	{"self_attn.v_proj", "attn.value", false},
	{"self_attn.out_proj", "attn.out", false},
	{"self_attn_layer_norm", "attn_ln", false},
	{"encoder_attn.q_proj", "cross_attn.query", true},
	{"encoder_attn.k_proj", "cross_attn.key", true},
	{"encoder_attn.v_proj", "cross_attn.value", true},
	{"encoder_attn.out_proj", "cross_attn.out", true},
	{"encoder_attn_layer_norm", "cross_attn_ln", true},
	{"fc1", "mlp.0", false},
	{"fc2", "mlp.2", false},
	{"final_layer_norm", "mlp_ln", false},
}

var (
	hfToOpenAIGlobal = map[string]string{}
	openAIToHFGlobal = map[string]string{}
)

func init() {
	for _, p := range hfGlobal {
		hfToOpenAIGlobal[p[0]] = p[1]
		openAIToHFGlobal[p[1]] = p[0]
	}
}

// HFToOpenAI maps a Hugging Face Whisper tensor name to OpenAI's (and whisper.cpp's), e.g.
// "model.decoder.layers.3.encoder_attn.k_proj.weight" → "decoder.blocks.3.cross_attn.key.weight".
// It reports false for names with no OpenAI counterpart (proj_out.weight, chorus's router and
// expert tensors, anything malformed).
func HFToOpenAI(name string) (string, bool) {
	if s, ok := hfToOpenAIGlobal[name]; ok {
		return s, true
	}
	rest, ok := strings.CutPrefix(name, "model.")
	if !ok {
		return "", false
	}
	stack, rest, _ := strings.Cut(rest, ".")
	if stack != "encoder" && stack != "decoder" {
		return "", false
	}
	rest, ok = strings.CutPrefix(rest, "layers.")
	if !ok {
		return "", false
	}
	layer, part, param, ok := splitLayerName(rest)
	if !ok {
		return "", false
	}
	for _, p := range hfLayerPart {
		if p.hf == part && (stack == "decoder" || !p.crossOnly) {
			return stack + ".blocks." + layer + "." + p.openai + "." + param, true
		}
	}
	return "", false
}

// OpenAIToHF is the inverse of HFToOpenAI.
func OpenAIToHF(name string) (string, bool) {
	if s, ok := openAIToHFGlobal[name]; ok {
		return s, true
	}
	stack, rest, _ := strings.Cut(name, ".")
	if stack != "encoder" && stack != "decoder" {
		return "", false
	}
	rest, ok := strings.CutPrefix(rest, "blocks.")
	if !ok {
		return "", false
	}
	layer, part, param, ok := splitLayerName(rest)
	if !ok {
		return "", false
	}
	for _, p := range hfLayerPart {
		if p.openai == part && (stack == "decoder" || !p.crossOnly) {
			return "model." + stack + ".layers." + layer + "." + p.hf + "." + param, true
		}
	}
	return "", false
}

// splitLayerName splits "<index>.<module path>.<weight|bias>". The index must be canonical
// decimal (no sign, no leading zeros) so that the mapping stays one-to-one.
func splitLayerName(s string) (layer, part, param string, ok bool) {
	layer, rest, found := strings.Cut(s, ".")
	if !found || !canonicalIndex(layer) {
		return "", "", "", false
	}
	i := strings.LastIndexByte(rest, '.')
	if i < 0 {
		return "", "", "", false
	}
	part, param = rest[:i], rest[i+1:]
	if param != "weight" && param != "bias" {
		return "", "", "", false
	}
	return layer, part, param, true
}

func canonicalIndex(s string) bool {
	if s == "" || (len(s) > 1 && s[0] == '0') || len(s) > 9 {
		return false
	}
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

// layerIndex parses a canonical layer index.
func layerIndex(s string) (int, bool) {
	if !canonicalIndex(s) {
		return 0, false
	}
	n, _ := strconv.Atoi(s)
	return n, true
}
