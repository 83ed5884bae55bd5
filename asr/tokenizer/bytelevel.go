package tokenizer

import "unicode/utf8"

// GPT-2's byte-level alphabet (ref: openai/gpt-2 src/encoder.py bytes_to_unicode). BPE runs
// on bytes, but vocab.json and merges.txt are text, so every byte is written as one printable
// rune: the printable Latin-1 bytes '!'…'~', '¡'…'¬', '®'…'ÿ' stand for themselves, and the
// remaining 68 bytes (controls, space, DEL, NBSP, soft hyphen…) map in byte order to U+0100,
// U+0101, … — so the space byte is 'Ġ' (U+0120) and '\n' is 'Ċ' (U+010A).
var (
	// byteRune maps a byte to its rune in the alphabet.
	byteRune [256]rune
	// runeByte maps a rune of the alphabet back to its byte (runes < 0x200 only; -1 elsewhere).
	runeByte [0x200]int16
	// byteOrder lists the bytes in bytes_to_unicode's order (the printable ones first). GPT-2's
	// vocabulary, and Train's, give the 256 byte tokens ids in this order.
	byteOrder [256]byte
)

func init() {
	for i := range runeByte {
		runeByte[i] = -1
	}
	n := 0
	printable := func(b int) bool {
		return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
	}
	for b := range 256 {
		if printable(b) {
			byteRune[b] = rune(b)
			byteOrder[n] = byte(b)
			n++
		}
	}
	extra := 0
	for b := range 256 {
		if !printable(b) {
			byteRune[b] = rune(256 + extra)
			byteOrder[n] = byte(b)
			n++
			extra++
		}
	}
	for b, r := range byteRune {
		runeByte[r] = int16(b)
	}
}

// bytesToSymbols writes b in the byte-level alphabet (a vocab.json token string).
func bytesToSymbols(b []byte) string {
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = utf8.AppendRune(out, byteRune[c])
	}
	return string(out)
}

// symbolsToBytes reads a vocab.json token string back into bytes; ok is false if it holds a
// rune outside the byte-level alphabet.
func symbolsToBytes(s string) (b []byte, ok bool) {
	b = make([]byte, 0, len(s))
	for _, r := range s {
		if r < 0 || int(r) >= len(runeByte) || runeByte[r] < 0 {
			return nil, false
		}
		b = append(b, byte(runeByte[r]))
	}
	return b, true
}
