package decode

import (
	"slices"
	"strings"
)

// nonSpeechSymbols are the symbols whose tokens OpenAI suppresses so that the model does not
// write speaker tags, music notes or bracketed annotations that were never spoken
// (ref: openai/whisper tokenizer.py#L253-L256).
var nonSpeechSymbols = append(strings.Split(`"#()*+/:;<=>@[\]^_`+"`"+`{|}~「」『』`, ""),
	strings.Fields(`<< >> <<< >>> -- --- -( -[ (' (" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪`)...)

// miscSymbols lie in U+2640–U+267F; their UTF-8 forms share the first two bytes, so the first
// token of a multi-token encoding is safe to suppress (ref: tokenizer.py#L258-L263).
var miscSymbols = strings.Split("♩♪♫♬♭♮♯", "")

// NonSpeechTokens returns the sorted token ids OpenAI's tokenizer.non_speech_tokens lists
// (ref: openai/whisper tokenizer.py#L241-L275): each symbol's token, bare or after a space,
// where it is a single token (the first token for the musical symbols), plus the first tokens
// of " -" and " '", which may start a word but not follow a space alone. A Vocab that
// implements NonSpeechTokens() []int (the chorus tokenizer does) is asked instead.
//
// Like the chorus tokenizer, it never takes a token that decodes to white space only: in
// OpenAI's vocabularies " -" and " ♪" start with merged tokens, but in a small trained one they
// can start with the bare space, and suppressing that would forbid every spaced number.
func NonSpeechTokens(v Vocab) []int {
	if ns, ok := v.(interface{ NonSpeechTokens() []int }); ok {
		return slices.Sorted(slices.Values(ns.NonSpeechTokens()))
	}
	var ids []int
	take := func(id int) {
		if strings.TrimSpace(v.Decode([]int{id})) != "" {
			ids = append(ids, id)
		}
	}
	for _, s := range []string{" -", " '"} {
		if t := v.Encode(s); len(t) > 0 {
			take(t[0])
		}
	}
	add := func(symbol string, misc bool) {
		for _, text := range []string{symbol, " " + symbol} {
			t := v.Encode(text)
			if len(t) == 1 || (misc && len(t) > 0) {
				take(t[0])
			}
		}
	}
	for _, s := range nonSpeechSymbols {
		add(s, false)
	}
	for _, s := range miscSymbols {
		add(s, true)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}
