package decode

import (
	"errors"
	"fmt"
)

// Runner is one audio window's decoder: hypotheses (sequences) 0..Seqs()-1, each with its own
// self-attention cache, all attending to the same encoded audio. Decode drives it; the model
// package implements it (whisper.State after the lead's adapter).
type Runner interface {
	// Seqs is the number of hypotheses the runner can hold: beam search needs BeamSize of
	// them, best-of-N sampling BestOf.
	Seqs() int
	// Logits feeds tokens to hypothesis seq and returns the logits [V] of its last position.
	// The slice is reused by the next call.
	Logits(seq int, tokens []int) []float32
	// AllLogits feeds tokens and returns logits for every position, flat [len(tokens)*V].
	// Decode itself does not call it; it is part of the contract for callers that score a
	// fixed hypothesis (streaming agreement, forced alignment).
	AllLogits(seq int, tokens []int) []float32
	// Len is the number of tokens hypothesis seq has consumed.
	Len(seq int) int
	// Rewind drops hypothesis seq's tokens beyond n.
	Rewind(seq, n int)
	// Fork makes hypothesis dst a copy of src (tokens consumed and cache).
	Fork(dst, src int)
}

// BatchRunner is a Runner that feeds one token to several hypotheses in one call: beam search
// and best-of sampling step all their hypotheses together through it (one pass over the
// decoder's weights instead of one per hypothesis).
type BatchRunner interface {
	// LogitsBatch feeds tokens[i] to hypothesis seqs[i] (distinct hypotheses) and returns
	// their logits flat [len(seqs)·V], row i what Logits(seqs[i], tokens[i:i+1]) returns. The
	// slice is reused by the next call.
	LogitsBatch(seqs, tokens []int) []float32
}

// Vocab is the text side of a tokenizer: the byte-level BPE encoder and decoder. Decode needs
// it for the blank token (Encode(" ")), the non-speech token set and the result text.
//
// A Vocab may also implement NonSpeechTokens() []int (see [NonSpeechTokens]); Decode then uses
// that list instead of deriving it through Encode.
type Vocab interface {
	Encode(text string) []int
	// Decode returns the text of ordinary text tokens (ids below Specials.EOT); Decode never
	// passes it special or timestamp tokens.
	Decode(tokens []int) string
}

// Specials are the ids of Whisper's special tokens. The fields are those of
// tokenizer.Specials, in the same order, so that decode.Specials(tok.Specials()) converts one
// into the other while package decode stays independent of the tokenizer.
//
// The layout follows OpenAI's tokenizer (ref: openai/whisper tokenizer.py#L340-L351): EOT, SOT,
// then one token per language in Languages order (language i is token SOT+1+i), translate,
// transcribe, startoflm, startofprev, nospeech, notimestamps, and the timestamp tokens
// <|0.00|>, <|0.02|>, … from TimestampBegin up to the end of the vocabulary.
type Specials struct {
	EOT, SOT, Transcribe, Translate, SOTPrev, SOTLM, NoTimestamps int
	// NoSpeech is <|nospeech|> (<|nocaptions|> in early checkpoints); negative when the
	// vocabulary has none, in which case no-speech probabilities are NaN.
	NoSpeech int
	// TimestampBegin is <|0.00|>; every id from it up is a timestamp.
	TimestampBegin int
	// Languages are the language codes ("en", "zh", …) in token order.
	Languages []string
	// Multilingual vocabularies put a language and a task token after SOT; English-only ones
	// (*.en) SOT alone (ref: openai/whisper tokenizer.py#L382-L389).
	Multilingual bool
}

// LanguageToken returns the token of a language code.
func (s Specials) LanguageToken(code string) (int, error) {
	for i, c := range s.Languages {
		if c == code {
			return s.SOT + 1 + i, nil
		}
	}
	return 0, fmt.Errorf("%w: %q", ErrUnknownLanguage, code)
}

// ErrUnknownLanguage is returned for a language code the vocabulary has no token for.
var ErrUnknownLanguage = errors.New("unknown language")

// Model is what decoding needs to know about the model and tokenizer behind a Runner. It is
// fixed for a loaded model and shared by every stream.
type Model struct {
	Vocab    Vocab
	Specials Specials
	// TextCtx is n_text_ctx (448): the decoder's maximum number of positions.
	TextCtx int
	// AudioCtx is n_audio_ctx (1500): encoder positions per 30-second window, which fixes the
	// timestamp resolution at 30 s / AudioCtx (0.02 s).
	AudioCtx int
	// LM is the variant's external language model for shallow fusion (Options.LMWeight),
	// nil for none.
	LM LanguageModel
}

// LanguageModel is an external language model over the vocabulary's tokens whose sentences
// start with SOT and end with EOT (lm.NGram is one): shallow fusion adds
// Options.LMWeight·LogProb to each text token's and EOT's score.
type LanguageModel interface {
	// Order is the n of an n-gram model: LogProb reads the last Order()−1 ids of context.
	Order() int
	// LogProb is ln p(tok | context) for a text token or EOT.
	LogProb(context []int, tok int) float64
}

// BatchLanguageModel is a LanguageModel that scores many next tokens after one context at
// once (out[i] = LogProb(context, toks[i])); beam search uses it when the model has it, as
// every hypothesis asks for a pre-beam of tokens after its context.
type BatchLanguageModel interface {
	LanguageModel
	LogProbs(context []int, toks []int, out []float64)
}

// chunkSeconds is the length of one Whisper window (ref: openai/whisper audio.py CHUNK_LENGTH).
const chunkSeconds = 30

// TimePrecision is the duration of one timestamp step: 30 s / AudioCtx, 0.02 s for Whisper.
func (m Model) TimePrecision() float64 { return chunkSeconds / float64(m.AudioCtx) }

func (m Model) validate() error {
	switch {
	case m.Vocab == nil:
		return errors.New("decode: model has no vocabulary")
	case m.TextCtx < 2:
		return fmt.Errorf("decode: text context %d too small", m.TextCtx)
	case m.AudioCtx <= 0:
		return fmt.Errorf("decode: audio context %d not positive", m.AudioCtx)
	}
	s := m.Specials
	for _, t := range []struct {
		name string
		id   int
	}{{"sot", s.SOT}, {"eot", s.EOT}, {"transcribe", s.Transcribe}, {"translate", s.Translate},
		{"startofprev", s.SOTPrev}, {"startoflm", s.SOTLM}, {"notimestamps", s.NoTimestamps},
		{"timestamp begin", s.TimestampBegin}} {
		if t.id < 0 {
			return fmt.Errorf("decode: special token %s has negative id %d", t.name, t.id)
		}
	}
	if s.TimestampBegin <= s.EOT {
		// The timestamp rules mask "text" as [0, TimestampBegin) and "timestamps" as the rest.
		return fmt.Errorf("decode: timestamp tokens (%d) must follow eot (%d)", s.TimestampBegin, s.EOT)
	}
	return nil
}

// checkVocabSize checks that every special token used to index logits fits in a logit vector
// of v entries; the runner's vocabulary is only known once it returns logits.
func (m Model) checkVocabSize(v int, timestamps bool) error {
	s := m.Specials
	if s.EOT >= v {
		return fmt.Errorf("decode: eot %d outside vocabulary of %d", s.EOT, v)
	}
	if s.NoSpeech >= v {
		return fmt.Errorf("decode: nospeech %d outside vocabulary of %d", s.NoSpeech, v)
	}
	if timestamps && s.TimestampBegin >= v {
		return fmt.Errorf("decode: timestamps requested but the vocabulary of %d has none (first would be %d)", v, s.TimestampBegin)
	}
	return nil
}
