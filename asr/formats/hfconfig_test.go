package formats

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func ptr[T any](v T) *T { return &v }

// testdata/whisper-tiny.config.json has the keys and values of the openai/whisper-tiny
// config.json on the Hugging Face hub.
func readTinyConfig(t *testing.T) *HFConfig {
	t.Helper()
	c, err := ReadHFConfigFile(filepath.Join("testdata", "whisper-tiny.config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestReadHFConfigTiny(t *testing.T) {
	c := readTinyConfig(t)
	for _, f := range []struct {
		name      string
		got, want int
	}{
		{"vocab_size", c.VocabSize, 51865}, {"num_mel_bins", c.NumMelBins, 80},
		{"d_model", c.DModel, 384}, {"encoder_layers", c.EncoderLayers, 4},
		{"encoder_attention_heads", c.EncoderAttnHeads, 6}, {"encoder_ffn_dim", c.EncoderFFNDim, 1536},
		{"decoder_layers", c.DecoderLayers, 4}, {"decoder_attention_heads", c.DecoderAttnHeads, 6},
		{"decoder_ffn_dim", c.DecoderFFNDim, 1536}, {"max_source_positions", c.MaxSourcePositions, 1500},
		{"max_target_positions", c.MaxTargetPositions, 448},
		{"decoder_start_token_id", *c.DecoderStartTokenID, 50258}, {"eos_token_id", *c.EOSTokenID, 50257},
		{"bos_token_id", *c.BOSTokenID, 50257}, {"pad_token_id", *c.PadTokenID, 50257},
		{"len(suppress_tokens)", len(c.SuppressTokens), 86}, {"begin_suppress_tokens[1]", c.BeginSuppressTokens[1], 50257},
		{"forced_decoder_ids[2][1]", c.ForcedDecoderIDs[2][1], 50363},
	} {
		if f.got != f.want {
			t.Errorf("%s = %d, want %d", f.name, f.got, f.want)
		}
	}
	if c.ModelType != "whisper" || c.Activation() != "gelu" || c.TorchDType != "float32" ||
		len(c.Architectures) != 1 || c.Architectures[0] != "WhisperForConditionalGeneration" {
		t.Errorf("strings: %q %q %q %v", c.ModelType, c.Activation(), c.TorchDType, c.Architectures)
	}
	for _, k := range []string{"_name_or_path", "dropout", "max_length", "use_cache", "transformers_version", "num_hidden_layers"} {
		if _, ok := c.Extra[k]; !ok {
			t.Errorf("extra key %q not kept", k)
		}
	}
	if _, ok := c.Extra["vocab_size"]; ok {
		t.Error("modelled key vocab_size also in Extra")
	}
}

// Writing is deterministic (sorted keys, two-space indent), keeps unmodelled keys verbatim
// ("0.0" stays "0.0") and is idempotent.
func TestWriteHFConfigGolden(t *testing.T) {
	c := readTinyConfig(t)
	c.Chorus = json.RawMessage(`{"experts": {"encoder": [8, 8]}, "note": "<a&b>"}`)
	var buf bytes.Buffer
	if err := WriteHFConfig(&buf, c); err != nil {
		t.Fatal(err)
	}
	golden(t, "whisper-tiny.config.golden.json", buf.Bytes())
	if !bytes.Contains(buf.Bytes(), []byte(`"dropout": 0.0,`)) || !bytes.Contains(buf.Bytes(), []byte(`"<a&b>"`)) {
		t.Fatal("raw values were re-encoded")
	}
	back, err := ReadHFConfig(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := WriteHFConfig(&again, back); err != nil {
		t.Fatal(err)
	}
	if again.String() != buf.String() {
		t.Fatalf("rewrite differs:\n%s\nvs\n%s", again.String(), buf.String())
	}
	var block map[string]any
	if err := json.Unmarshal(back.Chorus, &block); err != nil || block["note"] != "<a&b>" {
		t.Fatalf("chorus block %s: %v", back.Chorus, err)
	}
}

func TestWriteHFConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	c := readTinyConfig(t)
	if err := WriteHFConfigFile(path, c); err != nil {
		t.Fatal(err)
	}
	back, err := ReadHFConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.DModel != 384 || string(back.Extra["_name_or_path"]) != `"openai/whisper-tiny"` {
		t.Fatalf("read back %+v", back)
	}
	c.DModel = 385
	if err := WriteHFConfigFile(path, c); err == nil {
		t.Fatal("invalid config written")
	}
	if again, _ := ReadHFConfigFile(path); again == nil || again.DModel != 384 {
		t.Fatal("failed write damaged the file")
	}
}

func TestHFConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name   string
		mutate func(*HFConfig)
		want   string
	}{
		{"heads do not divide width", func(c *HFConfig) { c.EncoderAttnHeads = 5 }, "d_model 384 is not divisible by encoder_attention_heads 5"},
		{"decoder heads", func(c *HFConfig) { c.DecoderAttnHeads = 7 }, "decoder_attention_heads 7"},
		{"zero layers", func(c *HFConfig) { c.DecoderLayers = 0 }, "decoder_layers = 0, must be positive"},
		{"negative ffn", func(c *HFConfig) { c.EncoderFFNDim = -1 }, "encoder_ffn_dim = -1"},
		{"no vocabulary", func(c *HFConfig) { c.VocabSize = 0 }, "vocab_size = 0"},
		{"unknown activation", func(c *HFConfig) { c.ActivationFunction = "mish" }, `activation_function "mish"`},
		{"eos outside vocab", func(c *HFConfig) { c.EOSTokenID = ptr(51865) }, "eos_token_id 51865 is outside the vocabulary [0, 51865)"},
		{"negative start", func(c *HFConfig) { c.DecoderStartTokenID = ptr(-1) }, "decoder_start_token_id -1"},
		{"suppress outside vocab", func(c *HFConfig) { c.SuppressTokens = append(c.SuppressTokens, 99999) }, "suppress_tokens[86] 99999"},
		{"forced pair malformed", func(c *HFConfig) { c.ForcedDecoderIDs = [][]int{{1}} }, "forced_decoder_ids[0] = [1]"},
		{"alignment head layer", func(c *HFConfig) { c.AlignmentHeads = [][2]int{{4, 0}} }, "alignment_heads[0] = [4 0] is outside 4 layers × 6 heads"},
		{"alignment head index", func(c *HFConfig) { c.AlignmentHeads = [][2]int{{3, 6}} }, "alignment_heads[0]"},
		{"chorus not json", func(c *HFConfig) { c.Chorus = json.RawMessage("{") }, "chorus block"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := readTinyConfig(t)
			c.mutate(cfg)
			wantErr(t, cfg.Validate(), c.want)
		})
	}
	// A chorus variant says its head widths in its chorus block (a pruned one whose width
	// lost hidden dimensions): d_model need not divide by the head counts there.
	cfg := readTinyConfig(t)
	cfg.DModel, cfg.Chorus = 379, json.RawMessage(`{"audio_head_dim":64,"text_head_dim":64}`)
	if err := cfg.Validate(); err != nil {
		t.Errorf("chorus variant of width 379: %v", err)
	}
	// Several faults are all reported at once.
	cfg = readTinyConfig(t)
	cfg.DModel, cfg.NumMelBins = 0, 0
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "d_model") || !strings.Contains(err.Error(), "num_mel_bins") {
		t.Fatalf("joined error %v", err)
	}
}

func TestParseHFConfigErrors(t *testing.T) {
	for _, c := range []struct {
		name, json, want string
	}{
		{"not an object", `[1]`, "config:"},
		{"wrong type names key", `{"d_model": "wide"}`, "d_model:"},
		{"token id list", `{"eos_token_id": [1, 2]}`, "eos_token_id:"},
		{"empty", ``, "config:"},
		{"valid json, missing fields", `{"model_type": "whisper"}`, "vocab_size = 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseHFConfig([]byte(c.json))
			wantErr(t, err, c.want)
		})
	}
	big := strings.NewReader(`{"x": "` + strings.Repeat("a", maxConfigSize) + `"}`)
	if _, err := ReadHFConfig(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized config: %v", err)
	}
	if _, err := ReadHFConfigFile(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
