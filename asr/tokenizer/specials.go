package tokenizer

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// WhisperLanguages are the language codes of Whisper's language tokens, in token order
// (ref: openai/whisper tokenizer.py LANGUAGES). Models with 99 languages use the first 99;
// large-v3 adds "yue" as the 100th.
var WhisperLanguages = []string{
	"en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr",
	"pl", "ca", "nl", "ar", "sv", "it", "id", "hi", "fi", "vi",
	"he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no",
	"th", "ur", "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk",
	"te", "fa", "lv", "bn", "sr", "az", "sl", "kn", "et", "mk",
	"br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw",
	"gl", "mr", "pa", "si", "km", "sn", "yo", "so", "af", "oc",
	"ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo",
	"ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl",
	"mg", "as", "tt", "haw", "ln", "ha", "ba", "jw", "su", "yue",
}

// DefaultNumLanguages is how many language tokens Whisper models other than large-v3 have,
// and what a tokenizer folder without special tokens is assumed to use.
const DefaultNumLanguages = 99

// NumTimestamps is the number of timestamp tokens, <|0.00|> to <|30.00|> in 0.02 s steps.
const NumTimestamps = 1501

// TimestampStep is the time between consecutive timestamp tokens, in seconds.
const TimestampStep = 0.02

// Names of Whisper's special tokens (ref: openai/whisper tokenizer.py get_encoding specials).
const (
	NameEOT          = "<|endoftext|>"
	NameSOT          = "<|startoftranscript|>"
	NameTranslate    = "<|translate|>"
	NameTranscribe   = "<|transcribe|>"
	NameSOTLM        = "<|startoflm|>"
	NameSOTPrev      = "<|startofprev|>"
	NameNoSpeech     = "<|nospeech|>"
	NameNoCaptions   = "<|nocaptions|>" // the older name of <|nospeech|>, in Hugging Face folders
	NameNoTimestamps = "<|notimestamps|>"
)

// TimestampName is the token name of timestamp i, e.g. "<|1.08|>" for i = 54; the format
// matches tokenizer.py's f"<|{i * 0.02:.2f}|>".
func TimestampName(i int) string {
	return "<|" + strconv.FormatFloat(float64(i)*TimestampStep, 'f', 2, 64) + "|>"
}

// LanguageName is the token name of a language code, e.g. "<|en|>".
func LanguageName(code string) string { return "<|" + code + "|>" }

// Specials are the ids of Whisper's special tokens in one vocabulary. They follow Whisper's
// layout: EOT, SOT, the language tokens, Translate, Transcribe, SOTLM, SOTPrev, NoSpeech,
// NoTimestamps, then NumTimestamps timestamp tokens from TimestampBegin, each one more than
// the last (ref: tokenizer.py get_encoding; Hugging Face folders list the same ids).
type Specials struct {
	EOT, SOT, Transcribe, Translate, SOTPrev, SOTLM, NoTimestamps int
	// NoSpeech is -1 when the vocabulary has neither <|nospeech|> nor <|nocaptions|>.
	NoSpeech int
	// TimestampBegin is the id of <|0.00|>; timestamp i is TimestampBegin+i.
	TimestampBegin int
	// Languages are the codes of the language tokens in id order; language i is SOT+1+i.
	Languages []string
	// Multilingual reports whether the start-of-transcript sequence carries language and
	// task tokens. OpenAI's vocabularies decide it by size as whisper/model.py does
	// (n_vocab >= 51865: 51864 is English-only GPT-2, 51865 multilingual, 51866 large-v3);
	// smaller, chorus-trained vocabularies are multilingual when they have more than one
	// language token.
	Multilingual bool
}

// ErrUnknownLanguage is returned for a language code the vocabulary has no token for.
var ErrUnknownLanguage = errors.New("unknown language")

// LanguageToken returns the id of the language token for code (e.g. "en").
func (s *Specials) LanguageToken(code string) (int, error) {
	i := slices.Index(s.Languages, strings.ToLower(code))
	if i < 0 {
		return 0, fmt.Errorf("language token %q: %w", code, ErrUnknownLanguage)
	}
	return s.SOT + 1 + i, nil
}

// IsTimestamp reports whether id is a timestamp token.
func (s *Specials) IsTimestamp(id int) bool {
	return id >= s.TimestampBegin && id < s.TimestampBegin+NumTimestamps
}

// SOTSequence returns the decoder prompt that starts a transcript, as tokenizer.py's
// sot_sequence (plus <|notimestamps|> when timestamps is false, its
// sot_sequence_including_notimestamps): for a multilingual vocabulary
// [SOT, language, task], leaving out the language token when lang is "" (the caller detects
// it first) and the task token when task is ""; for an English-only vocabulary just [SOT],
// as get_tokenizer(multilingual=False) ignores language and task, so only "", "en" and
// "transcribe" are accepted there. task is "transcribe", "translate" or "".
func (s *Specials) SOTSequence(lang, task string, timestamps bool) ([]int, error) {
	seq := []int{s.SOT}
	switch task {
	case "", "transcribe", "translate":
	default:
		return nil, fmt.Errorf("sot sequence: unknown task %q", task)
	}
	if !s.Multilingual {
		if (lang != "" && !strings.EqualFold(lang, "en")) || task == "translate" {
			return nil, fmt.Errorf("sot sequence: english-only vocabulary cannot %s language %q",
				cmpOr(task, "transcribe"), lang)
		}
	} else {
		if lang != "" {
			id, err := s.LanguageToken(lang)
			if err != nil {
				return nil, fmt.Errorf("sot sequence: %w", err)
			}
			seq = append(seq, id)
		}
		switch task {
		case "transcribe":
			seq = append(seq, s.Transcribe)
		case "translate":
			seq = append(seq, s.Translate)
		}
	}
	if !timestamps {
		seq = append(seq, s.NoTimestamps)
	}
	return seq, nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// isWhisperSpecialName reports whether name has the shape of Whisper's special token names:
// "<|" + letters, digits and dots + "|>" (<|endoftext|>, <|en|>, <|1.08|>). Such entries are
// never ordinary BPE tokens even when a vocab.json lists them, as GPT-2's lists <|endoftext|>:
// pre-tokenization never joins punctuation and letters or digits into one piece, so no
// learned token can look like this.
func isWhisperSpecialName(name string) bool {
	inner, ok := strings.CutPrefix(name, "<|")
	if !ok {
		return false
	}
	inner, ok = strings.CutSuffix(inner, "|>")
	if !ok || inner == "" {
		return false
	}
	for _, r := range inner {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.') {
			return false
		}
	}
	return true
}

// layoutNames lists Whisper's special token names in id order for a given language list, from
// EOT through the last timestamp.
func layoutNames(languages []string) []string {
	names := make([]string, 0, 10+len(languages)+NumTimestamps)
	names = append(names, NameEOT, NameSOT)
	for _, l := range languages {
		names = append(names, LanguageName(l))
	}
	names = append(names, NameTranslate, NameTranscribe, NameSOTLM, NameSOTPrev, NameNoSpeech, NameNoTimestamps)
	for i := range NumTimestamps {
		names = append(names, TimestampName(i))
	}
	return names
}

// OpenAI's vocabulary sizes: GPT-2's 50256 byte-level tokens (English-only models) or 50257
// (multilingual), then the specials; whisper/model.py calls a model multilingual from 51865.
const (
	openAIBaseVocab       = 50256
	openAIMultilingualMin = 51865
)

// resolveSpecials finds the Whisper special ids among the named tokens. With no
// <|startoftranscript|> among them, the layout is derived as tiktoken's get_encoding builds
// it: specials appended after the ordinary tokens, EOT first (at its vocab.json id if listed
// there), with DefaultNumLanguages languages. size is one past the largest ordinary id.
// It returns the specials and the full name→id table including generated names.
func resolveSpecials(named map[string]int, size int) (Specials, map[string]int, error) {
	var sp Specials
	if _, ok := named[NameSOT]; !ok {
		eot, ok := named[NameEOT]
		if !ok {
			eot = size
		}
		names := layoutNames(WhisperLanguages[:DefaultNumLanguages])
		derived := make(map[string]int, len(names))
		for i, n := range names {
			if id, ok := named[n]; ok && id != eot+i {
				return sp, nil, fmt.Errorf("special token %s has id %d, want %d in whisper's layout", n, id, eot+i)
			}
			derived[n] = eot + i
		}
		if eot < size {
			return sp, nil, fmt.Errorf("%s at id %d is inside the ordinary vocabulary (size %d)", NameEOT, eot, size)
		}
		for n, id := range named {
			if _, ok := derived[n]; !ok {
				derived[n] = id // other added tokens keep their ids
			}
		}
		named = derived
	}
	get := func(name string, dst *int) error {
		id, ok := named[name]
		if !ok {
			return fmt.Errorf("special token %s missing", name)
		}
		*dst = id
		return nil
	}
	for _, f := range []struct {
		name string
		dst  *int
	}{
		{NameEOT, &sp.EOT}, {NameSOT, &sp.SOT}, {NameTranslate, &sp.Translate},
		{NameTranscribe, &sp.Transcribe}, {NameSOTLM, &sp.SOTLM}, {NameSOTPrev, &sp.SOTPrev},
		{NameNoTimestamps, &sp.NoTimestamps},
	} {
		if err := get(f.name, f.dst); err != nil {
			return sp, nil, err
		}
	}
	sp.NoSpeech = -1
	if id, ok := named[NameNoSpeech]; ok {
		sp.NoSpeech = id
	} else if id, ok := named[NameNoCaptions]; ok {
		sp.NoSpeech = id
	}
	// Older Hugging Face folders stop at <|notimestamps|>; timestamps follow it.
	sp.TimestampBegin = sp.NoTimestamps + 1
	if id, ok := named[TimestampName(0)]; ok {
		sp.TimestampBegin = id
	}
	byID := make(map[int]string, len(named))
	for n, id := range named {
		byID[id] = n
	}
	for id := sp.SOT + 1; id < sp.Translate; id++ {
		n, ok := byID[id]
		if !ok || !isWhisperSpecialName(n) {
			return sp, nil, fmt.Errorf("id %d between %s and %s is not a language token", id, NameSOT, NameTranslate)
		}
		sp.Languages = append(sp.Languages, strings.TrimSuffix(strings.TrimPrefix(n, "<|"), "|>"))
	}
	if sp.Translate <= sp.SOT {
		return sp, nil, fmt.Errorf("%s (%d) does not follow %s (%d)", NameTranslate, sp.Translate, NameSOT, sp.SOT)
	}
	for i := range NumTimestamps {
		n := TimestampName(i)
		if id, ok := named[n]; ok && id != sp.TimestampBegin+i {
			return sp, nil, fmt.Errorf("timestamp %s has id %d, want %d", n, id, sp.TimestampBegin+i)
		}
		if other, ok := byID[sp.TimestampBegin+i]; ok && other != n {
			return sp, nil, fmt.Errorf("timestamp %s's id %d is taken by %s", n, sp.TimestampBegin+i, other)
		}
	}
	full := make(map[string]int, len(named)+NumTimestamps)
	for n, id := range named {
		full[n] = id
	}
	for i := range NumTimestamps {
		full[TimestampName(i)] = sp.TimestampBegin + i
	}
	if sp.EOT >= openAIBaseVocab {
		total := sp.TimestampBegin + NumTimestamps
		sp.Multilingual = total >= openAIMultilingualMin
	} else {
		sp.Multilingual = len(sp.Languages) > 1
	}
	return sp, full, nil
}
