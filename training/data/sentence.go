package data

import (
	"strings"
	"unicode"

	"github.com/chorus-asr/chorus/asr/metrics"
)

// Sentence length bounds from DATA.md, counted in normalised words (so a
// hyphenated compound counts as the words a scorer will see).
const (
	MinWords = 3
	MaxWords = 25
)

// Reasons a candidate sentence is dropped; they key SourceStats.Dropped.
const (
	DropLength   = "length"    // fewer than MinWords or more than MaxWords words
	DropDigits   = "digits"    // any digit: numbers would have to be spelled out by guesswork
	DropURL      = "url"       // web or mail addresses
	DropAcronym  = "acronym"   // two capitals in a row, or dotted initials such as U.S.
	DropNonASCII = "non-ascii" // a non-ASCII rune left after cleanText
	DropSymbols  = "symbols"   // an ASCII rune outside letters, space and plain punctuation
)

// typographic maps the typographic characters common in the sources to the
// ASCII a TTS engine reads the same way; anything non-ASCII left afterwards
// drops the sentence.
var typographic = strings.NewReplacer(
	"‘", "'", "’", "'", "ʼ", "'", "‛", "'",
	"“", `"`, "”", `"`, "„", `"`, "‟", `"`,
	"–", " - ", "—", " - ", "―", " - ", "‒", " - ", "‐", "-", "‑", "-",
	"…", "...",
	"\u00a0", " ", "\u00ad", "", "\u2009", " ", "\u200b", "",
)

// cleanText removes terminal overstriking ("_\bX" underlines, "X\bX" bold,
// found in some fortune files), maps typographic punctuation to ASCII and
// collapses whitespace.
func cleanText(s string) string {
	if strings.IndexByte(s, '\b') >= 0 {
		rs := []rune(s)
		out := rs[:0]
		for _, r := range rs {
			if r == '\b' {
				if len(out) > 0 {
					out = out[:len(out)-1]
				}
				continue
			}
			out = append(out, r)
		}
		s = string(out)
	}
	s = typographic.Replace(s)
	return strings.Join(strings.Fields(s), " ")
}

// abbreviations are words that end with a period without ending a
// sentence. The list covers the titles and short forms common in the
// nineteenth-century addresses and the Brown corpus; a sentence still
// containing one is kept (the scorer normalises "Mr." to "mr").
var abbreviations = map[string]bool{
	"mr": true, "mrs": true, "messrs": true, "ms": true, "dr": true, "st": true,
	"jr": true, "sr": true, "gen": true, "col": true, "capt": true, "lieut": true,
	"lt": true, "gov": true, "hon": true, "rev": true, "prof": true, "sen": true,
	"rep": true, "vs": true, "etc": true, "no": true, "mt": true, "ft": true,
	"co": true, "inc": true, "ltd": true, "viz": true, "esq": true, "sgt": true,
	"maj": true, "adm": true, "cf": true, "ch": true, "vol": true, "pp": true,
}

// SplitSentences splits running text into sentences at '.', '!' or '?'
// (with any closing quotes or brackets after it) followed by whitespace and
// an upper-case letter, an opening quote or bracket, or the end of text. A
// period after a known abbreviation or a single capital (an initial) does
// not split. Text is cleaned with cleanText first.
func SplitSentences(text string) []string {
	text = cleanText(text)
	var out []string
	start := 0
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c != '.' && c != '!' && c != '?' {
			continue
		}
		end := i + 1
		for end < len(text) && strings.IndexByte(`.!?"')]`, text[end]) >= 0 {
			end++
		}
		if end < len(text) && text[end] != ' ' {
			i = end - 1
			continue
		}
		next := end
		for next < len(text) && text[next] == ' ' {
			next++
		}
		if next < len(text) && !startsSentence(text[next:]) {
			i = end - 1
			continue
		}
		if c == '.' && end == i+1 && isAbbreviation(text[start:i]) {
			continue
		}
		if s := strings.TrimSpace(text[start:end]); s != "" {
			out = append(out, s)
		}
		start = next
		i = next - 1
	}
	if s := strings.TrimSpace(text[start:]); s != "" {
		out = append(out, s)
	}
	return out
}

func startsSentence(s string) bool {
	for _, r := range s {
		if r == '"' || r == '\'' || r == '(' || r == '[' {
			continue
		}
		return unicode.IsUpper(r)
	}
	return false
}

// isAbbreviation reports whether the word just before a period (the tail of
// before) is an abbreviation or an initial.
func isAbbreviation(before string) bool {
	w := before
	if k := strings.LastIndexAny(w, ` "'(`); k >= 0 {
		w = w[k+1:]
	}
	if w == "" {
		return false
	}
	if len(w) == 1 && w[0] >= 'A' && w[0] <= 'Z' {
		return true
	}
	// Dotted forms such as "U.S" or "i.e" keep their inner periods.
	if strings.Contains(w, ".") {
		return true
	}
	return abbreviations[strings.ToLower(w)]
}

// FilterSentence applies DATA.md's sentence rules to a candidate. It returns
// the sentence to keep (cleaned, with leading dashes and an unmatched double
// quote at either end removed) and "", or "" and the Drop* reason.
func FilterSentence(s string) (string, string) { return filterText(s, MinWords, MaxWords) }

// filterText is FilterSentence with the word-count bounds as parameters;
// real-speech prompts ("Goodbye!") are allowed to be a single word.
func filterText(s string, minWords, maxWords int) (string, string) {
	// Leading dashes and separators are what is left of a dateline or a
	// dialogue dash ("-- State representatives decided …").
	s = strings.TrimLeft(cleanText(s), "-,;: ")
	if strings.Count(s, `"`)%2 == 1 {
		switch {
		case strings.HasPrefix(s, `"`):
			s = strings.TrimSpace(s[1:])
		case strings.HasSuffix(s, `"`):
			s = strings.TrimSpace(s[:len(s)-1])
		}
	}
	lower := strings.ToLower(s)
	for _, u := range []string{"http", "www.", "://", ".com", ".org", ".net", ".edu", "@"} {
		if strings.Contains(lower, u) {
			return "", DropURL
		}
	}
	for _, r := range s {
		switch {
		case r > unicode.MaxASCII:
			return "", DropNonASCII
		case r >= '0' && r <= '9':
			return "", DropDigits
		}
	}
	for _, r := range s {
		if !isPlain(r) {
			return "", DropSymbols
		}
	}
	if hasAcronym(s) {
		return "", DropAcronym
	}
	if n := len(metrics.Words(s)); n < minWords || n > maxWords {
		return "", DropLength
	}
	return s, ""
}

// isPlain reports whether r is a letter, a space or punctuation a TTS voice
// reads as a pause or intonation rather than as a word.
func isPlain(r rune) bool {
	if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || r == ' ' {
		return true
	}
	return strings.ContainsRune(`.,;:!?'"-()`, r)
}

// hasAcronym reports two upper-case letters in a row ("USA", "OK") or
// dotted initials ("U.S.", "A.M."): both are read letter by letter by some
// voices and as words by others, so the transcript would be a guess.
func hasAcronym(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if isUpperASCII(s[i]) && isUpperASCII(s[i+1]) {
			return true
		}
		if i+2 < len(s) && isUpperASCII(s[i]) && s[i+1] == '.' && isUpperASCII(s[i+2]) &&
			(i == 0 || !isLetterASCII(s[i-1])) {
			return true
		}
	}
	return false
}

func isUpperASCII(c byte) bool  { return c >= 'A' && c <= 'Z' }
func isLetterASCII(c byte) bool { return isUpperASCII(c) || (c >= 'a' && c <= 'z') }
