// Package tokenizer is the byte-level BPE tokenizer of GPT-2 and Whisper, with Whisper's
// special tokens, implemented from the algorithm (no vocabulary is bundled).
//
// A vocabulary is a folder in Hugging Face's layout: vocab.json (token string → id, each
// byte written in GPT-2's byte-to-unicode alphabet), merges.txt (the ranked merge rules),
// and the special tokens in added_tokens.json and/or tokenizer.json; Load reads one, Train
// learns one from text and Save writes one. Encoding splits text with GPT-2's
// pre-tokenization pattern, then merges each piece's bytes by rank. Because it works on
// bytes, any string encodes, and decoding valid UTF-8's tokens gives it back exactly.
//
// Whisper's special tokens (<|endoftext|>, <|startoftranscript|>, languages, tasks,
// <|notimestamps|>, timestamps…) are found by name, or derived from Whisper's layout when a
// folder has none; see Specials. Encode never produces them: text that spells
// "<|endoftext|>" is encoded as ordinary characters, so user text cannot inject control
// tokens into a prompt.
//
// A Tokenizer is immutable after loading and safe for concurrent use.
package tokenizer

import (
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// Tokenizer is a loaded byte-level BPE vocabulary with Whisper's special tokens.
type Tokenizer struct {
	tokens  []string // id → vocab.json string (ordinary) or name (special); "" for unused ids
	raw     [][]byte // id → bytes of an ordinary token; nil for special and unused ids
	special []bool   // id → is a special token

	vocab  map[string]int32 // ordinary vocab.json strings → id
	names  map[string]int   // special names → id, timestamps included
	byteID [256]int32       // byte → id of its single-byte token

	merges    map[uint64]merge // (left, right) → rank and result
	mergeList [][2]int32       // the merge rules in rank order (for Save)

	sp    Specials
	cache bpeCache

	nonSpeechOnce sync.Once
	nonSpeech     []int
}

// Encode returns the token ids of text: GPT-2's pre-tokenization, then byte-level BPE on
// each piece. Special token names in text are encoded as plain text.
func (t *Tokenizer) Encode(text string) []int {
	var ids []int
	for p := range pieces(text) {
		if cached, ok := t.cache.get(p); ok {
			ids = append(ids, cached...)
			continue
		}
		start := len(ids)
		ids = t.bpe(ids, p)
		t.cache.put(p, slices.Clone(ids[start:]))
	}
	return ids
}

// Decode returns the text of ids as tokenizer.py's decode does: timestamp tokens (and any id
// from TimestampBegin up) are dropped, other special tokens are written as their names, and
// byte sequences that are not valid UTF-8 become U+FFFD (one per maximal invalid subpart, as
// Python's errors="replace"). Ids outside the vocabulary are skipped.
func (t *Tokenizer) Decode(ids []int) string {
	return t.decode(ids, false)
}

// DecodeWithTimestamps is Decode with timestamp tokens written as their names, e.g.
// "<|1.08|>" (tokenizer.py decode_with_timestamps).
func (t *Tokenizer) DecodeWithTimestamps(ids []int) string {
	return t.decode(ids, true)
}

func (t *Tokenizer) decode(ids []int, timestamps bool) string {
	var b []byte
	for _, id := range ids {
		if id < 0 || id >= len(t.tokens) || (!timestamps && id >= t.sp.TimestampBegin) {
			continue
		}
		if t.special[id] {
			b = append(b, t.tokens[id]...)
		} else {
			b = append(b, t.raw[id]...)
		}
	}
	return replaceInvalidUTF8(b)
}

// TokenBytes returns the bytes token id stands for: its raw bytes for an ordinary token (which
// may be part of a multi-byte character), its name for a special token, nil for an id outside
// the vocabulary. The result must not be modified.
func (t *Tokenizer) TokenBytes(id int) []byte {
	if id < 0 || id >= len(t.tokens) {
		return nil
	}
	if t.special[id] {
		return []byte(t.tokens[id])
	}
	return t.raw[id]
}

// Token returns the vocabulary entry of id: the byte-level string from vocab.json for an
// ordinary token (" the" is "Ġthe"), the name for a special token ("<|en|>"), or "" for an
// id outside the vocabulary.
func (t *Tokenizer) Token(id int) string {
	if id < 0 || id >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// ID returns the id of a vocabulary entry, the inverse of Token: a special token name
// ("<|startoftranscript|>", "<|nocaptions|>" where the folder uses that name) or a
// byte-level vocab.json string ("Ġthe").
func (t *Tokenizer) ID(name string) (int, bool) {
	if id, ok := t.names[name]; ok {
		return id, true
	}
	if id, ok := t.vocab[name]; ok {
		return int(id), true
	}
	return 0, false
}

// IsSpecial reports whether id is a special token (including timestamps).
func (t *Tokenizer) IsSpecial(id int) bool {
	return id >= 0 && id < len(t.special) && t.special[id]
}

// Size is the vocabulary size: one more than the largest id, timestamps included. A Whisper
// model's n_vocab equals it.
func (t *Tokenizer) Size() int { return len(t.tokens) }

// Specials returns the special token ids.
func (t *Tokenizer) Specials() Specials {
	sp := t.sp
	sp.Languages = slices.Clone(sp.Languages)
	return sp
}

// SOTSequence is Specials().SOTSequence.
func (t *Tokenizer) SOTSequence(lang, task string, timestamps bool) ([]int, error) {
	return t.sp.SOTSequence(lang, task, timestamps)
}

// replaceInvalidUTF8 converts b to a string, replacing each maximal subpart of an ill-formed
// sequence with one U+FFFD — the Unicode-recommended practice that Python's
// bytes.decode("utf-8", errors="replace") follows (and which Go's strings.ToValidUTF8, one
// replacement per run, and utf8.DecodeRune, one per byte, do not).
func replaceInvalidUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			sb.WriteByte(b[i])
			i++
			continue
		}
		if r, n := utf8.DecodeRune(b[i:]); r != utf8.RuneError || n > 1 {
			sb.Write(b[i : i+n])
			i += n
			continue
		}
		// Ill-formed: skip the lead byte and every continuation byte that could still have
		// extended it to a valid sequence.
		n := 1
		need, lo, hi := utf8SeqInfo(b[i])
		for ; n < need && i+n < len(b); n++ {
			c := b[i+n]
			if n > 1 {
				lo, hi = 0x80, 0xBF
			}
			if c < lo || c > hi {
				break
			}
		}
		sb.WriteRune(utf8.RuneError)
		i += n
	}
	return sb.String()
}

// utf8SeqInfo returns the length of the sequence lead byte c starts and the valid range of the
// second byte (Unicode Table 3-7); need is 1 for bytes that cannot start a sequence.
func utf8SeqInfo(c byte) (need int, lo, hi byte) {
	switch {
	case c >= 0xC2 && c <= 0xDF:
		return 2, 0x80, 0xBF
	case c == 0xE0:
		return 3, 0xA0, 0xBF
	case c == 0xED:
		return 3, 0x80, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		return 3, 0x80, 0xBF
	case c == 0xF0:
		return 4, 0x90, 0xBF
	case c >= 0xF1 && c <= 0xF3:
		return 4, 0x80, 0xBF
	case c == 0xF4:
		return 4, 0x80, 0x8F
	}
	return 1, 0, 0
}
