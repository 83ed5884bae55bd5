package asr

import (
	"context"
	"fmt"

	"github.com/chorus-asr/chorus/asr/decode"
	"github.com/chorus-asr/chorus/asr/lm"
	"github.com/chorus-asr/chorus/asr/mel"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/asr/transcribe"
	"github.com/chorus-asr/chorus/tensor"
)

// window adapts a whisper.State to transcribe.Window and timing.Aligner.
type window struct {
	*whisper.State
	content bool     // encode only the frames that hold audio (models trained without padding)
	heads   [][2]int // alignment heads for word timestamps
	buf     []float32
	// encode, when set, encodes a window instead of the state's own encoder (a server
	// batching concurrent streams' windows); it must compute exactly what the encoder does.
	encode func(mel *tensor.T) *tensor.T

	// ctc is the variant's CTC head (nil: none); xa the current window's audio features
	// it reads, and lp its log-probabilities once a decode asked for them.
	ctc *CTCHead
	xa  *tensor.T
	lp  []float32
	lpN int // frames lp holds; 0 until computed for xa
}

func (w window) AllLogits(seq int, t []int) []float32 { return w.State.AllLogits(seq, t).Data }

// CrossAttention implements timing.Aligner with whisper.State.Align.
func (w *window) CrossAttention(tokens []int, keep int) ([][]float32, int, []float32, int, error) {
	if len(tokens) == 0 || len(tokens) > w.Model().Dims.NTextCtx {
		return nil, 0, nil, 0, fmt.Errorf("align %d tokens with a text context of %d", len(tokens), w.Model().Dims.NTextCtx)
	}
	logits, scores := w.State.Align(tokens, w.heads, keep)
	return scores, len(scores[0]) / len(tokens), logits.Data, logits.Shape[1], nil
}

// newWindow is a decode state of v for seqs hypotheses.
func (v *Variant) newWindow(seqs int) *window {
	w := &window{State: v.Model.NewState(seqs), content: v.Chorus.EncoderWindow == WindowContent, heads: v.AlignmentHeads(), ctc: v.CTC}
	if rt := v.nativeRouting(); rt != nil {
		w.SetRouting(rt)
	}
	return w
}

// AlignmentHeads are the [decoder layer, head] pairs word timestamps read: config.json's
// alignment_heads when it has them, else OpenAI's default, every head of the last half of
// the decoder layers (whisper.DefaultAlignmentHeads).
func (v *Variant) AlignmentHeads() [][2]int {
	if v.Config != nil && len(v.Config.AlignmentHeads) > 0 {
		return v.Config.AlignmentHeads
	}
	return whisper.DefaultAlignmentHeads(v.Model.Dims)
}

func (w *window) EncodeWindow(m []float32, nMels, frames, content int) error {
	if nMels != w.Model().Dims.NMels {
		return fmt.Errorf("mel has %d bins, model wants %d", nMels, w.Model().Dims.NMels)
	}
	if w.content && content < frames {
		n := max(2, content+content%2) // the conv stem halves the frames
		w.buf = w.buf[:0]
		for b := range nMels {
			w.buf = append(w.buf, m[b*frames:b*frames+n]...)
		}
		m, frames = w.buf, n
	}
	mel := tensor.FromData(m, nMels, frames)
	w.lpN = 0
	if w.encode != nil && w.State.Routing() == nil {
		xa := w.encode(mel) // batched with other streams' windows
		w.State.SetAudio(xa)
		w.xa = xa
		return nil
	}
	if w.ctc != nil {
		w.xa = w.State.Encode(mel) // a copy, kept for the CTC head
		return nil
	}
	w.State.EncodeInPlace(mel)
	return nil
}

// CTCLogProbs implements decode.CTCRunner: the CTC head's log-probabilities over the window
// last encoded, computed on the first call after EncodeWindow.
func (w *window) CTCLogProbs() ([]float32, int) {
	if w.ctc == nil || w.xa == nil {
		return nil, 0
	}
	if w.lpN == 0 {
		w.lp = w.ctc.LogProbs(w.lp, w.xa)
		w.lpN = w.xa.Shape[0]
	}
	return w.lp, w.lpN
}

// DecodeModel describes v's vocabulary and contexts for the decoder. It needs the tokenizer.
func (v *Variant) DecodeModel() (decode.Model, error) {
	if v.Tokenizer == nil {
		return decode.Model{}, fmt.Errorf("model %s has no tokenizer files (vocab.json, merges.txt): it can only be used with token ids", v.Name)
	}
	d := v.Model.Dims
	m := decode.Model{Vocab: v.Tokenizer, Specials: decode.Specials(v.Tokenizer.Specials()), TextCtx: d.NTextCtx, AudioCtx: d.NAudioCtx}
	if v.LM != nil {
		m.LM = v.LM
	}
	return m, nil
}

// The variants' n-gram scores a pre-beam of tokens per context in one call.
var _ decode.BatchLanguageModel = (*lm.NGram)(nil)

// Transcribe runs long-form transcription of 16-kHz mono samples (OpenAI's transcribe loop:
// 30-s windows, timestamps, temperature fallback).
func (v *Variant) Transcribe(ctx context.Context, samples []float32, o transcribe.Options) (*transcribe.Result, error) {
	dm, err := v.DecodeModel()
	if err != nil {
		return nil, err
	}
	w := v.newWindow(max(o.Decode.BeamSize, o.Decode.BestOf, 1))
	return transcribe.Audio(ctx, w, dm, samples, v.Model.Dims.NMels, o)
}

// TranscribeMel is Transcribe on a precomputed spectrogram laid out as mel.LogMel(samples,
// nMels, mel.NSamples) gives it (the audio's frames followed by 30 s of padding).
func (v *Variant) TranscribeMel(ctx context.Context, spec *mel.Spectrogram, o transcribe.Options) (*transcribe.Result, error) {
	dm, err := v.DecodeModel()
	if err != nil {
		return nil, err
	}
	w := v.newWindow(max(o.Decode.BeamSize, o.Decode.BestOf, 1))
	return transcribe.Transcribe(ctx, w, dm, spec, o)
}
