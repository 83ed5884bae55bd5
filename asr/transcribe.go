package asr

import (
	"context"
	"fmt"

	"github.com/chorus-asr/chorus/asr/decode"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/asr/transcribe"
	"github.com/chorus-asr/chorus/tensor"
)

// window adapts a whisper.State to transcribe.Window.
type window struct{ *whisper.State }

func (w window) AllLogits(seq int, t []int) []float32 { return w.State.AllLogits(seq, t).Data }

func (w window) EncodeWindow(m []float32, nMels, frames int) error {
	if nMels != w.Model().Dims.NMels {
		return fmt.Errorf("mel has %d bins, model wants %d", nMels, w.Model().Dims.NMels)
	}
	w.State.EncodeInPlace(tensor.FromData(m, nMels, frames))
	return nil
}

// DecodeModel describes v's vocabulary and contexts for the decoder. It needs the tokenizer.
func (v *Variant) DecodeModel() (decode.Model, error) {
	if v.Tokenizer == nil {
		return decode.Model{}, fmt.Errorf("model %s has no tokenizer files (vocab.json, merges.txt): it can only be used with token ids", v.Name)
	}
	d := v.Model.Dims
	return decode.Model{Vocab: v.Tokenizer, Specials: decode.Specials(v.Tokenizer.Specials()), TextCtx: d.NTextCtx, AudioCtx: d.NAudioCtx}, nil
}

// Transcribe runs long-form transcription of 16-kHz mono samples (OpenAI's transcribe loop:
// 30-s windows, timestamps, temperature fallback).
func (v *Variant) Transcribe(ctx context.Context, samples []float32, o transcribe.Options) (*transcribe.Result, error) {
	dm, err := v.DecodeModel()
	if err != nil {
		return nil, err
	}
	seqs := max(o.Decode.BeamSize, o.Decode.BestOf, 1)
	st := v.Model.NewState(seqs)
	return transcribe.Audio(ctx, window{st}, dm, samples, v.Model.Dims.NMels, o)
}
