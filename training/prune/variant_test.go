package prune

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/asr/tokenizer"
	"github.com/chorus-asr/chorus/asr/transcribe"
	"github.com/chorus-asr/chorus/tensor"
)

// nonUniformMasks are masks on a 3+3-layer model of 4 heads and 32 units a layer that leave
// every layer its own sizes, including every empty case a materialised layer can have: no
// self-attention head (encoder 1, decoder 1: the decoder's self-attention cache then only
// counts positions), a kept FFN with no unit left (decoder 2: its bias alone), a removed FFN
// (encoder 2) and a removed cross-attention (decoder 2), plus soft gates to fold.
func nonUniformMasks(st Structure) Set {
	z := NewSet(st, 1)
	keepHeads := func(side Side, k Kind, l int, keep ...int) {
		row := z[side][k].Data[l*4 : (l+1)*4]
		clear(row)
		for _, h := range keep {
			row[h] = 1
		}
	}
	keepUnits := func(side Side, l, n int) {
		row := z[side][Units].Data[l*32 : (l+1)*32]
		for i := range row {
			if i >= n {
				row[i] = 0
			}
		}
	}
	keepHeads(Encoder, Heads, 0, 2)
	keepUnits(Encoder, 0, 20)
	z[Encoder][Attn].Data[1] = 0
	keepUnits(Encoder, 1, 5)
	keepHeads(Encoder, Heads, 2, 0, 1, 3)
	z[Encoder][FFN].Data[2] = 0

	keepHeads(Decoder, Heads, 0, 1, 3)
	z[Decoder][Units].Data[3] = 0.5
	z[Decoder][Attn].Data[1] = 0
	keepHeads(Decoder, CrossHeads, 1, 2)
	keepUnits(Decoder, 1, 7)
	z[Decoder][Cross].Data[2] = 0
	keepUnits(Decoder, 2, 0)
	z[Decoder][FFN].Data[2] = 0.7
	return z
}

// TestNonUniformVariant materialises a model whose layers keep different sizes (every empty
// case included) — and, in its second case, whose stacks also lose hidden dimensions, so the
// encoder (11 of 16) and the decoder (9 of 16) end with widths of their own that no head
// count divides — saves it as a variant folder, reopens it with asr.Open, and checks that
// the reopened variant (a) declares per-layer sizes and widths in its config and has each
// layer built to them, (b) decodes with KV caches — incremental, one token at a time, as
// transcription runs — to the masked model's logits, in float32 (1e-4) and with
// half-precision weights and caches (2e-2), and (c) transcribes audio through
// Variant.Transcribe with beams and word timestamps (the alignment pass reads the
// cross-attention of layers with 1 and 0 heads).
func TestNonUniformVariant(t *testing.T) {
	tok, err := tokenizer.Load(filepath.Join("..", "..", "asr", "tokenizer", "testdata", "trained-en"))
	if err != nil {
		t.Fatal(err)
	}
	d := whisper.Dims{NMels: 80, NAudioCtx: 1500, NAudioState: 16, NAudioHead: 4, NAudioLayer: 3, NVocab: tok.Size(),
		NTextCtx: 448, NTextState: 16, NTextHead: 4, NTextLayer: 3, EncoderFFN: 32, DecoderFFN: 32}
	m, err := whisper.NewRandom(d, 21, whisper.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := NewStructure(d)
	for _, tc := range []struct {
		name             string
		hidden           [numSides][]int // removed hidden dimensions
		encWidth, decWid int
	}{
		{"layer sizes", [numSides][]int{}, 16, 16},
		{"layer sizes and hidden dimensions", [numSides][]int{{0, 3, 4, 9, 15}, {1, 2, 5, 6, 10, 12, 13}}, 11, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := nonUniformMasks(st)
			for side, idx := range tc.hidden {
				for _, i := range idx {
					z[side][Hidden].Data[i] = 0
				}
			}
			checkNonUniformVariant(t, m, z, tok, tc.encWidth, tc.decWid)
		})
	}
}

func checkNonUniformVariant(t *testing.T, m *whisper.Model, z Set, tok *tokenizer.Tokenizer, encWidth, decWidth int) {
	d := m.Dims
	mat, err := MaterialiseModel(m, z)
	if err != nil {
		t.Fatal(err)
	}
	wantEnc := []whisper.EncoderLayerSize{{Heads: 1, FFN: 20}, {Heads: 0, FFN: 5}, {Heads: 3, FFN: 0}}
	wantDec := []whisper.DecoderLayerSize{{SelfHeads: 2, CrossHeads: 4, FFN: 32}, {SelfHeads: 0, CrossHeads: 1, FFN: 7}, {SelfHeads: 4, CrossHeads: 0, FFN: 0}}
	md := mat.Model.Dims
	if !equalSizes(md.EncoderSizes, wantEnc) || !equalSizes(md.DecoderSizes, wantDec) {
		t.Fatalf("materialised sizes %+v / %+v, want %+v / %+v", md.EncoderSizes, md.DecoderSizes, wantEnc, wantDec)
	}
	if md.NAudioState != encWidth || md.NTextState != decWidth || len(orAll(mat.Hidden[Encoder], d.NAudioState)) != encWidth {
		t.Fatalf("materialised widths %d / %d (hidden kept %v), want %d / %d", md.NAudioState, md.NTextState, mat.Hidden, encWidth, decWidth)
	}

	dir := filepath.Join(t.TempDir(), "pruned")
	if err := asr.Save(dir, mat.Model, nil, tok, asr.SaveOptions{Compress: true}); err != nil {
		t.Fatal(err)
	}
	v, err := asr.Open(dir, asr.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l := v.Chorus.Layers; l == nil || !equalSizes(l.Encoder, wantEnc) || !equalSizes(l.Decoder, wantDec) {
		t.Fatalf("config.json chorus layers %+v", l)
	}
	if vd := v.Model.Dims; vd.NAudioState != encWidth || vd.NTextState != decWidth || v.Config.DModel != encWidth {
		t.Fatalf("reopened widths %d / %d, config d_model %d, want %d / %d", vd.NAudioState, vd.NTextState, v.Config.DModel, encWidth, decWidth)
	}
	for i, l := range v.Model.Decoder.Layers {
		if l.Attn.Heads() != wantDec[i].SelfHeads || l.Cross.Heads() != wantDec[i].CrossHeads || l.MLP.FC1.Out != wantDec[i].FFN {
			t.Fatalf("reopened decoder layer %d: %d/%d heads, %d units, want %+v", i, l.Attn.Heads(), l.Cross.Heads(), l.MLP.FC1.Out, wantDec[i])
		}
	}

	mel := tensor.New(d.NMels, 3000)
	tensor.SeededUniform(mel.Data, 5, "mel", 0, 1)
	tokens := []int{tok.Size() - 5, 17, 42, 7, 99, 3}
	ctx := tensor.NewCtx()
	h := &whisper.Hooks{Masks: &z}
	want := m.Decoder.ForwardTrainHooked(ctx, tokens, 1, m.Encoder.ForwardHooked(ctx, mel, h), h) // [S, V]
	for _, c := range []struct {
		name string
		f16  bool
		tol  float64
	}{{"f32", false, 1e-4}, {"f16", true, 2e-2}} {
		v, err := asr.Open(dir, asr.OpenOptions{F16: c.f16})
		if err != nil {
			t.Fatal(err)
		}
		s := v.Model.NewState(1)
		s.EncodeInPlace(mel)
		var worst float64
		for i, id := range tokens { // one token per step: the self-attention caches grow
			got := s.Logits(0, []int{id})
			for j, g := range got {
				worst = math.Max(worst, math.Abs(float64(g-want.Data[i*d.NVocab+j])))
			}
		}
		if s.Len(0) != len(tokens) {
			t.Fatalf("%s: caches hold %d tokens after %d", c.name, s.Len(0), len(tokens))
		}
		t.Logf("%s: cached decode vs masked model: max |Δlogit| %.2g", c.name, worst)
		if worst > c.tol {
			t.Fatalf("%s: cached decode of the reopened variant differs from the masked model by %.3g", c.name, worst)
		}
	}

	samples, err := audio.Load16kMono(filepath.Join("..", "..", "testdata", "audio", "ref.wav"))
	if err != nil {
		t.Fatal(err)
	}
	for _, beam := range []int{1, 3} {
		o := transcribe.DefaultOptions()
		o.Decode.BeamSize, o.Decode.BestOf = beam, beam
		o.WordTimestamps = true
		res, err := v.Transcribe(context.Background(), samples, o)
		if err != nil {
			t.Fatalf("beam %d: %v", beam, err)
		}
		for _, sg := range res.Segments {
			if sg.End < sg.Start || sg.Start < 0 {
				t.Errorf("beam %d: segment %+v", beam, sg)
			}
		}
		t.Logf("beam %d: %d segments", beam, len(res.Segments))
	}
}

func equalSizes[E comparable](a, b []E) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
