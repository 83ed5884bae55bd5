// Package metrics scores transcripts: the text normaliser that every chorus
// score goes through, and word and character error rates built on a plain
// Levenshtein alignment.
//
// The normaliser is the one DATA.md prescribes for scoring: lowercase, drop
// punctuation except apostrophes inside words, turn hyphens into spaces and
// collapse whitespace. It deliberately does not spell out numbers or expand
// abbreviations, because the training text never contains digits or
// acronyms; doing so here would hide, rather than measure, a model that
// emits them.
package metrics

import (
	"strings"
	"unicode"
)

// Normalize maps a transcript to the form that WER and CER compare.
//
// Rules, in order:
//   - typographic apostrophes (’ ‘ ʼ) become ' so that "don’t" and "don't"
//     score the same;
//   - letters are lowercased; letters and digits are kept;
//   - an apostrophe is kept only between two letters or digits ("don't",
//     "o'clock"); leading or trailing ones ("'tis", "dogs'") are dropped;
//   - every other rune (punctuation, symbols, hyphens and dashes, control
//     characters, whitespace) becomes a word break, so "well-known" becomes
//     "well known" and "U.S." becomes "u s";
//   - runs of breaks collapse to one space, with none at either end.
func Normalize(s string) string {
	rs := []rune(s)
	for i, r := range rs {
		if r == '’' || r == '‘' || r == 'ʼ' {
			rs[i] = '\''
		}
	}
	var b strings.Builder
	b.Grow(len(s))
	pendingSpace := false
	emit := func(r rune) {
		if pendingSpace && b.Len() > 0 {
			b.WriteByte(' ')
		}
		pendingSpace = false
		b.WriteRune(r)
	}
	for i, r := range rs {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			emit(unicode.ToLower(r))
		case r == '\'' && i > 0 && i+1 < len(rs) && isWordRune(rs[i-1]) && isWordRune(rs[i+1]):
			emit(r)
		case r == '\'':
			// An apostrophe at a word edge is a quotation mark or a
			// possessive plural: drop it without splitting the word.
		case unicode.Is(unicode.Mn, r):
			// Combining marks belong to the letter before them.
			if b.Len() > 0 && !pendingSpace {
				b.WriteRune(r)
			}
		default:
			pendingSpace = true
		}
	}
	return b.String()
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// Words returns the normalised words of s.
func Words(s string) []string { return strings.Fields(Normalize(s)) }
