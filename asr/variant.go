// Package asr ties the speech-recognition pieces together: it opens model variants from disk
// (Hugging Face folders, chorus variant folders, whisper.cpp ggml files) into a model plus
// tokenizer, and transcribes audio with them. The pieces live in sub-packages: audio, mel,
// tokenizer, formats, models/whisper, decode, transcribe.
package asr

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/chorus-asr/chorus/asr/formats"
	"github.com/chorus-asr/chorus/asr/lm"
	"github.com/chorus-asr/chorus/asr/mel"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/asr/tokenizer"
)

// ErrUnsupportedModel is returned for files and folders chorus cannot load as a model.
var ErrUnsupportedModel = errors.New("unsupported model")

// Variant is a loaded model ready to serve: weights, tokenizer (nil when the folder has no
// tokenizer files; commands that take token ids still work) and where it came from.
type Variant struct {
	Name      string
	Path      string
	Format    string // "hf" or "ggml"
	Model     *whisper.Model
	Tokenizer *tokenizer.Tokenizer
	Config    *formats.HFConfig
	Chorus    ChorusConfig // the config's "chorus" block
	// Experts is the expert side of a variant whose config declares an expert layout
	// (Chorus.Experts), nil for a dense variant.
	Experts Experts
	// CTC is the CTC head chorus trained beside the model (CTCHeadFile), nil when the
	// variant has none; decoding uses it for joint CTC/attention scoring.
	CTC *CTCHead
	// LM is the variant's token n-gram language model (LMFile), nil when it has none;
	// decoding uses it for shallow fusion (decode.Options.LMWeight).
	LM *lm.NGram
}

// ChorusConfig is chorus's extension block in config.json.
type ChorusConfig struct {
	// EncoderWindow is "" (Whisper: every window padded to 30 s) or WindowContent (the model
	// was trained on unpadded audio and encodes only the frames holding audio).
	EncoderWindow string `json:"encoder_window,omitempty"`
	// Experts is the expert layout of a mixture-of-experts variant (experts.ExpertLayout:
	// per layer the expert count, the neuron permutation its stored weights already have,
	// and its router's tensors), kept raw here and built by the registered ExpertsBuilder.
	Experts json.RawMessage `json:"experts,omitempty"`
	// AudioHeadDim and TextHeadDim are the head widths of a pruned variant whose attention
	// kept fewer heads than d_model/heads implies (whisper.Dims); 0: d_model/heads.
	AudioHeadDim int `json:"audio_head_dim,omitempty"`
	TextHeadDim  int `json:"text_head_dim,omitempty"`
	// DecoderWidth is the decoder's residual width when it differs from the encoder's
	// (d_model): pruning removes hidden dimensions of each stack on its own
	// (whisper.Dims.NTextState); 0: d_model.
	DecoderWidth int `json:"decoder_d_model,omitempty"`
	// EncoderAttention is whisper.Dims.EncoderAttention ("relu" for a ReLU-attention encoder).
	EncoderAttention string `json:"encoder_attention,omitempty"`
	// Layers gives each layer its own head and feed-forward counts (whisper.Dims.EncoderSizes,
	// DecoderSizes): a pruned variant keeps different numbers in different layers, and the
	// Hugging Face fields can say only one per stack (chorus writes there the sizes the
	// variant was pruned from, which bound every layer: Dims.Validate checks that).
	// Nil, or a stack left out: every layer of it has the Hugging Face fields' sizes.
	Layers *LayerSizes `json:"layers,omitempty"`
	// Gated declares sparsely-gated feed-forward blocks (whisper.Dims.GatedExperts,
	// GateTopK): an upcycled variant, whose checkpoint holds each block's gate.
	Gated *GatedConfig `json:"gated,omitempty"`
	// Routing is the routing a MoE variant runs when a request names no router (Router ""):
	// the flagship serves its learned routers at k/E = 1/4 unless asked for "dense".
	Routing *RoutingDefault `json:"routing,omitempty"`
}

// RoutingDefault is the chorus block's "routing" entry (see RoutingChoice for the fields).
type RoutingDefault struct {
	Router      string  `json:"router"`
	Fraction    float64 `json:"fraction,omitempty"`
	K           int     `json:"k,omitempty"`
	PerRequest  bool    `json:"per_request,omitempty"`
	MinTokens   int     `json:"min_tokens,omitempty"`
	EncoderOnly bool    `json:"encoder_only,omitempty"`
}

// GatedConfig is the chorus block's "gated" entry: E experts per feed-forward block, the
// top K of them run per token.
type GatedConfig struct {
	Experts int `json:"experts"`
	TopK    int `json:"top_k"`
}

// LayerSizes are the per-layer sizes of a variant's stacks, one entry per layer in order.
type LayerSizes struct {
	Encoder []whisper.EncoderLayerSize `json:"encoder,omitempty"`
	Decoder []whisper.DecoderLayerSize `json:"decoder,omitempty"`
}

// DimsChorus is the part of the chorus block that dimensions d need beyond the Hugging Face
// fields (head widths, encoder attention, per-layer sizes); the other keys are left empty for
// the caller. ConfigFromDims writes it; writers that build their own block start from it, so
// that no dimension is lost between Save and Open.
func DimsChorus(d whisper.Dims) ChorusConfig {
	c := ChorusConfig{AudioHeadDim: d.AudioHeadDim, TextHeadDim: d.TextHeadDim, EncoderAttention: d.EncoderAttention}
	if d.NTextState != d.NAudioState {
		c.DecoderWidth = d.NTextState
	}
	if !d.Uniform() {
		c.Layers = &LayerSizes{Encoder: d.EncoderSizes, Decoder: d.DecoderSizes}
	}
	if d.GatedExperts > 0 {
		c.Gated = &GatedConfig{Experts: d.GatedExperts, TopK: d.GateTopK}
	}
	return c
}

// WindowContent marks models that encode only the audio frames of a window.
const WindowContent = "content"

// OpenOptions tune Open.
type OpenOptions struct {
	// F16 keeps large weights in half precision (f32 compute). Default true in the CLI.
	F16 bool
}

// Open loads a model from a Hugging Face or chorus variant folder (config.json +
// model.safetensors or model.safetensors.zst, optional vocab.json/merges.txt), or from a
// whisper.cpp ggml file.
func Open(path string, opts OpenOptions) (*Variant, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open model: %w", err)
	}
	if st.IsDir() {
		return OpenFS(os.DirFS(path), ".", path, opts)
	}
	return openGGML(path, opts)
}

// ExpertsFile is an optional second tensor file of a variant folder holding tensors that are
// not the base model's: the routers of a MoE variant built over unchanged base weights (an
// overlay; see experts.ExpertLayout.Unpermuted). Its tensors join model.safetensors'; a name
// in both is an error.
const ExpertsFile = "experts.safetensors"

// mergeExpertsFile adds ExpertsFile's tensors to ck when the folder has one.
func mergeExpertsFile(fsys fs.FS, dir, name string, ck *formats.Checkpoint) error {
	r, err := fsys.Open(filepath.Join(dir, ExpertsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open model %s: %w", name, err)
	}
	extra, err := formats.ReadSafetensorsFrom(r)
	r.Close()
	if err != nil {
		return fmt.Errorf("open model %s: %s: %w", name, ExpertsFile, err)
	}
	for _, n := range extra.Names() {
		if ck.Get(n) != nil {
			return fmt.Errorf("open model %s: %s: tensor %s is also in the model's weights", name, ExpertsFile, n)
		}
		if err := ck.Add(extra.Get(n)); err != nil {
			return fmt.Errorf("open model %s: %s: %w", name, ExpertsFile, err)
		}
	}
	return nil
}

// OpenFS loads a variant folder from a file system (an embedded model uses embed.FS).
func OpenFS(fsys fs.FS, dir, name string, opts OpenOptions) (*Variant, error) {
	cfgBytes, err := fs.ReadFile(fsys, filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("open model %s: %w: no config.json (%v)", name, ErrUnsupportedModel, err)
	}
	cfg, err := formats.ParseHFConfig(cfgBytes)
	if err != nil {
		return nil, fmt.Errorf("open model %s: config.json: %w", name, err)
	}
	var ck *formats.Checkpoint
	for _, f := range []string{"model.safetensors", "model.safetensors.zst"} {
		r, err := fsys.Open(filepath.Join(dir, f))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("open model %s: %w", name, err)
		}
		ck, err = formats.ReadSafetensorsFrom(r)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("open model %s: %s: %w", name, f, err)
		}
		break
	}
	if ck == nil {
		return nil, fmt.Errorf("open model %s: %w: no model.safetensors or model.safetensors.zst", name, ErrUnsupportedModel)
	}
	if err := mergeExpertsFile(fsys, dir, name, ck); err != nil {
		return nil, err
	}
	v, err := build(name, "hf", cfg, ck, opts)
	if err != nil {
		return nil, err
	}
	if _, err := fs.Stat(fsys, filepath.Join(dir, "vocab.json")); err == nil {
		tok, err := tokenizer.LoadFS(fsys, dir)
		if err != nil {
			return nil, fmt.Errorf("open model %s: tokenizer: %w", name, err)
		}
		v.Tokenizer = tok
	}
	if v.CTC, err = readCTCHead(fsys, dir, name); err != nil {
		return nil, err
	}
	if v.CTC != nil && v.Tokenizer != nil {
		if err := v.CTC.Fits(v.Tokenizer.Specials().EOT, v.Model.Dims.NAudioState); err != nil {
			return nil, fmt.Errorf("open model %s: %w", name, err)
		}
	}
	if v.LM, err = readLM(fsys, dir, name, v.Tokenizer); err != nil {
		return nil, err
	}
	v.Path = name
	return v, nil
}

func openGGML(path string, opts OpenOptions) (*Variant, error) {
	g, err := formats.ReadGGMLFile(path)
	if err != nil {
		return nil, fmt.Errorf("open model %s: %w", path, err)
	}
	v, err := build(filepath.Base(path), "ggml", g.HParams.HFConfig(), g.Checkpoint, opts)
	if err != nil {
		return nil, err
	}
	v.Path = path
	return v, nil
}

// DimsFromConfig maps a Hugging Face config to model dimensions.
func DimsFromConfig(c *formats.HFConfig) whisper.Dims {
	return whisper.Dims{
		NMels: c.NumMelBins, NAudioCtx: c.MaxSourcePositions, NAudioState: c.DModel,
		NAudioHead: c.EncoderAttnHeads, NAudioLayer: c.EncoderLayers,
		NVocab: c.VocabSize, NTextCtx: c.MaxTargetPositions, NTextState: c.DModel,
		NTextHead: c.DecoderAttnHeads, NTextLayer: c.DecoderLayers,
		EncoderFFN: c.EncoderFFNDim, DecoderFFN: c.DecoderFFNDim, Activation: c.Activation(),
	}
}

// ConfigFromDims is the inverse of DimsFromConfig, for writing variants.
func ConfigFromDims(d whisper.Dims) *formats.HFConfig {
	g := formats.GGMLHParams{
		NVocab: d.NVocab, NAudioCtx: d.NAudioCtx, NAudioState: d.NAudioState, NAudioHead: d.NAudioHead,
		NAudioLayer: d.NAudioLayer, NTextCtx: d.NTextCtx, NTextState: d.NTextState, NTextHead: d.NTextHead,
		NTextLayer: d.NTextLayer, NMels: d.NMels,
	}
	c := g.HFConfig()
	if d.EncoderFFN > 0 {
		c.EncoderFFNDim = d.EncoderFFN
	}
	if d.DecoderFFN > 0 {
		c.DecoderFFNDim = d.DecoderFFN
	}
	if d.Activation != "" {
		c.ActivationFunction = d.Activation
	}
	if d.AudioHeadDim != 0 || d.TextHeadDim != 0 || d.EncoderAttention != "" || !d.Uniform() || d.GatedExperts > 0 || d.NTextState != d.NAudioState {
		c.Chorus, _ = json.Marshal(DimsChorus(d)) // plain values: cannot fail
	}
	return c
}

func build(name, format string, cfg *formats.HFConfig, ck *formats.Checkpoint, opts OpenOptions) (*Variant, error) {
	d := DimsFromConfig(cfg)
	if cfg.DModel <= 0 {
		return nil, fmt.Errorf("open model %s: config d_model %d", name, cfg.DModel)
	}
	var chorus ChorusConfig
	if len(cfg.Chorus) > 0 {
		if err := json.Unmarshal(cfg.Chorus, &chorus); err != nil {
			return nil, fmt.Errorf("open model %s: config chorus block: %w", name, err)
		}
	}
	d.AudioHeadDim, d.TextHeadDim = chorus.AudioHeadDim, chorus.TextHeadDim
	if chorus.DecoderWidth != 0 {
		if chorus.DecoderWidth < 0 {
			return nil, fmt.Errorf("open model %s: config chorus block: decoder_d_model %d", name, chorus.DecoderWidth)
		}
		d.NTextState = chorus.DecoderWidth
	}
	d.EncoderAttention = chorus.EncoderAttention
	if l := chorus.Layers; l != nil {
		d.EncoderSizes, d.DecoderSizes = l.Encoder, l.Decoder
	}
	if g := chorus.Gated; g != nil {
		d.GatedExperts, d.GateTopK = g.Experts, g.TopK
	}
	moe := len(chorus.Experts) > 0 && string(chorus.Experts) != "null"
	// A MoE variant's checkpoint also holds its routers, which the expert builder checks.
	m, err := whisper.Load(d, checkpointSource{ck}, ck.Names(), whisper.LoadOptions{F16: opts.F16, AllowUnused: moe})
	if err != nil {
		return nil, fmt.Errorf("open model %s: %w", name, err)
	}
	if err := d.CheckAlignmentHeads(cfg.AlignmentHeads); err != nil {
		return nil, fmt.Errorf("open model %s: config.json alignment_heads: %w", name, err)
	}
	v := &Variant{Name: name, Format: format, Model: m, Config: cfg, Chorus: chorus}
	if moe {
		b := registeredExperts()
		if b == nil {
			return nil, fmt.Errorf("open model %s: %w: config.json declares experts and this program has no experts support (import experts/moe)", name, ErrUnsupportedModel)
		}
		if v.Experts, err = b(v, chorus.Experts, checkpointSource{ck}); err != nil {
			return nil, fmt.Errorf("open model %s: experts: %w", name, err)
		}
	}
	if chorus.Routing != nil {
		if v.Experts == nil {
			return nil, fmt.Errorf("open model %s: config.json declares a default routing and no experts", name)
		}
		if _, err := v.Routing(RoutingChoice{}); err != nil {
			return nil, fmt.Errorf("open model %s: default routing: %w", name, err)
		}
	}
	return v, nil
}

// checkpointSource adapts a formats.Checkpoint to nn.Source.
type checkpointSource struct{ ck *formats.Checkpoint }

func (s checkpointSource) Lookup(name string) ([]int, []float32, []uint16, bool) {
	t := s.ck.Get(name)
	if t == nil {
		return nil, nil, nil, false
	}
	switch t.DType {
	case formats.F32:
		return t.Shape, t.F32, nil, true
	case formats.F16:
		return t.Shape, nil, t.F16, true
	}
	return t.Shape, t.ToF32(), nil, true
}

// Checkpoint converts a model's weights back into a checkpoint with Hugging Face names, for
// writing variants and exporting ggml.
func Checkpoint(m *whisper.Model) (*formats.Checkpoint, error) {
	ts, order := m.Tensors()
	return formats.CheckpointFromTensors(ts, order)
}

// SaveOptions tune Save.
type SaveOptions struct {
	Compress bool // write model.safetensors.zst instead of model.safetensors
	F16      bool // store weights in half precision
}

// Save writes m (and tok, when not nil) as a Hugging Face-compatible variant folder:
// config.json, model.safetensors[.zst], tokenizer files. Files are written atomically.
func Save(dir string, m *whisper.Model, cfg *formats.HFConfig, tok *tokenizer.Tokenizer, opts SaveOptions) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	if cfg == nil {
		cfg = ConfigFromDims(m.Dims)
	}
	ck, err := Checkpoint(m)
	if err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	if opts.F16 {
		for _, n := range ck.Names() {
			if t := ck.Get(n); len(t.Shape) >= 2 {
				ck.Tensors[n] = t.Convert(formats.F16)
			}
		}
		cfg.TorchDType = "float16"
	}
	if err := formats.WriteHFConfigFile(filepath.Join(dir, "config.json"), cfg); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	name := "model.safetensors"
	if opts.Compress {
		name += ".zst"
	}
	if err := formats.WriteSafetensorsFile(filepath.Join(dir, name), ck, opts.Compress); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	if tok != nil {
		if err := tok.Save(dir); err != nil {
			return fmt.Errorf("save model: tokenizer: %w", err)
		}
	}
	return nil
}

// ggmlExpressible reports dimensions whisper.cpp's hyperparameters cannot state: its header
// has one head count per stack, derives the head width as width/heads and the feed-forward
// width as 4·width, and runs softmax attention, so a model whose layers differ, whose heads
// are narrower than that, or whose FFN is not 4·width would load there with the wrong shapes
// or compute something else.
func ggmlExpressible(d whisper.Dims) error {
	switch {
	case !d.Uniform():
		return errors.New("whisper.cpp has one head count and one feed-forward width per stack; this model's layers have their own (a pruned variant)")
	case d.AudioHD()*d.NAudioHead != d.NAudioState || d.TextHD()*d.NTextHead != d.NTextState:
		return fmt.Errorf("whisper.cpp derives the head width as width/heads; this model has %d×%d encoder and %d×%d decoder heads for width %d", d.NAudioHead, d.AudioHD(), d.NTextHead, d.TextHD(), d.NAudioState)
	case (d.EncoderFFN != 0 && d.EncoderFFN != 4*d.NAudioState) || (d.DecoderFFN != 0 && d.DecoderFFN != 4*d.NTextState):
		return fmt.Errorf("whisper.cpp assumes a feed-forward width of 4·width; this model has %d/%d", d.EncoderFFN, d.DecoderFFN)
	case d.EncoderAttention == "relu":
		return errors.New("whisper.cpp supports only softmax attention; this model's encoder uses ReLU attention")
	case d.GatedExperts > 0:
		return errors.New("whisper.cpp has no gated mixture-of-experts feed-forward blocks (an upcycled variant)")
	}
	return nil
}

// ExportGGML writes m as a whisper.cpp ggml model file, with chorus's computed mel filters
// and, when tok is not nil, its ordinary tokens (whisper.cpp derives the special tokens).
func ExportGGML(path string, m *whisper.Model, tok *tokenizer.Tokenizer, f16 bool) error {
	if a := m.Dims.Activation; a != "" && a != "gelu" {
		// whisper.cpp hard-codes GELU: a ReLU variant would load there and compute nonsense.
		return fmt.Errorf("export ggml: whisper.cpp supports only GELU feed-forward layers, model uses %s", a)
	}
	if err := ggmlExpressible(m.Dims); err != nil {
		return fmt.Errorf("export ggml: %w", err)
	}
	ck, err := Checkpoint(m)
	if err != nil {
		return fmt.Errorf("export ggml: %w", err)
	}
	filters, err := mel.Filters(m.Dims.NMels)
	if err != nil {
		return fmt.Errorf("export ggml: %w", err)
	}
	g := &formats.GGMLFile{
		HParams:    formats.GGMLHParamsFromHF(ConfigFromDims(m.Dims)),
		MelFilters: formats.MelFilters{NMel: m.Dims.NMels, NFFT: len(filters) / m.Dims.NMels, Data: filters},
		Checkpoint: ck,
	}
	if tok != nil {
		for id := 0; id < tok.Size() && !tok.IsSpecial(id); id++ {
			g.Tokens = append(g.Tokens, tok.TokenBytes(id))
		}
	}
	if err := formats.WriteGGMLFile(path, g, f16); err != nil {
		return fmt.Errorf("export ggml: %w", err)
	}
	return nil
}
