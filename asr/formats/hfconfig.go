package formats

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
)

// HFConfig is a Hugging Face WhisperConfig as stored in a model folder's config.json, plus
// chorus's extension block. Field names follow transformers' configuration_whisper.py
// (WhisperConfig.__init__) and PretrainedConfig. Keys chorus does not model are kept in Extra
// and written back unchanged, so reading and re-saving an upstream config loses nothing.
type HFConfig struct {
	ModelType     string   `json:"model_type,omitempty"` // "whisper" for upstream checkpoints
	Architectures []string `json:"architectures,omitempty"`
	TorchDType    string   `json:"torch_dtype,omitempty"` // "float32", "float16", "bfloat16"

	VocabSize          int    `json:"vocab_size"`
	NumMelBins         int    `json:"num_mel_bins"`
	DModel             int    `json:"d_model"` // width of encoder and decoder alike
	EncoderLayers      int    `json:"encoder_layers"`
	EncoderAttnHeads   int    `json:"encoder_attention_heads"`
	EncoderFFNDim      int    `json:"encoder_ffn_dim"`
	DecoderLayers      int    `json:"decoder_layers"`
	DecoderAttnHeads   int    `json:"decoder_attention_heads"`
	DecoderFFNDim      int    `json:"decoder_ffn_dim"`
	MaxSourcePositions int    `json:"max_source_positions"` // encoder frames after the conv stem (1500)
	MaxTargetPositions int    `json:"max_target_positions"` // decoder context (448)
	ActivationFunction string `json:"activation_function,omitempty"`
	ScaleEmbedding     bool   `json:"scale_embedding,omitempty"`
	TieWordEmbeddings  *bool  `json:"tie_word_embeddings,omitempty"` // absent means true

	// Token ids are pointers because PretrainedConfig allows null, and a made-up default id
	// would silently point at the wrong token.
	DecoderStartTokenID *int `json:"decoder_start_token_id,omitempty"`
	BOSTokenID          *int `json:"bos_token_id,omitempty"`
	EOSTokenID          *int `json:"eos_token_id,omitempty"`
	PadTokenID          *int `json:"pad_token_id,omitempty"`

	BeginSuppressTokens []int   `json:"begin_suppress_tokens,omitempty"`
	SuppressTokens      []int   `json:"suppress_tokens,omitempty"`
	ForcedDecoderIDs    [][]int `json:"forced_decoder_ids,omitempty"` // [position, token] pairs
	// AlignmentHeads are [decoder layer, head] pairs used for word timestamps; upstream keeps
	// them in generation_config.json, chorus accepts them here too.
	AlignmentHeads [][2]int `json:"alignment_heads,omitempty"`

	// Chorus is chorus's own block (expert layout, masks, activation overrides…), left raw so
	// this package need not know the model packages' schema.
	Chorus json.RawMessage `json:"chorus,omitempty"`

	// Extra holds every other key of the file, verbatim.
	Extra map[string]json.RawMessage `json:"-"`
}

// hfConfigFields maps each JSON key HFConfig models to its field index (from the struct tags).
var hfConfigFields = func() map[string]int {
	m := map[string]int{}
	t := reflect.TypeFor[HFConfig]()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			m[name] = i
		}
	}
	return m
}()

// maxConfigSize bounds config.json; real ones are a few kilobytes.
const maxConfigSize = 16 << 20

// hfActivations are the activation names transformers' ACT2FN accepts that Whisper configs
// use; whether a model implements a given one is the model package's business.
var hfActivations = map[string]bool{
	"gelu": true, "gelu_new": true, "gelu_fast": true, "gelu_pytorch_tanh": true,
	"quick_gelu": true, "relu": true, "silu": true, "swish": true,
}

// UnmarshalJSON decodes the known fields and keeps the rest in Extra.
func (c *HFConfig) UnmarshalJSON(data []byte) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	var out HFConfig
	fields := reflect.ValueOf(&out).Elem()
	for k, v := range all {
		i, known := hfConfigFields[k]
		if !known {
			if out.Extra == nil {
				out.Extra = map[string]json.RawMessage{}
			}
			out.Extra[k] = v
			continue
		}
		// Field by field, so an error names the key at fault. Raw fields (Chorus) keep the
		// bytes as written.
		if err := json.Unmarshal(v, fields.Field(i).Addr().Interface()); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	*c = out
	return nil
}

// MarshalJSON encodes the known fields and Extra as one object with sorted keys.
func (c HFConfig) MarshalJSON() ([]byte, error) {
	type plain HFConfig
	known, err := marshalNoEscape(plain(c))
	if err != nil {
		return nil, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(known, &all); err != nil {
		return nil, err
	}
	for k, v := range c.Extra {
		if _, known := hfConfigFields[k]; known {
			continue // a modelled key lives in its field, never twice
		}
		if !json.Valid(v) {
			return nil, fmt.Errorf("extra key %q: invalid JSON", k)
		}
		all[k] = v
	}
	return marshalNoEscape(all)
}

// marshalNoEscape is json.Marshal without the HTML escaping of <, > and &, which Python's
// json.dumps (what transformers writes with) does not do either.
func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Activation returns activation_function, or "gelu" (WhisperConfig's default) when unset.
func (c *HFConfig) Activation() string {
	if c.ActivationFunction == "" {
		return "gelu"
	}
	return c.ActivationFunction
}

// Validate checks the structural fields and that every token id lies in the vocabulary.
func (c *HFConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	positive := func(name string, v int) {
		if v <= 0 {
			bad("%s = %d, must be positive", name, v)
		}
	}
	positive("vocab_size", c.VocabSize)
	positive("num_mel_bins", c.NumMelBins)
	positive("d_model", c.DModel)
	positive("encoder_layers", c.EncoderLayers)
	positive("encoder_attention_heads", c.EncoderAttnHeads)
	positive("encoder_ffn_dim", c.EncoderFFNDim)
	positive("decoder_layers", c.DecoderLayers)
	positive("decoder_attention_heads", c.DecoderAttnHeads)
	positive("decoder_ffn_dim", c.DecoderFFNDim)
	positive("max_source_positions", c.MaxSourcePositions)
	positive("max_target_positions", c.MaxTargetPositions)
	// Hugging Face derives the head width as d_model/heads. A chorus variant may say its head
	// widths (and the decoder's own width) in its chorus block, a pruned one does, and the
	// model's dimensions are checked when it is built (whisper.Dims.Validate).
	if c.DModel > 0 && c.EncoderAttnHeads > 0 && c.DModel%c.EncoderAttnHeads != 0 && len(c.Chorus) == 0 {
		bad("d_model %d is not divisible by encoder_attention_heads %d", c.DModel, c.EncoderAttnHeads)
	}
	if c.DModel > 0 && c.DecoderAttnHeads > 0 && c.DModel%c.DecoderAttnHeads != 0 && len(c.Chorus) == 0 {
		bad("d_model %d is not divisible by decoder_attention_heads %d", c.DModel, c.DecoderAttnHeads)
	}
	if !hfActivations[c.Activation()] {
		bad("activation_function %q is not a known activation", c.ActivationFunction)
	}
	token := func(name string, id int) {
		if c.VocabSize > 0 && (id < 0 || id >= c.VocabSize) {
			bad("%s %d is outside the vocabulary [0, %d)", name, id, c.VocabSize)
		}
	}
	for _, f := range []struct {
		name string
		id   *int
	}{
		{"decoder_start_token_id", c.DecoderStartTokenID}, {"bos_token_id", c.BOSTokenID},
		{"eos_token_id", c.EOSTokenID}, {"pad_token_id", c.PadTokenID},
	} {
		if f.id != nil {
			token(f.name, *f.id)
		}
	}
	for i, id := range c.BeginSuppressTokens {
		token(fmt.Sprintf("begin_suppress_tokens[%d]", i), id)
	}
	for i, id := range c.SuppressTokens {
		token(fmt.Sprintf("suppress_tokens[%d]", i), id)
	}
	for i, p := range c.ForcedDecoderIDs {
		if len(p) != 2 || p[0] < 0 {
			bad("forced_decoder_ids[%d] = %v, want [position, token]", i, p)
			continue
		}
		token(fmt.Sprintf("forced_decoder_ids[%d]", i), p[1])
	}
	for i, h := range c.AlignmentHeads {
		if h[0] < 0 || h[0] >= c.DecoderLayers || h[1] < 0 || h[1] >= c.DecoderAttnHeads {
			bad("alignment_heads[%d] = %v is outside %d layers × %d heads", i, h, c.DecoderLayers, c.DecoderAttnHeads)
		}
	}
	if len(c.Chorus) > 0 && !json.Valid(c.Chorus) {
		bad("chorus block is not valid JSON")
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// ParseHFConfig decodes and validates a config.json.
func ParseHFConfig(data []byte) (*HFConfig, error) {
	var c HFConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// ReadHFConfig reads, decodes and validates a config.json (at most 16 MiB).
func ReadHFConfig(r io.Reader) (*HFConfig, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("config: larger than %d bytes", maxConfigSize)
	}
	return ParseHFConfig(data)
}

// ReadHFConfigFile reads a config.json from disk.
func ReadHFConfigFile(path string) (*HFConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := ReadHFConfig(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// WriteHFConfig validates c and writes it as transformers does (save_pretrained): keys sorted,
// two-space indent, trailing newline.
func WriteHFConfig(w io.Writer, c *HFConfig) error {
	if err := c.Validate(); err != nil {
		return err
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(c); err != nil { // Encode ends with the newline transformers writes
		return fmt.Errorf("config: %w", err)
	}
	_, err := w.Write(out.Bytes())
	return err
}

// WriteHFConfigFile writes config.json atomically (see WriteSafetensorsFile).
func WriteHFConfigFile(path string, c *HFConfig) error {
	return WriteFileAtomic(path, func(w io.Writer) error { return WriteHFConfig(w, c) })
}
