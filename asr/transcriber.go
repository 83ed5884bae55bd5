package asr

import (
	"context"

	"github.com/chorus-asr/chorus/asr/decode"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/asr/transcribe"
	"github.com/chorus-asr/chorus/tensor"
)

// Transcriber is Variant.Transcribe with one decode state kept from call to call: a streaming
// session decodes its growing utterance every half second, and allocating a fresh
// whisper.State (KV caches for every hypothesis, encoder and decoder arenas) each time would
// cost more than the decoding of a short window. Every call encodes its own window, which
// resets the caches, so the results are exactly those of Variant.Transcribe.
//
// A Transcriber belongs to one stream; it is not safe for concurrent use. The Variant stays
// read-only and shared.
type Transcriber struct {
	v  *Variant
	dm decode.Model
	w  *window
	rt whisper.Routing // the stream's expert routing, nil for the dense model
	// encode, when set, encodes windows in place of the decode state's own encoder.
	encode func(mel *tensor.T) *tensor.T
}

// SetEncoder makes later calls encode their windows with f (f(mel) must equal
// v.Model.Encoder.Forward(ctx, mel): a server batches concurrent streams' windows through
// it); nil restores the state's own encoder. Routed streams (SetRouting) always use their own.
func (t *Transcriber) SetEncoder(f func(mel *tensor.T) *tensor.T) {
	t.encode = f
	if t.w != nil {
		t.w.encode = f
	}
}

// SetRouting makes every later call run the feed-forward blocks through r (nil: dense);
// r is the stream's own (Variant.Routing), as it records the stream's pathway.
func (t *Transcriber) SetRouting(r whisper.Routing) {
	t.rt = r
	if t.w != nil {
		if r == nil {
			r = t.v.nativeRouting()
		}
		t.w.SetRouting(r)
	}
}

// Routing is the routing set by SetRouting.
func (t *Transcriber) Routing() whisper.Routing { return t.rt }

// NewTranscriber returns a Transcriber over v. It needs the tokenizer, as Transcribe does.
func (v *Variant) NewTranscriber() (*Transcriber, error) {
	dm, err := v.DecodeModel()
	if err != nil {
		return nil, err
	}
	return &Transcriber{v: v, dm: dm}, nil
}

// Transcribe is v.Transcribe(ctx, samples, o), reusing the state of earlier calls. The state
// is allocated on the first call, and again only when o needs more hypotheses (beam search,
// best-of) than it holds.
func (t *Transcriber) Transcribe(ctx context.Context, samples []float32, o transcribe.Options) (*transcribe.Result, error) {
	seqs := max(o.Decode.BeamSize, o.Decode.BestOf, 1)
	if t.w == nil || t.w.Seqs() < seqs {
		t.w = t.v.newWindow(seqs)
		if t.rt != nil {
			t.w.SetRouting(t.rt)
		}
		t.w.encode = t.encode
	}
	return transcribe.Audio(ctx, t.w, t.dm, samples, t.v.Model.Dims.NMels, o)
}

// Variant is the model the Transcriber runs.
func (t *Transcriber) Variant() *Variant { return t.v }
