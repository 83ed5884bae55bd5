package tokenizer

import (
	"slices"
	"strings"
)

// NonSpeechTokens returns the ids OpenAI's decoder suppresses by default
// (suppress_tokens="-1"), so that it does not write speaker tags or sound annotations that
// nobody said — "♪♪♪", "( SPEAKING FOREIGN LANGUAGE )", "[DAVID] Hey there" — while keeping
// ordinary punctuation. It re-derives tokenizer.py's non_speech_tokens on this vocabulary:
//
//   - the first token of " -" and of " '" (hyphens and apostrophes may appear inside words,
//     not at their start);
//   - each listed symbol, bare or after a space, when it encodes to a single token;
//   - the first token of each musical symbol U+2669…U+266F, bare or after a space, however
//     it encodes (they share their first two UTF-8 bytes, and everything in U+2640…U+267F is
//     fine to suppress).
//
// One deliberate difference: a first token made only of whitespace is never taken. OpenAI's
// vocabularies have merged tokens such as "Ġâ" and "Ġ-" so this never arises there, but in a
// small trained vocabulary " ♪" or " -" can start with the bare space token, and suppressing
// that would stop the model from writing " 42" or "a  b".
//
// The decoder adds the task, SOT, SOTPrev, SOTLM and no-speech tokens itself (decoding.py
// _get_suppress_tokens); they are not included. The ids are sorted and distinct.
func (t *Tokenizer) NonSpeechTokens() []int {
	t.nonSpeechOnce.Do(func() { t.nonSpeech = t.nonSpeechTokens() })
	return slices.Clone(t.nonSpeech)
}

func (t *Tokenizer) nonSpeechTokens() []int {
	symbols := strings.Split(`" # ( ) * + / : ; < = > @ [ \ ] ^ _ `+"`"+` { | } ~ 「 」 『 』`, " ")
	symbols = append(symbols, strings.Fields(`<< >> <<< >>> -- --- -( -[ (' (" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪`)...)
	const miscellaneous = "♩♪♫♬♭♮♯"

	set := map[int]bool{}
	take := func(id int) {
		if strings.TrimSpace(string(t.TokenBytes(id))) != "" {
			set[id] = true
		}
	}
	for _, s := range []string{" -", " '"} {
		take(t.Encode(s)[0])
	}
	add := func(symbol string, always bool) {
		for _, text := range []string{symbol, " " + symbol} {
			if ids := t.Encode(text); len(ids) == 1 || always {
				take(ids[0])
			}
		}
	}
	for _, s := range symbols {
		add(s, false)
	}
	for _, r := range miscellaneous {
		add(string(r), true)
	}
	out := make([]int, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}
