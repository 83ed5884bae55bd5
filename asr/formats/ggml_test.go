package formats

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chorus-asr/chorus/asr/models/whisper"
)

func hparamsOf(d whisper.Dims) GGMLHParams {
	return GGMLHParams{
		NVocab: d.NVocab, NAudioCtx: d.NAudioCtx, NAudioState: d.NAudioState, NAudioHead: d.NAudioHead,
		NAudioLayer: d.NAudioLayer, NTextCtx: d.NTextCtx, NTextState: d.NTextState, NTextHead: d.NTextHead,
		NTextLayer: d.NTextLayer, NMels: d.NMels,
	}
}

// testMel is a deterministic stand-in filterbank (values only need to survive the trip).
func testMel(nMel int) MelFilters {
	m := MelFilters{NMel: nMel, NFFT: 201, Data: make([]float32, nMel*201)}
	for i := range m.Data {
		m.Data[i] = float32(i%97) / 97
	}
	return m
}

func testGGMLFile(t testing.TB, d whisper.Dims, tokens [][]byte) *GGMLFile {
	return &GGMLFile{HParams: hparamsOf(d), MelFilters: testMel(d.NMels), Tokens: tokens, Checkpoint: randomCheckpoint(t, d, 3)}
}

func writeGGMLBytes(t testing.TB, f *GGMLFile, f16 bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteGGML(&buf, f, f16); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// whisperCppType is the type whisper.cpp's loader allocates for each tensor (src/whisper.cpp
// whisper_model_load): wtype for attention/MLP weights and the token embedding, vtype (f16
// unless the file is f32) for conv kernels, f32 for everything else.
func whisperCppType(openaiName string, f16 bool) DType {
	if !f16 {
		return F32
	}
	switch {
	case strings.HasSuffix(openaiName, "conv1.weight"), strings.HasSuffix(openaiName, "conv2.weight"),
		openaiName == "decoder.token_embedding.weight":
		return F16
	case strings.Contains(openaiName, ".blocks.") && strings.HasSuffix(openaiName, ".weight") &&
		!strings.Contains(openaiName, "_ln."):
		return F16
	}
	return F32
}

func TestGGMLRoundTrip(t *testing.T) {
	for _, f16 := range []bool{false, true} {
		t.Run(fmt.Sprintf("f16=%v", f16), func(t *testing.T) {
			tokens := [][]byte{[]byte("!"), {}, []byte(" the"), {0xff, 0x00}}
			in := testGGMLFile(t, smallDims, tokens)
			data := writeGGMLBytes(t, in, f16)
			out, err := ReadGGML(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			wantH := in.HParams
			if f16 {
				wantH.FType = 1
			}
			if out.HParams != wantH {
				t.Fatalf("hparams %+v, want %+v", out.HParams, wantH)
			}
			if out.MelFilters.NMel != in.MelFilters.NMel || out.MelFilters.NFFT != 201 ||
				!equalF32(out.MelFilters.Data, in.MelFilters.Data) {
				t.Fatal("mel filters changed")
			}
			if len(out.Tokens) != len(tokens) {
				t.Fatalf("%d tokens, want %d", len(out.Tokens), len(tokens))
			}
			for i := range tokens {
				if !bytes.Equal(out.Tokens[i], tokens[i]) {
					t.Fatalf("token %d = %q, want %q", i, out.Tokens[i], tokens[i])
				}
			}
			// Each tensor comes back under its HF name and shape, in the type whisper.cpp
			// uses, holding exactly the (rounded) original values.
			want := NewCheckpoint()
			for _, n := range in.Checkpoint.Names() {
				oa, _ := HFToOpenAI(n)
				want.Add(in.Checkpoint.Tensors[n].Convert(whisperCppType(oa, f16)))
			}
			sameCheckpoint(t, out.Checkpoint, want)
			if !equalStrings(out.Checkpoint.Order, in.Checkpoint.Order) {
				t.Fatal("tensor order not kept")
			}
			// Writing what was read reproduces the file byte for byte.
			if again := writeGGMLBytes(t, out, f16); !bytes.Equal(again, data) {
				t.Fatal("rewrite differs")
			}
		})
	}
}

func equalF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// Walks an f16 file with plain binary reads, independently of ReadGGML, and checks every
// record against whisper.cpp's expectations: reversed dims, [1, n] conv biases, the f32/f16
// split of convert-pt-to-ggml.py, names, no padding, nothing after the last tensor.
func TestGGMLLayout(t *testing.T) {
	in := testGGMLFile(t, smallDims, nil)
	data := writeGGMLBytes(t, in, true)
	r := bytes.NewReader(data)
	i32 := func() int32 {
		var v int32
		if err := binary.Read(r, binary.LittleEndian, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if m := uint32(i32()); m != 0x67676d6c {
		t.Fatalf("magic %#x", m)
	}
	h := in.HParams
	for i, want := range []int{h.NVocab, h.NAudioCtx, h.NAudioState, h.NAudioHead, h.NAudioLayer,
		h.NTextCtx, h.NTextState, h.NTextHead, h.NTextLayer, h.NMels, 1} {
		if got := i32(); int(got) != want {
			t.Fatalf("hparam %d = %d, want %d", i, got, want)
		}
	}
	if nm, nf := i32(), i32(); nm != 16 || nf != 201 {
		t.Fatalf("mel header %d×%d", nm, nf)
	}
	r.Seek(16*201*4, io.SeekCurrent)
	// No tokenizer: placeholders for the ordinary ids of a 300-token vocabulary.
	if n := i32(); n != 300 {
		t.Fatalf("%d placeholder tokens, want 300", n)
	}
	for i := 0; i < 300; i++ {
		tok := make([]byte, i32())
		io.ReadFull(r, tok)
		if want := fmt.Sprintf("[_TOK_%d]", i); string(tok) != want {
			t.Fatalf("token %d = %q, want %q", i, tok, want)
		}
	}
	e, x := h.NAudioState, h.NTextState
	wantNE := map[string][]int{
		"encoder.positional_embedding":        {e, h.NAudioCtx},
		"encoder.conv1.weight":                {3, h.NMels, e},
		"encoder.conv1.bias":                  {1, e},
		"encoder.conv2.weight":                {3, e, e},
		"encoder.conv2.bias":                  {1, e},
		"encoder.blocks.1.mlp.0.weight":       {e, 4 * e},
		"encoder.blocks.1.mlp.0.bias":         {4 * e},
		"encoder.blocks.1.mlp.2.weight":       {4 * e, e},
		"encoder.blocks.0.attn.key.weight":    {e, e},
		"decoder.token_embedding.weight":      {x, h.NVocab},
		"decoder.positional_embedding":        {x, h.NTextCtx},
		"decoder.blocks.1.cross_attn_ln.bias": {x},
		"decoder.ln.weight":                   {x},
	}
	seen := 0
	for r.Len() > 0 {
		nDims, nameLen, ttype := i32(), i32(), i32()
		ne := make([]int, nDims)
		for i := range ne {
			ne[i] = int(i32())
		}
		name := make([]byte, nameLen)
		io.ReadFull(r, name)
		oa := string(name)
		hf, ok := OpenAIToHF(oa)
		src := in.Checkpoint.Tensors[hf]
		if !ok || src == nil {
			t.Fatalf("record %q is not a checkpoint tensor", oa)
		}
		wantType := int32(0)
		if whisperCppType(oa, true) == F16 {
			wantType = 1
		}
		if ttype != wantType {
			t.Fatalf("%s: ttype %d, want %d", oa, ttype, wantType)
		}
		if w, ok := wantNE[oa]; ok && !equalInts(ne, w) {
			t.Fatalf("%s: ne %v, want %v", oa, ne, w)
		}
		if numelOf(ne) != src.Numel() {
			t.Fatalf("%s: ne %v holds %d values, tensor has %d", oa, ne, numelOf(ne), src.Numel())
		}
		size := 4
		if ttype == 1 {
			size = 2
		}
		raw := make([]byte, numelOf(ne)*size)
		if _, err := io.ReadFull(r, raw); err != nil {
			t.Fatalf("%s: %v", oa, err)
		}
		// The first element is the PyTorch tensor's first element (same memory order).
		first := src.F32[0]
		if ttype == 1 {
			if got := binary.LittleEndian.Uint16(raw); got != F32ToF16(first) {
				t.Fatalf("%s[0] = %#04x, want %#04x", oa, got, F32ToF16(first))
			}
		} else if got := math.Float32frombits(binary.LittleEndian.Uint32(raw)); got != first {
			t.Fatalf("%s[0] = %v, want %v", oa, got, first)
		}
		seen++
	}
	if seen != h.tensorCount() || seen != len(in.Checkpoint.Tensors) {
		t.Fatalf("%d records, want %d", seen, h.tensorCount())
	}
}

func numelOf(ne []int) int {
	n := 1
	for _, d := range ne {
		n *= d
	}
	return n
}

// A pinned tiny file: any change to the byte layout shows up here.
func TestGGMLGolden(t *testing.T) {
	d := whisper.Dims{NMels: 2, NAudioCtx: 2, NAudioState: 4, NAudioHead: 1, NAudioLayer: 1,
		NVocab: 5, NTextCtx: 3, NTextState: 4, NTextHead: 2, NTextLayer: 1}
	f := &GGMLFile{HParams: hparamsOf(d), MelFilters: MelFilters{NMel: 2, NFFT: 3, Data: []float32{0, 0.5, 1, 1, 0.5, 0}},
		Tokens: [][]byte{[]byte("a"), []byte("bc")}, Checkpoint: randomCheckpoint(t, d, 1)}
	data := writeGGMLBytes(t, f, true)
	golden(t, "tiny.f16.ggml", data)
	back, err := ReadGGML(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Checkpoint.Tensors) != f.HParams.tensorCount() {
		t.Fatalf("%d tensors", len(back.Checkpoint.Tensors))
	}
}

func TestGGMLTinyDims(t *testing.T) {
	if testing.Short() {
		t.Skip("whisper tiny round trip (75 MB) skipped in -short")
	}
	in := testGGMLFile(t, whisper.Tiny, nil)
	data := writeGGMLBytes(t, in, true)
	out, err := ReadGGML(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Tokens) != 50257 || string(out.Tokens[50256]) != "[_TOK_50256]" {
		t.Fatalf("%d placeholder tokens", len(out.Tokens))
	}
	emb := out.Checkpoint.Get("model.decoder.embed_tokens.weight")
	if emb.DType != F16 || !equalInts(emb.Shape, []int{51865, 384}) {
		t.Fatalf("token embedding %v%v", emb.DType, emb.Shape)
	}
	src := in.Checkpoint.Get("model.decoder.embed_tokens.weight").F32
	for i, h := range emb.F16 {
		if h != F32ToF16(src[i]) {
			t.Fatalf("embedding[%d] = %#04x, want %#04x", i, h, F32ToF16(src[i]))
		}
	}
}

// whisper.cpp itself loads an exported file. Set CHORUS_WHISPER_BENCH to a whisper-bench
// binary (e.g. /work/wcpp/src/build-default/bin/whisper-bench) to run it.
func TestWhisperCppLoadsExport(t *testing.T) {
	bench := os.Getenv("CHORUS_WHISPER_BENCH")
	if bench == "" {
		t.Skip("CHORUS_WHISPER_BENCH not set")
	}
	for _, f16 := range []bool{true, false} {
		t.Run(fmt.Sprintf("f16=%v", f16), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ggml-chorus-tiny.bin")
			if err := WriteGGMLFile(path, testGGMLFile(t, whisper.Tiny, nil), f16); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bench, "-m", path, "-t", "2").CombinedOutput()
			t.Logf("%s", out)
			if err != nil {
				t.Fatalf("whisper-bench: %v", err)
			}
			ftype := "ftype         = 0"
			if f16 {
				ftype = "ftype         = 1"
			}
			for _, want := range []string{"n_vocab       = 51865", ftype, "type          = 1 (tiny)", "model size", "encode time"} {
				if !bytes.Contains(out, []byte(want)) {
					t.Fatalf("whisper-bench output lacks %q", want)
				}
			}
		})
	}
}

// ggmlBytes assembles a file from int32s, raw strings and float32 runs.
type ggmlBytes struct{ b []byte }

func (g *ggmlBytes) i32(v ...int) *ggmlBytes {
	for _, x := range v {
		g.b = binary.LittleEndian.AppendUint32(g.b, uint32(int32(x)))
	}
	return g
}
func (g *ggmlBytes) str(s string) *ggmlBytes { g.b = append(g.b, s...); return g }
func (g *ggmlBytes) zeros(n int) *ggmlBytes  { g.b = append(g.b, make([]byte, n)...); return g }

// header writes magic, smallDims hparams (with the given overrides), a 1×1 mel bank and one
// token.
func header(over map[int]int) *ggmlBytes {
	h := []int{300, 24, 64, 2, 2, 16, 64, 2, 2, 16, 1}
	for i, v := range over {
		h[i] = v
	}
	g := (&ggmlBytes{}).i32(0x67676d6c).i32(h...)
	return g.i32(1, 1).zeros(4).i32(1, 1).str("x")
}

func TestReadGGMLMalformed(t *testing.T) {
	valid := writeGGMLBytes(t, testGGMLFile(t, smallDims, [][]byte{[]byte("x")}), false)
	for _, c := range []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "magic: unexpected EOF"},
		{"bad magic", (&ggmlBytes{}).i32(0x46554747).b, "bad magic"},
		{"truncated hparams", (&ggmlBytes{}).i32(0x67676d6c, 300, 24).b, "hparams n_audio_state: unexpected EOF"},
		{"zero heads", header(map[int]int{3: 0}).b, "n_audio_head = 0"},
		{"unequal widths", header(map[int]int{6: 32}).b, "n_text_state 32 != n_audio_state 64"},
		{"negative ftype", header(map[int]int{10: -1}).b, "ftype = -1"},
		{"negative mel", (&ggmlBytes{b: header(nil).b[:48]}).i32(-1, 3).b, "n_mel = -1"},
		{"mel data short", (&ggmlBytes{b: header(nil).b[:48]}).i32(80, 201).zeros(10).b, "mel filters (80×201): unexpected EOF"},
		{"token too long", (&ggmlBytes{b: header(nil).b[:60]}).i32(1, 1<<20).b, "vocab token 0 length 1048576"},
		{"tokens short", (&ggmlBytes{b: header(nil).b[:60]}).i32(5, 1).str("a").b, "vocab token 1"},
		{"n_dims 5", header(nil).i32(5, 4, 0).b, "n_dims 5"},
		{"long name", header(nil).i32(1, 1<<20, 0).b, "name length 1048576"},
		{"unknown tensor", header(nil).i32(1, 3, 0, 64).str("foo").zeros(256).b, `unknown tensor "foo"`},
		{"layer out of range", header(nil).i32(1, 27, 0, 64).str("encoder.blocks.2.mlp_ln.bias").zeros(256).b, "unknown tensor"},
		{"key bias", header(nil).i32(1, 30, 0, 64).str("encoder.blocks.0.attn.key.bias").zeros(256).b, "unknown tensor"},
		{"cross attention in encoder", header(nil).i32(1, 33, 0, 64).str("encoder.blocks.0.cross_attn.query.bias").zeros(256).b, "unknown tensor"},
		{"wrong shape", header(nil).i32(1, 17, 0, 32).str("decoder.ln.weight").zeros(128).b, `tensor "decoder.ln.weight": ne [32], whisper.cpp expects [64]`},
		{"conv kernel missing a dim", header(nil).i32(2, 20, 0, 64, 64).str("encoder.conv2.weight").b, "ne [64 64], whisper.cpp expects [3 64 64]"},
		{"quantized type", header(nil).i32(1, 17, 8, 64).str("decoder.ln.weight").b, `tensor "decoder.ln.weight": unsupported dtype ggml q8_0`},
		{"unknown type", header(nil).i32(1, 17, 99, 64).str("decoder.ln.weight").b, "ggml type 99"},
		{"data short", header(nil).i32(1, 17, 0, 64).str("decoder.ln.weight").zeros(255).b, `tensor "decoder.ln.weight" data: unexpected EOF`},
		{"record cut", header(nil).i32(1, 17).b, "tensor type: unexpected EOF"},
		{"record cut inside int", append(header(nil).b, 1, 0), "tensor record: unexpected EOF"},
		{"duplicate", header(nil).i32(1, 17, 0, 64).str("decoder.ln.weight").zeros(256).i32(1, 17, 0, 64).str("decoder.ln.weight").zeros(256).b, "duplicate tensor"},
		{"incomplete", header(nil).i32(1, 17, 0, 64).str("decoder.ln.weight").zeros(256).b, "file holds 1 tensors, whisper.cpp needs 89: missing encoder.conv1.weight"},
		{"last tensor missing", valid[:len(valid)-(4*3+4+len("decoder.ln.bias")+64*4)], "missing decoder.ln.bias"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadGGML(bytes.NewReader(c.file))
			wantErr(t, err, c.want)
			if !strings.HasPrefix(err.Error(), "ggml: ") {
				t.Fatalf("error %q lacks the ggml: prefix", err)
			}
		})
	}
	if _, err := ReadGGML(bytes.NewReader(header(nil).i32(1, 17, 2, 64).str("decoder.ln.weight").b)); !errors.Is(err, ErrUnsupportedDType) {
		t.Fatalf("quantized tensor error %v is not ErrUnsupportedDType", err)
	}
	// A header with no tensors is an empty model, which whisper.cpp also accepts.
	f, err := ReadGGML(bytes.NewReader(header(nil).b))
	if err != nil || len(f.Checkpoint.Tensors) != 0 || string(f.Tokens[0]) != "x" {
		t.Fatalf("empty model: %v", err)
	}
}

func TestReadGGMLQuantVersion(t *testing.T) {
	f, err := ReadGGML(bytes.NewReader(header(map[int]int{10: 2008}).b))
	if err != nil {
		t.Fatal(err)
	}
	if f.HParams.FType != 8 || f.HParams.QuantVersion != 2 {
		t.Fatalf("ftype %d qntvr %d, want 8 and 2", f.HParams.FType, f.HParams.QuantVersion)
	}
}

// Lying counts cost at most a bounded amount of memory.
func TestReadGGMLHugeClaimsAreCheap(t *testing.T) {
	for _, c := range []struct {
		name string
		file []byte
		want string
	}{
		{"mel", (&ggmlBytes{b: header(nil).b[:48]}).i32(1<<30, 1<<30).zeros(64).b, "mel filters (1073741824×1073741824): unexpected EOF"},
		{"tokens", (&ggmlBytes{b: header(nil).b[:60]}).i32(1<<31 - 1).b, "vocab token 0"},
		{"tensor", header(map[int]int{0: 1<<31 - 1, 6: 1 << 30, 2: 1 << 30, 3: 1, 7: 1}).i32(2, 30, 0, 1<<30, 1<<31-1).str("decoder.token_embedding.weight").zeros(64).b,
			`tensor "decoder.token_embedding.weight" data: unexpected EOF`},
		{"layers", header(map[int]int{4: 1<<31 - 1, 8: 1<<31 - 1}).i32(1, 17, 0, 64).str("decoder.ln.weight").zeros(256).b, "whisper.cpp needs 83751862244"},
	} {
		var err error
		n := allocatedDuring(func() { _, err = ReadGGML(bytes.NewReader(c.file)) })
		wantErr(t, err, c.want)
		if n > 64<<20 {
			t.Fatalf("%s: allocated %d bytes for a %d-byte input", c.name, n, len(c.file))
		}
	}
}

func TestWriteGGMLRejects(t *testing.T) {
	wide := smallDims
	wide.EncoderFFN = 96 // chorus variants may narrow the FFN; whisper.cpp hard-codes 4×state
	for _, c := range []struct {
		name string
		f    func() *GGMLFile
		want string
	}{
		{"ffn width", func() *GGMLFile {
			f := testGGMLFile(t, wide, nil)
			f.HParams = hparamsOf(smallDims)
			return f
		}, `tensor "model.encoder.layers.0.fc1.weight": shape [96 64], whisper.cpp expects [256 64]`},
		{"chorus tensor", func() *GGMLFile {
			f := testGGMLFile(t, smallDims, nil)
			f.Checkpoint.Add(NewF32("model.encoder.layers.0.router.weight", []int{2}, []float32{1, 2}))
			return f
		}, `"model.encoder.layers.0.router.weight" has no whisper.cpp counterpart`},
		{"layer beyond hparams", func() *GGMLFile {
			f := testGGMLFile(t, smallDims, nil)
			f.HParams.NAudioLayer = 1
			return f
		}, "model.encoder.layers.1.self_attn.k_proj.weight"},
		{"missing tensor", func() *GGMLFile {
			f := testGGMLFile(t, smallDims, nil)
			delete(f.Checkpoint.Tensors, "model.decoder.layers.1.fc2.bias")
			f.Checkpoint.Order = nil
			return f
		}, "missing decoder.blocks.1.mlp.2.bias"},
		{"unequal widths", func() *GGMLFile {
			f := testGGMLFile(t, smallDims, nil)
			f.HParams.NTextState = 32
			return f
		}, "n_text_state 32 != n_audio_state 64"},
		{"mel rows", func() *GGMLFile {
			f := testGGMLFile(t, smallDims, nil)
			f.MelFilters = testMel(80)
			return f
		}, "mel filters 80×201"},
		{"too many tokens", func() *GGMLFile {
			return testGGMLFile(t, smallDims, make([][]byte, 301))
		}, "vocab has 301 tokens"},
		{"no checkpoint", func() *GGMLFile {
			f := testGGMLFile(t, smallDims, nil)
			f.Checkpoint = nil
			return f
		}, "no checkpoint"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			wantErr(t, WriteGGML(&buf, c.f(), true), c.want)
			if buf.Len() != 0 {
				t.Fatalf("wrote %d bytes before failing", buf.Len())
			}
		})
	}
	// HF's tied output projection is dropped, as convert-h5-to-ggml.py does.
	f := testGGMLFile(t, smallDims, nil)
	f.Checkpoint.Add(NewF32("proj_out.weight", []int{300, 64}, f.Checkpoint.Get("model.decoder.embed_tokens.weight").F32))
	back, err := ReadGGML(bytes.NewReader(writeGGMLBytes(t, f, false)))
	if err != nil || back.Checkpoint.Get("proj_out.weight") != nil {
		t.Fatalf("proj_out: %v", err)
	}
}

func TestGGMLFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ggml-small.bin")
	in := testGGMLFile(t, smallDims, nil)
	if err := WriteGGMLFile(path, in, false); err != nil {
		t.Fatal(err)
	}
	out, err := ReadGGMLFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sameCheckpoint(t, out.Checkpoint, in.Checkpoint)
	if _, err := ReadGGMLFile(path + ".missing"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestGGMLHParamsHFConfig(t *testing.T) {
	tiny := readTinyConfig(t)
	h := GGMLHParamsFromHF(tiny)
	if h != hparamsOf(whisper.Tiny) {
		t.Fatalf("hparams %+v, want %+v", h, hparamsOf(whisper.Tiny))
	}
	c := h.HFConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name      string
		got, want int
	}{
		{"encoder_ffn_dim", c.EncoderFFNDim, tiny.EncoderFFNDim}, {"decoder_ffn_dim", c.DecoderFFNDim, tiny.DecoderFFNDim},
		{"eos", *c.EOSTokenID, *tiny.EOSTokenID}, {"bos", *c.BOSTokenID, *tiny.BOSTokenID},
		{"pad", *c.PadTokenID, *tiny.PadTokenID}, {"start", *c.DecoderStartTokenID, *tiny.DecoderStartTokenID},
		{"begin_suppress", c.BeginSuppressTokens[1], tiny.BeginSuppressTokens[1]},
	} {
		if f.got != f.want {
			t.Errorf("%s = %d, want %d (as in openai/whisper-tiny)", f.name, f.got, f.want)
		}
	}
	en := hparamsOf(whisper.Tiny)
	en.NVocab = 51864
	if c := en.HFConfig(); *c.EOSTokenID != 50256 || *c.DecoderStartTokenID != 50257 {
		t.Fatalf("English-only ids %d %d", *c.EOSTokenID, *c.DecoderStartTokenID)
	}
	if c := hparamsOf(smallDims).HFConfig(); c.EOSTokenID != nil || c.Validate() != nil {
		t.Fatalf("small vocabulary got token ids or fails validation: %v", c.Validate())
	}
}

// whisper.cpp's own header-only test model: chorus reads it as whisper.cpp does and, given
// the same header, filters and vocabulary, writes it back byte for byte.
func TestGGMLUpstreamFixture(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("testdata", "whispercpp-for-tests-ggml-tiny.bin"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := ReadGGML(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	wantH := hparamsOf(whisper.Tiny)
	wantH.FType = 1
	if f.HParams != wantH {
		t.Fatalf("hparams %+v, want %+v", f.HParams, wantH)
	}
	if f.MelFilters.NMel != 80 || f.MelFilters.NFFT != 201 || len(f.Checkpoint.Tensors) != 0 {
		t.Fatalf("mel %d×%d, %d tensors", f.MelFilters.NMel, f.MelFilters.NFFT, len(f.Checkpoint.Tensors))
	}
	// 50257 multilingual BPE tokens: the first is "!", 50256 is the empty token whisper.cpp
	// mentions, " the" is id 264 in the multilingual vocabulary.
	if len(f.Tokens) != 50257 || string(f.Tokens[0]) != "!" || len(f.Tokens[50256]) != 0 || string(f.Tokens[264]) != " the" {
		t.Fatalf("%d tokens: %q %q %q", len(f.Tokens), f.Tokens[0], f.Tokens[50256], f.Tokens[264])
	}
	// Every filter row is a triangle: non-negative weights.
	for i, v := range f.MelFilters.Data {
		if v < 0 || math.IsNaN(float64(v)) {
			t.Fatalf("filter %d = %v", i, v)
		}
	}
	if got := writeGGMLBytes(t, f, true); !bytes.Equal(got, want) {
		t.Fatalf("rewrite differs from upstream (%d vs %d bytes)", len(got), len(want))
	}
}
