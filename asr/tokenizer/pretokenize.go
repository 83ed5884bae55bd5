package tokenizer

import (
	"iter"
	"strings"
	"unicode"
	"unicode/utf8"
)

// pieces splits text the way GPT-2's (and Whisper's) pre-tokenization regex does before BPE:
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// (ref: openai/whisper tokenizer.py get_encoding pat_str). Go's regexp has no lookahead, so
// this is a hand-written scanner with the same semantics: alternatives are tried in order at
// each position (leftmost-first, not longest), `?` is an optional U+0020 only, \s is Unicode
// White_Space (unicode.IsSpace), \p{L} and \p{N} are unicode.IsLetter and unicode.IsNumber.
// The lookahead alternative means a run of whitespace followed by a non-space gives up its
// last character, which then prefixes the next word (" world") or, if that last character is
// not a space, stands alone ("\n"). Bytes that are not valid UTF-8 count as [^\s\p{L}\p{N}],
// like U+FFFD. The pieces concatenate back to text exactly.
func pieces(text string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for i := 0; i < len(text); {
			n := pieceLen(text[i:])
			if !yield(text[i : i+n]) {
				return
			}
			i += n
		}
	}
}

// rune classes of the pattern
const (
	classOther = iota // [^\s\p{L}\p{N}]
	classLetter
	classNumber
	classSpace
)

func classOf(r rune) int {
	switch {
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	case unicode.IsSpace(r):
		return classSpace
	}
	return classOther // including utf8.RuneError for invalid bytes
}

// contractions are the first seven alternatives, matched only at the start of a piece.
var contractions = [...]string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"}

// pieceLen returns the byte length of the piece that starts s (len(s) > 0).
func pieceLen(s string) int {
	if s[0] == '\'' {
		for _, c := range contractions {
			if strings.HasPrefix(s, c) {
				return len(c)
			}
		}
	}
	r, size := utf8.DecodeRuneInString(s)
	class := classOf(r)
	start := 0 // where the run of one class begins
	if r == ' ' && size < len(s) {
		// " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": a space joins a following
		// non-space run.
		r2, _ := utf8.DecodeRuneInString(s[size:])
		if c2 := classOf(r2); c2 != classSpace {
			class, start = c2, size
		}
	}
	if class != classSpace {
		return start + runLen(s[start:], class)
	}
	// "\s+(?!\S)|\s+": take the whole whitespace run if it ends the text; otherwise leave its
	// last rune for the next piece, unless the run is that one rune.
	n := runLen(s, classSpace)
	if n == len(s) {
		return n
	}
	_, last := utf8.DecodeLastRuneInString(s[:n])
	if n-last > 0 {
		return n - last
	}
	return n
}

// runLen is the byte length of the longest prefix of s whose runes are all of class c.
func runLen(s string, c int) int {
	for i, r := range s {
		if classOf(r) != c {
			return i
		}
	}
	return len(s)
}
