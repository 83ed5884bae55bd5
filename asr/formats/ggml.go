package formats

// whisper.cpp's legacy ggml model file (ggml-*.bin), all integers little-endian int32:
//
//	magic 0x67676d6c ("ggml")
//	hparams: n_vocab n_audio_ctx n_audio_state n_audio_head n_audio_layer
//	         n_text_ctx n_text_state n_text_head n_text_layer n_mels ftype
//	mel filters: n_mel n_fft, then n_mel×n_fft float32 (row-major)
//	vocab: n_tokens, then per token: u32 length + bytes (the BPE ranks' raw bytes)
//	tensors until EOF: n_dims name_len ttype, ne[0..n_dims) (ne[0] fastest, i.e. the PyTorch
//	         shape reversed), name bytes, raw data (ttype 0 f32, 1 f16, 30 bf16, …)
//
// There is no alignment padding anywhere.
//
// ref: ggml-org/whisper.cpp @233fe1f src/whisper.cpp whisper_model_load: magic and hparams
// L1495-L1575 (ftype %= GGML_QNT_VERSION_FACTOR at L1551), mel filters L1576-L1586, vocab
// L1588-L1665, expected tensor types and shapes L1730-L1840, tensor records L1861-L1955
// (n_dims must be 0..4, the name must be known, ne[0..2] and the element count must match,
// the byte size must match the expected type; a file with no tensors loads as an empty test
// model, L1947). models/convert-pt-to-ggml.py L268-L337: the writer reshapes conv biases to
// [n, 1], keeps 1-D tensors, conv biases and positional embeddings in f32 in f16 files, and
// writes dims reversed. ggml/include/ggml.h: GGML_FILE_MAGIC, GGML_QNT_VERSION_FACTOR,
// enum ggml_type.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

const (
	ggmlMagic = 0x67676d6c
	// ggmlQntVersionFactor: quantized files store ftype + 1000·quantization_version.
	ggmlQntVersionFactor = 1000
	// maxGGMLName bounds a tensor name; real names are under 50 bytes.
	maxGGMLName = 1 << 10
	// maxGGMLToken bounds one vocabulary entry; BPE tokens are a few dozen bytes at most.
	maxGGMLToken = 1 << 16
)

// ggml_type ids a tensor record may carry.
const (
	ggmlTypeF32  = 0
	ggmlTypeF16  = 1
	ggmlTypeBF16 = 30
)

// ggmlTypeNames names the other ggml_type values, so a quantized file gets a precise error.
var ggmlTypeNames = map[int32]string{
	2: "q4_0", 3: "q4_1", 6: "q5_0", 7: "q5_1", 8: "q8_0", 9: "q8_1", 10: "q2_K", 11: "q3_K",
	12: "q4_K", 13: "q5_K", 14: "q6_K", 15: "q8_K", 16: "iq2_xxs", 17: "iq2_xs", 18: "iq3_xxs",
	19: "iq1_s", 20: "iq4_nl", 21: "iq3_s", 22: "iq2_s", 23: "iq4_xs", 24: "i8", 25: "i16",
	26: "i32", 27: "i64", 28: "f64", 29: "iq1_m", 34: "tq1_0", 35: "tq2_0", 39: "mxfp4",
	40: "nvfp4", 41: "q1_0", 42: "q2_0",
}

// GGMLHParams are the hyperparameters of a ggml file's header.
type GGMLHParams struct {
	NVocab, NAudioCtx, NAudioState, NAudioHead, NAudioLayer int
	NTextCtx, NTextState, NTextHead, NTextLayer, NMels      int
	// FType is the file's weight type with the quantization version removed, as whisper.cpp
	// reads it (0 all f32, 1 mostly f16, 24 mostly bf16, others quantized); QuantVersion is
	// the stored ftype / 1000.
	FType, QuantVersion int
}

// MelFilters is the mel filterbank whisper.cpp computes its log-mel spectrogram with: NMel
// rows of NFFT (= n_fft/2 + 1, 201 for Whisper) weights, row-major.
type MelFilters struct {
	NMel, NFFT int
	Data       []float32
}

// GGMLFile is a whole ggml model file. Checkpoint tensors carry Hugging Face names and
// PyTorch-order shapes (see HFToOpenAI), whatever the file calls them.
type GGMLFile struct {
	HParams    GGMLHParams
	MelFilters MelFilters
	// Tokens are the vocabulary's raw bytes by id. whisper.cpp files list the ordinary BPE
	// tokens only (50256 or 50257); the special tokens follow from n_vocab.
	Tokens     [][]byte
	Checkpoint *Checkpoint
}

// validate checks what whisper.cpp assumes of the hyperparameters.
func (h GGMLHParams) validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"n_vocab", h.NVocab}, {"n_audio_ctx", h.NAudioCtx}, {"n_audio_state", h.NAudioState},
		{"n_audio_head", h.NAudioHead}, {"n_audio_layer", h.NAudioLayer}, {"n_text_ctx", h.NTextCtx},
		{"n_text_state", h.NTextState}, {"n_text_head", h.NTextHead}, {"n_text_layer", h.NTextLayer},
		{"n_mels", h.NMels},
	} {
		if f.v <= 0 || f.v > math.MaxInt32 {
			return fmt.Errorf("hparams %s = %d, must be in [1, 2^31)", f.name, f.v)
		}
	}
	// whisper.cpp asserts this and sizes the cross-attention weights by n_text_state alone.
	if h.NTextState != h.NAudioState {
		return fmt.Errorf("hparams n_text_state %d != n_audio_state %d (whisper.cpp needs equal widths)", h.NTextState, h.NAudioState)
	}
	if h.NAudioState%h.NAudioHead != 0 || h.NTextState%h.NTextHead != 0 {
		return fmt.Errorf("hparams: state widths %d/%d not divisible by heads %d/%d", h.NAudioState, h.NTextState, h.NAudioHead, h.NTextHead)
	}
	return nil
}

// tensorCount is how many tensors whisper.cpp loads for these hparams: 11 outside the
// stacks, 15 per encoder block, 24 per decoder block (key projections have no bias).
func (h GGMLHParams) tensorCount() int {
	return 11 + 15*h.NAudioLayer + 24*h.NTextLayer
}

// ggmlExpect returns the ne (fastest dimension first) whisper.cpp allocates for an OpenAI
// tensor name, or false if whisper.cpp has no such tensor. It parses the name rather than
// building a table, so a header claiming 2^31 layers costs nothing.
func (h GGMLHParams) ggmlExpect(name string) ([]int, bool) {
	a, t := h.NAudioState, h.NTextState
	switch name {
	case "encoder.positional_embedding":
		return []int{a, h.NAudioCtx}, true
	case "encoder.conv1.weight":
		return []int{3, h.NMels, a}, true
	case "encoder.conv2.weight":
		return []int{3, a, a}, true
	case "encoder.conv1.bias", "encoder.conv2.bias":
		return []int{1, a}, true
	case "encoder.ln_post.weight", "encoder.ln_post.bias":
		return []int{a}, true
	case "decoder.positional_embedding":
		return []int{t, h.NTextCtx}, true
	case "decoder.token_embedding.weight":
		return []int{t, h.NVocab}, true
	case "decoder.ln.weight", "decoder.ln.bias":
		return []int{t}, true
	}
	stack, rest, _ := strings.Cut(name, ".")
	rest, ok := strings.CutPrefix(rest, "blocks.")
	if !ok {
		return nil, false
	}
	idx, part, param, ok := splitLayerName(rest)
	if !ok {
		return nil, false
	}
	layer, _ := layerIndex(idx)
	var s, layers int
	switch stack {
	case "encoder":
		s, layers = a, h.NAudioLayer
	case "decoder":
		s, layers = t, h.NTextLayer
	default:
		return nil, false
	}
	if layer >= layers {
		return nil, false
	}
	matrix, vector := []int{s, s}, []int{s}
	if strings.HasPrefix(part, "cross_attn") && stack != "decoder" {
		return nil, false
	}
	switch part {
	case "attn_ln", "cross_attn_ln", "mlp_ln":
		return vector, true
	case "mlp.0":
		if param == "weight" {
			return []int{s, 4 * s}, true
		}
		return []int{4 * s}, true
	case "mlp.2":
		if param == "weight" {
			return []int{4 * s, s}, true
		}
		return vector, true
	case "attn.query", "attn.value", "attn.out", "cross_attn.query", "cross_attn.value", "cross_attn.out":
		if param == "weight" {
			return matrix, true
		}
		return vector, true
	case "attn.key", "cross_attn.key": // Whisper's key projections have no bias
		if param == "weight" {
			return matrix, true
		}
	}
	return nil, false
}

// ggmlForcedF32 reports the tensors whisper.cpp keeps in f32 even in f16 files besides the
// 1-D ones (convert-pt-to-ggml.py L311-L318).
func ggmlForcedF32(openaiName string) bool {
	switch openaiName {
	case "encoder.conv1.bias", "encoder.conv2.bias", "encoder.positional_embedding", "decoder.positional_embedding":
		return true
	}
	return false
}

// isConvBias reports the tensors stored as [n, 1] in ggml files but [n] in HF checkpoints.
func isConvBias(openaiName string) bool {
	return openaiName == "encoder.conv1.bias" || openaiName == "encoder.conv2.bias"
}

// ggmlReader reads little-endian int32 fields and names the field in errors.
type ggmlReader struct{ r *bufio.Reader }

func (g ggmlReader) i32(field string) (int32, error) {
	var b [4]byte
	if _, err := io.ReadFull(g.r, b[:]); err != nil {
		return 0, fmt.Errorf("%s: %w", field, unexpected(err))
	}
	return int32(binary.LittleEndian.Uint32(b[:])), nil
}

// count reads an int32 that must be non-negative.
func (g ggmlReader) count(field string) (int, error) {
	v, err := g.i32(field)
	if err != nil {
		return 0, err
	}
	if v < 0 {
		return 0, fmt.Errorf("%s = %d, must not be negative", field, v)
	}
	return int(v), nil
}

// ReadGGML reads a whisper.cpp ggml model file. It checks every tensor's name and shape
// against the header as whisper.cpp does and returns the weights under Hugging Face names in
// PyTorch shape order, keeping f16/bf16 tensors undecoded. Quantized tensors are rejected
// with ErrUnsupportedDType. Like whisper.cpp it accepts a file with no tensors at all.
func ReadGGML(r io.Reader) (*GGMLFile, error) {
	f, err := readGGML(ggmlReader{bufio.NewReaderSize(r, 1<<16)})
	if err != nil {
		return nil, fmt.Errorf("ggml: %w", err)
	}
	return f, nil
}

// ReadGGMLFile reads a ggml model file from disk.
func ReadGGMLFile(path string) (*GGMLFile, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	f, err := ReadGGML(fh)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

func readGGML(g ggmlReader) (*GGMLFile, error) {
	magic, err := g.i32("magic")
	if err != nil {
		return nil, err
	}
	if uint32(magic) != ggmlMagic {
		return nil, fmt.Errorf("bad magic %#08x (want %#08x)", uint32(magic), ggmlMagic)
	}
	out := &GGMLFile{Checkpoint: NewCheckpoint()}
	h := &out.HParams
	for _, f := range []struct {
		name string
		dst  *int
	}{
		{"n_vocab", &h.NVocab}, {"n_audio_ctx", &h.NAudioCtx}, {"n_audio_state", &h.NAudioState},
		{"n_audio_head", &h.NAudioHead}, {"n_audio_layer", &h.NAudioLayer}, {"n_text_ctx", &h.NTextCtx},
		{"n_text_state", &h.NTextState}, {"n_text_head", &h.NTextHead}, {"n_text_layer", &h.NTextLayer},
		{"n_mels", &h.NMels},
	} {
		v, err := g.i32("hparams " + f.name)
		if err != nil {
			return nil, err
		}
		*f.dst = int(v)
	}
	ftype, err := g.count("hparams ftype")
	if err != nil {
		return nil, err
	}
	h.FType, h.QuantVersion = ftype%ggmlQntVersionFactor, ftype/ggmlQntVersionFactor
	if err := h.validate(); err != nil {
		return nil, err
	}

	m := &out.MelFilters
	if m.NMel, err = g.count("mel filters n_mel"); err != nil {
		return nil, err
	}
	if m.NFFT, err = g.count("mel filters n_fft"); err != nil {
		return nil, err
	}
	n := int64(m.NMel) * int64(m.NFFT) // both < 2^31: the product fits, ×4 may not
	if n > math.MaxInt64/4 {
		return nil, fmt.Errorf("mel filters %d×%d too large", m.NMel, m.NFFT)
	}
	raw, err := readBytes(g.r, n*4)
	if err != nil {
		return nil, fmt.Errorf("mel filters (%d×%d): %w", m.NMel, m.NFFT, err)
	}
	m.Data = decodeF32(raw)

	nTokens, err := g.count("vocab n_tokens")
	if err != nil {
		return nil, err
	}
	out.Tokens = make([][]byte, 0, min(nTokens, 1<<16)) // grows with the tokens actually read
	for i := range nTokens {
		v, err := g.i32("length")
		if err != nil {
			return nil, fmt.Errorf("vocab token %d: %w", i, err)
		}
		// whisper.cpp reads the length as uint32.
		if l := uint32(v); l > maxGGMLToken {
			return nil, fmt.Errorf("vocab token %d length %d exceeds %d", i, l, maxGGMLToken)
		}
		tok, err := readBytes(g.r, int64(uint32(v)))
		if err != nil {
			return nil, fmt.Errorf("vocab token %d: %w", i, err)
		}
		out.Tokens = append(out.Tokens, tok)
	}

	want := h.tensorCount()
	for {
		t, err := readGGMLTensor(g, *h)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := out.Checkpoint.Add(t); err != nil {
			return nil, err
		}
	}
	if got := len(out.Checkpoint.Order); got != 0 && got != want {
		return nil, fmt.Errorf("file holds %d tensors, whisper.cpp needs %d: %s", got, want, firstMissing(*h, out.Checkpoint))
	}
	return out, nil
}

// firstMissing names the first tensor whisper.cpp expects that c lacks. The walk stops at the
// first gap, so it is short even when the header claims many layers.
func firstMissing(h GGMLHParams, c *Checkpoint) string {
	try := func(oa string) bool {
		hf, _ := OpenAIToHF(oa)
		return c.Tensors[hf] == nil
	}
	for _, p := range hfGlobal {
		if try(p[1]) {
			return "missing " + p[1]
		}
	}
	for _, stack := range []struct {
		name   string
		layers int
	}{{"encoder", h.NAudioLayer}, {"decoder", h.NTextLayer}} {
		for i := 0; i < stack.layers; i++ {
			for _, p := range hfLayerPart {
				if p.crossOnly && stack.name == "encoder" {
					continue
				}
				for _, param := range []string{"weight", "bias"} {
					oa := fmt.Sprintf("%s.blocks.%d.%s.%s", stack.name, i, p.openai, param)
					if _, ok := h.ggmlExpect(oa); ok && try(oa) {
						return "missing " + oa
					}
				}
			}
		}
	}
	return "no tensor missing"
}

// readGGMLTensor reads one tensor record; io.EOF means the file ended cleanly before it.
func readGGMLTensor(g ggmlReader, h GGMLHParams) (*Tensor, error) {
	var first [4]byte
	if k, err := io.ReadFull(g.r, first[:]); k == 0 && err == io.EOF {
		return nil, io.EOF
	} else if err != nil {
		return nil, fmt.Errorf("tensor record: %w", unexpected(err))
	}
	nDims := int32(binary.LittleEndian.Uint32(first[:]))
	nameLen, err := g.count("tensor name length")
	if err != nil {
		return nil, err
	}
	ttype, err := g.i32("tensor type")
	if err != nil {
		return nil, err
	}
	if nDims < 0 || nDims > 4 {
		return nil, fmt.Errorf("tensor n_dims %d, want 0..4", nDims)
	}
	if nameLen > maxGGMLName {
		return nil, fmt.Errorf("tensor name length %d exceeds %d", nameLen, maxGGMLName)
	}
	ne := make([]int, nDims)
	for i := range ne {
		if ne[i], err = g.count("tensor dimension"); err != nil {
			return nil, err
		}
	}
	nameBytes, err := readBytes(g.r, int64(nameLen))
	if err != nil {
		return nil, fmt.Errorf("tensor name: %w", err)
	}
	name := string(nameBytes)
	hf, ok := OpenAIToHF(name)
	expect, known := h.ggmlExpect(name)
	if !ok || !known {
		return nil, fmt.Errorf("unknown tensor %q", name)
	}
	if !sameNE(ne, expect) {
		return nil, fmt.Errorf("tensor %q: ne %v, whisper.cpp expects %v", name, ne, expect)
	}
	var dt DType
	switch ttype {
	case ggmlTypeF32:
		dt = F32
	case ggmlTypeF16:
		dt = F16
	case ggmlTypeBF16:
		dt = BF16
	default:
		tn, ok := ggmlTypeNames[ttype]
		if !ok {
			tn = fmt.Sprintf("type %d", ttype)
		}
		return nil, fmt.Errorf("tensor %q: %w ggml %s (chorus imports f32, f16 and bf16 files)", name, ErrUnsupportedDType, tn)
	}
	n, err := numel(ne)
	if err != nil || n > math.MaxInt/4 {
		return nil, fmt.Errorf("tensor %q: ne %v too large", name, ne)
	}
	raw, err := readBytes(g.r, int64(n*dt.Size()))
	if err != nil {
		return nil, fmt.Errorf("tensor %q data: %w", name, err)
	}
	// expect, not ne: equal up to trailing 1s, and without them the shape is the PyTorch one.
	t := &Tensor{Name: hf, DType: dt, Shape: hfShape(name, expect)}
	if dt == F32 {
		t.F32 = decodeF32(raw)
	} else {
		t.F16 = decodeU16(raw)
	}
	return t, nil
}

// sameNE compares ggml dimensions as whisper.cpp does, trailing 1s being implicit.
func sameNE(a, b []int) bool {
	for i := 0; i < 4; i++ {
		x, y := 1, 1
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return false
		}
	}
	return true
}

// hfShape turns ggml ne into the Hugging Face (PyTorch) shape: reversed, and conv biases
// [n, 1] squeezed back to [n].
func hfShape(openaiName string, ne []int) []int {
	if isConvBias(openaiName) {
		return []int{ne[1]}
	}
	shape := make([]int, len(ne))
	for i, d := range ne {
		shape[len(ne)-1-i] = d
	}
	return shape
}

// ggmlNE is the inverse of hfShape.
func ggmlNE(openaiName string, shape []int) []int {
	if isConvBias(openaiName) && len(shape) == 1 {
		return []int{1, shape[0]}
	}
	ne := make([]int, len(shape))
	for i, d := range shape {
		ne[len(shape)-1-i] = d
	}
	return ne
}

// ggmlPlan is one tensor as it will be written.
type ggmlPlan struct {
	name  string // OpenAI name
	ne    []int
	ttype int32
	t     *Tensor // converted to the stored type
}

// WriteGGML writes f as a whisper.cpp ggml file: f16 selects ftype 1 (2-D weights in f16;
// biases, layer norms, positional embeddings and conv biases in f32, as whisper.cpp's
// converters do), otherwise everything is f32. HParams.FType is ignored. Every tensor is
// checked against what whisper.cpp will allocate before anything is written, so an
// architecture it cannot load (feed-forward width other than 4×state, unequal encoder and
// decoder widths, chorus-only tensors) fails here with the tensor named. HF's tied
// proj_out.weight is skipped. A checkpoint without tensors gives a header-only file, which
// whisper.cpp loads as an empty test model (like its models/for-tests-*.bin). When Tokens is nil, placeholder tokens "[_TOK_<id>]" are written
// for the ordinary-token ids, which is all whisper.cpp needs to load and run the model.
func WriteGGML(w io.Writer, f *GGMLFile, f16 bool) error {
	if err := writeGGML(w, f, f16); err != nil {
		return fmt.Errorf("ggml: %w", err)
	}
	return nil
}

// WriteGGMLFile writes a ggml file atomically (see WriteSafetensorsFile).
func WriteGGMLFile(path string, f *GGMLFile, f16 bool) error {
	return WriteFileAtomic(path, func(w io.Writer) error { return WriteGGML(w, f, f16) })
}

func writeGGML(w io.Writer, f *GGMLFile, f16 bool) error {
	h := f.HParams
	if err := h.validate(); err != nil {
		return err
	}
	m := f.MelFilters
	if m.NMel != h.NMels || m.NFFT <= 0 || len(m.Data) != m.NMel*m.NFFT {
		return fmt.Errorf("mel filters %d×%d with %d values, want %d×n_fft (n_mels rows)", m.NMel, m.NFFT, len(m.Data), h.NMels)
	}
	tokens := f.Tokens
	if tokens == nil {
		tokens = placeholderTokens(h.NVocab)
	}
	if len(tokens) > h.NVocab {
		return fmt.Errorf("vocab has %d tokens, more than n_vocab %d", len(tokens), h.NVocab)
	}
	if f.Checkpoint == nil {
		return errors.New("no checkpoint")
	}
	if err := f.Checkpoint.Validate(); err != nil {
		return err
	}
	var plan []ggmlPlan
	for _, hf := range f.Checkpoint.Names() {
		if hf == "proj_out.weight" {
			continue // tied to the token embedding; whisper.cpp has no such tensor
		}
		oa, ok := HFToOpenAI(hf)
		if !ok {
			return fmt.Errorf("tensor %q has no whisper.cpp counterpart", hf)
		}
		t := f.Checkpoint.Tensors[hf]
		ne := ggmlNE(oa, t.Shape)
		expect, ok := h.ggmlExpect(oa)
		if !ok {
			return fmt.Errorf("tensor %q (%s) is not part of a whisper.cpp model with these hparams", hf, oa)
		}
		if !sameNE(ne, expect) || len(ne) > 4 {
			return fmt.Errorf("tensor %q: shape %v, whisper.cpp expects %v", hf, t.Shape, hfShape(oa, expect))
		}
		p := ggmlPlan{name: oa, ne: ne, ttype: ggmlTypeF32}
		if f16 && len(ne) >= 2 && !ggmlForcedF32(oa) {
			p.ttype = ggmlTypeF16
			p.t = t.Convert(F16)
		} else {
			p.t = t.Convert(F32)
		}
		plan = append(plan, p)
	}
	if len(plan) != 0 && len(plan) != h.tensorCount() {
		c := NewCheckpoint()
		for _, p := range plan {
			hf, _ := OpenAIToHF(p.name)
			c.Tensors[hf] = p.t
		}
		return fmt.Errorf("checkpoint has %d whisper.cpp tensors, need %d: %s", len(plan), h.tensorCount(), firstMissing(h, c))
	}

	bw := bufio.NewWriterSize(w, 1<<20)
	i32 := func(v int) { bw.Write(binary.LittleEndian.AppendUint32(nil, uint32(int32(v)))) }
	i32(ggmlMagic)
	ftype := 0
	if f16 {
		ftype = 1
	}
	for _, v := range []int{h.NVocab, h.NAudioCtx, h.NAudioState, h.NAudioHead, h.NAudioLayer,
		h.NTextCtx, h.NTextState, h.NTextHead, h.NTextLayer, h.NMels, ftype} {
		i32(v)
	}
	i32(m.NMel)
	i32(m.NFFT)
	if err := writeTensorData(bw, NewF32("mel filters", nil, m.Data)); err != nil {
		return err
	}
	i32(len(tokens))
	for i, tok := range tokens {
		if len(tok) > maxGGMLToken {
			return fmt.Errorf("vocab token %d: %d bytes exceeds %d", i, len(tok), maxGGMLToken)
		}
		i32(len(tok))
		bw.Write(tok)
	}
	for _, p := range plan {
		i32(len(p.ne))
		i32(len(p.name))
		i32(int(p.ttype))
		for _, d := range p.ne {
			i32(d)
		}
		bw.WriteString(p.name)
		if err := writeTensorData(bw, p.t); err != nil {
			return fmt.Errorf("tensor %q: %w", p.name, err)
		}
	}
	return bw.Flush()
}

// placeholderTokens stands in for a missing tokenizer: one distinct entry per ordinary token
// id (whisper.cpp's files list 50256 for English-only vocabularies, 50257 for multilingual
// ones, src/whisper.cpp whisper_vocab; special tokens are derived from n_vocab on load).
func placeholderTokens(nVocab int) [][]byte {
	n := 50256
	if nVocab >= 51865 {
		n = 50257
	}
	n = min(n, nVocab)
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, "[_TOK_%d]", i)
	}
	return out
}

// GGMLHParamsFromHF maps a Hugging Face config to ggml hyperparameters as
// convert-h5-to-ggml.py does (L119-L130), with n_text_ctx = max_target_positions, the row
// count of the decoder's positional embedding. FType is left 0.
func GGMLHParamsFromHF(c *HFConfig) GGMLHParams {
	return GGMLHParams{
		NVocab: c.VocabSize, NAudioCtx: c.MaxSourcePositions, NAudioState: c.DModel,
		NAudioHead: c.EncoderAttnHeads, NAudioLayer: c.EncoderLayers,
		NTextCtx: c.MaxTargetPositions, NTextState: c.DModel, NTextHead: c.DecoderAttnHeads,
		NTextLayer: c.DecoderLayers, NMels: c.NumMelBins,
	}
}

// HFConfig returns the Hugging Face config of a model with these hyperparameters: feed-forward
// width 4×state and GELU (all whisper.cpp supports), and, for Whisper-sized vocabularies,
// the special token ids of OpenAI's tokenizer layout (English-only: <|endoftext|> 50256,
// <|startoftranscript|> 50257; multilingual: 50257 and 50258), as in the upstream configs.
func (h GGMLHParams) HFConfig() *HFConfig {
	c := &HFConfig{
		ModelType: "whisper", Architectures: []string{"WhisperForConditionalGeneration"},
		VocabSize: h.NVocab, NumMelBins: h.NMels, DModel: h.NAudioState,
		EncoderLayers: h.NAudioLayer, EncoderAttnHeads: h.NAudioHead, EncoderFFNDim: 4 * h.NAudioState,
		DecoderLayers: h.NTextLayer, DecoderAttnHeads: h.NTextHead, DecoderFFNDim: 4 * h.NTextState,
		MaxSourcePositions: h.NAudioCtx, MaxTargetPositions: h.NTextCtx,
		ActivationFunction: "gelu",
	}
	switch h.FType {
	case 0:
		c.TorchDType = "float32"
	case 1:
		c.TorchDType = "float16"
	case 24:
		c.TorchDType = "bfloat16"
	}
	if h.NVocab >= 51864 {
		eot, sot := 50256, 50257
		if h.NVocab >= 51865 {
			eot, sot = 50257, 50258
		}
		c.EOSTokenID, c.PadTokenID = ptrInt(eot), ptrInt(eot)
		c.BOSTokenID, c.DecoderStartTokenID = ptrInt(50257), ptrInt(sot)
		c.BeginSuppressTokens = []int{220, eot}
	}
	return c
}

func ptrInt(v int) *int { return &v }
