// Package decode decodes one 30-second Whisper window into tokens, following OpenAI's
// whisper/decoding.py: the initial tokens (an optional <|startofprev|> prompt, the SOT
// sequence, an optional prefix), language detection on multilingual models, the no-speech
// probability at SOT, the logit filters (blank suppression, token suppression, timestamp
// rules), greedy or temperature sampling, best-of-N, and beam search with patience and a
// length penalty, ranked by maximum likelihood.
//
// The package knows neither the model nor the tokenizer. A Runner feeds tokens to one of
// several hypotheses and returns logits; a Vocab encodes and decodes text; Specials are the
// special-token ids. The whisper model's State (behind a small adapter) is a Runner, and
// *tokenizer.Tokenizer is a Vocab whose Specials() convert to decode.Specials. Package
// decodetest has scripted fakes for tests.
//
// Deliberate departures from OpenAI, each documented where it happens: beam search at a
// temperature above 0 is an error rather than silently greedy; the prefix is never cut from
// the wrong end; an empty hypothesis is ranked instead of dividing by zero; the text of a
// result omits special tokens; and CompressionRatio uses Go's deflate, whose output is a few
// bytes longer than zlib's.
package decode
