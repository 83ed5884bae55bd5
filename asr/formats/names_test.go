package formats

import (
	"testing"

	"github.com/chorus-asr/chorus/asr/models/whisper"
)

func TestNameMappingTable(t *testing.T) {
	for _, c := range []struct{ hf, openai string }{
		{"model.encoder.conv1.weight", "encoder.conv1.weight"},
		{"model.encoder.conv2.bias", "encoder.conv2.bias"},
		{"model.encoder.embed_positions.weight", "encoder.positional_embedding"},
		{"model.encoder.layers.0.self_attn.q_proj.weight", "encoder.blocks.0.attn.query.weight"},
		{"model.encoder.layers.3.self_attn.k_proj.weight", "encoder.blocks.3.attn.key.weight"},
		{"model.encoder.layers.11.self_attn.v_proj.bias", "encoder.blocks.11.attn.value.bias"},
		{"model.encoder.layers.1.self_attn.out_proj.bias", "encoder.blocks.1.attn.out.bias"},
		{"model.encoder.layers.1.self_attn_layer_norm.weight", "encoder.blocks.1.attn_ln.weight"},
		{"model.encoder.layers.2.fc1.weight", "encoder.blocks.2.mlp.0.weight"},
		{"model.encoder.layers.2.fc2.bias", "encoder.blocks.2.mlp.2.bias"},
		{"model.encoder.layers.2.final_layer_norm.bias", "encoder.blocks.2.mlp_ln.bias"},
		{"model.encoder.layer_norm.weight", "encoder.ln_post.weight"},
		{"model.decoder.embed_tokens.weight", "decoder.token_embedding.weight"},
		{"model.decoder.embed_positions.weight", "decoder.positional_embedding"},
		{"model.decoder.layers.0.self_attn.q_proj.bias", "decoder.blocks.0.attn.query.bias"},
		{"model.decoder.layers.3.encoder_attn.k_proj.weight", "decoder.blocks.3.cross_attn.key.weight"},
		{"model.decoder.layers.3.encoder_attn.out_proj.weight", "decoder.blocks.3.cross_attn.out.weight"},
		{"model.decoder.layers.3.encoder_attn_layer_norm.bias", "decoder.blocks.3.cross_attn_ln.bias"},
		{"model.decoder.layers.31.fc1.bias", "decoder.blocks.31.mlp.0.bias"},
		{"model.decoder.layer_norm.bias", "decoder.ln.bias"},
	} {
		got, ok := HFToOpenAI(c.hf)
		if !ok || got != c.openai {
			t.Errorf("HFToOpenAI(%q) = %q, %v; want %q", c.hf, got, ok, c.openai)
		}
		back, ok := OpenAIToHF(c.openai)
		if !ok || back != c.hf {
			t.Errorf("OpenAIToHF(%q) = %q, %v; want %q", c.openai, back, ok, c.hf)
		}
	}
}

func TestNameMappingRejects(t *testing.T) {
	for _, hf := range []string{
		"proj_out.weight", // tied to the token embedding; no OpenAI tensor
		"model.encoder.layers.0.encoder_attn.q_proj.weight", // encoders have no cross-attention
		"model.encoder.layers.01.fc1.weight",                // non-canonical index
		"model.encoder.layers.-1.fc1.weight",
		"model.encoder.layers.0.fc1.scale",
		"model.encoder.layers.0.router.weight", // chorus extension
		"model.encoder.layers..fc1.weight",
		"model.middle.layers.0.fc1.weight",
		"encoder.layers.0.fc1.weight",
		"",
	} {
		if got, ok := HFToOpenAI(hf); ok {
			t.Errorf("HFToOpenAI(%q) = %q, want no mapping", hf, got)
		}
	}
	for _, oa := range []string{
		"decoder.proj.weight",
		"encoder.blocks.0.cross_attn.query.weight",
		"encoder.blocks.007.mlp.0.weight",
		"encoder.blocks.0.mlp.1.weight",
		"decoder.blocks.0.attn.query",
		"model.decoder.ln.weight",
		"",
	} {
		if got, ok := OpenAIToHF(oa); ok {
			t.Errorf("OpenAIToHF(%q) = %q, want no mapping", oa, got)
		}
	}
}

// Every tensor of a real Whisper size maps, both ways, one-to-one.
func TestNameMappingCoversWhisper(t *testing.T) {
	for _, d := range []whisper.Dims{whisper.Tiny, whisper.Small} {
		seen := map[string]string{}
		for _, s := range whisper.TensorSpecs(d) {
			oa, ok := HFToOpenAI(s.Name)
			if !ok {
				t.Fatalf("HFToOpenAI(%q) has no mapping", s.Name)
			}
			if prev, dup := seen[oa]; dup {
				t.Fatalf("%q and %q both map to %q", prev, s.Name, oa)
			}
			seen[oa] = s.Name
			back, ok := OpenAIToHF(oa)
			if !ok || back != s.Name {
				t.Fatalf("OpenAIToHF(%q) = %q, %v; want %q", oa, back, ok, s.Name)
			}
		}
	}
}
